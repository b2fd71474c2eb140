"""Online training through time (``train.bptt: online``): memory that does not grow with T.

Full BPTT keeps every time step's activations until one backward at the end, so its memory
grows linearly with T. The online rule (spatial learning through time, SLTT, Meng et al. ICCV'23;
the per-step losses of OTTT, Xiao et al. NeurIPS'22) runs the network one step at a time and
back-propagates each step at once, so only one step's activations are alive::

    for t = 0 .. T-1:
        H_t = λ·sg(U_{t-1}) + s·X_t                   (sg: stop-gradient; U_{-1} = 0)
        logits_t = network at step t
        ∇θ += ∇θ [ L(logits_t, y) / T ]                (L: the run's loss on one step's logits)
        U_t = reset(H_t, O_t)                         (kept, detached, for step t+1)

**The approximation.** It drops every gradient term that crosses time: the paths through the
membrane, ∂H_t/∂U_{t-1} = λ and the reset's ∂U_t/∂O_t — so step t's loss only credits step t's
input and weights through that step's spatial path (SLTT's "temporal" component is left out; no
eligibility traces as OTTT keeps). The loss is the mean of the per-step losses instead of the loss
of the T-mean logits (for cross-entropy that is the TET-style objective); a distribution loss
(MPD / IM) sees one step's membrane statistics at a time. Forward values equal full BPTT's except
for these statistics-dependent parts: a norm over (T, B) normalises each step over B only (and
updates its running statistics T times per batch), and a dropout draws a new mask per step.
With T = 1 the online gradient equals full BPTT's (tested).

The membrane carry works for every inflor neuron (``BaseNode``) without changing it: a step's input
X̃_t = X_t + (λ/s)·sg(U_{t-1}) makes the neuron's own one-step charge s·X̃_t = λ·U_{t-1} + s·X_t,
and U_t is recomputed from H_t and the spikes with the neuron's reset.
"""
from __future__ import annotations

import contextlib
from typing import Callable

import torch
from torch import nn

from inflor.neuron import BaseNode

__all__ = ["online_backward", "online_train_step", "BPTT_MODES"]

BPTT_MODES = ("full", "online")


class _MembraneCarry:
    """Hooks on every neuron of a model that carry its membrane U from one call to the next,
    detached (see the module docstring)."""

    def __init__(self, model: nn.Module):
        self.u: dict[int, torch.Tensor] = {}
        self.handles = []
        for m in model.modules():
            if isinstance(m, BaseNode):
                self.handles.append(m.register_forward_pre_hook(self._pre))
                self.handles.append(m.register_forward_hook(self._post))

    def _pre(self, node: BaseNode, args):
        x = args[0]
        u = self.u.get(id(node))
        node._online_x = x if u is None else x + (node.cfg.decay / node.cfg.input_scale) * u
        return (node._online_x,) + tuple(args[1:])

    def _post(self, node: BaseNode, args, out):
        c = node.cfg
        with torch.no_grad():
            h = c.input_scale * node._online_x.detach()
            o = out.detach()
            u = h * (1 - o) + c.v_reset * o if c.reset == "hard" else h - c.soft_reset_amount * o
        self.u[id(node)] = u
        del node._online_x

    def remove(self):
        for h in self.handles:
            h.remove()
        self.u.clear()


def online_backward(model: nn.Module, x: torch.Tensor, step_loss: Callable[[torch.Tensor], dict],
                    autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
                    backward: Callable[[torch.Tensor], None] = torch.Tensor.backward):
    """Run ``model`` (a ``SpikingModel``, or a DDP wrapper of one) on the batch ``x`` one time step at
    a time, back-propagating ``step_loss(logits_t)["total"] / T`` after each step (gradients
    accumulate in ``.grad``; zero them before). ``step_loss`` gets one step's logits ``[1, B, K]``
    and returns the loss terms (``inflor.train.trainer.compute_loss``'s dict). Returns the logits
    ``[T, B, K]`` (detached) and the loss terms averaged over the steps (detached)."""
    bare = model.module if hasattr(model, "module") else model
    xs = bare.to_multistep(x)            # [T, B, ...]
    T = xs.shape[0]
    carry = _MembraneCarry(bare)
    logits, sums = [], {}
    try:
        for t in range(T):
            sync = contextlib.nullcontext() if t == T - 1 or not hasattr(model, "no_sync") else model.no_sync()
            with sync:
                with autocast():
                    out = model(xs[t:t + 1].transpose(0, 1))      # one frame, as event input [B, 1, ...]
                parts = step_loss(out)
                backward(parts["total"] / T)
            logits.append(out.detach())
            for k, v in parts.items():
                sums[k] = sums.get(k, 0.0) + v.detach().float() / T
    finally:
        carry.remove()
    return torch.cat(logits), sums


def online_train_step(model: nn.Module, images: torch.Tensor, labels: torch.Tensor):
    """A benchmark's training step in online mode (cross-entropy per step, SGD with momentum),
    the counterpart of ``benchmarks/run.py``'s full-BPTT ``train_step``."""
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()

    def step():
        opt.zero_grad(set_to_none=True)
        online_backward(model, images, lambda lg: {"total": loss_fn(lg.mean(0), labels)})
        opt.step()
    return step
