"""Autograd and layout: the operators ``torch.ops.inflor.neuron`` and
``torch.ops.inflor.neuron_backward`` (torch.library, with fake implementations and the
registered autograd formula), their eager twin ``_NeuronFn``, and how x is laid out and chunked
for the kernels."""
from __future__ import annotations

import threading
from typing import Callable, NamedTuple

import torch

from ..bitpack import packed_numel, remember_packed, unpack_spikes
from ..scratch import reshaped
from .compilation import _FAILED, _affine_rounds_like_aten, _kernel_key, _run
from .lowering import P_THR, P_VTH, _compute_dtype, _prepare

#: the longest time loop compiled as one kernel; longer sequences run in chunks of this length
MAX_UNROLL = 16
#: ``record_stats`` on the CPU: the kernels see x as rows [T, B·C, S] and sum the statistics per
#: row inside their loop (see the operator's note) when a channel has at least ``ROWS_MIN_S``
#: spatial positions (fewer would leave the vectorised inner loop nearly empty; a flat layout with
#: per-element partial sums is used then), in chunks of at most ``ROWS_MAX_UNROLL`` steps (longer
#: ones split into several loops)
ROWS_MIN_S = 16
ROWS_MAX_UNROLL = 8


# ----------------------------------------------------------------------------------------------
# Layout
# ----------------------------------------------------------------------------------------------
def _chunks(T: int, longest: int | None = None) -> list[tuple[int, int]]:
    """[t0, t1) pieces of at most ``longest`` (default ``MAX_UNROLL``) steps covering 0..T-1."""
    longest = longest or MAX_UNROLL
    if T <= longest:
        return [(0, T)]
    return [(t, min(t + longest, T)) for t in range(0, T, longest)]


def _channel_shape(x: torch.Tensor) -> tuple[int, int, int]:
    """(B, C, S) of x [T, B, C, *spatial]: the statistics are per channel C (a [T, B] input is
    one channel), as in ``inflor.stats.step_sums``."""
    T, B = x.shape[0], x.shape[1]
    C = x.shape[2] if x.dim() > 2 else 1
    return B, C, x.numel() // (T * B * C)


def _use_rows(x: torch.Tensor, stats: bool) -> bool:
    """Whether the statistics are summed per row inside the kernels (see the rows layout's note):
    on the CPU, with at least ``ROWS_MIN_S`` spatial positions per channel. ``_use_rows(x, True)``
    is whether x suits the rows layout at all (the backward also uses it for an input recipe's
    per-channel a, b)."""
    return stats and x.device.type == "cpu" and _channel_shape(x)[2] >= ROWS_MIN_S


def _per_row(v: torch.Tensor, rows: int) -> torch.Tensor:
    """The scalar v as a [rows, 1] column, one value per row (see the rows layout's note)."""
    return v.reshape(1, 1).expand(rows, 1).contiguous()


