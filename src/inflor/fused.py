"""Fused multi-step neuron backend: ``inflor.neuron.BACKENDS["fused"]``.

Same contract and results as ``inflor.functional.neuron_reference`` (the readable
specification), computed by two compiled kernels instead of a Python loop of small eager ops:

* **forward**: one pass over time per element. It reads X[0..T-1] once, keeps U in a register,
  and writes O[0..T-1] (plus, with ``record_stats``, the sums of H, H², sX and O: on the CPU
  per row of a channel's spatial positions inside the same loop, see the rows layout below;
  otherwise per element over T, reduced per channel afterwards).
* **backward**: one pass per element. It reads X again, *recomputes* H[0..T-1] forwards in
  registers, then walks time backwards reading dL/dO[t] and writing dL/dX[t].

Only the input X (in its own dtype, no copy) is saved for backward: no H, no spikes, no surrogate
values. Recomputing H costs a few flops per element; storing it would cost a full tensor.
Gradients of the statistics (Σ H, Σ H², Σ sX, Σ O) are folded into the same backward pass, so a
loss on them needs no stored copy of H either.

The kernels are plain PyTorch functions with the time loop unrolled (T is a compile-time
constant; sizes are dynamic). Inductor turns each into one C++/OpenMP loop on CPU and one Triton
kernel on GPU: one source for both. On CPU the source is traced once with symbolic sizes and
compiled as a standalone artifact (``torch._inductor.standalone_compile``), called without a
dynamo frame around it; elsewhere it goes through ``torch.compile``. Every number that changes between calls or
epochs is a runtime tensor input (V_th, λ, s, V_reset or the soft-reset amount, surrogate width or
sharpness — so ESG's K changes per epoch without recompiling — and MPR's k); only the structure
is compiled in: hard or soft reset, ``detach_reset``, the surrogate family, the MPR kind,
``record_stats``, T, and whether s, λ and V_reset take the presets' identity values (1, 1, 0:
their multiply or subtract is left out). A network uses one or two such structures, and each
specialised step is a handful of vector instructions fewer than a generic one. Long sequences
run in chunks of at most ``MAX_UNROLL`` steps, passing U (and dL/dU) between chunks; the same
state passing gives the explicit state of ``inflor.functional`` (an initial U₀ in, the final U
out, dL/dU₀ back).

Surrogate families (g as a function of z = Ĥ - V_th)::

    box            A·1[|z| < W]                                 Rectangle
    bell           A·e/(1+e)², e = exp(-B|z|)                   Tanh, ESG, Sigmoid
    windowed_bell  A·e/(1+e)²·1[|z| < W]                        DSpike
    triangle       A·max(W - |z|, 0)                            Triangle
    atan           A/(1 + (B z)²)                               ATan

(``(k/2)(1 - tanh²(kz)) = 2k·e/(1+e)²`` with B = 2k, and ``α σ(αz)(1 - σ(αz)) = α e/(1+e)²`` with
B = α: one exp, no tanh. In float32 that exp is the kernels' own inlined polynomial,
``_exp2_neg``: a library exp is an out-of-line call per 8 lanes.)

MPR: φ is strictly increasing, so the forward tests ``H ≥ φ⁻¹(V_th)`` (a scalar computed once)
instead of evaluating φ per element. With a box surrogate the backward's window
``|φ(H) - V_th| < W`` is likewise ``φ⁻¹(V_th - W) < H < φ⁻¹(V_th + W)``, so only φ' is evaluated,
and for InfLoR's defaults (V_th = ½, width 1: 0 < H < 1) only φ' of the middle, tanh piece: no
cube roots. Other surrogates evaluate φ and φ'. Spikes and windows equal the reference's except,
possibly, where φ(H) lies within a few ulps of their edges.

Both kernels sit behind one PyTorch operator, ``torch.ops.inflor.neuron`` (with its fake
implementation and autograd formula registered through ``torch.library``), so the same path runs
eagerly and inside a user's ``torch.compile(model, fullgraph=True)``: no graph break at a neuron,
the compiled graph calls these kernels and saves for backward what the operator saves (x).

Membrane statistics are summed and returned in float32 (float64 for float64 input) whatever the
input dtype: a half-precision Σ H² of an ImageNet layer overflows. Half-precision inputs are
computed in float32 inside the kernels; spikes and dL/dx come back in the input's dtype.

Uses the reference, with one warning, for what it cannot fuse: a surrogate class without a
declared fused form (see ``inflor.surrogate.Surrogate``), an MPR callable other than
``inflor.mpr.MPR``, or a surrogate in ``spiking=False`` mode. Where compilation fails, it warns
once and runs the same kernel source uncompiled. ``INFLOR_FUSED=0`` in the environment makes
``backend="auto"`` use the reference.
"""
from __future__ import annotations

import logging
import math
import os
import sys
import threading
import types
import warnings
import weakref
from typing import Callable, NamedTuple

import torch

from .functional import NeuronConfig, check_multistep, initial_state, neuron_reference
from .mpr import MPR, phi_inverse
from .stats import MembraneStats
from .surrogate import FUSED_FORMS, Surrogate

# A CUDA build of torch compiling for the CPU logs "No CUDA runtime is found" at every first
# compile; on a CPU machine that is expected, not a problem worth a warning line per run.
if not torch.cuda.is_available():
    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)

__all__ = ["fused_neuron", "auto_neuron", "fusable", "MAX_UNROLL", "AUTO_MIN_NUMEL"]

