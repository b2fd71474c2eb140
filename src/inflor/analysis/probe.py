"""Watch every spiking layer of a model through forward hooks, without touching the core.

A forward hook on an ``inflor.neuron.BaseNode`` sees the node's input current ``x`` ``[T, B, ...]``
and its output spikes; ``iter_membrane`` replays the node's equations (its ``cfg`` and ``mpr``)
to recover H and φ(H) step by step, and a ``LayerAccumulator`` per layer keeps running sums and
histograms. Nothing is stored per sample, so memory is bounded whatever the number of batches.

    probe = MembraneProbe(model, layers=["features.2", "layer2.*"])
    with probe:
        for x, y in loader:
            model(x)
    probe.summary()       # {layer name: {...}}
"""
from __future__ import annotations

import fnmatch
from typing import Iterable, Sequence

import torch
from torch import nn

from ..neuron import BaseNode, spiking_nodes
from .membrane import LayerAccumulator, iter_membrane, window_bounds


def select_layers(model: nn.Module, layers: Sequence[str] | None = None) -> list[tuple[str, BaseNode]]:
    """The spiking layers named (exact module paths or shell-style patterns such as ``layer2.*``)
    in ``layers``, in model order; all of them when ``layers`` is empty. A name that matches
    nothing raises ``ValueError`` listing the valid names."""
    nodes = spiking_nodes(model)
    if not nodes:
        raise ValueError(f"{type(model).__name__} has no spiking layers (inflor.neuron.BaseNode modules)")
    if not layers:
        return nodes
    names = [n for n, _ in nodes]
    chosen: set[str] = set()
    for pattern in layers:
        hits = [n for n in names if n == pattern or fnmatch.fnmatchcase(n, pattern)]
        if not hits:
            shown = ", ".join(names[:40]) + (", ..." if len(names) > 40 else "")
            raise ValueError(f"no spiking layer named {pattern!r}; the model's spiking layers are: {shown}")
        chosen.update(hits)
    return [(n, m) for n, m in nodes if n in chosen]


class MembraneProbe:
    """Forward hooks on the chosen spiking layers feeding one ``LayerAccumulator`` each.

    Use as a context manager (hooks removed on exit) or call ``attach()`` / ``detach()``.
    """

    def __init__(self, model: nn.Module, layers: Sequence[str] | None = None):
        self.model = model
        self.nodes = select_layers(model, layers)
        self.acc = {name: LayerAccumulator(node.cfg.v_threshold, node.surrogate_function)
                    for name, node in self.nodes}
        self._handles: list = []

    def _hook(self, name: str, node: BaseNode):
        acc = self.acc[name]

        def hook(module, inputs, output):
            x = inputs[0]
            for t, (h, h_hat, o) in enumerate(iter_membrane(x, node.cfg, node.mpr, output)):
                acc.update(t, h, h_hat, o)
        return hook

    def attach(self) -> "MembraneProbe":
        if not self._handles:
            self._handles = [node.register_forward_hook(self._hook(name, node)) for name, node in self.nodes]
        return self

    def detach(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []

    def __enter__(self) -> "MembraneProbe":
        return self.attach()

    def __exit__(self, *exc) -> None:
        self.detach()

    def layer_info(self) -> dict:
        """Static description of each watched layer (its equations' settings)."""
        out = {}
        for name, node in self.nodes:
            out[name] = {**node.cfg.as_dict(), "mpr": None if node.mpr is None else repr(node.mpr),
                         "surrogate": type(node.surrogate_function).__name__,
                         "surrogate_repr": node.surrogate_function.extra_repr(), "role": node.role,
                         "window": window_bounds(node.surrogate_function, node.cfg.v_threshold),
                         "window_h": window_bounds(node.surrogate_function, node.cfg.v_threshold, node.mpr)}
        return out

    def summary(self, mpd_options: dict | None = None) -> dict:
        """``{layer: numbers}`` for every layer that saw data."""
        return {name: acc.summary(mpd_options) for name, acc in self.acc.items() if acc.n}

    def histograms(self) -> dict:
        """``{layer: {"before": binned dict of H, "after": binned dict of φ(H)}}``."""
        return {name: acc.histograms() for name, acc in self.acc.items() if acc.n}


def _batches(loader: Iterable, max_batches: int | None):
    for i, batch in enumerate(loader):
        if max_batches is not None and i >= max_batches:
            break
        yield batch


@torch.no_grad()
def run_probe(model: nn.Module, loader: Iterable, layers: Sequence[str] | None = None,
              max_batches: int | None = None, device: str | torch.device = "cpu",
              count_ops: bool = True, progress: bool = False, mpd_options: dict | None = None) -> dict:
    """Run ``model`` (in eval mode) over ``loader`` batches ``(x, y)`` and measure its spiking
    layers (and, with ``count_ops``, the MACs and input rates of its conv/linear layers).

    Returns ``{"samples", "batches", "accuracy", "layers", "histograms", "layer_info", "ops"}``;
    ``ops`` is an ``inflor.energy.OpCounter`` (or None).
    """
    from ..energy import OpCounter

    was_training = model.training
    model.eval()
    probe = MembraneProbe(model, layers)
    counter = OpCounter(model) if count_ops else None
    samples = correct = batches = 0
    labelled = True
    it = _batches(loader, max_batches)
    if progress:
        from tqdm.auto import tqdm
        total = None
        try:
            total = len(loader) if max_batches is None else min(len(loader), max_batches)
        except TypeError:
            pass
        it = tqdm(it, total=total, desc="analyze", unit="batch", leave=False)
    try:
        probe.attach()
        if counter is not None:
            counter.attach()
        for batch in it:
            x, y = (batch[0], batch[1]) if isinstance(batch, (tuple, list)) else (batch, None)
            x = x.to(device)
            out = model(x)
            if counter is not None:
                counter.end_batch(x.shape[0])
            samples += x.shape[0]
            batches += 1
            if y is None or not (isinstance(out, torch.Tensor) and out.dim() == 3):
                labelled = False
            else:
                correct += int((out.mean(0).argmax(-1).cpu() == y).sum())
    finally:
        probe.detach()
        if counter is not None:
            counter.detach()
        model.train(was_training)
    if samples == 0:
        raise ValueError("the data loader yielded no batches")
    return {"samples": samples, "batches": batches,
            "accuracy": correct / samples if labelled else None,
            "layers": probe.summary(mpd_options), "histograms": probe.histograms(),
            "layer_info": probe.layer_info(), "ops": counter}
