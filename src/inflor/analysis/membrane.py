"""Membrane potentials seen from outside a neuron, and bounded-memory statistics of them.

``iter_membrane`` replays the neuron equations of ``inflor.functional`` (docs/design.md §2) on a
node's input current ``x`` ``[T, B, ...]`` and yields, one time step at a time, the membrane
``H[t]``, what the step function sees ``Ĥ[t] = φ(H[t])`` (``H[t]`` without MPR) and the spikes
``O[t]``. Fed the spikes the node actually emitted, it follows the node's own trajectory whatever
backend computed it; without them it recomputes ``O = Θ(Ĥ − V_th)``, matching
``neuron_reference`` exactly.

``LayerAccumulator`` turns those steps into running sums (float64), per-channel sums and
histograms of bounded size that keep every value (``inflor.analysis.histogram``), so its memory
does not grow with the number of samples, and pooling many batches gives the numbers of one big
batch.
"""
from __future__ import annotations

import math
from typing import Callable, Iterator

import torch

from ..functional import NeuronConfig, charge, reset, scaled_input
from ..stats import MembraneStats, step_sums
from .histogram import Histogram

@torch.no_grad()
def iter_membrane(x: torch.Tensor, cfg: NeuronConfig, mpr: Callable | None = None,
                  spikes: torch.Tensor | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Yield ``(H[t], Ĥ[t], O[t])`` for t = 0 .. T-1 of a neuron with settings ``cfg`` and MPR
    ``mpr`` driven by ``x`` ``[T, B, ...]``.

    ``spikes`` (``[T, B, ...]``, optional): the spikes the neuron emitted; when given they drive
    the reset, so H follows the run being observed exactly.
    """
    u = None
    for t in range(x.shape[0]):
        h = charge(u, scaled_input(x[t], cfg), cfg)
        h_hat = mpr(h) if mpr is not None else h
        o = spikes[t].to(h.dtype) if spikes is not None else (h_hat - cfg.v_threshold >= 0).to(h.dtype)
        u = reset(h, o, cfg)
        yield h, h_hat, o


def membrane_potentials(x: torch.Tensor, cfg: NeuronConfig, mpr: Callable | None = None,
                        spikes: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(H, Ĥ, O)`` stacked to ``[T, B, ...]`` (stores all steps: for tests and small inputs)."""
    hs, hhs, os_ = zip(*iter_membrane(x, cfg, mpr, spikes))
    return torch.stack(hs), torch.stack(hhs), torch.stack(os_)


def window_mask(h_hat: torch.Tensor, v_threshold: float, surrogate) -> torch.Tensor:
    """Where the surrogate gradient is "open": g(Ĥ − V_th) ≥ ½·g(0) (its full width at half
    maximum). For the rectangle of width 1 at V_th = 0.5 this is exactly 0 < Ĥ < 1."""
    x = h_hat - v_threshold
    g = surrogate.grad(x)
    g0 = surrogate.grad(torch.zeros((), dtype=x.dtype, device=x.device))
    return g >= 0.5 * g0


@torch.no_grad()
def window_bounds(surrogate, v_threshold: float = 0.5, mpr: Callable | None = None,
                  lo: float = -4.0, hi: float = 5.0, points: int = 18001) -> list[float] | None:
    """``[a, b]``: the potentials u in ``[lo, hi]`` (on a grid) whose step input ``φ(u)`` (``u``
    without MPR) falls inside the surrogate window; ``None`` if none does."""
    u = torch.linspace(lo, hi, points, dtype=torch.float64)
    inside = window_mask(mpr(u) if mpr is not None else u, v_threshold, surrogate)
    if not bool(inside.any()):
        return None
    sel = u[inside]
    return [round(float(sel.min()), 4), round(float(sel.max()), 4)]


class LayerAccumulator:
    """Running statistics of one spiking layer over any number of forward passes.

    Holds only sums (float64), per-channel sums of H and H², per-step spike counts and two
    bounded histograms; ``update`` takes one step ``(H[t], Ĥ[t], O[t])`` of one batch.
    """

    def __init__(self, v_threshold: float = 0.5, surrogate=None):
        self.v_threshold = float(v_threshold)
        self.surrogate = surrogate
        self.n = 0                       # elements seen (T·B·C·spatial, summed over batches)
        self.spikes = 0.0
        self.h_sum = 0.0
        self.h_sqsum = 0.0
        self.qe_before = 0.0             # Σ (H − Θ(H − V_th))²
        self.qe_after = 0.0              # Σ (Ĥ − Θ(Ĥ − V_th))²
        self.in_window = 0
        self.in_unit = 0                 # 0 < H < 1
        self.below_zero = 0              # H < 0
        self.above_one = 0               # H > 1
        self.ch_sum: torch.Tensor | None = None
        self.ch_sqsum: torch.Tensor | None = None
        self.step_spikes: list[float] = []
        self.step_n: list[int] = []
        self.hist_before = Histogram()
        self.hist_after = Histogram()
        self.timesteps: int | None = None

    def update(self, t: int, h: torch.Tensor, h_hat: torch.Tensor, o: torch.Tensor) -> None:
        vth = self.v_threshold
        hd, hhd = h.detach().double(), h_hat.detach().double()
        n = hd.numel()
        self.n += n
        s_o = float(o.detach().double().sum())
        self.spikes += s_o
        self.h_sum += float(hd.sum())
        self.h_sqsum += float((hd * hd).sum())
        self.qe_before += float(((hd - (hd >= vth).double()) ** 2).sum())
        self.qe_after += float(((hhd - (hhd >= vth).double()) ** 2).sum())
        if self.surrogate is not None:
            self.in_window += int(window_mask(hhd, vth, self.surrogate).sum())
        self.in_unit += int(((hd > 0) & (hd < 1)).sum())
        self.below_zero += int((hd < 0).sum())
        self.above_one += int((hd > 1).sum())
        s, sq = step_sums(hd)
        s, sq = s.cpu(), sq.cpu()
        if self.ch_sum is None:
            self.ch_sum, self.ch_sqsum = s, sq
        else:
            if s.numel() != self.ch_sum.numel():
                raise ValueError(f"layer changed its channel count from {self.ch_sum.numel()} to {s.numel()}")
            self.ch_sum += s
            self.ch_sqsum += sq
        while len(self.step_spikes) <= t:
            self.step_spikes.append(0.0)
            self.step_n.append(0)
        self.step_spikes[t] += s_o
        self.step_n[t] += n
        self.hist_before.update(hd)
        self.hist_after.update(hhd)

    def membrane_stats(self) -> MembraneStats:
        """Per-channel ``MembraneStats`` of H pooled over everything seen (for ``mpd_terms``)."""
        if self.ch_sum is None:
            raise ValueError("no data seen by this layer")
        count = self.n // self.ch_sum.numel()
        return MembraneStats(h_sum=self.ch_sum.clone(), h_sqsum=self.ch_sqsum.clone(), count=count,
                             timesteps=len(self.step_n), o_sum=torch.tensor(self.spikes, dtype=torch.float64))

    def summary(self, mpd_options: dict | None = None) -> dict:
        """The layer's numbers as plain Python values (see docs/analysis.md for their meaning)."""
        from ..losses import mpd_terms

        if self.n == 0:
            raise ValueError("no data seen by this layer")
        n = self.n
        mean = self.h_sum / n
        var = max(self.h_sqsum / n - mean * mean, 0.0)
        terms = mpd_terms(self.membrane_stats(), v_threshold=self.v_threshold, **(mpd_options or {}))
        return {
            "elements": n,
            "channels": int(self.ch_sum.numel()),
            "timesteps": len(self.step_n),
            "spike_rate": self.spikes / n,
            "spike_rate_per_step": [s / max(c, 1) for s, c in zip(self.step_spikes, self.step_n)],
            "membrane_mean": mean,
            "membrane_std": math.sqrt(var),
            "quantization_error_before": self.qe_before / n,
            "quantization_error_after": self.qe_after / n,
            "window_fraction": (self.in_window / n) if self.surrogate is not None else None,
            "unit_interval_fraction": self.in_unit / n,
            "fraction_below_0": self.below_zero / n,
            "fraction_in_0_1": (n - self.below_zero - self.above_one) / n,
            "fraction_above_1": self.above_one / n,
            "mpd": {k: float(v.mean()) for k, v in terms.items()},
        }

    def histograms(self) -> dict:
        return {"before": self.hist_before.as_dict(), "after": self.hist_after.as_dict()}
