"""Membrane-potential histograms that keep every value, and the view a figure takes of them.

``Histogram`` counts values exactly in bins of width w = ``base_width``·2^j anchored at 0 (bin a
holds a·w ≤ u < (a+1)·w). When the occupied bins would exceed ``max_bins`` the width doubles
and neighbouring bins merge, so memory stays bounded whatever the spread of the data, no value
ever falls outside, and the result depends only on the values seen (not on how they were split
into batches): the final width is the smallest that fits all of them.

A histogram is stored (``analysis.json``, snapshots) as a *binned dict*
``{"lo", "width", "counts", "below", "above", "nonfinite"}``: ``counts[i]`` values in
``[lo + i·width, lo + (i+1)·width)``, ``below`` / ``above`` values outside the recorded bins at
unknown positions (always 0 here; older fixed-range files have them), ``nonfinite`` NaN/±inf.

The rest of the module reads binned dicts with numpy: quantiles, the fractions below 0, inside
[0, 1] and above 1, the range a figure shows (``display_range``: the central 99 % plus 0, 1, V_th
and the surrogate window) and the counts on a coarser grid for drawing (``rebin``).
"""
from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np
import torch

#: finest bin width (a power of two, so 0, ½ and 1 are bin edges); 4096 bins of it span 16 units,
#: and a spread of 128 units still leaves bins of 1/32
BASE_WIDTH = 2.0 ** -8
MAX_BINS = 4096
#: bin indices stay below this (float64 holds them exactly); larger values coarsen the bins
_MAX_INDEX = 2 ** 40

#: a figure's main range holds at least this central fraction of the values
COVERAGE = 0.99
#: bins across a figure's main range
DISPLAY_BINS = 160


class Histogram:
    """Exact counts of float values in power-of-two bins that widen as the data spreads (see the
    module docstring); NaN and ±inf are counted apart."""

    def __init__(self, base_width: float = BASE_WIDTH, max_bins: int = MAX_BINS):
        if not base_width > 0 or max_bins < 2:
            raise ValueError(f"histogram needs base_width > 0 and max_bins >= 2, got {base_width}, {max_bins}")
        self.width = float(base_width)
        self.max_bins = int(max_bins)
        self.start = 0                                   # bin index of counts[0]
        self.counts = torch.zeros(0, dtype=torch.int64)
        self.nonfinite = 0

    def _coarsen(self) -> None:
        """Double the width: bin a becomes bin ⌊a/2⌋ (exact, since edges stay on the grid)."""
        if self.counts.numel():
            idx = torch.div(torch.arange(self.start, self.start + self.counts.numel()), 2, rounding_mode="floor")
            new_start = self.start // 2
            merged = torch.zeros(int(idx[-1]) - new_start + 1, dtype=torch.int64)
            self.counts = merged.index_add_(0, idx - new_start, self.counts)
            self.start = new_start
        self.width *= 2.0

    def _fit(self, lo: float, hi: float) -> None:
        """Coarsen until [lo, hi] fits with the bins already occupied, then extend the bins to it."""
        while max(abs(lo), abs(hi)) / self.width >= _MAX_INDEX:
            self._coarsen()
        a, b = math.floor(lo / self.width), math.floor(hi / self.width)
        if self.counts.numel():
            a, b = min(a, self.start), max(b, self.start + self.counts.numel() - 1)
        while b - a + 1 > self.max_bins:
            self._coarsen()
            a, b = a // 2, b // 2
        if not self.counts.numel():
            self.start, self.counts = a, torch.zeros(b - a + 1, dtype=torch.int64)
            return
        left, right = self.start - a, b - (self.start + self.counts.numel() - 1)
        if left or right:
            self.counts = torch.cat([torch.zeros(left, dtype=torch.int64), self.counts,
                                     torch.zeros(right, dtype=torch.int64)])
            self.start = a

    @torch.no_grad()
    def update(self, u: torch.Tensor) -> None:
        """Count every element of ``u``."""
        u = u.detach().reshape(-1).double()
        finite = torch.isfinite(u)
        bad = int((~finite).sum())
        if bad:
            self.nonfinite += bad
            u = u[finite]
        if not u.numel():
            return
        self._fit(float(u.min()), float(u.max()))
        idx = torch.floor(u / self.width).long() - self.start
        self.counts += torch.bincount(idx, minlength=self.counts.numel()).cpu()

    def total(self) -> int:
        return int(self.counts.sum()) + self.nonfinite

    def as_dict(self) -> dict:
        """The binned dict (see the module docstring)."""
        return {"lo": self.start * self.width, "width": self.width, "counts": self.counts.tolist(),
                "below": 0, "above": 0, "nonfinite": self.nonfinite}


def as_binned(hist: Mapping, spec: Mapping | None = None) -> dict:
    """A stored histogram as a binned dict: new ones are already; an old fixed-range one
    (``{"counts", "below", "above"}`` with ``spec = {"lo", "hi", "bins"}``) is converted."""
    if "width" in hist:
        return {"nonfinite": 0, "below": 0, "above": 0, **hist}
    if spec is None:
        raise ValueError("a fixed-range histogram needs its spec {lo, hi, bins}")
    return {"lo": float(spec["lo"]), "width": (float(spec["hi"]) - float(spec["lo"])) / int(spec["bins"]),
            "counts": list(hist["counts"]), "below": int(hist.get("below", 0)), "above": int(hist.get("above", 0)),
            "nonfinite": 0}


def total(d: Mapping) -> int:
    """Every value counted, including those outside the bins and the non-finite ones."""
    return int(sum(d["counts"])) + int(d.get("below", 0)) + int(d.get("above", 0)) + int(d.get("nonfinite", 0))


def _edges(d: Mapping) -> np.ndarray:
    return d["lo"] + d["width"] * np.arange(len(d["counts"]) + 1)


