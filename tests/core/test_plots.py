"""Every figure is a real PNG whose words, read back from the file, label it: axes with
quantities and units, whole-number epochs, legends naming the lines, histogram panels that say
what they leave out."""
import re

import pytest
import torch
from PIL import Image

from inflor import plots
from inflor.analysis import histogram as hg


def _png(path, min_w=400, min_h=250):
    """The figure's recorded words, after checking it is a PNG whose every panel has both axis
    labels and, where the x axis counts epochs, only whole-number ticks."""
    with Image.open(path) as im:
        assert im.format == "PNG"
        w, h = im.size
    assert w >= min_w and h >= min_h
    texts = plots.read_png_texts(path)
    assert texts["axes"], "no axes recorded"
    for ax in texts["axes"]:
        assert ax["xlabel"] and ax["ylabel"], ax
        if ax["xlabel"].startswith("epoch"):
            assert ax["xticklabels"] and all(re.fullmatch(r"[−-]?\d+", t) for t in ax["xticklabels"]), ax
    return texts


def _binned(x):
    h = hg.Histogram()
    h.update(x)
    return h.as_dict()


def test_paper_figures(tmp_path):
    t = _png(plots.plot_mpr_curves(tmp_path / "mpr.png", ks=(1, 5)))
    assert "k = 5" in t["axes"][1]["legend"]
    t = _png(plots.plot_esg(tmp_path / "esg.png", num_epochs=50))
    assert t["axes"][2]["ylabel"] == "K(i)" and "k = 3" in t["axes"][1]["legend"]
    path, numbers = plots.plot_redistribution(tmp_path / "red.png", samples=100_000)
    t = _png(path)
    assert all("V_th = 0.5" in ax["legend"] for ax in t["axes"])
    # docs/design.md §3 sanity figure: about 0.45 before MPR and 0.05 after
    assert numbers["quantization_error_before"] == pytest.approx(0.45, abs=0.02)
    assert numbers["quantization_error_after"] == pytest.approx(0.05, abs=0.01)


def test_histogram_of_a_compact_layer_has_one_row(tmp_path):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(20_000, generator=g) * 1.2 - 0.1           # inside [-0.1, 1.1]: nothing to hide
    t = _png(plots.plot_membrane_histogram("layer1.0.sn", {"before": _binned(x), "after": _binned(x.clamp(0, 1))},
                                           tmp_path / "h.png", window=[0, 1], window_h=[0, 1], qe=(0.3, 0.1)))
    assert "layer1.0.sn" in t["title"] and len(t["axes"]) == 2
    assert "0.300" in t["axes"][0]["title"] and "0.100" in t["axes"][1]["title"]
    assert all("all values in view" in ax["title"] for ax in t["axes"])
    assert {"H histogram", "φ(H) histogram", "threshold V_th = 0.5", "surrogate gradient window",
            "spike values 0 and 1"} == set(t["legend"])
    t = _png(plots.plot_membrane_histogram("sn", {"before": _binned(x), "after": _binned(x)}, tmp_path / "s.png",
                                           has_mpr=False))
    assert len(t["axes"]) == 1 and "no MPR" in t["axes"][0]["title"]      # Θ sees H: one column


