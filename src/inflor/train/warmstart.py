"""Warm starts (``train.init_from``): a run that starts from the model weights of a checkpoint.

Only the model's learned state is taken: every parameter and every buffer (BatchNorm running
statistics), matched strictly by name and shape; the optimizer, schedule, epoch, best accuracy
and generator states of that checkpoint are not (the run starts at epoch 0 with its own seed).
The surrogate functions' buffers (the rectangle's width, ESG's K range) are settings of *this*
run, not weights: they are neither compared nor copied, so a warm-up may use another surrogate.

Before training, the trainer evaluates the loaded weights on the test split exactly as it
evaluates every epoch (``trainer.evaluate``, the function behind ``inflor eval``) and writes
``OUT/init.json``: the checkpoint, its run and epoch, test accuracy, loss, spike rate and the
firing rate of the last spiking layer (the IM-Loss and RecDis papers stopped their warm-ups once
that layer fired).
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from ..neuron import BaseNode
from ..runs.checkpoint import CheckpointError, load_checkpoint
from ..runs.files import write_json
from ..runs.layout import INIT as INIT_FILE
from ..runs.layout import RunDir
from ..runs.summary import final_run_dir
from ..surrogate import Surrogate
from .distributed import all_reduce_sum, bare_model
from .evaluate import evaluate

__all__ = ["INIT_FILE", "resolve_init_checkpoint", "learned_state", "first_mismatch", "load_weights",
           "load_init", "LastLayerRate"]



def resolve_init_checkpoint(spec: str | os.PathLike) -> Path:
    """The checkpoint file ``spec`` names: a ``.pt`` file, or a run directory (its
    ``checkpoints/last.pt``, the weights at the end of that run; a run made of stages: the last
    stage's)."""
    p = Path(spec).expanduser()
    if p.is_file():
        return p
    if p.is_dir():
        last = RunDir(final_run_dir(p)).last
        if last.is_file():
            return last
        raise CheckpointError(f"train.init_from: run directory {p} has no {last.relative_to(p)} (the run has not "
                              f"finished an epoch); give a run that has, or a checkpoint file")
    raise CheckpointError(f"train.init_from: {p} does not exist; expected a checkpoint file (.pt) or a run "
                          f"directory holding checkpoints/last.pt")


def _surrogate_prefixes(model: nn.Module) -> tuple[str, ...]:
    return tuple(f"{name}." for name, m in model.named_modules() if isinstance(m, Surrogate) and name)


def learned_state(state: dict, model: nn.Module) -> dict:
    """``state`` without the entries of ``model``'s surrogate functions (settings, not weights)."""
    skip = _surrogate_prefixes(model)
    return {k: v for k, v in state.items() if not k.startswith(skip)}


def _shape(v) -> tuple | None:
    return tuple(v.shape) if hasattr(v, "shape") else None


def first_mismatch(own: dict, state: dict) -> tuple[str | None, int]:
    """``(description of the first mismatch in the model's order, number of mismatches)``;
    ``(None, 0)`` when ``state`` has exactly the model's tensor names and shapes."""
    found = []
    for k, v in own.items():
        if k not in state:
            found.append(f"{k!r} {_shape(v)} of this model is not in the checkpoint")
        elif _shape(state[k]) != _shape(v):
            found.append(f"{k!r} is {_shape(state[k])} in the checkpoint but {_shape(v)} in this model")
    found += [f"{k!r} {_shape(state[k])} of the checkpoint is not in this model" for k in state if k not in own]
    return (found[0] if found else None), len(found)


def load_weights(model: nn.Module, state: dict, where: str, origin: str = "") -> None:
    """Copy the learned tensors of ``state`` into ``model``, all or nothing; a name or shape that
    differs raises ``CheckpointError`` naming the first one (in the model's order)."""
    own = learned_state(model.state_dict(), model)
    theirs = learned_state(state, model)
    first, n = first_mismatch(own, theirs)
    if first is not None:
        raise CheckpointError(f"train.init_from: {where} does not fit this {getattr(model, 'model_name', '')} model: "
                              f"first mismatch: {first}" + (f" ({n} mismatches in all)" if n > 1 else "")
                              + (f". It holds {origin}." if origin else "."))
    with torch.no_grad():
        for k, v in model.state_dict().items():
            if k in theirs:
                v.copy_(theirs[k])


def load_init(model: nn.Module, spec: str | os.PathLike) -> dict:
    """Load the weights of ``train.init_from = spec`` into ``model``; returns what init.json records."""
    path = resolve_init_checkpoint(spec)
    ck = load_checkpoint(path, map_location="cpu")
    opts = ck.get("model_options") or {}
    shown = ", ".join(f"{k}={opts[k]}" for k in ("timesteps", "neuron", "norm", "width") if k in opts)
    load_weights(model, ck["model_state"], str(path), origin=f"a {ck['model_name']!r} model ({shown})")
    run = RunDir.of_checkpoint(path)
    run_dir = run.path if run is not None else None
    return {"init_from": str(spec), "checkpoint": str(path.resolve()),
            "run_dir": str(run_dir.resolve()) if run_dir is not None else None,
            "model": ck["model_name"], "epoch": int(ck["epoch"]), "run_name": (ck.get("config") or {}).get("name")}


class LastLayerRate:
    """Forward hooks on every spiking layer: the firing rate of the last one to fire in a forward
    pass (the network's last spiking layer), summed over everything run while attached."""

    def __init__(self, model: nn.Module):
        self.sums: dict[str, list[float]] = {}
        self.order: list[str] = []
        self.handles = [m.register_forward_hook(self._hook(name)) for name, m in model.named_modules()
                        if isinstance(m, BaseNode)]

    def _hook(self, name):
        def hook(module, inputs, output):
            s = self.sums.setdefault(name, [0.0, 0])
            s[0] += float(output.detach().sum(dtype=torch.float64))
            s[1] += output.numel()
            if name in self.order:
                self.order.remove(name)
            self.order.append(name)
        return hook

    def remove(self) -> None:
        for h in self.handles:
            h.remove()

    def last(self) -> tuple[str | None, list[float]]:
        """``(name of the last spiking layer, [spikes, neuron-steps])``."""
        if not self.order:
            return None, [0.0, 0.0]
        name = self.order[-1]
        return name, [float(self.sums[name][0]), float(self.sums[name][1])]


def evaluate_init(trainer) -> dict:
    """Test the loaded weights before the first epoch, as every epoch is tested; write init.json."""
    info = dict(trainer.init_info)
    rate = LastLayerRate(bare_model(trainer.model))
    try:
        res = evaluate(trainer.ddp, trainer.test_loader, trainer.device, trainer.cfg, trainer.dist)
    finally:
        rate.remove()
    layer, sums = rate.last()
    sums = all_reduce_sum(torch.tensor(sums, dtype=torch.float64), trainer.dist)
    info.update({"test_acc": res["acc"], "test_loss": res["loss"], "spike_rate": res["spike_rate"],
                 "samples": res["samples"], "last_spiking_layer": layer,
                 "last_layer_spike_rate": float(sums[0] / sums[1]) if sums[1] > 0 else None})
    if trainer.dist.is_main:
        write_json(RunDir(trainer.out).init, info, indent=2)
    fmt = lambda v: "-" if v is None else f"{v:.4f}"  # noqa: E731
    trainer.log(f"starting from the weights of {info['checkpoint']} (epoch {info['epoch']}): test acc "
                f"{res['acc']:.4f}, spike rate {fmt(res['spike_rate'])}, last spiking layer {layer} "
                f"{fmt(info['last_layer_spike_rate'])}; {INIT_FILE} written")
    if info["last_layer_spike_rate"] == 0:
        trainer.log(f"warning: the last spiking layer ({layer}) of the starting weights never fires on the test "
                    f"set: the warm start has not reached what it is for (the papers stop their warm-ups once it "
                    f"fires); lengthen the stage it comes from")
    return info