#: devices with an inductor code generator (others, e.g. "meta" for shape inference, use the
#: reference)
_DEVICES = ("cpu", "cuda", "xpu")
#: the longest time loop compiled as one kernel; longer sequences run in chunks of this length
MAX_UNROLL = 16
#: ``record_stats`` on the CPU: the kernels see x as rows [T, B·C, S] and sum the statistics per
#: row inside their loop (see the operator's note) when a channel has at least ``ROWS_MIN_S``
#: spatial positions (fewer would leave the vectorised inner loop nearly empty; a flat layout with
#: per-element partial sums is used then), in chunks of at most ``ROWS_MAX_UNROLL`` steps (longer
#: ones split into several loops)
ROWS_MIN_S = 16
ROWS_MAX_UNROLL = 8
#: ``backend="auto"`` uses the fused path from this many elements on (smaller inputs, e.g. in
#: unit tests, are not worth a compile)
AUTO_MIN_NUMEL = 1 << 15

# ----------------------------------------------------------------------------------------------
# What can be fused: surrogate families and MPR kinds, with their runtime parameters
# ----------------------------------------------------------------------------------------------
# parameter vector p (compute dtype, on the input's device):
P_VTH, P_LAM, P_S, P_D, P_A, P_B, P_W, P_THR, P_MK, P_MINV, P_MKINV, P_LO, P_HI = range(13)
N_PARAMS = 13


def _surrogate_form(s) -> str | None:
    """The fused operator's key of surrogate ``s`` (its class declares a fused form, see
    ``inflor.surrogate.Surrogate``), None for anything else (a class without its own form, or
    ``spiking=False``, which runs the smooth primitive)."""
    if not isinstance(s, Surrogate) or not s.spiking or type(s).fused_family is None:
        return None
    return type(s).fused_key()


def _mpr_kind(mpr) -> str | None:
    """"none", or the kind of an ``inflor.mpr.MPR``; None for any other callable."""
    if mpr is None:
        return "none"
    return mpr.kind if type(mpr) is MPR else None


def fusable(cfg: NeuronConfig, surrogate, mpr) -> bool:
    """Whether this neuron runs on the fused kernels (else the fused backend uses the reference)."""
    return _surrogate_form(surrogate) is not None and _mpr_kind(mpr) is not None


# ----------------------------------------------------------------------------------------------
# Kernel source: pure PyTorch, compiled by torch.compile. T and the structure are closure
# constants; everything numeric comes in through the parameter vector p.
# ----------------------------------------------------------------------------------------------
class Spec(NamedTuple):
    T: int            # steps in this kernel (unrolled)
    family: str       # surrogate family ("" for the forward, which does not use it)
    mpr: str          # "none" | "tanh" | "inflor" ("" for the forward)
    stats: bool       # per-element partial sums out / statistics gradients in
    state: bool       # U in and out (chunks of a longer sequence)
    reset: str        # "hard" | "soft": which update U = f(H, O) (its values are runtime inputs)
    detach: bool      # detach_reset: no gradient through the reset (backward only)
    # the identity values of the defaults, compiled in so that their multiply or subtract is left
    # out (every other value of these settings is a runtime input):
    s_is_1: bool = False          # input_scale s = 1: H = λU + X
    lam_is_1: bool = False        # decay λ = 1 (IF): H = U + sX, dL/dU[t-1] = dL/dH[t]
    v_reset_is_0: bool = False    # hard reset to V_reset = 0: U = H·(1 - O)
    # statistics summed per row inside the kernel: x as [T, R, S] (see the operator's note)
    rows: bool = False


class _SurrogateParams(NamedTuple):
    A: torch.Tensor
    B: torch.Tensor
    W: torch.Tensor


#: 2^f ≈ 1 + Σ c_i f^i on [0, 1), least squares in relative error: |error| < 8.5e-8 (under one
#: float32 ulp). Fitted here with numpy (Chebyshev nodes) for ``_exp2_neg``.
_EXP2_POLY = (0.6931513547897339, 0.2401641607284546, 0.05580044537782669,
              0.009016687981784344, 0.0018671829020604491)
_LOG2E = 1.4426950408889634


def _exp_nonpositive(y):
    """exp(y) for y ≤ 0. float32: ``_exp2_neg(-y·log2(e))``; float64: torch.exp. (The kernels
    call ``_exp2_neg`` directly, with log2(e) folded into their scalar factors.)"""
    if y.dtype == torch.float64:
        return torch.exp(y)
    return _exp2_neg(y * -_LOG2E)


def _exp2_neg(a):
    """2^-a for a ≥ 0. float32: with k = ⌈a⌉ and f = k - a ∈ [0, 1), 2^-a = 2^-k · 2^f, where 2^f
    is the degree-5 fit above and 2^-k is built in the exponent bits ((127 - k)·2^23 is exact in
    float32, then reinterpreted). Five FMAs that inductor inlines and vectorises, where
    ``torch.exp`` becomes a call into Sleef per 8 lanes, which also spills the unrolled time
    loop's registers around each call (on the benchmark's 2-core CPU this made bell surrogates'
    backward ~1.6x faster). Relative error < (2 + a)·1e-7 (the a term is the float32 rounding
    of the argument times log2(e): where it matters, the result is already tiny next to the 1 it
    is added to); results under 2^-126 are flushed to 2^-126 (1.2e-38). float64: torch.exp2."""
    if a.dtype == torch.float64:
        return torch.exp2(-a)
    a = a.clamp(max=126.0)
    k = torch.ceil(a)
    f = k - a
    c = _EXP2_POLY
    poly = ((((c[4] * f + c[3]) * f + c[2]) * f + c[1]) * f + c[0]) * f + 1.0
    scale = (k * -8388608.0 + 1065353216.0).to(torch.int32).view(torch.float32)   # (127 - k)·2^23
    return poly * scale


