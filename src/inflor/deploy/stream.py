"""Streaming inference: one time step at a time, the membranes passed explicitly.

``step_module(model)`` rewrites the model's traced graph (``inflor.deploy.graph``) so that every
spiking neuron takes its membrane U[t-1] as a graph input and gives U[t] as a graph output::

    StepModule(x_t [B, ...], U_1, ..., U_n) -> (logits_t [B, K], U_1', ..., U_n')

Nothing is stored between calls: that function is what ``to_onnx`` exports, and ``Stream`` only
keeps the tuple of U it returned. Since a neuron continued from its state equals one call on the
whole sequence (``inflor.functional``), and every other layer acts on each step alone, the
stacked steps equal ``model(x)``'s per-step logits.
"""
from __future__ import annotations

import operator

import torch
from torch import fx, nn

from ..neuron import BaseNode
from .graph import fold_model, node_name


class _StateNode(nn.Module):
    """A neuron with its membrane as an explicit input and output: ``(x, U) -> (spikes, U')``."""

    def __init__(self, node: BaseNode):
        super().__init__()
        self.node = node

    def forward(self, x, u):
        return self.node(x, state=u, return_state=True)


class StepModule(nn.Module):
    """``(x_t, *U) -> (logits_t, *U')`` for one time step (see the module docstring).

    ``state_names`` are the neurons' module paths, in the order of the U arguments; ``None`` for
    a U means 0 (the start of a sequence)."""

    def __init__(self, gm: fx.GraphModule):
        super().__init__()
        graph = gm.graph
        x_in = next(n for n in graph.nodes if n.op == "placeholder")
        out = next(n for n in graph.nodes if n.op == "output")
        neurons = [n for n in graph.nodes if n.op == "call_module" and isinstance(gm.get_submodule(n.target), BaseNode)]
        self.state_names = [node_name(n.target) for n in neurons]
        new_states, anchor = [], x_in
        for i, n in enumerate(neurons):
            with graph.inserting_after(anchor):
                anchor = graph.placeholder(f"u{i}", default_value=None)
            parent, _, attr = n.target.rpartition(".")
            setattr(gm.get_submodule(parent), attr, _StateNode(gm.get_submodule(n.target)))
            n.args = (n.args[0], anchor)
            with graph.inserting_after(n):
                spikes = graph.call_function(operator.getitem, (n, 0))
            with graph.inserting_after(spikes):
                u_new = graph.call_function(operator.getitem, (n, 1))
            n.replace_all_uses_with(spikes, delete_user_cb=lambda user: user not in (spikes, u_new))
            new_states.append(u_new)
        out.args = ((out.args[0], *new_states),)
        graph.lint()
        gm.recompile()
        self.graph_module = gm

    def forward(self, x_t: torch.Tensor, *states):
        if not states:
            states = (None,) * len(self.state_names)
        logits, *new = self.graph_module(x_t.unsqueeze(0), *states)
        return (logits[0], *new)


def step_module(model: nn.Module, fold: bool = True) -> StepModule:
    """The single-step function of ``model`` (with BN and MPR folded unless ``fold=False``)."""
    return StepModule(fold_model(model, norms=fold, mpr=fold))


class Stream:
    """Run ``model`` one time step at a time::

        s = Stream(model)                      # BN and MPR folded for inference
        logits_t = s.step(x_t)                 # x_t [B, C, H, W] -> [B, K]
        s.reset()                              # a new sequence: every membrane back to 0

    For a static image, step it T times with the same ``x_t``; for event frames ``[B, T, C, H,
    W]``, step ``x[:, t]``. The stacked steps equal ``model(x)`` (of the folded network: bit for
    bit; of the unfolded one: to float rounding). ``state`` is the tuple of membranes, in the
    order of ``state_names``; pass your own to ``step(x_t, state)`` to branch a stream."""

    def __init__(self, model: nn.Module, fold: bool = True):
        self.in_channels = getattr(model, "in_channels", None)
        self.module = step_module(model, fold=fold)
        self.state_names = self.module.state_names
        self.reset()

    def reset(self) -> None:
        self.state: tuple = (None,) * len(self.state_names)

    @torch.no_grad()
    def step(self, x_t: torch.Tensor, state: tuple | None = None) -> torch.Tensor:
        if not isinstance(x_t, torch.Tensor) or x_t.dim() < 2 or (
                self.in_channels is not None and x_t.dim() == 4 and x_t.shape[1] != self.in_channels):
            shape = tuple(x_t.shape) if isinstance(x_t, torch.Tensor) else type(x_t).__name__
            raise ValueError(f"Stream.step expects one time step [B, {self.in_channels}, H, W], got {shape}")
        if not x_t.is_floating_point():
            x_t = x_t.float()
        logits, *self.state = self.module(x_t, *(self.state if state is None else state))
        self.state = tuple(self.state)
        return logits