def test_histogram_of_a_wide_layer_shows_its_tails(tmp_path):
    g = torch.Generator().manual_seed(1)
    x = torch.cat([torch.randn(50_000, generator=g) - 0.5, torch.randn(2_000, generator=g) * 8])
    d = _binned(x)
    t = _png(plots.plot_membrane_histogram("wide", {"before": d, "after": d}, tmp_path / "w.png",
                                           qe=(1.0, 1.0), has_mpr=False))
    main, tails = t["axes"]
    lo, hi = main["xlim"]
    below, above = float((x < lo).double().mean()), float((x >= hi).double().mean())
    assert 0.001 < below + above <= 0.011 and main["yscale"] == "linear"
    said = re.search(r"outside the view: ([\d.]+) % below, ([\d.]+) % above \(([\d.]+) % of the QE\)", main["title"])
    assert said, main["title"]                              # the tails carry a visible share of the error
    assert [float(v) / 100 for v in said.groups()[:2]] == [pytest.approx(below, rel=0.05),
                                                           pytest.approx(above, rel=0.05)]
    assert tails["yscale"] == "log" and tails["xlim"][0] <= float(x.min()) and tails["xlim"][1] >= float(x.max())
    assert "range of the panel above" in t["legend"]
    # a fixed range that hides most values still gets the whole-range panel
    t = _png(plots.plot_membrane_histogram("wide", {"before": d, "after": d}, tmp_path / "f.png",
                                           hist_range=(0.0, 1.0), has_mpr=False))
    assert len(t["axes"]) == 2 and t["axes"][1]["yscale"] == "log"


def test_layer_figures(tmp_path):
    t = _png(plots.plot_spike_rates({"epoch 0": {"a.sn": 0.1, "b.sn": 0.0}, "epoch 1": {"a.sn": 0.4, "b.sn": 0.5}},
                                    tmp_path / "r.png"))
    assert t["axes"][0]["xticklabels"] == ["a.sn", "b.sn"] and t["axes"][0]["legend"] == ["epoch 0", "epoch 1"]
    g = torch.Generator().manual_seed(2)
    early, late = torch.randn(5000, generator=g) * 0.3, torch.randn(5000, generator=g) * 3
    t = _png(plots.plot_distribution_evolution("a.sn", {"epoch 0": {"before": _binned(early)},
                                                        "epoch 5": {"before": _binned(late)}}, tmp_path / "d.png"))
    assert [a["title"].splitlines()[0] for a in t["axes"][:2]] == ["epoch 0", "epoch 5"]
    assert t["axes"][0]["xlim"] == t["axes"][1]["xlim"]            # one range for every epoch
    assert [a["yscale"] for a in t["axes"]] == ["linear", "linear", "log", "log"]


def test_compare_figure(tmp_path):
    series = {"test_acc": {"neuron=if": ([1, 2, 3], [10, 20, 30]), "neuron=srif": ([1, 2], [15, 35])},
              "train_loss": {"neuron=if": ([1, 2, 3], [2.3, 2.0, 1.5]), "neuron=srif": ([1, 2], [2.2, 1.9])},
              "spike_rate": {"neuron=if": ([1, 2, 3], [0.1, 0.12, 0.15])}}
    t = _png(plots.plot_compare(series, tmp_path / "c.png", title="two runs"))
    assert t["title"] == "two runs" and t["legend"] == ["neuron=if", "neuron=srif"]
    assert [a["ylabel"] for a in t["axes"]] == ["test accuracy (%)", "train loss (cross-entropy, nats)",
                                                 "spike rate (spikes / neuron / step)"]
    assert all(a["xlabel"] == "epoch" and a["xticklabels"] == ["1", "2", "3"] for a in t["axes"])


def test_metrics_plot_reads_trainer_csv(tmp_path):
    csv = tmp_path / "metrics.csv"
    csv.write_text("epoch,train_loss,task_loss,train_acc,test_loss,test_acc,lr,esg_k\n"
                   "1,2.0,2.0,0.2,2.1,0.25,0.1,\n2,1.5,1.5,0.4,1.6,,0.05,\n")
    cols = plots.read_metrics(csv)
    assert cols["epoch"] == [1.0, 2.0] and cols["test_acc"][1] != cols["test_acc"][1]   # NaN for empty
    t = _png(plots.plot_metrics(cols, tmp_path / "m.png"))
    assert set(t["axes"][0]["legend"]) == {"train loss (total)", "train loss (task only)", "test loss"}
    assert set(t["axes"][1]["legend"]) == {"train accuracy", "test accuracy"}
    assert t["axes"][0]["xticklabels"] == ["1", "2"]