def _surrogate_grad(v, vth, q: _SurrogateParams, family: str):
    """g(z) of the family (module table) at z = v - V_th."""
    if family in ("bell", "windowed_bell"):
        # e = exp(-B|z|) = 2^-|c·v - c·V_th|, c = B·log2(e): one FMA for the argument
        c = q.B * _LOG2E
        e = _exp2_neg((c * v - c * vth).abs())
        one_e = 1.0 + e
        g = q.A * e / (one_e * one_e)
        return g * ((v - vth).abs() < q.W).to(v.dtype) if family == "windowed_bell" else g
    z = v - vth
    if family == "box":
        return (z.abs() < q.W).to(z.dtype) * q.A
    if family == "triangle":
        return (q.W - z.abs()).clamp(min=0.0) * q.A
    if family == "atan":
        w = q.B * z
        return q.A / (1.0 + w * w)
    raise AssertionError(family)


def _tanh_exp(u, k):
    """e = exp(-2k|u-½|) = 2^-|c·u - c/2|, c = 2k·log2(e): the one exp both functions below
    build on."""
    c = (2.0 * _LOG2E) * k
    return _exp2_neg((c * u - 0.5 * c).abs())


def _tanh_form(u, m):
    """(φ, φ') of the AAAI form tanh(k(u-½))/d + ½, d = 2·tanh(k/2), with m = (k, 1/d, k/d);
    tanh from one exp and one division (accurate to a few ulps; tanh itself is slow on CPU)."""
    k, inv_d, k_inv_d = m
    e = _tanh_exp(u, k)
    inv = 1.0 / (1.0 + e)
    th = (1.0 - e) * inv
    th = torch.where(u < 0.5, -th, th)
    phi = th * inv_d + 0.5
    dphi = k_inv_d * (4.0 * e * inv * inv)
    return phi, dphi


def _tanh_form_grad(u, m):
    """φ' alone of the AAAI form: (k/d)·(1 - tanh²(k(u-½))) = (k/d)·4e/(1+e)²."""
    k, _, k_inv_d = m
    e = _tanh_exp(u, k)
    one_e = 1.0 + e
    return k_inv_d * 4.0 * e / (one_e * one_e)


def _cbrt_ge1(b):
    """b^(1/3) for b ≥ 1, to full precision, without log/pow (slow on CPU): a bit-pattern seed
    (3.5% error) refined by Halley's iteration, which triples the correct digits each time."""
    bits = b.float().clamp(max=1e38).view(torch.int32).float()
    y = (bits * (1.0 / 3.0) + 709921077.0).to(torch.int32).view(torch.float32).to(b.dtype)
    for _ in range(3 if b.dtype == torch.float64 else 2):
        y3 = y * y * y
        y = y * (y3 + 2.0 * b) / (2.0 * y3 + b)
    return y


def _inflor_sides(h):
    """InfLoR's outer pieces: (h < 0, h outside [0, 1], r) with r = (1 - h)^(1/3) below 0 and
    h^(1/3) above 1, so φ = 1 - r resp. r there and φ' = 1/(3r²) on both sides."""
    neg = h < 0
    r = _cbrt_ge1(torch.where(neg, 1.0 - h, h.clamp(min=1.0)))
    return neg, neg | (h > 1.0), r


def _phi_and_grad(h, m, mpr: str):
    """(φ(h), φ'(h)) of the MPR kind."""
    if mpr == "tanh":
        return _tanh_form(h, m)
    # inflor: a cube root on both sides, the tanh form in the middle
    phi_mid, dphi_mid = _tanh_form(h.clamp(0.0, 1.0), m)
    neg, side, r = _inflor_sides(h)
    phi_side = torch.where(neg, 1.0 - r, r)
    return torch.where(side, phi_side, phi_mid), torch.where(side, 1.0 / (3.0 * r * r), dphi_mid)


def _phi_grad(h, m, mpr: str):
    """φ'(h) alone (a box surrogate tests its window on h, so φ itself is not needed)."""
    if mpr == "tanh":
        return _tanh_form_grad(h, m)
    _, side, r = _inflor_sides(h)
    return torch.where(side, 1.0 / (3.0 * r * r), _tanh_form_grad(h.clamp(0.0, 1.0), m))


def _scale(v, c):
    """c·v, or v itself where the compiled-in c is 1 (None)."""
    return v if c is None else c * v


def _settings(spec: Spec, p):
    """(s, λ, d) for the kernels: runtime scalars from p, or None (s, λ = 1) / 0.0 (V_reset = 0)
    where the spec compiles in the identity value. d is V_reset (hard) or -r (soft)."""
    return (None if spec.s_is_1 else p[P_S], None if spec.lam_is_1 else p[P_LAM],
            0.0 if spec.v_reset_is_0 else p[P_D])


def _charge_and_fire(x, p, u0, thr, spec: Spec):
    """The forward recurrence, unrolled over the kernel's T steps, yielding (sX[t], H[t], O[t]
    as a bool mask) per step: H[t] = λU[t-1] + sX[t] (U[-1] = u0 with state or in the rows
    layout, else 0), O[t] = H[t] ≥ thr, U[t] = V_reset where fired else H[t] (hard; a blend) or
    H[t] - r·O[t] (soft; a masked add). Both kernels run it: the backward recomputes H in
    registers."""
    s, lam, d = _settings(spec, p)
    hard, cdt = spec.reset == "hard", p.dtype
    u = u0 if spec.state or spec.rows else None
    for t in range(spec.T):
        xt = _scale(x[t].to(cdt), s)
        h = xt if u is None else _scale(u, lam) + xt
        fired = h >= thr
        u = torch.where(fired, d, h) if hard else torch.where(fired, h + d, h)
        yield xt, h, fired, u


