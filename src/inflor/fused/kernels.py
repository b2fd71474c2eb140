"""Kernel source: the forward and backward kernels as pure PyTorch functions of one ``Spec``
(``_make_forward`` / ``_make_backward``), with the time loop unrolled; compiled by
``inflor.fused.compilation``, or run as they are where compiling fails."""
from __future__ import annotations

from typing import Callable

import torch

from .kernel_math import _SurrogateParams, _phi_and_grad, _phi_grad, _scale, _surrogate_grad
from .lowering import P_A, P_B, P_D, P_HI, P_LAM, P_LO, P_MINV, P_MK, P_MKINV, P_S, P_THR, P_VTH, P_W, Spec

# ----------------------------------------------------------------------------------------------
# Kernel source: pure PyTorch, compiled by torch.compile. T and the structure are closure
# constants; everything numeric comes in through the parameter vector p.
# ----------------------------------------------------------------------------------------------
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
        if spec.bits:
            res = res + (_spike_bytes(outs),)
        return res

    return forward_kernel


def _spike_bytes(outs) -> torch.Tensor:
    """The T = 8·m steps' spikes (0/1, one tensor [N] per step) as ``inflor.bitpack.pack_spikes``
    lays out their stack [T, N]: bytes [m, N] with bit i of byte [j, n] = O[i·m + j, n] (plane i
    of the flat tensor is steps i·m … i·m + m − 1). Summed in float32 and converted, as
    ``bitpack`` does (exact: at most 255)."""
    m = len(outs) // 8
    planes = []
    for j in range(m):
        v = None
        for i in range(8):
            b = outs[i * m + j].to(torch.float32) * float(1 << i)
            v = b if v is None else v + b
        planes.append(v.to(torch.uint8))
    return torch.stack(planes)


def _affine_input(y, a, b, extra):
    """The neuron's input recomputed from a norm's input (``Spec.affine``): ``addcmul(b, y, a)``,
    which the C++ compiler contracts into one fused multiply-add per element as ATen's CPU batch
    norm computes it (``-ffp-contract=fast``; checked on first use, ``inflor.fused.ops``), plus
    the shortcut term ``extra`` where given."""
    z = torch.addcmul(b, y, a)
    return z if extra is None else z + extra


def _bit_step(packed, t: int, T: int, dtype: torch.dtype):
    """Step t of spikes [T, N] given as bytes [m, N], T = 8·m (``_spike_bytes``' layout): bit
    t // m of byte row t mod m, as 0/1 in ``dtype``."""
    m = T // 8
    return ((packed[t % m].to(torch.int32) >> (t // m)) & 1).to(dtype)


def _make_backward(spec: Spec) -> Callable:
    T, family, mpr, stats, state, detach = spec.T, spec.family, spec.mpr, spec.stats, spec.state, spec.detach
    hard = spec.reset == "hard"

    def backward_kernel(x, gout, p, u0, gu_in, g1, g2, gxs, gos, thr_row, vth_row, aff_a, aff_b, extra):
        cdt = p.dtype
        out_dtype = x.dtype
        if spec.affine:     # x is the norm's input: z[t] = fma(y[t], a, b) (+ extra[t]), in y's dtype
            x = [_affine_input(x[t], aff_a, aff_b, None if not spec.extra else
                               _bit_step(extra, t, T, x.dtype) if spec.extra_bits else extra[t]) for t in range(T)]
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
                gx[t] = _scale(gh + gxs, s).to(out_dtype)
            else:
                gx[t] = _scale(gh, s).to(out_dtype)
            gu = _scale(gh, lam)
        res = (torch.stack(gx),)
        if state:
            res = res + (gu,)
        return res

    return backward_kernel
