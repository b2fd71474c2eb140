"""Evaluation: the test loss (the task loss), the accuracy of the T-mean logits and the mean
spike rate over every spiking neuron and time step (forward hooks; no membrane statistics)."""
from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import DataLoader

from inflor.losses import TASK_LOSSES
from inflor.neuron import BaseNode, set_record_stats

from .precision import autocast
from .distributed import DistInfo, all_reduce_sum, bare_model

__all__ = ["SpikeCounter", "evaluate"]


class SpikeCounter:
    """Forward hooks on every spiking neuron summing spikes and neuron-steps (detached)."""

    def __init__(self, model: nn.Module):
        self._spikes = None      # a device tensor: no host sync per layer
        self.count = 0
        self.handles = [m.register_forward_hook(self._hook) for m in bare_model(model).modules()
                        if isinstance(m, BaseNode)]

    def _hook(self, module, inputs, output):
        s = output.detach().sum(dtype=torch.float64)
        self._spikes = s if self._spikes is None else self._spikes + s
        self.count += output.numel()

    @property
    def spikes(self) -> float:
        return 0.0 if self._spikes is None else float(self._spikes)

    def remove(self):
        for h in self.handles:
            h.remove()


@torch.no_grad()
def evaluate(model: nn.Module, loader: DataLoader, device: torch.device, cfg: dict,
             dist_info: DistInfo | None = None) -> dict:
    """Test loss (the task loss), accuracy of the T-mean logits and mean spike rate."""
    dist_info = dist_info or DistInfo()
    model.eval()
    bare = bare_model(model)
    recording = [m.record_stats for m in bare.modules() if isinstance(m, BaseNode)]
    set_record_stats(bare, False)
    counter = SpikeCounter(bare)
    sums = torch.zeros(3, dtype=torch.float64)
    task = TASK_LOSSES[cfg["loss"]["task"]]
    try:
        for x, y in loader:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            with autocast(device, cfg):
                logits = bare(x)
            logits = logits.float()
            b = y.shape[0]
            sums += torch.tensor([float(task(logits, y)) * b, (logits.mean(0).argmax(1) == y).sum().item(), b],
                                 dtype=torch.float64)
    finally:
        counter.remove()
        nodes = [m for m in bare.modules() if isinstance(m, BaseNode)]
        for m, r in zip(nodes, recording):
            m.record_stats = r
    spikes = torch.tensor([counter.spikes, float(counter.count)], dtype=torch.float64)
    all_reduce_sum(sums, dist_info)
    all_reduce_sum(spikes, dist_info)
    n = max(float(sums[2]), 1.0)
    return {"loss": float(sums[0] / n), "acc": float(sums[1] / n), "samples": int(sums[2]),
            "spike_rate": float(spikes[0] / spikes[1]) if spikes[1] > 0 else None}