# The rows layout (``Spec.rows``, CPU only). Inductor fuses per-element stores and per-row sums
# into one loop nest over [rows, S] only if every node iterates over those two ranges, and it
# flattens into one R·S loop any node whose loads are all contiguous. So in this layout every
# per-element value is made to read a per-row input: the firing threshold and the surrogate's
# V_th come per row ([R, 1]), and without state U[-1] is a per-row zero ([R, 1]), so that
# H[0] = λ·0 + sX[0] reads one too. With ``realize_opcount_threshold`` = 30 (fewer values kept in
# buffers of inductor's own layout, whose readers would be flattened again) each kernel is then
# one loop over rows, vectorised along S, for T ≤ ``ROWS_MAX_UNROLL``, for every surrogate
# family; ``test_rows_kernels_are_one_loop_nest`` checks it. Not with MPR in the backward: φ(H)
# is long enough to be kept in such a buffer even so (and a higher threshold compiles for over
# 20 s), so the MPR backward reads the same memory as [T, N] instead.


def _make_forward(spec: Spec) -> Callable:
    """The forward kernel does not depend on the surrogate or the MPR (the threshold p[P_THR] is
    φ⁻¹(V_th), or V_th itself without MPR), so all variants share it."""
    stats, state, rows = spec.stats, spec.state, spec.rows

    def forward_kernel(x, p, u0, thr_row):
        cdt = p.dtype
        outs = []
        hs = hq = xs = os_ = u = None
        for xt, h, fired, u in _charge_and_fire(x, p, u0, thr_row if rows else p[P_THR], spec):
            outs.append(fired.to(x.dtype))
            if stats:
                o = fired.to(cdt)
                hs = h if hs is None else hs + h
                hq = h * h if hq is None else hq + h * h
                xs = xt if xs is None else xs + xt
                os_ = o if os_ is None else os_ + o
        res = (torch.stack(outs),)
        if state:
            res = res + (u,)
        if stats:   # per element, or in the rows layout summed over S per row
            res = res + tuple(v.sum(-1) if rows else v for v in (hs, hq, xs, os_))
        return res

    return forward_kernel


def _make_backward(spec: Spec) -> Callable:
    T, family, mpr, stats, state, detach = spec.T, spec.family, spec.mpr, spec.stats, spec.state, spec.detach
    hard = spec.reset == "hard"

    def backward_kernel(x, gout, p, u0, gu_in, g1, g2, gxs, gos, thr_row, vth_row):
        cdt = p.dtype
        s, lam, d = _settings(spec, p)
        vth = vth_row if spec.rows else p[P_VTH]
        q = _SurrogateParams(p[P_A], p[P_B], p[P_W])
        m = (p[P_MK], p[P_MINV], p[P_MKINV])
        lo, hi = p[P_LO], p[P_HI]
        # recompute H forwards (registers, not memory), then walk time backwards
        thr = thr_row if spec.rows else p[P_THR]
        steps = [(h, fired) for _, h, fired, _ in _charge_and_fire(x, p, u0, thr, spec)]
        gx = [None] * T
        gu = gu_in if state else None
        for t in reversed(range(T)):
            h, fired = steps[t]
            if mpr == "none":
                sg = _surrogate_grad(h, vth, q, family)
            elif family == "box":           # window on H, so only φ' is evaluated
                sg = torch.where((h > lo) & (h < hi), q.A * _phi_grad(h, m, mpr), 0.0)
            else:
                phi, dphi = _phi_and_grad(h, m, mpr)
                sg = _surrogate_grad(phi, vth, q, family) * dphi
            go = gout[t].to(cdt)
            if stats:
                go = go + gos
            if gu is None:
                gh = go * sg
            elif hard:      # dU/dH = 1 - O, dU/dO = V_reset - H
                if not detach:
                    go = go - gu * h if spec.v_reset_is_0 else go + gu * (d - h)
                gh = go * sg + torch.where(fired, 0.0, gu)
            else:           # dU/dH = 1, dU/dO = -r
                gh = (go if detach else go + gu * d) * sg + gu
            if stats:
                gh = gh + g1 + 2.0 * g2 * h
                gx[t] = _scale(gh + gxs, s).to(x.dtype)
            else:
                gx[t] = _scale(gh, s).to(x.dtype)
            gu = _scale(gh, lam)
        res = (torch.stack(gx),)
        if state:
            res = res + (gu,)
        return res

    return backward_kernel


# ----------------------------------------------------------------------------------------------
# Compilation cache and fallback
# ----------------------------------------------------------------------------------------------
_KERNELS: dict[tuple, Callable] = {}
_FAILED: set[tuple] = set()
_WARNED: set[str] = set()
_LOCK = threading.Lock()


def _warn_once(key: str, msg: str) -> None:
    if key not in _WARNED:
        _WARNED.add(key)
        warnings.warn(msg, RuntimeWarning, stacklevel=4)


def _fresh_function(fn: Callable, name: str) -> Callable:
    """A copy of ``fn`` with its own code object. torch.compile keeps its cache (and its
    recompile limit) per code object, so each kernel variant gets its own."""
    kw = {"co_name": name}
    if sys.version_info >= (3, 11):
        kw["co_qualname"] = name
    code = fn.__code__.replace(**kw)
    return types.FunctionType(code, fn.__globals__, name, fn.__defaults__, fn.__closure__)


