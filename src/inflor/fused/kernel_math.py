"""Kernel math: the pointwise functions the kernel source is built from, in plain PyTorch that
inductor inlines and vectorises: the surrogate families' g(z), MPR's φ and φ', and the inlined exp
(the tables are in the package docstring, ``inflor.fused``)."""
from __future__ import annotations

from typing import NamedTuple

import torch


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
