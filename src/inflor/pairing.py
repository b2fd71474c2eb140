"""One kept tensor per norm → neuron pair: the neuron's input is recomputed, not stored.

In ``s = neuron(norm(y))`` autograd would keep two tensors of the layer's size: the norm keeps
its input y (for dL/dγ and dL/dy) and the neuron keeps its input z = norm(y) (to recompute its
membrane in backward). ``norm_neuron(norm, neuron, y)`` computes the same s, but while the neuron
saves, a ``torch.autograd.graph.saved_tensors_hooks`` pair swaps z for a recipe: a reference to
y (which the norm keeps anyway) and the norm's per-channel settings. The backward recomputes::

    z = norm.renormalize(y, settings)        (TemporalBatchNorm: BN of y with its own batch
                                              statistics, or the frozen running ones in eval)

under the forward's autocast state, reproducing the forward's z bit for bit (the same BN call,
or in training on the CPU its per-channel affine map from the batch statistics the forward
kept, with ATen's roundings: see ``TemporalBatchNorm.renormalize``), so every gradient is
bit-identical to the unpaired ``neuron(norm(y))`` (tested). Cost: one pass over y per layer in
backward (a whole BN forward where the affine replay is not proven exact, e.g. on a GPU). Where
the replay is the affine map z = fma(y, a_c, b_c) and the neuron runs the fused kernels, not
even that: the unpack hook hands the kernel y, a, b and the shortcut term
(``inflor.fused.ops.InputRecipe``) and the kernel computes z in registers (checked bit-identical
on its first call, else z is materialised as above); an identity shortcut's spikes then go to
the kernel as their bytes, read bit by bit, where one kernel covers T = 8·m steps (else they are
unpacked first).

``extra`` (a residual pair ``neuron(norm(y) + r)``): ``r`` is added after the norm in both
passes. It is either a tensor — kept as bits (``inflor.bitpack``) when ``extra_spikes`` says it
is binary (the spikes of an identity shortcut), else as it is — or a pair ``(norm_r, y_r)``
meaning ``r = norm_r(y_r)`` (a projection shortcut's norm), recomputed from y_r, which norm_r
keeps anyway.

Pairs apply to inflor neurons (``BaseNode``, which keep only their input); any other module
in the neuron's place (an ANN twin's ReLU, a peer's neuron) runs unpaired. Composes with
saved-tensor hooks already active (activation checkpointing, offloading, memory
accounting): the tensors the recipe holds and all other saved tensors go through the outer
hooks. Under ``torch.compile`` (``torch.compiler.is_compiling()``) the pair runs unpaired: the
compiler plans what to save itself and does not trace saved-tensor hooks.
"""
from __future__ import annotations

import contextlib

import torch
from torch import nn

from .bitpack import pack_kept_spikes, unpack_spikes
from .fused.ops import InputRecipe, offer_input_recipe
from .neuron import BaseNode
from .norm import TemporalBatchNorm

__all__ = ["norm_neuron"]


def _outer_hooks():
    return torch._C._autograd._top_saved_tensors_default_hooks(False)


def norm_neuron(norm: nn.Module, neuron: nn.Module, y: torch.Tensor, extra=None,
                extra_spikes: bool = False) -> torch.Tensor:
    """``neuron(norm(y) + r)`` (r from ``extra``, optional) keeping y once for backward (see module)."""
    pair_r = isinstance(extra, tuple)
    if (not isinstance(norm, TemporalBatchNorm) or not isinstance(neuron, BaseNode) or not torch.is_grad_enabled()
            or torch.compiler.is_compiling() or (pair_r and not isinstance(extra[0], TemporalBatchNorm))):
        return _unpaired(norm, neuron, y, extra)
    z = norm(y)
    settings = norm.last_settings
    r_norm = r_settings = None
    if pair_r:
        r_norm, y_r = extra
        r_out = r_norm(y_r)
        r_settings = r_norm.last_settings
        z = z + r_out
        del r_out
    elif extra is not None:
        z = z + extra
    return _neuron_with_recipe(neuron, z, norm, settings, y, r_norm, r_settings, extra, extra_spikes)