#: Inductor settings for these kernels:
#: * ``realize_opcount_threshold``: materialise (in registers: everything is fused into one loop)
#:   any subexpression of more than a few ops that is used more than once, instead of re-inlining
#:   it at every use: the unrolled time loop and the cube-root iterations would otherwise grow the
#:   compile time exponentially;
#: * ``pattern_matcher`` off: there is nothing for it to match in a pointwise loop, and it cost
#:   ~2 s of every first compile;
#: * ``-ffp-contract=fast`` (inductor's default is off, to match eager bit for bit): lets the C++
#:   compiler fuse multiply-adds (the exp polynomial, the membrane update); on the benchmark's CPU
#:   the backward kernels ran 13% faster. Our contract with the reference is equality within float
#:   tolerance, which the tests check with this flag on;
#: and, per CPU thread count (see ``_thread_options``), ``cpp.threads`` and ``cpp.dynamic_threads``.
_INDUCTOR_OPTIONS = {"realize_opcount_threshold": 4, "max_fusion_size": 100000, "pattern_matcher": False,
                     "cpp.enable_floating_point_contract_flag": "fast"}


def _cpu_threads(device_type: str) -> int:
    """The OpenMP thread count a CPU kernel is generated for (0 elsewhere). Inductor bakes
    ``torch.get_num_threads()`` into the C++ (serial code for 1 thread) but leaves it out of its
    on-disk cache key, so a kernel first compiled at 1 thread would be served, serial, to every
    later process. Passing it as ``cpp.threads`` puts it in the key; it is in ours too, so a
    ``torch.set_num_threads`` mid-process gets kernels for the new count."""
    return torch.get_num_threads() if device_type == "cpu" else 0


def _thread_options(threads: int) -> dict:
    """Inductor's threading options for CPU kernels compiled for ``threads`` OpenMP threads (0: not
    a CPU kernel).

    * ``cpp.threads``: see ``_cpu_threads``.
    * ``cpp.dynamic_threads`` when there is more than one thread: every loop then gets an OpenMP
      parallel region. Without it, inductor parallelises a loop only if its *size hint* is large,
      and the hint of a kernel traced with symbolic sizes is the example's: with a small example
      every kernel came out serial at any thread count, and inductor's disk cache, which does not
      key on hints, went on serving those (this option is part of its key). At 1 thread the loop
      stays serial: inside an OpenMP region the compiler produced ~8% slower code."""
    if not threads:
        return {}
    return {"cpp.threads": threads, "cpp.dynamic_threads": threads > 1}


def _kernel_key(direction: str, spec: Spec, dtype: torch.dtype, device_type: str) -> tuple:
    """What a compiled kernel is cached under (in ``_KERNELS``, ``_FAILED`` and ``_READY``)."""
    return (direction, spec, dtype, device_type, _cpu_threads(device_type))


def _kernel(direction: str, spec: Spec, dtype: torch.dtype, device_type: str) -> Callable:
    key = _kernel_key(direction, spec, dtype, device_type)
    threads = key[-1]
    fn = _KERNELS.get(key)
    if fn is not None:
        return fn
    with _LOCK:
        fn = _KERNELS.get(key)
        if fn is None:
            src = (_make_forward if direction == "fwd" else _make_backward)(spec)
            options = dict(_INDUCTOR_OPTIONS, **_thread_options(threads))
            if spec.rows:   # see the rows layout's note
                options["realize_opcount_threshold"] = 30
            if device_type == "cpu":
                fn = _standalone(direction, spec, src, dtype, options)
            else:
                flags = "".join(f"_{f}" for f in ("detach", "stats", "state", "s_is_1", "lam_is_1",
                                                    "v_reset_is_0", "rows") if getattr(spec, f))
                name = "inflor_{}_T{}_{}_{}_{}{}_{}_{}".format(
                    direction, spec.T, spec.reset, spec.family or "any", spec.mpr or "any", flags,
                    str(dtype).replace("torch.", ""), device_type)
                # sizes are marked dynamic before the first call (see _run), the rest is static
                fn = torch.compile(_fresh_function(src, name), fullgraph=True, options=options)
            _KERNELS[key] = fn
    return fn


#: which arguments a kernel takes, given its structure (the others are None)
def _present(direction: str, spec: Spec) -> tuple[bool, ...]:
    u0 = spec.state or spec.rows
    if direction == "fwd":          # x, p, u0, thr_row
        return (True, True, u0, spec.rows)
    # x, gout, p, u0, gu_in, g1, g2, gxs, gos, thr_row, vth_row
    return (True, True, True, u0, spec.state) + (spec.stats,) * 4 + (spec.rows,) * 2


#: the example size N of a traced kernel: inductor's size hint (see _standalone); in the rows
#: layout [R, S] = [512, 128]
_EXAMPLE_N = 1 << 16
_EXAMPLE_ROWS = 512


