"""Membrane Potential Rectifier φ (docs/design.md §3).

MPR reshapes only what the step function sees: Ĥ = φ(H), O = Θ(Ĥ - V_th); the stored membrane
stays H. Both φ are increasing with φ(½) = ½, so at V_th = 0.5 the forward spikes are unchanged
and only the gradient dO/dH = g(Ĥ - V_th)·φ'(H) changes.
"""
from __future__ import annotations

import math
from typing import Callable

import torch


def phi_tanh(u: torch.Tensor, k: float) -> torch.Tensor:
    """AAAI'22 MPR (Eq. 8): φ(u) = tanh(k(u - ½)) / (2·tanh(k/2)) + ½, everywhere, k > 0.

    φ(0) = 0, φ(½) = ½, φ(1) = 1; it saturates at ½ ± 1/(2 tanh(k/2)) outside [0, 1].
    """
    if k <= 0:
        raise ValueError(f"MPR k must be > 0, got {k}")
    return torch.tanh(k * (u - 0.5)) / (2.0 * math.tanh(k / 2.0)) + 0.5


def phi_inflor(u: torch.Tensor, k: float = 3.0) -> torch.Tensor:
    """InfLoR-SNN MPR (Eq. 10)::

        φ(u) = 1 - (1 - u)^(1/3)                         u < 0
               tanh(k(u - ½)) / (2·tanh(k/2)) + ½         0 ≤ u ≤ 1
               u^(1/3)                                   u > 1

    continuous at 0 and 1 and strictly increasing. Each branch sees its argument clamped to its
    own region, so no branch produces NaN values or gradients elsewhere.
    """
    below = 1.0 - (1.0 - u.clamp(max=0.0)) ** (1.0 / 3.0)
    middle = phi_tanh(u.clamp(0.0, 1.0), k)
    above = u.clamp(min=1.0) ** (1.0 / 3.0)
    return torch.where(u < 0, below, torch.where(u > 1, above, middle))


def phi_inverse(kind: str, k: float, v: float) -> float:
    """φ⁻¹(v) as a Python float, for ``kind`` "inflor" or "tanh" ("none": v itself); ±inf beyond
    the range of the tanh form (it saturates). φ is strictly increasing, so Θ(φ(H) − V_th) fires
    exactly where H ≥ φ⁻¹(V_th), and a window |φ(H) − V_th| < W is φ⁻¹(V_th − W) < H < φ⁻¹(V_th + W):
    the fused kernels test H against these numbers instead of evaluating φ per element.

    Middle piece: the inverse of tanh(k(u − ½))/d + ½ (d = 2 tanh(k/2)) is ½ + atanh(d(v − ½))/k,
    exact at φ(0) = 0, φ(½) = ½, φ(1) = 1. InfLoR's outer pieces: 1 − (1 − v)³ for v < 0, v³ for
    v > 1."""
    if kind == "none":
        return v
    d = 2.0 * math.tanh(k / 2.0)

    def mid_inverse(v):
        if v in (0.0, 0.5, 1.0):
            return v
        y = d * (v - 0.5)
        if y >= 1.0:
            return math.inf
        if y <= -1.0:
            return -math.inf
        return 0.5 + math.atanh(y) / k

    if kind == "tanh":
        return mid_inverse(v)
    if kind != "inflor":
        raise ValueError(f"unknown MPR kind {kind!r}; valid choices: ['inflor', 'tanh', 'none']")
    if v < 0.0:
        return 1.0 - (1.0 - v) ** 3
    if v > 1.0:
        return v ** 3
    return min(max(mid_inverse(v), 0.0), 1.0)


class MPR:
    """A named, picklable φ: ``MPR("inflor", k=3)`` or ``MPR("tanh", k=...)``."""

    KINDS = {"inflor": phi_inflor, "tanh": phi_tanh}

    def __init__(self, kind: str = "inflor", k: float = 3.0):
        if kind not in self.KINDS:
            raise ValueError(f"unknown MPR kind {kind!r}; valid choices: {sorted(self.KINDS)} "
                             "(or None for no MPR, or a callable u -> φ(u))")
        if k <= 0:
            raise ValueError(f"MPR k must be > 0, got {k}")
        self.kind, self.k = kind, float(k)

    def __call__(self, u: torch.Tensor) -> torch.Tensor:
        return self.KINDS[self.kind](u, self.k)

    def inverse(self, v: float) -> float:
        """φ⁻¹(v) (see ``phi_inverse``)."""
        return phi_inverse(self.kind, self.k, v)

    def __repr__(self) -> str:
        return f"MPR({self.kind!r}, k={self.k:g})"

    def __eq__(self, other) -> bool:
        return isinstance(other, MPR) and (self.kind, self.k) == (other.kind, other.k)


def resolve_mpr(mpr: "None | str | Callable | MPR", k: float | None = None) -> "Callable | None":
    """``None`` -> no MPR; ``"inflor"`` / ``"tanh"`` -> ``MPR(kind, k)``; a callable is used as is."""
    if mpr is None or mpr is False:
        return None
    if isinstance(mpr, str):
        if mpr.lower() in ("none", ""):
            return None
        return MPR(mpr.lower(), 3.0 if k is None else k)
    if callable(mpr):
        return mpr
    raise TypeError(f"mpr must be None, 'inflor', 'tanh' or a callable, got {type(mpr).__name__}")