def _unpaired(norm: nn.Module, neuron: nn.Module, y: torch.Tensor, extra=None, extra_spikes: bool = False):
    """The same ``neuron(norm(y) + r)`` as ``norm_neuron``, with autograd keeping what it keeps."""
    z = norm(y)
    if extra is None:
        return neuron(z)
    return neuron(z + (extra[0](extra[1]) if isinstance(extra, tuple) else extra))


def _neuron_with_recipe(neuron, z, norm, settings, y, r_norm, r_settings, extra, extra_spikes):
    """``neuron(z)`` with z swapped for its recipe when the neuron saves it. The hooks hold no
    reference to z, y or the shortcut input beyond the call (only ``pending``, emptied after it):
    a closure kept by autograd must not keep the float tensors alive that the recipe replaces."""
    device = y.device.type
    try:
        autocast = (torch.is_autocast_enabled(device), torch.get_autocast_dtype(device))
    except RuntimeError:    # a device without autocast (e.g. "meta")
        autocast = None
    outer = _outer_hooks()
    outer_pack, outer_unpack = (None, None) if outer is None else outer
    key = _key(z)
    pending = {"y": y, "extra": extra}

    def keep(t):
        return t if outer_pack is None else outer_pack(t)

    def fetch(p):
        return p if outer_unpack is None else outer_unpack(p)

    def pack(t):
        if _key(t) != key or not pending:
            return ("t", keep(t))
        yy, ex = pending["y"], pending["extra"]
        r = None
        if r_norm is not None:
            r = ("norm", keep(ex[1].detach()), r_settings)
        elif ex is not None:
            r = (("bits", keep(pack_kept_spikes(ex)), ex.shape, ex.dtype) if extra_spikes
                 else ("t", keep(ex.detach())))
        return ("z", keep(yy.detach()), settings, r, t.shape, t.stride())

    @contextlib.contextmanager
    def context():      # the forward's autocast state, without autograd
        amp = contextlib.nullcontext() if autocast is None else torch.autocast(device, autocast[1], autocast[0])
        with torch.no_grad(), amp:
            yield

    def replay(y, st, rr, shape, stride):
        with context():
            out = norm.renormalize(y, st)
            if rr is not None:      # out is the replay's own tensor: the sum is formed in place
                out = out.add_(rr) if _same_layout(out, rr) else out + rr
        return out.as_strided(shape, stride) if out.stride() != stride else out

    def unpack(p):
        if p[0] == "t":
            return fetch(p[1])
        _, yp, st, r, shape, stride = p
        with context():
            y = fetch(yp)
            rr = bits = None
            if r is not None:
                if r[0] == "norm":
                    rr = r_norm.renormalize(fetch(r[1]), r[2])
                elif r[0] == "bits":    # unpacked only where the neuron's kernel cannot read them
                    bits = (fetch(r[1]), *r[2:])
                else:
                    rr = fetch(r[1])
            coeffs = norm.affine_coefficients(st) if y.shape == shape and y.stride() == stride else None

        def materialize():
            with context():
                ex = rr if bits is None else unpack_spikes(*bits)
            return replay(y, st, ex, shape, stride)
        # a fused neuron's backward may take the recipe instead and compute z in its kernel (the
        # shortcut's spikes read from their bits there, when they have y's shape and dtype)
        in_bits = bits is not None and tuple(bits[1]) == tuple(y.shape) and bits[2] == y.dtype
        if coeffs is not None and (bits is None or in_bits) and offer_input_recipe(
                InputRecipe(y, *coeffs, rr, materialize, bits[0] if in_bits else None)):
            return y
        return materialize()

    try:
        with torch.autograd.graph.saved_tensors_hooks(pack, unpack):
            return neuron(z)
    finally:
        pending.clear()


def _same_layout(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Whether ``a.add_(b)`` computes ``a + b`` in the same layout (no broadcasting, same strides,
    same dtype as the promotion would give)."""
    return a.shape == b.shape and a.stride() == b.stride() and a.dtype == torch.result_type(a, b)


def _key(t: torch.Tensor) -> tuple:
    return (t.data_ptr(), tuple(t.shape), t.stride(), t.dtype, t.device)