def _standalone(direction: str, spec: Spec, src: Callable, dtype: torch.dtype, options: dict) -> Callable:
    """The CPU kernel as a standalone inductor artifact: the source traced once with symbolic
    sizes (every size is dynamic) and compiled, with no dynamo frame around it, so a call costs
    ~13 µs instead of ~50 µs of guard checks. What the guards would check is our cache key
    (structure, dtype, device, threads) plus the layout the caller guarantees: contiguous flat
    [T, N] / [N] tensors. The example sizes are ≥ 2, so no size is specialised to 0 or 1; and
    large, because inductor takes them as the size hint that decides whether a loop is worth
    running in parallel (with N = 17 every kernel came out serial, whatever the thread count)."""
    from torch.fx.experimental.proxy_tensor import make_fx
    present = _present(direction, spec)
    cdt = _compute_dtype(dtype)
    T = spec.T
    # one step: [N], or in the rows layout [R, S] (distinct sizes, each its own symbol), and what
    # comes per element of a step (u0 with state, g1, g2) or per row ([R, 1]: thr, u0 without state)
    if spec.rows:
        step, row = (_EXAMPLE_ROWS, _EXAMPLE_N // _EXAMPLE_ROWS), (_EXAMPLE_ROWS, 1)
    else:
        step = row = (_EXAMPLE_N,)
    u0 = step if spec.state else row
    g12 = row if spec.rows else step
    z = lambda shape, dt=cdt: torch.zeros(shape, dtype=dt)   # noqa: E731
    # distinct tensors (the tracer would take one object passed twice for one input)
    if direction == "fwd":
        examples = [z((T, *step), dtype), z(N_PARAMS), z(u0), z(row)]
    else:
        examples = [z((T, *step), dtype), z((T, *step), dtype), z(N_PARAMS), z(u0), z(step),
                    z(g12), z(g12), z(1), z(1), z(row), z(row)]
    examples = [e for e, keep in zip(examples, present) if keep]

    def full_args(given):
        it = iter(given)
        return [next(it) if keep else None for keep in present]

    gm = make_fx(lambda *given: src(*full_args(given)), tracing_mode="symbolic")(*examples)
    with torch._inductor.config.patch(options):
        art = torch._inductor.standalone_compile(gm, examples)
    def run(*args):
        # the artifact asserts dense strides (an unused statistic's gradient arrives expanded)
        return art(*[a.contiguous() for a, keep in zip(args, present) if keep])

    run.artifact = art
    return run


# which arguments of a kernel have sizes: time-first ones (dimension 0 is T) and the rest
_TIME_FIRST = {"fwd": (0,), "bwd": (0, 1)}
_SIZED = {"fwd": (2, 3), "bwd": (3, 4, 5, 6, 9, 10)}
_READY: set[tuple] = set()


def _run(direction: str, spec: Spec, dtype: torch.dtype, device_type: str, *args):
    """Run a kernel, compiling it on first use. If compilation fails (no C++ compiler, a broken
    toolchain), warn once and run the same kernel source uncompiled: the same equations, slower."""
    key = _kernel_key(direction, spec, dtype, device_type)
    if key not in _FAILED:
        if key not in _READY and device_type != "cpu":
            # torch.compile path: one compiled kernel serves every size, so mark the sizes dynamic
            # for the first compile (the CPU artifacts are traced with symbolic sizes, see
            # _standalone)
            for i in _TIME_FIRST[direction]:
                _dyn(args[i])
            for i in _SIZED[direction]:
                if args[i] is not None:
                    _dyn(args[i], first=0)
        try:
            out = _kernel(direction, spec, dtype, device_type)(*args)
        except Exception as exc:  # compilation unavailable or broken: remember, warn once
            _FAILED.add(key)
            _warn_once("compile", f"inflor fused neuron backend: compiling the kernel failed "
                                  f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); "
                                  "falling back to running its source uncompiled (correct but "
                                  "slower). Set INFLOR_FUSED=0 to use the reference instead.")
        else:
            _READY.add(key)
            return out
    return (_make_forward if direction == "fwd" else _make_backward)(spec)(*args)


# ----------------------------------------------------------------------------------------------
# Parameters
# ----------------------------------------------------------------------------------------------
_PARAM_CACHE: dict[tuple, tuple] = {}
_VALUE_CACHE: dict[int, tuple] = {}


def _param_value(t: torch.Tensor) -> float:
    """The surrogate's runtime parameter as a float. Reading a GPU tensor synchronises, so off the
    CPU the value is cached per tensor object and version (ESG's ``fill_`` per epoch bumps it)."""
    if t.device.type == "cpu":
        return float(t)
    hit = _VALUE_CACHE.get(id(t))
    if hit is not None and hit[0]() is t and hit[1] == t._version:
        return hit[2]
    v = float(t)
    if len(_VALUE_CACHE) > 512:
        _VALUE_CACHE.clear()
    _VALUE_CACHE[id(t)] = (weakref.ref(t), t._version, v)
    return v


def _params(settings: tuple, reset: str, surrogate: str, value: float, mpr: str,
            dtype: torch.dtype, device: torch.device) -> tuple[torch.Tensor, str]:
    """The runtime parameter vector p and the MPR kind the backward kernel evaluates, cached per
    (settings, surrogate and its value, MPR, dtype, device). ``settings`` is the operator's
    (V_th, λ, s, V_reset, r, MPR k).

    The kernel's MPR kind is the neuron's, except that InfLoR's φ with a box surrogate whose
    window φ⁻¹(V_th ∓ W) lies inside [0, 1] (the default: V_th = ½, width 1 gives 0 < H < 1)
    only ever needs φ' of its middle piece, the tanh form: no cube roots."""
    key = (settings, reset, surrogate, value, mpr, dtype, device)
    hit = _PARAM_CACHE.get(key)
    if hit is not None:
        return hit
    vth, lam, s, v_reset, r, k = settings
    form = FUSED_FORMS[surrogate]
    a, b, w = form.fused_values(value)
    vals = [0.0] * N_PARAMS
    vals[P_VTH], vals[P_LAM], vals[P_S] = vth, lam, s
    vals[P_D] = v_reset if reset == "hard" else -r
    vals[P_A], vals[P_B], vals[P_W] = a, b, w
    vals[P_THR] = phi_inverse(mpr, k, vth)
    kernel_mpr = mpr
    if mpr != "none":
        d = 2.0 * math.tanh(k / 2.0)
        vals[P_MK], vals[P_MINV], vals[P_MKINV] = k, 1.0 / d, k / d
        vals[P_LO] = phi_inverse(mpr, k, vth - w)
        vals[P_HI] = phi_inverse(mpr, k, vth + w)
        if mpr == "inflor" and form.fused_family == "box" and 0.0 <= vals[P_LO] and vals[P_HI] <= 1.0:
            kernel_mpr = "tanh"
    p = torch.tensor(vals, dtype=torch.float64).to(device=device, dtype=dtype)
    if len(_PARAM_CACHE) > 512:
        _PARAM_CACHE.clear()
    _PARAM_CACHE[key] = (p, kernel_mpr)
    return p, kernel_mpr