def occupied_range(d: Mapping) -> tuple[float, float] | None:
    """``(lower edge of the first non-empty bin, upper edge of the last)``; None if empty."""
    counts = np.asarray(d["counts"])
    nz = np.flatnonzero(counts)
    if not nz.size:
        return None
    e = _edges(d)
    return float(e[nz[0]]), float(e[nz[-1] + 1])


def central_range(d: Mapping, coverage: float = COVERAGE) -> tuple[float, float] | None:
    """Bin edges around the central ``coverage`` of the values: from the bin holding the
    (1 − coverage)/2 quantile to the one holding the (1 + coverage)/2 quantile (values outside
    the bins count at their side). None if no value is binned."""
    counts = np.asarray(d["counts"], dtype=np.float64)
    if not counts.sum():
        return None
    n = total(d) - int(d.get("nonfinite", 0))
    tail = (1.0 - coverage) / 2 * n
    cum = d.get("below", 0) + np.cumsum(counts)                 # values below each bin's upper edge
    first = int(np.searchsorted(cum, tail, side="right"))        # first bin with more than `tail` below its top
    last = int(np.searchsorted(cum, n - tail, side="left"))      # first bin with at least n − tail below its top
    first, last = min(first, counts.size - 1), min(last, counts.size - 1)
    e = _edges(d)
    return float(e[first]), float(e[max(last, first) + 1])


def split_fractions(d: Mapping) -> dict[str, float]:
    """Fractions of the values below 0, inside [0, 1] and above 1 from the bins (exact when 0 and
    1 are bin edges, as with ``Histogram``; values exactly at 1 fall in the bin above it)."""
    e = _edges(d)
    counts = np.asarray(d["counts"], dtype=np.float64)
    n = max(total(d), 1)
    below = d.get("below", 0) + counts[e[1:] <= 0].sum()
    above = d.get("above", 0) + counts[e[:-1] >= 1].sum()
    return {"below_0": float(below / n), "in_0_1": float((n - below - above) / n), "above_1": float(above / n)}


def display_range(d: Mapping, marks: Sequence[float] = (0.0, 1.0), coverage: float = COVERAGE,
                  pad: float = 0.04) -> tuple[float, float]:
    """The x range of a histogram's main panel: the central ``coverage`` of the values together
    with every point of ``marks`` (0, 1, V_th, the surrogate window's ends), widened by ``pad`` of
    its length on each side."""
    pts = [float(m) for m in marks if m is not None and math.isfinite(m)]
    core = central_range(d, coverage)
    if core is not None:
        pts += list(core)
    lo, hi = (min(pts), max(pts)) if pts else (0.0, 1.0)
    if hi - lo < 1e-9:
        lo, hi = lo - 0.5, hi + 0.5
    span = hi - lo
    return lo - pad * span, hi + pad * span


def display_grid(d: Mapping, lo: float, hi: float, bins: int = DISPLAY_BINS) -> tuple[float, float, int]:
    """``(lo', hi', n)``: about ``bins`` bins covering ``[lo, hi]`` whose width is a whole number
    of ``d``'s bins and whose edges fall on ``d``'s edges, so no drawn bin gets more stored bins
    than its neighbours (no comb pattern); ``lo'`` ≤ ``lo`` and ``hi'`` ≥ ``hi``. The grid is
    anchored where ``d``'s edges are (at 0 for ``Histogram``'s), so a grid made for the widest of
    several such histograms is the grid of each of them."""
    w = d["width"]
    anchor = d["lo"] - w * math.floor(d["lo"] / w + 1e-9)
    k = max(1, round((hi - lo) / (bins * w)))
    step = k * w
    first = math.floor((lo - anchor) / step + 1e-9)
    last = math.ceil((hi - anchor) / step - 1e-9)
    return anchor + first * step, anchor + last * step, max(1, last - first)


def rebin(d: Mapping, lo: float, hi: float, bins: int = DISPLAY_BINS) -> dict:
    """The values on ``bins`` equal bins over ``[lo, hi)`` (each stored bin goes where its centre
    falls): ``{"edges", "counts", "density", "outside", "outside_below", "outside_above"}`` with
    density = count / (all values · bin width) and the outside fractions over all values
    (non-finite ones count as outside, above)."""
    counts = np.asarray(d["counts"], dtype=np.float64)
    centres = d["lo"] + d["width"] * (np.arange(counts.size) + 0.5)
    width = (hi - lo) / bins
    idx = np.floor((centres - lo) / width).astype(np.int64)
    inside = (idx >= 0) & (idx < bins)
    out = np.bincount(idx[inside], weights=counts[inside], minlength=bins)
    n = max(total(d), 1)
    below = d.get("below", 0) + counts[idx < 0].sum()
    above = d.get("above", 0) + d.get("nonfinite", 0) + counts[idx >= bins].sum()
    return {"edges": lo + width * np.arange(bins + 1), "counts": out, "density": out / n / width,
            "outside": float((below + above) / n), "outside_below": float(below / n),
            "outside_above": float(above / n)}


def qe_share_outside(d: Mapping, lo: float, hi: float, v_threshold: float = 0.5) -> float | None:
    """The part of the quantization error mean (u − Θ(u − V_th))² that comes from values outside
    ``[lo, hi)``, each bin counted at its centre; None if there are no binned values (or they
    have no error at all)."""
    counts = np.asarray(d["counts"], dtype=np.float64)
    centres = d["lo"] + d["width"] * (np.arange(counts.size) + 0.5)
    err = counts * (centres - (centres >= v_threshold)) ** 2
    whole = err.sum()
    if not whole > 0:
        return None
    outside = (centres < lo) | (centres >= hi)
    return float(err[outside].sum() / whole)
