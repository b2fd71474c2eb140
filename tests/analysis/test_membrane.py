"""The replayed membrane equals the neuron's own; streamed statistics equal direct ones."""
import math

import numpy as np
import pytest
import torch
from torch import nn

from inflor.analysis import (LayerAccumulator, MembraneProbe, membrane_potentials, quantization_error,
                             run_probe, select_layers)
from inflor.functional import neuron_reference
from inflor.layers import TimeFold, repeat_time
from inflor.losses import mpd_terms
from inflor.neuron import PRESETS, make_neuron
from inflor.stats import membrane_stats
from inflor.surrogate import Rectangle

VARIANTS = [dict(PRESETS[k]) for k in PRESETS] + [
    dict(decay=0.5, reset="hard", v_reset=-0.2, input_scale=0.7, mpr="tanh", mpr_k=5.0),
    dict(decay=0.9, reset="soft", soft_reset_amount=0.5, v_threshold=0.3),
]


@pytest.mark.parametrize("options", VARIANTS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()))
def test_replay_matches_reference(options):
    node = make_neuron("if", **options)
    x = torch.randn(6, 3, 4, 5, generator=torch.Generator().manual_seed(0)) * 0.8 + 0.3
    ref_spikes, ref_stats = neuron_reference(x, node.cfg, node.surrogate_function, node.mpr, True)
    h, h_hat, o = membrane_potentials(x, node.cfg, node.mpr)
    assert torch.equal(o, ref_spikes)
    stats = membrane_stats(h)
    assert torch.allclose(stats.h_sum, ref_stats.h_sum, atol=1e-5)
    assert torch.allclose(stats.h_sqsum, ref_stats.h_sqsum, atol=1e-5)
    # driven by the emitted spikes, the same trajectory
    h2, _, o2 = membrane_potentials(x, node.cfg, node.mpr, spikes=ref_spikes)
    assert torch.equal(h2, h) and torch.equal(o2, o)
    if node.mpr is None:
        assert torch.equal(h_hat, h)
    else:
        # float32 roundings of φ's two forms differ by an ulp: ~0.5 % of random draws had one
        # value near 0 off by 1.2e-7, beyond allclose's default atol = 1e-8
        assert torch.allclose(h_hat, node.mpr(h), atol=1e-6)


class Tiny(nn.Module):
    def __init__(self, kind="inflor", T=3):
        super().__init__()
        self.T = T
        self.conv = TimeFold(nn.Conv2d(1, 4, 3, padding=1))
        self.sn1 = make_neuron(kind)
        self.conv2 = TimeFold(nn.Conv2d(4, 6, 3, padding=1, stride=2))
        self.sn2 = make_neuron(kind)
        self.fc = TimeFold(nn.Sequential(nn.Flatten(), nn.Linear(6 * 4 * 4, 5)))

    def forward(self, x):
        return self.fc(self.sn2(self.conv2(self.sn1(self.conv(repeat_time(x, self.T))))))


def _direct(model, data):
    """Store every potential (the thing the probe must avoid) and compute the numbers directly."""
    store = {}

    def keep(name):
        def hook(m, inp, out):
            h, h_hat, o = [], [], []
            u = None
            for t in range(inp[0].shape[0]):   # an independent, plain loop of docs/design.md §2
                ht = inp[0][t] * m.cfg.input_scale + (0 if u is None else m.cfg.decay * u)
                oh = (ht if m.mpr is None else m.mpr(ht)) >= m.cfg.v_threshold
                u = ht - oh.float() * m.cfg.soft_reset_amount if m.cfg.reset == "soft" else ht * (~oh)
                h.append(ht)
                h_hat.append(ht if m.mpr is None else m.mpr(ht))
                o.append(oh.float())
            store.setdefault(name, []).append((torch.stack(h), torch.stack(h_hat), torch.stack(o), out))
        return hook

    handles = [m.register_forward_hook(keep(n)) for n, m in model.named_modules() if hasattr(m, "cfg")]
    with torch.no_grad():
        for x, _ in data:
            model(x)
    for hd in handles:
        hd.remove()
    out = {}
    for name, parts in store.items():
        h = torch.cat([p[0] for p in parts], 1).double()
        hh = torch.cat([p[1] for p in parts], 1).double()
        o = torch.cat([p[2] for p in parts], 1)
        assert torch.equal(o, torch.cat([p[3] for p in parts], 1))
        terms = mpd_terms(membrane_stats(h))
        out[name] = {"spike_rate": o.mean().item(), "membrane_mean": h.mean().item(),
                     "membrane_std": h.std(unbiased=False).item(),
                     "quantization_error_before": quantization_error(h).item(),
                     "quantization_error_after": quantization_error(hh).item(),
                     "window_fraction": ((hh > 0) & (hh < 1)).double().mean().item(),
                     "unit_interval_fraction": ((h > 0) & (h < 1)).double().mean().item(),
                     "fraction_below_0": (h < 0).double().mean().item(),
                     "fraction_in_0_1": ((h >= 0) & (h <= 1)).double().mean().item(),
                     "fraction_above_1": (h > 1).double().mean().item(),
                     "mpd": {k: v.mean().item() for k, v in terms.items()},
                     "h": h}
    return out


def _data(n_batches, batch=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(batch, 1, 8, 8, generator=g) * 1.5, torch.randint(0, 5, (batch,), generator=g))
            for _ in range(n_batches)]