# ----------------------------------------------------------------------------------------------
# The autograd function
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
    on the CPU, with at least ``ROWS_MIN_S`` spatial positions per channel."""
    return stats and x.device.type == "cpu" and _channel_shape(x)[2] >= ROWS_MIN_S


def _per_row(v: torch.Tensor, rows: int) -> torch.Tensor:
    """The scalar v as a [rows, 1] column, one value per row (see the rows layout's note)."""
    return v.reshape(1, 1).expand(rows, 1).contiguous()


def _dyn(*tensors: torch.Tensor, first: int = 1) -> None:
    """One compiled kernel serves every size: mark the sizes (all dimensions from ``first`` on;
    dimension 0 of a chunk is time) dynamic."""
    for t in tensors:
        for d in range(first, t.dim()):
            torch._dynamo.maybe_mark_dynamic(t, d)


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def op_settings(cfg: NeuronConfig, mpr) -> list[float]:
    """The operator's numeric settings: (V_th, λ, s, V_reset, r, MPR k; 0 without MPR)."""
    return [cfg.v_threshold, cfg.decay, cfg.input_scale, cfg.v_reset, cfg.soft_reset_amount,
            0.0 if mpr is None else mpr.k]


def _spec(settings: tuple, reset: str, detach: bool, family: str, kernel_mpr: str, stats: bool) -> Spec:
    """The kernels' structure for these settings (T and chunking are filled in per call)."""
    _, lam, s, v_reset, _, _ = settings
    return Spec(T=0, family=family, mpr=kernel_mpr, stats=stats, state=False, reset=reset,
                detach=bool(detach), s_is_1=s == 1.0, lam_is_1=lam == 1.0,
                v_reset_is_0=reset == "hard" and v_reset == 0.0)


def _layout(x: torch.Tensor, stats: bool) -> tuple[bool, tuple, list[tuple[int, int]]]:
    """How the forward sees x: (rows layout?, one step's shape, [t0, t1) chunks)."""
    T = x.shape[0]
    B, C, S = _channel_shape(x)
    rows = _use_rows(x, stats)
    step = (B * C, S) if rows else (x.numel() // T,)
    return rows, step, _chunks(T, ROWS_MAX_UNROLL if rows else None)


def _prepare(x, sparam, settings, reset, detach, surrogate, mpr, stats) -> tuple[torch.Tensor, Spec]:
    settings = tuple(float(v) for v in settings)
    p, kernel_mpr = _params(settings, reset, surrogate, _param_value(sparam), mpr,
                            _compute_dtype(x.dtype), x.device)
    return p, _spec(settings, reset, detach, FUSED_FORMS[surrogate].fused_family, kernel_mpr, stats)


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
    p, spec_base = _prepare(x, sparam, settings, reset, detach, surrogate, mpr, stats)
    T = x.shape[0]
    B, C, S = _channel_shape(x)
    rows, step, chunks = _layout(x, stats)
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
        spec = spec_base._replace(T=t1 - t0, family="", mpr="", state=state, detach=False, rows=rows)
        if state and t0 > 0:
            bounds.append(u.reshape(-1))
        res = _run("fwd", spec, x.dtype, x.device.type, xc[t0:t1], p, u, thr)
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
        return (spikes, *(xc.new_empty((0,), dtype=p.dtype) for _ in range(4)), bounds, u_final)
    hs, hq, xs, os_ = part
    # per channel from per-row sums [B·C], or from per-element ones: the contiguous S first, then
    # B (ATen reduces that order ~25% faster than both dimensions at once). They stay in the
    # compute dtype (float32, float64 for float64 input): half precision would overflow.
    per_channel = ((lambda v: v.view(B, C).sum(0)) if rows else (lambda v: v.view(B, C, S).sum(2).sum(0)))
    return spikes, per_channel(hs), per_channel(hq), xs.sum(), os_.sum(), bounds, u_final


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
    p, spec_base = _prepare(x, sparam, settings, reset, detach, surrogate, mpr, stats)
    cdt = p.dtype
    T = x.shape[0]
    B, C, S = _channel_shape(x)
    rows_fwd, step_fwd, chunks = _layout(x, stats)
    explicit = u0 is not None or want_state
    state = len(chunks) > 1 or explicit
    # the backward evaluates MPR's φ from H, and inductor keeps such values in buffers of its own
    # layout whose readers it flattens: with MPR its loop splits in the rows layout, so it reads
    # the same memory as [T, N] (statistics' gradients spread to every element)
    rows = rows_fwd and spec_base.mpr == "none"
    step = (B * C, S) if rows else (x.numel() // T,)
    shape = (T, *step)
    g1 = g2 = gxs = gos = thr = vth = None
    if stats:
        zero = lambda g, n: g if g is not None else torch.zeros(n, dtype=cdt, device=x.device)  # noqa: E731
        # the statistics' per-channel gradients, per row, or spread to one value per element of a
        # step (a flat loop fuses into one pass, where broadcasting [C] inside it splits)
        width, shape_g = (1, (B * C, 1)) if rows else (S, step)
        g1, g2 = (zero(g, C).to(cdt).view(1, C, 1).expand(B, C, width).reshape(shape_g)
                  for g in (g_hsum, g_hsqsum))
        gxs, gos = (zero(g, ()).to(cdt).reshape(1) for g in (g_xsum, g_osum))  # [1]: broadcast in the kernel
    if rows:
        thr, vth = _per_row(p[P_THR], B * C), _per_row(p[P_VTH], B * C)
    xc = x.contiguous().view(shape)
    g = (torch.zeros_like(x) if gspikes is None else gspikes).contiguous().view(shape)
    gu = xc.new_zeros(step, dtype=cdt) if state else None
    if g_ufinal is not None and explicit:
        gu = g_ufinal.to(cdt).contiguous().view(step)
    u_zero = xc.new_zeros((B * C, 1), dtype=cdt) if rows and not state else None
    pieces = []
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
        res = _run("bwd", spec, x.dtype, x.device.type, xc[t0:t1], g[t0:t1], p, u_in, gu, g1, g2, gxs, gos,
                   thr, vth)
        pieces.append(res[0])
        if state:
            gu = res[1]
    gx = pieces[0] if len(pieces) == 1 else torch.cat(pieces[::-1])
    gu0 = gu.reshape(x.shape[1:]) if explicit else x.new_empty((0,), dtype=cdt)
    return gx.view(x.shape), gu0


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


class _NeuronFn(torch.autograd.Function):
    """The eager twin of the operator's autograd formula: the same two functions, without the
    dispatcher's per-call cost (``benchmarks/run.py --only compile`` measures it; see
    docs/performance.md). Inside ``torch.compile`` the registered operator is used instead."""

    @staticmethod
    def forward(ctx, x, sparam, u0, args):
        want_state = u0 is not None or args[-1]
        out = neuron_forward(x, sparam, *args[:-1], u0=u0, want_state=want_state)
        ctx.args, ctx.want_state, ctx.has_u0 = args[:-1], want_state, u0 is not None
        ctx.save_for_backward(x, sparam, out[5], *([u0] if u0 is not None else []))
        ctx.mark_non_differentiable(out[5])
        return out

    @staticmethod
    def backward(ctx, gspikes, g_hsum, g_hsqsum, g_xsum, g_osum, _g_bounds, g_ufinal):
        x, sparam, bounds, *u0 = ctx.saved_tensors
        gx, gu0 = neuron_backward(x, sparam, bounds, gspikes, g_hsum, g_hsqsum, g_xsum, g_osum, *ctx.args,
                                  u0=u0[0] if u0 else None, g_ufinal=g_ufinal, want_state=ctx.want_state)
        return gx, None, (gu0 if ctx.has_u0 else None), None


# ----------------------------------------------------------------------------------------------
# Entry points
# ----------------------------------------------------------------------------------------------
def fused_neuron(x: torch.Tensor, cfg: NeuronConfig, surrogate: Surrogate,
                 mpr: Callable | None = None, record_stats: bool = False,
                 state: torch.Tensor | None = None, return_state: bool = False):
    """The fused backend; same signature and results as ``neuron_reference``. Eagerly through
    ``_NeuronFn``; inside ``torch.compile`` as one ``torch.ops.inflor.neuron`` node per call.
    Explicit state (an initial ``state`` U₀, ``return_state``) is the kernels' chunk state: U₀ in,
    U[T-1] out, dL/dU₀ from the backward (``inflor.functional``'s contract)."""
    check_multistep(x)
    explicit = state is not None or return_state
    kw = dict(state=state, return_state=True) if explicit else {}
    key, kind = _surrogate_form(surrogate), _mpr_kind(mpr)
    if key is None or kind is None:
        what = "MPR callable" if kind is None else "surrogate"
        _warn_once(f"unfusable-{what}", f"inflor fused neuron backend: this {what} "
                   f"({type(mpr if kind is None else surrogate).__name__}) has no fused kernel; "
                   "using the reference implementation for it")
        return neuron_reference(x, cfg, surrogate, mpr, record_stats, **kw)
    if x.numel() == 0 or x.device.type not in _DEVICES:
        return neuron_reference(x, cfg, surrogate, mpr, record_stats, **kw)
    if state is not None:
        state = initial_state(state, x)
    sparam = getattr(surrogate, type(surrogate).fused_param)
    args = (op_settings(cfg, mpr), cfg.reset, cfg.detach_reset, key, kind, bool(record_stats))
    if torch.compiler.is_compiling():
        out = torch.ops.inflor.neuron(x, sparam, *args, state, explicit)
    else:
        out = _NeuronFn.apply(x, sparam, state, args + (explicit,))
    spikes, h_sum, h_sqsum, x_sum, o_sum, _, u_final = out
    stats = None
    if record_stats:
        stats = MembraneStats(h_sum=h_sum, h_sqsum=h_sqsum, count=x.numel() // h_sum.numel(),
                              timesteps=x.shape[0], x_sum=x_sum, o_sum=o_sum)
    return (spikes, stats, u_final) if explicit else (spikes, stats)


def auto_neuron(x: torch.Tensor, cfg: NeuronConfig, surrogate: Surrogate,
                mpr: Callable | None = None, record_stats: bool = False,
                state: torch.Tensor | None = None, return_state: bool = False):
    """What ``backend="auto"`` runs: the fused kernels for inputs of at least ``AUTO_MIN_NUMEL``
    elements whose surrogate and MPR are fusable, else the reference (silently); explicit state
    as in ``fused_neuron``."""
    kw = dict(state=state, return_state=True) if state is not None or return_state else {}
    if x.numel() < AUTO_MIN_NUMEL or not _ENABLED or not fusable(cfg, surrogate, mpr):
        return neuron_reference(x, cfg, surrogate, mpr, record_stats, **kw)
    return fused_neuron(x, cfg, surrogate, mpr, record_stats, **kw)


_ENABLED = os.environ.get("INFLOR_FUSED", "1").strip().lower() not in ("0", "false", "no", "off")
