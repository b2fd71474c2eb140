"""Activation checkpointing for very long T or very deep networks.

Backpropagation through time keeps, for every layer, what its backward needs for all T steps, so
memory grows with T × depth (SpikingJelly #422, #218). The fused neurons already keep only their
input; checkpointing goes further: a wrapped block keeps only *its* input and recomputes its
inside (conv, norm, neuron ...) during the backward pass — about one extra forward of the block
for a memory footprint that no longer depends on what is inside it.

    from inflor.checkpointing import Checkpoint, checkpoint_modules
    block = Checkpoint(nn.Sequential(conv, norm, neuron))   # one block
    checkpoint_modules(model, types=(BasicBlock,))           # every residual block, in place
    checkpoint_modules(model, names=["layer1", "layer2"])    # chosen submodules

Gradients equal those without checkpointing (tested). It is built on
``torch.utils.checkpoint`` (non-reentrant), so gradients also reach what a block leaves on the
side — the neurons' membrane statistics for MPD-Loss and IM-Loss. The recomputation does not
count twice: buffers of the block (BatchNorm running statistics, ``num_batches_tracked``) and the
neurons' ``stats`` are restored after it, so one training step updates them exactly once. Random
layers (dropout) replay the same random numbers. In evaluation, or without gradients, a
``Checkpoint`` is a plain call.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterable

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

__all__ = ["Checkpoint", "checkpoint_modules"]


@contextmanager
def _restored_state(module: nn.Module):
    """Run the recomputation without side effects: put back buffers and neuron statistics."""
    buffers = [(b, b.detach().clone()) for b in module.buffers()]
    stats = [(m, m.stats) for m in module.modules() if hasattr(m, "stats") and hasattr(m, "record_stats")]
    try:
        yield
    finally:
        with torch.no_grad():
            for b, saved in buffers:
                b.copy_(saved)
        for m, s in stats:
            m.stats = s


class Checkpoint(nn.Module):
    """Wrap ``module`` so that training keeps only its inputs and recomputes it in backward.

    Args:
        module: any module (a block, a stage, an ``nn.Sequential`` of layers).
        enabled: turn checkpointing off without changing the model structure.

    The wrapper does not show in ``state_dict()`` keys, so a checkpointed model saves and loads
    the same files as the plain one.
        preserve_rng_state: replay the random numbers of dropout-like layers (default True).
    """

    def __init__(self, module: nn.Module, enabled: bool = True, preserve_rng_state: bool = True):
        super().__init__()
        self.module = module
        self.enabled = enabled
        self.preserve_rng_state = preserve_rng_state
        # the wrapper is invisible in state dicts: checkpoints load with or without it
        self.register_state_dict_post_hook(_drop_wrapper_prefix)
        self.register_load_state_dict_pre_hook(_add_wrapper_prefix)

    def forward(self, *args, **kwargs):
        active = (self.enabled and self.training and torch.is_grad_enabled()
                  and any(isinstance(a, torch.Tensor) and a.requires_grad for a in args))
        if not active:
            return self.module(*args, **kwargs)
        calls = []

        def run(*a, **kw):
            calls.append(1)
            if len(calls) == 1:          # the real forward
                return self.module(*a, **kw)
            with _restored_state(self.module):   # the recomputation inside backward
                return self.module(*a, **kw)

        return checkpoint(run, *args, use_reentrant=False,
                          preserve_rng_state=self.preserve_rng_state, **kwargs)

    def extra_repr(self) -> str:
        return "" if self.enabled else "enabled=False"


def _drop_wrapper_prefix(module, state_dict, prefix, local_metadata) -> None:
    inner = prefix + "module."
    for key in [k for k in state_dict if k.startswith(inner)]:
        state_dict[prefix + key[len(inner):]] = state_dict.pop(key)


def _add_wrapper_prefix(module, state_dict, prefix, local_metadata, strict, missing_keys,
                        unexpected_keys, error_msgs) -> None:
    inner = prefix + "module."
    expected = {inner + k for k in module.module.state_dict(keep_vars=True)}
    for key in [k for k in state_dict if k.startswith(prefix) and k not in expected]:
        if inner + key[len(prefix):] in expected:
            state_dict[inner + key[len(prefix):]] = state_dict.pop(key)


def checkpoint_modules(model: nn.Module, names: Iterable[str] | None = None,
                       types: tuple[type, ...] | None = None, enabled: bool = True) -> list[str]:
    """Wrap submodules of ``model`` in ``Checkpoint`` in place; returns the wrapped paths.

    Pick them by dotted path (``names``) or by class (``types``; the outermost match is wrapped,
    not its children). One of the two is required.
    """
    if names is None and types is None:
        raise ValueError("checkpoint_modules needs names=[...] (module paths) or types=(...) (classes)")
    wanted = set(names or ())
    modules = dict(model.named_modules())
    missing = wanted - set(modules)
    if missing:
        raise ValueError(f"no submodule named {sorted(missing)}; valid names include "
                         f"{[n for n in modules if n][:20]}")
    chosen = []
    for name, m in modules.items():
        if not name or isinstance(m, Checkpoint):
            continue
        if name in wanted or (types is not None and isinstance(m, types)):
            if any(name.startswith(c + ".") for c in chosen):
                continue
            chosen.append(name)
    for name in chosen:
        parent_name, _, attr = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, attr, Checkpoint(getattr(parent, attr), enabled=enabled))
    return chosen
