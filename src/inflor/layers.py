"""Stateless layers on multi-step tensors: fold time into the batch and run the layer once.

``TimeFold(m)(x)`` with ``x`` of shape ``[T, B, ...]`` computes ``m(x.reshape(T·B, ...))`` and
restores ``[T, B, ...]``: conv, pooling, flatten, linear and dropout see one big batch instead of
a Python loop over T.

``SpikeConv2d`` / ``SpikeLinear``: drop-in ``nn.Conv2d`` / ``nn.Linear`` for spike input that keep
that input for backward as bits (1 per spike) instead of floats; gradients unchanged.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .bitpack import pack_kept_spikes, unpack_spikes
from .functional import check_multistep
from .scratch import reshaped


class TimeFold(nn.Module):
    """Apply a stateless module to ``[T, B, ...]`` as one batch of T·B samples."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_multistep(x, f"TimeFold({type(self.module).__name__})")
        T, B = x.shape[:2]
        y = self.module(x.reshape(T * B, *x.shape[2:]))
        return y.reshape(T, B, *y.shape[1:])


def repeat_time(x: torch.Tensor, timesteps: int) -> torch.Tensor:
    """Direct encoding: a static batch ``[B, ...]`` repeated T times -> ``[T, B, ...]`` (a view)."""
    if timesteps < 1:
        raise ValueError(f"timesteps must be >= 1, got {timesteps}")
    return x.unsqueeze(0).expand(timesteps, *x.shape)


# ---------------------------------------------------------------------------------------------
# Spike layers: nn.Conv2d / nn.Linear that keep their binary input packed as bits for backward
# ---------------------------------------------------------------------------------------------
def _saves_input(weight: torch.Tensor) -> bool:
    """Whether autograd would keep the input: only a weight gradient needs it."""
    return torch.is_grad_enabled() and weight.requires_grad


def _apply_autocast(fn, x: torch.Tensor, weight: torch.Tensor, bias, *rest):
    """``fn.apply(x, weight, bias, *rest)`` as autocast would run the conv / linear it replaces:
    under autocast the three tensors are cast to the autocast dtype first (the casts are on the
    autograd graph, so float32 parameters get their gradients) and ``fn`` runs with autocast off,
    so forward and backward see one dtype."""
    dev = x.device.type
    try:
        on = torch.is_autocast_enabled(dev)
    except RuntimeError:        # a device without autocast (e.g. "meta", for shape inference)
        on = False
    if not on:
        return fn.apply(x, weight, bias, *rest)
    dt = torch.get_autocast_dtype(dev)
    with torch.autocast(dev, enabled=False):
        return fn.apply(x.to(dt), weight.to(dt), None if bias is None else bias.to(dt), *rest)


class _SpikeConv2dFn(torch.autograd.Function):
    """y = conv2d(x, W, b); saves ``pack_spikes(x)`` (1 bit per element) and W. Backward:
    ``aten.convolution_backward`` on the unpacked x — the call nn.Conv2d's own autograd makes, so
    the gradients are bit-identical to it."""

    @staticmethod
    def forward(ctx, x, weight, bias, stride, padding, dilation, groups):
        ctx.conf = (stride, padding, dilation, groups)
        ctx.x_shape, ctx.x_dtype = x.shape, x.dtype
        ctx.channels_last = (x.dim() == 4 and not x.is_contiguous()
                             and x.is_contiguous(memory_format=torch.channels_last))
        ctx.has_bias = bias is not None
        ctx.save_for_backward(pack_kept_spikes(x) if weight.requires_grad else None, weight)
        return F.conv2d(x, weight, bias, stride, padding, dilation, groups)

    @staticmethod
    def backward(ctx, grad):
        packed, weight = ctx.saved_tensors
        stride, padding, dilation, groups = ctx.conf
        if packed is not None:
            x = unpack_spikes(packed, ctx.x_shape, ctx.x_dtype)
            if ctx.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
        else:   # only dL/dx: the values of x are not used, its shape is
            x = grad.new_empty(ctx.x_shape, dtype=ctx.x_dtype)
        mask = [ctx.needs_input_grad[0], ctx.needs_input_grad[1], ctx.has_bias and ctx.needs_input_grad[2]]
        gx, gw, gb = torch.ops.aten.convolution_backward(
            grad, x, weight, [weight.shape[0]] if ctx.has_bias else None, list(stride), list(padding),
            list(dilation), False, [0] * len(stride), groups, mask)
        return gx, gw, gb, None, None, None, None


