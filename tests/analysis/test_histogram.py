"""Histograms that keep every value, and the ranges and bins figures draw them with."""
import math

import numpy as np
import pytest
import torch

from inflor.analysis import histogram as hg


def _wide(n=50_000, seed=0):
    """Mostly N(0, 1) with a few far values on both sides (a heavy-tailed membrane)."""
    g = torch.Generator().manual_seed(seed)
    return torch.cat([torch.randn(n, generator=g), torch.randn(n // 100, generator=g) * 40])


def test_counts_are_exact_and_widen_when_the_data_spreads():
    x = _wide()
    h = hg.Histogram(max_bins=512)
    h.update(x)
    assert h.counts.numel() <= 512 and h.total() == x.numel()
    assert h.width > hg.BASE_WIDTH and math.log2(h.width / hg.BASE_WIDTH).is_integer()
    idx = np.floor(x.double().numpy() / h.width).astype(np.int64)
    assert h.start == idx.min() and h.counts.tolist() == np.bincount(idx - idx.min()).tolist()
    narrow = hg.Histogram()
    narrow.update(torch.rand(1000))                      # [0, 1): the finest bins suffice
    assert narrow.width == hg.BASE_WIDTH


def test_batching_does_not_change_the_histogram():
    x = _wide(seed=1)
    whole = hg.Histogram(max_bins=512)
    whole.update(x)
    parts = hg.Histogram(max_bins=512)
    for chunk in x[torch.randperm(x.numel(), generator=torch.Generator().manual_seed(2))].split(997):
        parts.update(chunk)
    assert parts.as_dict() == whole.as_dict()


def test_non_finite_and_huge_values_are_counted():
    h = hg.Histogram()
    h.update(torch.tensor([0.25, float("nan"), float("inf"), -1e30, 1e30]))
    d = h.as_dict()
    assert d["nonfinite"] == 2 and sum(d["counts"]) == 3 and hg.total(d) == 5
    assert len(d["counts"]) <= hg.MAX_BINS


def test_split_fractions_and_ranges():
    x = _wide(seed=3)
    h = hg.Histogram()
    h.update(x)
    d = h.as_dict()
    xs = x.double().numpy()
    split = hg.split_fractions(d)
    assert split["below_0"] == pytest.approx((xs < 0).mean())
    assert split["above_1"] == pytest.approx((xs >= 1).mean())
    assert sum(split.values()) == pytest.approx(1.0)
    lo, hi = hg.central_range(d, 0.99)
    inside = ((xs >= lo) & (xs < hi)).mean()
    assert 0.99 <= inside < 0.995                        # the central 99 %, to a bin
    assert hg.occupied_range(d)[0] <= xs.min() and hg.occupied_range(d)[1] > xs.max()
    # the main range holds the central 99 % and every mark, even one far away
    view = hg.display_range(d, marks=(0.0, 1.0, 0.5, 7.0))
    assert view[0] < lo and view[1] > 7.0


def test_rebin_keeps_every_value_and_names_what_is_outside():
    x = _wide(seed=4)
    h = hg.Histogram()
    h.update(x)
    d = h.as_dict()
    lo, hi, n = hg.display_grid(d, -2.0, 3.0, 160)
    assert lo <= -2.0 and hi >= 3.0 and n == min(160, round(5 / d["width"]))   # no finer than the data
    assert ((hi - lo) / n / d["width"]).is_integer()     # whole stored bins per drawn bin
    view = hg.rebin(d, lo, hi, n)
    xs = x.double().numpy()
    assert view["counts"].sum() == ((xs >= lo) & (xs < hi)).sum()
    assert view["outside_below"] == pytest.approx((xs < lo).mean())
    assert view["outside_above"] == pytest.approx((xs >= hi).mean())
    width = (hi - lo) / n
    assert (view["density"] * width).sum() == pytest.approx(1 - view["outside"])


def test_quantization_error_share_of_the_tails():
    x = _wide(seed=5).double()
    h = hg.Histogram()
    h.update(x)
    d = h.as_dict()
    err = (x - (x >= 0.5).double()) ** 2
    outside = (x < -2) | (x >= 3)
    share = hg.qe_share_outside(d, -2.0, 3.0)
    assert share == pytest.approx(float(err[outside].sum() / err.sum()), abs=0.01)
    assert share > 0.5                                     # 1 % of the values, most of the error


def test_old_fixed_range_histograms_are_read():
    old = {"counts": [1, 2, 3, 4], "below": 5, "above": 6}
    d = hg.as_binned(old, {"lo": -1.0, "hi": 1.0, "bins": 4})
    assert d["lo"] == -1.0 and d["width"] == 0.5 and hg.total(d) == 21
    view = hg.rebin(d, -1.0, 1.0, 4)
    assert view["outside"] == pytest.approx(11 / 21) and view["counts"].tolist() == [1, 2, 3, 4]
    with pytest.raises(ValueError):
        hg.as_binned(old)
