"""Per-channel membrane statistics, the one object both MPD-Loss and IM-Loss consume (docs/design.md §6).

A spiking layer reports, for its pre-spike, pre-MPR membrane H of shape ``[T, B, C, ...]``:

    h_sum[c]   = Σ_{t,b,spatial} H[t, b, c, ...]
    h_sqsum[c] = Σ_{t,b,spatial} H[t, b, c, ...]²
    count      = T · B · Π spatial            (elements per channel)

plus the scalar sums of its input current X (after input scaling) and of its spikes O, which the
official IM-Loss code variant and the analyses use. From these, per channel,
μ = h_sum / count and σ² = h_sqsum / count − μ² (population variance). All sums keep the autograd
graph, so a loss built on them back-propagates into the membrane without a stored copy of H.

Precision: every sum is accumulated and kept in float32 (float64 for float64 membranes), whatever
the membrane's dtype or the autocast state, so the losses built on them are float32 too
(``accumulation_dtype``).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import torch


@dataclass
class MembraneStats:
    h_sum: torch.Tensor          # [C]
    h_sqsum: torch.Tensor        # [C]
    count: int                   # elements per channel
    timesteps: int
    x_sum: torch.Tensor | None = None   # scalar: Σ input current
    o_sum: torch.Tensor | None = None   # scalar: Σ spikes
    role: str = "standalone"     # "standalone" | "block_output" | "block_inner"
    name: str = ""

    def __post_init__(self):
        # sums made elsewhere in half precision are widened here, so every loss sees float32
        for f in ("h_sum", "h_sqsum", "x_sum", "o_sum"):
            v = getattr(self, f)
            if v is not None and v.dtype != accumulation_dtype(v.dtype):
                setattr(self, f, v.to(accumulation_dtype(v.dtype)))

    @property
    def channels(self) -> int:
        return self.h_sum.numel()

    @property
    def numel(self) -> int:
        return self.count * self.channels

    def mean(self) -> torch.Tensor:
        """μ_c, per channel."""
        return self.h_sum / self.count

    def var(self) -> torch.Tensor:
        """σ²_c = E[H²] − μ², population variance per channel (clamped at 0 against rounding)."""
        m = self.mean()
        return (self.h_sqsum / self.count - m * m).clamp(min=0.0)

    def std(self, eps: float = 1e-10) -> torch.Tensor:
        """σ_c = sqrt(σ²_c + eps)."""
        return torch.sqrt(self.var() + eps)

    def overall_mean(self) -> torch.Tensor:
        """Mean of H over all T·B·C·spatial elements (a scalar)."""
        return self.h_sum.sum() / self.numel

    def spike_rate(self) -> torch.Tensor:
        if self.o_sum is None:
            raise ValueError("these statistics carry no spike sum")
        return self.o_sum / self.numel

    def input_mean(self) -> torch.Tensor:
        if self.x_sum is None:
            raise ValueError("these statistics carry no input-current sum")
        return self.x_sum / self.numel

    def detach(self) -> "MembraneStats":
        d = lambda t: None if t is None else t.detach()  # noqa: E731
        return replace(self, h_sum=d(self.h_sum), h_sqsum=d(self.h_sqsum),
                       x_sum=d(self.x_sum), o_sum=d(self.o_sum))

    def __add__(self, other: "MembraneStats") -> "MembraneStats":
        """Pool two sets of statistics of the same layer (streaming over batches)."""
        if self.channels != other.channels:
            raise ValueError(f"cannot pool statistics with {self.channels} and {other.channels} channels")
        add = lambda a, b: None if a is None or b is None else a + b  # noqa: E731
        return replace(self, h_sum=self.h_sum + other.h_sum, h_sqsum=self.h_sqsum + other.h_sqsum,
                       count=self.count + other.count, x_sum=add(self.x_sum, other.x_sum),
                       o_sum=add(self.o_sum, other.o_sum))


def accumulation_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype membrane statistics are summed and returned in: float64 for float64 input,
    float32 for everything else. A channel of an ImageNet stem sums millions of values, so Σ H²
    overflows float16 (max 65504) and loses all precision in bfloat16 (8 significant bits)."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def channel_dims(ndim_step: int) -> tuple[int, ...]:
    """Dims to reduce for a per-step tensor [B, C, ...] so that the channel axis 1 remains."""
    return (0,) + tuple(range(2, ndim_step))


def step_sums(h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(Σ H, Σ H²) per channel for one step [B, C, ...]; a [B] tensor counts as one channel.
    Summed in ``accumulation_dtype`` (float32 for half-precision H, float64 for float64)."""
    h = h.to(accumulation_dtype(h.dtype))
    if h.dim() == 1:
        return h.sum().reshape(1), (h * h).sum().reshape(1)
    dims = channel_dims(h.dim())
    return h.sum(dims), (h * h).sum(dims)


def membrane_stats(h: torch.Tensor, x: torch.Tensor | None = None, o: torch.Tensor | None = None,
                   role: str = "standalone", name: str = "") -> MembraneStats:
    """Statistics of a stored membrane tensor ``[T, B, C, ...]`` (channel axis 2; ``[T, B]`` is
    one channel). Gives the same object the neurons report during their own forward."""
    if h.dim() < 2:
        raise ValueError(f"membrane_stats expects a tensor [T, B, C, ...] (time first), got shape {tuple(h.shape)}")
    T = h.shape[0]
    flat = h.reshape(T * h.shape[1], *h.shape[2:])
    s, sq = step_sums(flat)
    count = h.numel() // s.numel()
    total = lambda v: None if v is None else v.sum(dtype=accumulation_dtype(v.dtype))  # noqa: E731
    return MembraneStats(h_sum=s, h_sqsum=sq, count=count, timesteps=T, x_sum=total(x), o_sum=total(o),
                         role=role, name=name)
