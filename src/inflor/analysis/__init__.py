"""Analyses of membrane potentials (the papers' quantization-error argument)."""
from __future__ import annotations

import torch


def quantization_error(u: torch.Tensor, v_threshold: float = 0.5) -> torch.Tensor:
    """Quantization error (InfLoR Eq. 9): mean of (u − o)², o = Θ(u − V_th) the spike of the
    potential u presented to the step function (pass φ(H) to measure it after MPR)."""
    o = (u >= v_threshold).to(u.dtype)
    return ((u - o) ** 2).mean()