def _registry_tinyconv(kind):
    from inflor.models import create_model
    return create_model("tinyconv", num_classes=5, in_channels=1, timesteps=3, width=4, neuron=kind)


@pytest.mark.parametrize("kind,factory", [("inflor", Tiny), ("if", Tiny), ("inflor", _registry_tinyconv)],
                         ids=["tiny-inflor", "tiny-if", "tinyconv-inflor"])
def test_streamed_equals_direct(kind, factory):
    torch.manual_seed(1)
    model = factory(kind).eval()
    data = _data(4)
    direct = _direct(model, data)
    res = run_probe(model, data, count_ops=False)
    assert set(res["layers"]) == set(direct) and len(direct) == 2
    for name, d in direct.items():
        s = res["layers"][name]
        for key in ["spike_rate", "membrane_mean", "membrane_std", "quantization_error_before",
                    "quantization_error_after", "window_fraction", "unit_interval_fraction",
                    "fraction_below_0", "fraction_in_0_1", "fraction_above_1"]:
            assert s[key] == pytest.approx(d[key], rel=1e-6, abs=1e-9), key
        for k in "DSM":
            assert s["mpd"][k] == pytest.approx(d["mpd"][k], rel=1e-5, abs=1e-12)
        hist = res["histograms"][name]["before"]       # every value, in bins a·w <= h < (a+1)·w
        h = d["h"].numpy().ravel()
        idx = np.floor(h / hist["width"]).astype(np.int64)
        assert hist["lo"] == idx.min() * hist["width"] and hist["nonfinite"] == 0
        assert hist["counts"] == np.bincount(idx - idx.min()).tolist()
        if kind == "if":
            assert s["quantization_error_after"] == s["quantization_error_before"]
        else:
            assert s["quantization_error_after"] < s["quantization_error_before"]


def test_many_batches_equal_one_big_batch():
    torch.manual_seed(2)
    model = Tiny("inflor").eval()
    small = _data(5, batch=4, seed=3)
    big = [(torch.cat([x for x, _ in small]), torch.cat([y for _, y in small]))]
    a = run_probe(model, small)
    b = run_probe(model, big)
    assert a["samples"] == b["samples"] == 20
    assert a["accuracy"] == b["accuracy"]
    for name in a["layers"]:
        la, lb = a["layers"][name], b["layers"][name]
        for key, va in la.items():
            vb = lb[key]
            if isinstance(va, dict):
                for k in va:
                    assert va[k] == pytest.approx(vb[k], rel=1e-9, abs=1e-15)
            elif isinstance(va, list):
                assert va == pytest.approx(vb, rel=1e-9)
            else:
                assert va == pytest.approx(vb, rel=1e-9, abs=1e-15), key
        assert a["histograms"][name] == b["histograms"][name]
    ra, rb = a["ops"].report(), b["ops"].report()
    assert ra["total"] == pytest.approx(rb["total"], rel=1e-9)


def test_accumulator_memory_is_bounded():
    acc = LayerAccumulator(0.5, Rectangle())
    for t in range(3):
        for _ in range(20):
            h = torch.randn(32, 8, 4, 4)
            acc.update(t, h, h, (h >= 0.5).float())
    # nothing grows with the number of batches: sums, [C] vectors, [T] lists and fixed bins
    assert acc.ch_sum.shape == (8,) and len(acc.step_n) == 3
    assert acc.hist_before.total() == acc.n == 3 * 20 * 32 * 8 * 16
    s = acc.summary()
    assert s["membrane_mean"] == pytest.approx(0.0, abs=0.02)
    assert s["membrane_std"] == pytest.approx(1.0, abs=0.02)
    # N(0, 1): P(0 < H < 1) = 0.3413
    assert s["window_fraction"] == pytest.approx(0.3413, abs=0.01)


def test_window_of_tanh_surrogate_narrows_with_k():
    from inflor.surrogate import Tanh
    h = torch.linspace(-1, 2, 3001, dtype=torch.float64)
    fractions = []
    for k in (1.0, 3.0, 10.0):
        acc = LayerAccumulator(0.5, Tanh(k))
        acc.update(0, h, h, (h >= 0.5).double())
        fractions.append(acc.summary()["window_fraction"])
        # half maximum of sech²(kx): |x| < atanh(1/√2)/k
        assert fractions[-1] == pytest.approx(min(2 * math.atanh(2 ** -0.5) / k, 3) / 3, abs=2e-3)
    assert fractions[0] > fractions[1] > fractions[2]


def test_select_layers_names_and_patterns():
    model = Tiny()
    assert [n for n, _ in select_layers(model)] == ["sn1", "sn2"]
    assert [n for n, _ in select_layers(model, ["sn2"])] == ["sn2"]
    assert [n for n, _ in select_layers(model, ["sn*"])] == ["sn1", "sn2"]
    with pytest.raises(ValueError, match="no spiking layer named 'nope'.*sn1, sn2"):
        select_layers(model, ["nope"])
    with pytest.raises(ValueError, match="no spiking layers"):
        select_layers(nn.Linear(2, 2))
    probe = MembraneProbe(model, ["sn1"])
    with probe:
        with torch.no_grad():
            model(torch.randn(2, 1, 8, 8))
    assert list(probe.summary()) == ["sn1"]
    assert not model.sn1._forward_hooks   # hooks removed