class _SpikeLinearFn(torch.autograd.Function):
    """y = x Wᵀ + b over the last dimension; saves ``pack_spikes(x)`` and W. Backward, on x and
    dL/dy flattened to 2-d rows: dL/dx = g·W, dL/dW = gᵀ·x, dL/db = Σ_rows g — the products
    PyTorch's own addmm/mm backward forms for nn.Linear, so the gradients are bit-identical."""

    @staticmethod
    def forward(ctx, x, weight, bias):
        ctx.x_shape, ctx.x_dtype = x.shape, x.dtype
        ctx.has_bias = bias is not None
        ctx.save_for_backward(pack_kept_spikes(x) if weight.requires_grad else None, weight)
        return F.linear(x, weight, bias)

    @staticmethod
    def backward(ctx, grad):
        packed, weight = ctx.saved_tensors
        g = grad.reshape(-1, grad.shape[-1])
        gx = gw = gb = None
        if ctx.needs_input_grad[0]:
            gx = reshaped(g.mm(weight), ctx.x_shape)      # not a view (see inflor.scratch)
        if packed is not None and ctx.needs_input_grad[1]:
            x = unpack_spikes(packed, ctx.x_shape, ctx.x_dtype).reshape(-1, ctx.x_shape[-1])
            gw = g.t().mm(x)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            gb = g.sum(0)
        return gx, gw, gb


class SpikeConv2d(nn.Conv2d):
    """``nn.Conv2d`` (same arguments, parameters and state_dict names) for **binary input** — the
    spikes of a neuron — that keeps its input for the weight gradient as bits
    (``inflor.bitpack``: 1/32 of the float32 bytes) instead of a float copy. Forward values and
    both gradients are bit-identical to ``nn.Conv2d``'s.

    Non-binary input: whenever the input is kept for backward (grad mode on and the weight
    requires a gradient), it is checked and a value other than 0 or 1 raises ``ValueError`` (use
    ``nn.Conv2d`` there, e.g. after pooling or dropout). Without gradients (evaluation,
    ``torch.no_grad``) the layer is exactly ``nn.Conv2d`` and checks nothing. ``padding_mode``
    other than ``"zeros"`` pads the spikes first (still binary); a string ``padding``
    (``"same"``/``"valid"``) uses the plain ``nn.Conv2d`` path (float input kept).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if isinstance(self.padding, str) or not _saves_input(self.weight):
            return super().forward(x)
        padding = self.padding
        if self.padding_mode != "zeros":
            x = F.pad(x, self._reversed_padding_repeated_twice, mode=self.padding_mode)
            padding = (0, 0)
        return _apply_autocast(_SpikeConv2dFn, x, self.weight, self.bias, self.stride, padding, self.dilation,
                               self.groups)


class SpikeLinear(nn.Linear):
    """``nn.Linear`` (same arguments, parameters and state_dict names) for **binary input** that
    keeps its input for the weight gradient as bits; forward values and gradients bit-identical
    to ``nn.Linear``'s. Non-binary input: as ``SpikeConv2d`` (``ValueError`` when kept for
    backward; plain ``nn.Linear`` without gradients)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not _saves_input(self.weight):
            return super().forward(x)
        return _apply_autocast(_SpikeLinearFn, x, self.weight, self.bias)


def unspike(model: nn.Module) -> nn.Module:
    """Turn every ``SpikeConv2d`` / ``SpikeLinear`` of ``model`` into a plain ``nn.Conv2d`` /
    ``nn.Linear`` in place (same parameters; the subclasses hold no state of their own), for a
    copy of a network that feeds them real values, e.g. an ANN twin with ReLUs for neurons.
    Returns ``model``."""
    for m in model.modules():
        if type(m) is SpikeConv2d:
            m.__class__ = nn.Conv2d
        elif type(m) is SpikeLinear:
            m.__class__ = nn.Linear
    return model
