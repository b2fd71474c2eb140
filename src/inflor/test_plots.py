"""Every figure is a real PNG with labelled axes (read back from the file)."""
import pytest
from PIL import Image

from inflor import plots


def _png(path, min_w=400, min_h=250):
    with Image.open(path) as im:
        assert im.format == "PNG"
        w, h = im.size
    assert w >= min_w and h >= min_h
    texts = plots.read_png_texts(path)
    assert texts["axes"], "no axes recorded"
    assert all(ax["xlabel"] for ax in texts["axes"]) and texts["axes"][0]["ylabel"]
    return texts


def test_paper_figures(tmp_path):
    t = _png(plots.plot_mpr_curves(tmp_path / "mpr.png", ks=(1, 5)))
    assert "k = 5" in t["axes"][1]["legend"]
    t = _png(plots.plot_esg(tmp_path / "esg.png", num_epochs=50))
    assert t["axes"][2]["ylabel"] == "K(i)"
    path, numbers = plots.plot_redistribution(tmp_path / "red.png", samples=100_000)
    _png(path)
    # DESIGN.md §3 sanity figure: about 0.45 before MPR and 0.05 after
    assert numbers["quantization_error_before"] == pytest.approx(0.45, abs=0.02)
    assert numbers["quantization_error_after"] == pytest.approx(0.05, abs=0.01)


def test_layer_figures(tmp_path):
    spec = {"lo": -1.0, "hi": 2.0, "bins": 30}
    hist = {"counts": list(range(30)), "below": 3, "above": 1}
    t = _png(plots.plot_membrane_histogram("layer1.0.sn", spec, {"before": hist, "after": hist},
                                           tmp_path / "h.png", window=[0, 1], window_h=[0, 1], qe=(0.3, 0.1)))
    assert "layer1.0.sn" in t["title"]
    assert "0.300" in t["axes"][0]["title"] and "0.100" in t["axes"][1]["title"]
    assert "surrogate window" in t["axes"][1]["legend"]
    t = _png(plots.plot_spike_rates({"epoch 0": {"a.sn": 0.1, "b.sn": 0.0}, "epoch 1": {"a.sn": 0.4, "b.sn": 0.5}},
                                    tmp_path / "r.png"))
    assert t["axes"][0]["xticklabels"] == ["a.sn", "b.sn"] and t["axes"][0]["legend"] == ["epoch 0", "epoch 1"]
    t = _png(plots.plot_distribution_evolution("a.sn", spec, {"epoch 0": {"before": hist}, "epoch 5": {"before": hist}},
                                               tmp_path / "d.png"))
    assert [a["title"] for a in t["axes"]] == ["epoch 0", "epoch 5"]
    t = _png(plots.plot_accuracy_curves({"k=1": ([1, 2, 3], [10, 20, 30]), "ESG": ([1, 2], [15, 35])},
                                        tmp_path / "c.png"))
    assert t["axes"][0]["legend"] == ["k=1", "ESG"] and t["axes"][0]["xlabel"] == "epoch"


def test_metrics_plot_reads_trainer_csv(tmp_path):
    csv = tmp_path / "metrics.csv"
    csv.write_text("epoch,train_loss,task_loss,train_acc,test_loss,test_acc,lr,esg_k\n"
                   "1,2.0,2.0,0.2,2.1,0.25,0.1,\n2,1.5,1.5,0.4,1.6,,0.05,\n")
    cols = plots.read_metrics(csv)
    assert cols["epoch"] == [1.0, 2.0] and cols["test_acc"][1] != cols["test_acc"][1]   # NaN for empty
    t = _png(plots.plot_metrics(cols, tmp_path / "m.png"))
    assert set(t["axes"][0]["legend"]) == {"train_loss", "task_loss", "test_loss"}
    assert set(t["axes"][1]["legend"]) == {"train_acc", "test_acc"}