def _layout(x: torch.Tensor, stats: bool) -> tuple[bool, tuple, list[tuple[int, int]]]:
    """How the forward sees x: (rows layout?, one step's shape, [t0, t1) chunks)."""
    T = x.shape[0]
    B, C, S = _channel_shape(x)
    rows = _use_rows(x, stats)
    step = (B * C, S) if rows else (x.numel() // T,)
    return rows, step, _chunks(T, ROWS_MAX_UNROLL if rows else None)


# ----------------------------------------------------------------------------------------------
# The operator. ``torch.ops.inflor.neuron`` and ``torch.ops.inflor.neuron_backward`` are
# registered with torch.library (the op, its fake implementation for shape inference, and its
# autograd formula), so a user's ``torch.compile`` sees one opaque node per neuron (no graph
# break) and its compiled graph calls these same kernels, saving for backward what the op saves.
#
# Arguments: the input x [T, B, ...]; the surrogate's runtime parameter (a 0-d buffer, so ESG's K
# may change between calls); settings = (V_th, λ, s, V_reset, r, MPR k); the reset kind;
# detach_reset; the surrogate's ``fused_key``; the MPR kind ("none", "inflor", "tanh");
# record_stats; optionally the initial membrane u0 [B, ...] and want_state. Outputs: spikes,
# Σ_c H [C], Σ_c H² [C], Σ sX, Σ O (in float32, float64 for float64 input; empty without
# record_stats), U at the chunk boundaries [chunks − 1, N] (what the backward needs besides x
# when T is longer than one kernel's unrolled loop), and the final U [B, ...] (with u0 or
# want_state; else empty).
#
# The forward kernel sees x as [T, N]. With statistics on the CPU (``_use_rows``) it sees rows
# [T, R, S] (R = B·C rows of the S spatial positions of one channel) and sums H, H², sX and O
# over S per row inside its loop; otherwise it writes per-element partial sums (over T), reduced
# per channel afterwards. The backward reads the statistics' per-channel gradients per row, or
# spread to every element.
# ----------------------------------------------------------------------------------------------
Tensor = torch.Tensor


def neuron_forward(x: Tensor, sparam: Tensor, settings: list[float], reset: str, detach: bool,
                   surrogate: str, mpr: str, stats: bool, u0: Tensor | None = None,
                   want_state: bool = False) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """The operator's forward (see the section's note): spikes, the four sums, chunk bounds and,
    with an initial membrane ``u0`` or ``want_state``, the final membrane U[T-1] (else empty)."""
    return _forward(x, sparam, settings, reset, detach, surrogate, mpr, stats, u0, want_state)[0]


def bits_in_kernel(x: Tensor, stats: bool) -> bool:
    """Whether the kernels for x may handle spikes as ``inflor.bitpack``'s bytes (the forward, in
    its flat layout, writes its spikes so; the backward reads a pair's float32 shortcut spikes
    so): on the CPU (the GPU kernels have not been checked with it), when one kernel covers all T
    steps and T is a multiple of 8. Then each byte holds whole steps of one element and the
    bytes are exactly ``pack_spikes``' (Q = ⌈numel/8⌉), so a layer gets the same bytes whether or
    not it finds the neuron's (activation checkpointing compares what a recomputed forward
    saves with the first one's shapes)."""
    T = x.shape[0]
    return x.device.type == "cpu" and T % 8 == 0 and len(_layout(x, stats)[2]) == 1


def _forward(x, sparam, settings, reset, detach, surrogate, mpr, stats, u0=None, want_state=False,
             bits: bool = False) -> tuple[tuple, Tensor | None]:
    """``neuron_forward``'s outputs and, with ``bits`` where ``bits_in_kernel`` and the layout is
    flat, the spikes as ``inflor.bitpack.pack_spikes`` would pack them, written by the same
    kernel (else None)."""
    p, spec_base = _prepare(x, sparam, settings, reset, detach, surrogate, mpr, stats)
    T = x.shape[0]
    B, C, S = _channel_shape(x)
    rows, step, chunks = _layout(x, stats)
    # not in the rows layout: there inductor splits the loop over rows to write the bytes (see
    # tests/core/test_fused.py::test_rows_kernels_are_one_loop_nest); the layer packs instead
    bits = bits and not rows and bits_in_kernel(x, stats)
    xc = x.contiguous().view(T, *step)
    explicit = u0 is not None or want_state
    state = len(chunks) > 1 or explicit
    thr = _per_row(p[P_THR], B * C) if rows else None
    outs, bounds, part = [], [], None
    if u0 is not None:
        u = u0.to(p.dtype).contiguous().view(step)
    elif state:
        u = xc.new_zeros(step, dtype=p.dtype)
    else:       # rows: U[-1] = 0 per row (see the rows layout's note)
        u = xc.new_zeros((B * C, 1), dtype=p.dtype) if rows else None
    for (t0, t1) in chunks:
        spec = spec_base._replace(T=t1 - t0, family="", mpr="", state=state, detach=False, rows=rows, bits=bits)
        if state and t0 > 0:
            bounds.append(u.reshape(-1))
        res = _run("fwd", spec, x.dtype, x.device.type, xc[t0:t1], p, u, thr)
        packed = res[-1].view(-1) if bits else None
        outs.append(res[0])
        i = 1
        if state:
            u, i = res[1], 2
        if stats:
            pr = res[i:i + 4]
            part = list(pr) if part is None else [a + b for a, b in zip(part, pr)]
    spikes = (outs[0] if len(outs) == 1 else torch.cat(outs)).view(x.shape)
    bounds = torch.stack(bounds) if bounds else xc.new_empty((0, x.numel() // T), dtype=p.dtype)
    u_final = u.reshape(x.shape[1:]).clone() if explicit else xc.new_empty((0,), dtype=p.dtype)
    if not stats:
        return (spikes, *(xc.new_empty((0,), dtype=p.dtype) for _ in range(4)), bounds, u_final), packed
    hs, hq, xs, os_ = part
    # per channel from per-row sums [B·C], or from per-element ones: the contiguous S first, then
    # B (ATen reduces that order ~25% faster than both dimensions at once). They stay in the
    # compute dtype (float32, float64 for float64 input): half precision would overflow.
    per_channel = ((lambda v: v.view(B, C).sum(0)) if rows else (lambda v: v.view(B, C, S).sum(2).sum(0)))
    return (spikes, per_channel(hs), per_channel(hq), xs.sum(), os_.sum(), bounds, u_final), packed


neuron_op = torch.library.custom_op("inflor::neuron", neuron_forward, mutates_args=())


@neuron_op.register_fake
def _neuron_op_fake(x, sparam, settings, reset, detach, surrogate, mpr, stats, u0=None, want_state=False):
    T = x.shape[0]
    cdt = _compute_dtype(x.dtype)
    _, C, _ = _channel_shape(x)
    n_bounds = len(_layout(x, stats)[2]) - 1
    sums = [x.new_empty((C,), dtype=cdt), x.new_empty((C,), dtype=cdt), x.new_empty((), dtype=cdt),
            x.new_empty((), dtype=cdt)] if stats else [x.new_empty((0,), dtype=cdt) for _ in range(4)]
    u_final = x.new_empty(x.shape[1:], dtype=cdt) if u0 is not None or want_state else x.new_empty((0,), dtype=cdt)
    return (x.new_empty(x.shape), *sums, x.new_empty((n_bounds, x.numel() // T), dtype=cdt), u_final)


def neuron_backward(x: Tensor, sparam: Tensor, bounds: Tensor, gspikes: Tensor | None,
                    g_hsum: Tensor | None, g_hsqsum: Tensor | None, g_xsum: Tensor | None,
                    g_osum: Tensor | None, settings: list[float], reset: str, detach: bool,
                    surrogate: str, mpr: str, stats: bool, u0: Tensor | None = None,
                    g_ufinal: Tensor | None = None, want_state: bool = False) -> tuple[Tensor, Tensor]:
    """The operator's backward: dL/dx from x, the chunk bounds and the outputs' gradients (None
    for an output that received none), and dL/dU0 (with explicit state; else empty)."""
    return _backward(x, sparam, bounds, gspikes, g_hsum, g_hsqsum, g_xsum, g_osum, settings, reset, detach,
                     surrogate, mpr, stats, u0, g_ufinal, want_state)


def _backward(x, sparam, bounds, gspikes, g_hsum, g_hsqsum, g_xsum, g_osum, settings, reset, detach, surrogate,
              mpr, stats, u0=None, g_ufinal=None, want_state=False, recipe: InputRecipe | None = None):
    """``neuron_backward``; with a ``recipe`` (see ``InputRecipe``), x is its y and the kernel
    recomputes the neuron's input from it."""
    p, spec_base = _prepare(x, sparam, settings, reset, detach, surrogate, mpr, stats)
    cdt = p.dtype
    T = x.shape[0]
    B, C, S = _channel_shape(x)
    rows_fwd, step_fwd, chunks = _layout(x, stats)
    explicit = u0 is not None or want_state
    state = len(chunks) > 1 or explicit
    # the backward evaluates MPR's φ from H, and inductor keeps such values in buffers of its own
    # layout whose readers it flattens: with MPR its loop splits in the rows layout, so it reads
    # the same memory as [T, N] (statistics' gradients spread to every element). With a recipe's
    # per-channel a, b it is also the rows layout where the forward's chunks allow it (one chunk).
    rows = spec_base.mpr == "none" and (rows_fwd or (recipe is not None and len(chunks) == 1
                                                     and T <= ROWS_MAX_UNROLL and _use_rows(x, True)))
    step = (B * C, S) if rows else (x.numel() // T,)
    shape = (T, *step)
    g1 = g2 = gxs = gos = thr = vth = None
    # per-channel inputs [C] (the statistics' gradients, a recipe's a and b) per row, or spread to
    # one value per element of a step (a flat loop fuses into one pass, where broadcasting [C]
    # inside it splits)
    width, shape_g = (1, (B * C, 1)) if rows else (S, step)
    per_channel = lambda v: v.view(1, C, 1).expand(B, C, width).reshape(shape_g)  # noqa: E731
    if stats:
        zero = lambda g, n: g if g is not None else torch.zeros(n, dtype=cdt, device=x.device)  # noqa: E731
        g1, g2 = (per_channel(zero(g, C).to(cdt)) for g in (g_hsum, g_hsqsum))
        gxs, gos = (zero(g, ()).to(cdt).reshape(1) for g in (g_xsum, g_osum))  # [1]: broadcast in the kernel
    if rows:
        thr, vth = _per_row(p[P_THR], B * C), _per_row(p[P_VTH], B * C)
    aff_a = aff_b = extra = None
    if recipe is not None:
        aff_a, aff_b = per_channel(recipe.a), per_channel(recipe.b)
        extra = None if recipe.extra is None else recipe.extra.view(shape)
        # the kernel reads the shortcut's spikes bit by bit where they are in its planes; in
        # float32 only (float64 variants of this kernel can fail the first-call check, bits or
        # not, and then replay z anyway); else they are unpacked for it
        in_bits = recipe.extra_bits is not None and x.dtype == torch.float32 and bits_in_kernel(x, stats)
        if in_bits:     # pack_spikes' bytes (offer_input_recipe checked their count)
            extra = recipe.extra_bits.view(T // 8, *step)
        elif recipe.extra_bits is not None:
            extra = unpack_spikes(recipe.extra_bits, x.shape, x.dtype).view(shape)
        spec_base = spec_base._replace(affine=True, extra=extra is not None, extra_bits=in_bits)
    xc = x.contiguous().view(shape)
    g = (torch.zeros_like(x) if gspikes is None else gspikes).contiguous().view(shape)
    gu = xc.new_zeros(step, dtype=cdt) if state else None
    if g_ufinal is not None and explicit:
        gu = g_ufinal.to(cdt).contiguous().view(step)
    u_zero = xc.new_zeros((B * C, 1), dtype=cdt) if rows and not state else None
    pieces, z = [], []
    for i in reversed(range(len(chunks))):
        t0, t1 = chunks[i]
        spec = spec_base._replace(T=t1 - t0, state=state, rows=rows)
        if state:
            if i > 0:
                u_in = bounds[i - 1].view(step)
            else:
                u_in = u0.to(cdt).contiguous().view(step) if u0 is not None else xc.new_zeros(step, dtype=cdt)
        else:
            u_in = u_zero
        args = [xc[t0:t1], g[t0:t1], p, u_in, gu, g1, g2, gxs, gos, thr, vth, aff_a, aff_b,
                None if extra is None else extra if spec.extra_bits else extra[t0:t1]]
        if recipe is None:
            res = _run("bwd", spec, x.dtype, x.device.type, *args)
        else:
            res = _run_with_recipe(spec, x, args, recipe, t0, t1, shape, z)
        pieces.append(res[0])
        if state:
            gu = res[1]
    gx = pieces[0] if len(pieces) == 1 else torch.cat(pieces[::-1])
    gu0 = gu.reshape(x.shape[1:]) if explicit else x.new_empty((0,), dtype=cdt)
    return reshaped(gx, x.shape), gu0   # not a view: autograd may add a shortcut's gradient in place


neuron_backward_op = torch.library.custom_op("inflor::neuron_backward", neuron_backward, mutates_args=())


@neuron_backward_op.register_fake
def _neuron_backward_op_fake(x, sparam, bounds, gspikes, g_hsum, g_hsqsum, g_xsum, g_osum, settings, reset,
                             detach, surrogate, mpr, stats, u0=None, g_ufinal=None, want_state=False):
    cdt = _compute_dtype(x.dtype)
    explicit = u0 is not None or want_state
    return x.new_empty(x.shape), (x.new_empty(x.shape[1:], dtype=cdt) if explicit else x.new_empty((0,), dtype=cdt))


def _neuron_op_setup(ctx, inputs, output):
    # only x is kept (plus U at chunk boundaries, and the initial U0 when given): H, the spikes and
    # the surrogate's values are recomputed by the backward kernel
    x, sparam, *args = inputs
    ctx.args, ctx.want_state = args[:6], args[7]
    ctx.has_u0 = args[6] is not None
    ctx.save_for_backward(x, sparam, output[5], *([args[6]] if ctx.has_u0 else []))


def _neuron_op_backward(ctx, gspikes, g_hsum, g_hsqsum, g_xsum, g_osum, _g_bounds, g_ufinal):
    x, sparam, bounds, *u0 = ctx.saved_tensors
    gx, gu0 = torch.ops.inflor.neuron_backward(x, sparam, bounds, gspikes, g_hsum, g_hsqsum, g_xsum, g_osum,
                                               *ctx.args, u0[0] if u0 else None, g_ufinal, ctx.want_state)
    return (gx,) + (None,) * 7 + ((gu0 if ctx.has_u0 else None), None)


neuron_op.register_autograd(_neuron_op_backward, setup_context=_neuron_op_setup)


# ----------------------------------------------------------------------------------------------
# Input recipes. A norm → neuron pair (``inflor.pairing``) keeps the norm's input y instead of the
# neuron's input z = fma(y, a_c, b_c) (+ a shortcut term r). Its saved-tensor unpack hook would
# rebuild z, a full pass writing memory the kernel then reads back; while ``_NeuronFn.backward``
# unpacks its saved tensors it may instead offer the recipe (``offer_input_recipe``): if taken,
# the hook returns y in z's place and the backward kernel computes z in registers (``Spec.affine``).
# That kernel must round like ATen's CPU batch norm (one fused multiply-add). Checked twice: the
# recomputation itself, compiled alone with the kernels' options, must equal ATen's addcmul on a
# probe (``_affine_rounds_like_aten``, once per dtype; else no recipe is taken); and on the first
# call of each kernel variant (compiled or, after a failure, uncompiled) its gradient is compared
# with the same kernel's on the materialised z (a = 1, b = 0, r = 0, which is exact) — a variant
# that differs runs that way, on the materialised z, from then on.
# ----------------------------------------------------------------------------------------------
class InputRecipe(NamedTuple):
    """The neuron's input as z = addcmul(b_c, y, a_c) + extra: y [T, B, C, ...] contiguous, a and
    b per channel [C] (dimension 2 of y), extra (optional) of y's shape and dtype, or instead
    ``extra_bits``: spikes of y's shape and dtype as ``inflor.bitpack.pack_spikes`` bytes (the
    kernel reads them bit by bit in float32 where one kernel covers T = 8·m steps, else they are
    unpacked for it);
    ``materialize()`` builds z as the hook would have returned it."""
    y: Tensor
    a: Tensor
    b: Tensor
    extra: Tensor | None
    materialize: Callable[[], Tensor]
    extra_bits: Tensor | None = None


_HANDOFF = threading.local()
#: compiled backward kernel key -> whether its affine input reproduces z bit for bit
_AFFINE_EXACT: dict[tuple, bool] = {}


def offer_input_recipe(recipe: InputRecipe) -> bool:
    """Called by a saved-tensor unpack hook: True if the fused backward unpacking its saved input
    right now takes ``recipe`` (the hook then returns ``recipe.y`` in z's place), else False (the
    hook returns z itself)."""
    slot = getattr(_HANDOFF, "slot", None)
    if slot is None or slot:
        return False
    y, a, b, r, bits = recipe.y, recipe.a, recipe.b, recipe.extra, recipe.extra_bits
    C = y.shape[2] if y.dim() > 2 else 1
    usable = (y.dtype in (torch.float32, torch.float64) and y.is_contiguous() and y.dim() >= 3
              and all(v.shape == (C,) and v.dtype == y.dtype and v.device == y.device for v in (a, b))
              and (r is None or (r.shape == y.shape and r.dtype == y.dtype and r.is_contiguous()
                                 and r.device == y.device))
              and (bits is None or (r is None and bits.dtype == torch.uint8 and bits.is_contiguous()
                                    and bits.numel() == packed_numel(y.numel())
                                    and bits.device == y.device))
              and _affine_rounds_like_aten(y.dtype, y.device.type))
    if usable:
        slot.append(recipe)
    return usable


def _saved_with_recipe(ctx) -> tuple[tuple, InputRecipe | None]:
    """``ctx.saved_tensors``, and the recipe a pair's unpack hook handed over for x (see above)."""
    outer = getattr(_HANDOFF, "slot", None)     # a backward nested in an unpack hook has its own
    _HANDOFF.slot = slot = []
    try:
        saved = ctx.saved_tensors
    finally:
        _HANDOFF.slot = outer
    recipe = slot[0] if slot else None
    if recipe is not None and saved[0].data_ptr() != recipe.y.data_ptr():
        raise RuntimeError("inflor: an input recipe was handed over for a tensor other than the neuron's input")
    return saved, recipe


def _run_with_recipe(spec, x: Tensor, args: list, recipe: InputRecipe, t0: int, t1: int, shape, z: list):
    """The backward kernel on one chunk with the recipe's affine input; for a variant that does
    not reproduce z (checked on its first call, see above) the same kernel on the materialised z
    (built once into ``z``) with a = 1, b = 0, r = 0."""
    key = _kernel_key("bwd", spec, x.dtype, x.device.type)
    key = (key, key in _FAILED)         # the compiled kernel, or its uncompiled source
    ok = _AFFINE_EXACT.get(key)
    if ok:
        return _run("bwd", spec, x.dtype, x.device.type, *args)
    got = _run("bwd", spec, x.dtype, x.device.type, *args) if ok is None else None
    if not z:
        z.append(recipe.materialize().contiguous().view(shape))
    ident = [torch.ones_like(args[11]), torch.zeros_like(args[12]),
             None if args[13] is None else torch.zeros_like(args[13])]
    want = _run("bwd", spec, x.dtype, x.device.type, z[0][t0:t1], *args[1:11], *ident)
    if ok is None:
        _AFFINE_EXACT[key] = all(torch.equal(u, v) for u, v in zip(got, want))
    return want


class _NeuronFn(torch.autograd.Function):
    """The eager twin of the operator's autograd formula: the same two functions, without the
    dispatcher's per-call cost (``benchmarks/run.py --only compile`` measures it; see
    docs/performance.md). Inside ``torch.compile`` the registered operator is used instead."""

    @staticmethod
    def forward(ctx, x, sparam, u0, args, bits=False):
        want_state = u0 is not None or args[-1]
        out, packed = _forward(x, sparam, *args[:-1], u0=u0, want_state=want_state, bits=bits)
        if packed is not None:      # the next spike layer keeps these instead of packing again
            remember_packed(out[0], packed)
        ctx.args, ctx.want_state, ctx.has_u0 = args[:-1], want_state, u0 is not None
        ctx.save_for_backward(x, sparam, out[5], *([u0] if u0 is not None else []))
        ctx.mark_non_differentiable(out[5])
        return out

    @staticmethod
    def backward(ctx, gspikes, g_hsum, g_hsqsum, g_xsum, g_osum, _g_bounds, g_ufinal):
        (x, sparam, bounds, *u0), recipe = _saved_with_recipe(ctx)
        gx, gu0 = _backward(x, sparam, bounds, gspikes, g_hsum, g_hsqsum, g_xsum, g_osum, *ctx.args,
                            u0=u0[0] if u0 else None, g_ufinal=g_ufinal, want_state=ctx.want_state, recipe=recipe)
        return gx, None, (gu0 if ctx.has_u0 else None), None, None
