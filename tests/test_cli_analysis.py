"""End-to-end checks of inflor analyze / plot / repeat / compare on tiny runs.

Tiny means: tinyconv of width 8 with T = 2 on the bundled 8×8 digits, runs of one epoch of two
steps, analysis of two batches.
"""
import json
import math
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
import torch
from PIL import Image

from inflor.cli import main
from inflor.plots import read_png_texts

MODEL_OPTS = dict(num_classes=10, in_channels=1, timesteps=2, width=8)
TRAIN_OVERRIDES = ["train.epochs=1", "train.max_steps_per_epoch=2", "train.tensorboard=false",
                   "train.progress=none", "model.options.timesteps=2", "model.options.width=8",
                   "data.batch_size=32"]


def write_run(root: Path, neuron: str, name="ckrun", seed=0, **options) -> Path:
    """A run directory with a checkpoint written through the trainer's checkpoint API."""
    from inflor.models import create_model
    from inflor.train.checkpoint import FORMAT, save_checkpoint

    torch.manual_seed(seed)
    opts = dict(MODEL_OPTS, **options)
    model = create_model("tinyconv", neuron=neuron, **opts)
    run = root / name
    cfg = {"name": name, "model": {"name": "tinyconv", "options": dict(opts, neuron=neuron)},
           "data": {"name": "digits", "batch_size": 16, "options": {}}}
    save_checkpoint({"format": FORMAT, "model_name": model.model_name, "model_options": model.model_options,
                     "model_state": model.state_dict(), "epoch": 1, "config": cfg,
                     "versions": {"torch": str(torch.__version__)}}, run / "checkpoints" / "last.pt")
    (run / "config.yaml").write_text(f"name: {name}\nmodel: {{name: tinyconv}}\n")
    (run / "metrics.csv").write_text("epoch,train_loss,test_loss,train_acc,test_acc,lr\n"
                                     "1,2.2,2.1,0.2,0.25,0.1\n2,1.9,1.8,0.35,0.4,0.05\n")
    return run


def cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.src = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "img":
            self.src.append(a["src"])
        if tag == "a" and a.get("href", "").endswith(".png"):
            self.src.append(a["href"])


def check_png(path: Path, min_w=400, min_h=250) -> dict:
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size[0] >= min_w and im.size[1] >= min_h, (path, im.size)
    texts = read_png_texts(path)
    assert texts["axes"] and all(ax["xlabel"] for ax in texts["axes"]) and texts["axes"][0]["ylabel"]
    return texts


def check_report(out: Path):
    """Every PNG in the folder is linked from report.html and every link resolves."""
    parser = _Links()
    parser.feed((out / "report.html").read_text(encoding="utf-8"))
    linked = {str(Path(s)) for s in parser.src}
    present = {str(p.relative_to(out)) for p in out.rglob("*.png")}
    assert present and linked == present, (linked ^ present)
    for rel in linked:
        check_png(out / rel)


LAYER_KEYS = {"spike_rate", "membrane_mean", "membrane_std", "quantization_error_before",
              "quantization_error_after", "window_fraction", "unit_interval_fraction", "mpd", "settings"}


@pytest.mark.parametrize("neuron", ["inflor", "srif"])
def test_analyze_checkpoint_run(tmp_path, capsys, neuron):
    run = write_run(tmp_path, neuron)
    code, out, err = cli(capsys, "analyze", run, "--batches", 2, "--batch-size", 16, "--quiet")
    assert code == 0, err
    res = json.loads((run / "analysis" / "analysis.json").read_text())
    assert res["samples"] == 32 and res["batches"] == 2
    assert list(res["layers"]) == ["features.0.neuron", "features.1.neuron"]
    for name, s in res["layers"].items():
        assert LAYER_KEYS <= set(s) and set(s["mpd"]) == {"D", "S", "M"}
        assert 0 <= s["spike_rate"] <= 1 and s["membrane_std"] > 0
        if neuron == "inflor":
            assert s["settings"]["mpr"] is not None
            assert s["quantization_error_after"] < s["quantization_error_before"], name
        else:
            assert s["settings"]["mpr"] is None
            assert s["quantization_error_after"] == s["quantization_error_before"], name
    e = res["energy"]
    assert len(e["layers"]) == 3 and list(e["layers"])[-1] == "fc"     # two convs and the classifier
    first = next(iter(e["layers"].values()))
    assert first["analog_input"] and first["sops"] == 0
    assert e["constants_pj"] == {"e_mac": 4.6, "e_ac": 0.9}
    check_report(run / "analysis")
    texts = check_png(run / "analysis" / "spike_rate.png")
    assert texts["axes"][0]["xticklabels"] == list(res["layers"])
    hist = check_png(run / "analysis" / "histograms" / "features.0.neuron.png")
    assert "features.0.neuron" in hist["title"]


def test_analyze_options(tmp_path, capsys):
    run = write_run(tmp_path, "inflor")
    ck = run / "checkpoints" / "last.pt"
    out = tmp_path / "an"
    code, stdout, err = cli(capsys, "analyze", ck, "--batches", 1, "--batch-size", 8, "--layers", "features.1.*",
                            "--e-mac", 3.1, "--e-ac", 0.1, "--hist-bins", 40, "--out", out)
    assert code == 0, err
    assert "features.1.neuron" in stdout and "analysis.json" in stdout
    res = json.loads((out / "analysis.json").read_text())
    assert list(res["layers"]) == ["features.1.neuron"] and res["samples"] == 8
    assert res["hist_spec"]["bins"] == 40 and len(res["histograms"]["features.1.neuron"]["before"]["counts"]) == 40
    assert res["energy"]["constants_pj"] == {"e_mac": 3.1, "e_ac": 0.1}
    assert list(res["plots"]["histograms"]) == ["features.1.neuron"]
    check_report(out)


def _bad(capsys, *argv):
    code, out, err = cli(capsys, *argv)
    assert code != 0
    assert "Traceback" not in err and err.startswith("inflor ")
    return err


def test_bad_inputs_have_clear_messages(tmp_path, capsys):
    empty = tmp_path / "empty_run"
    empty.mkdir()
    (empty / "config.yaml").write_text("name: x\n")
    assert "has no checkpoint" in _bad(capsys, "analyze", empty)
    assert "does not exist" in _bad(capsys, "analyze", tmp_path / "nope")
    run = write_run(tmp_path, "srif")
    assert "no spiking layer named 'conv9'" in _bad(capsys, "analyze", run, "--layers", "conv9")
    assert "features.0.neuron" in _bad(capsys, "analyze", run, "--layers", "conv9")
    # a checkpoint whose model cannot be rebuilt
    from inflor.train.checkpoint import load_checkpoint, save_checkpoint
    ck = load_checkpoint(run / "checkpoints" / "last.pt")
    ck.pop("_path")
    save_checkpoint(dict(ck, model_name="no_such_net"), tmp_path / "unknown.pt")
    err = _bad(capsys, "analyze", tmp_path / "unknown.pt")
    assert "no_such_net" in err
    save_checkpoint(dict(ck, model_options=dict(ck["model_options"], width=16)), tmp_path / "shapes.pt")
    assert "does not fit" in _bad(capsys, "analyze", tmp_path / "shapes.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    assert "cannot read checkpoint" in _bad(capsys, "analyze", tmp_path / "junk.pt")
    # model and data that do not fit together
    assert "cannot load dataset 'npz'" in _bad(capsys, "analyze", run, "--data", "npz")
    rgb = write_run(tmp_path, "srif", name="rgb", in_channels=3)
    assert "cannot run on dataset 'digits'" in _bad(capsys, "analyze", rgb, "--batches", 1)
    assert "must be >= 1" in _bad(capsys, "analyze", run, "--batches", 0)
    assert "needs a run directory" in _bad(capsys, "plot", "snapshots")
    assert "has no snapshots" in _bad(capsys, "plot", "snapshots", run)
    assert "not a run directory" in _bad(capsys, "compare", tmp_path / "nope")


def test_no_traceback_in_a_real_process(tmp_path):
    p = subprocess.run([sys.executable, "-m", "inflor.cli", "analyze", str(tmp_path)], capture_output=True,
                       text=True, timeout=300)
    assert p.returncode == 1 and "has no checkpoint" in p.stderr and "Traceback" not in p.stderr


def test_plot_command(tmp_path, capsys):
    code, out, err = cli(capsys, "plot", "all", "--out", tmp_path, "--samples", 20000)
    assert code == 0, err
    for name in ("mpr.png", "esg.png", "redistribution.png"):
        check_png(tmp_path / name)
    numbers = json.loads((tmp_path / "redistribution.json").read_text())
    assert numbers["quantization_error_after"] < 0.07 < 0.4 < numbers["quantization_error_before"]
    code, out, err = cli(capsys, "plot", "mpr", "--k", 2, 9, "--out", tmp_path / "k")
    assert code == 0 and "k = 9" in read_png_texts(tmp_path / "k" / "mpr.png")["axes"][1]["legend"]


# ------------------------------------------------------------------ with the trainer

@pytest.fixture(scope="module")
def repeated(tmp_path_factory):
    """Two seeds of one tiny InfLoR run with snapshots at epochs 0 and 1, via `inflor repeat`."""
    out = tmp_path_factory.mktemp("rep")
    code = main(["repeat", "--seeds", "2", "--seed0", "3", "--out", str(out), "--snapshots", "0,1",
                 "--snapshot-batches", "2", "model.options.neuron=inflor", *TRAIN_OVERRIDES])
    assert code == 0
    return out


def test_repeat_table(repeated, capsys):
    doc = json.loads((repeated / "repeat.json").read_text())
    assert doc["seeds"] == [3, 4] and [r["seed"] for r in doc["runs"]] == [3, 4]
    best = [r["best_acc"] for r in doc["runs"]]
    assert doc["best_acc_mean"] == pytest.approx(sum(best) / 2)
    assert doc["best_acc_std"] == pytest.approx(abs(best[0] - best[1]) / math.sqrt(2))
    assert doc["best_acc"] == f"{doc['best_acc_mean']:.2f} ± {doc['best_acc_std']:.2f}"
    md = (repeated / "repeat.md").read_text()
    assert doc["best_acc"] in md and doc["final_acc"] in md
    # completed seeds are reused, not retrained
    code, out, err = cli(capsys, "repeat", "--seeds", "2", "--seed0", "3", "--out", repeated,
                         "model.options.neuron=inflor", *TRAIN_OVERRIDES)
    assert code == 0 and out.count("reused") == 2


def test_snapshots_and_analyze_trained_run(repeated, capsys):
    run = repeated / "seed3"
    snaps = sorted(p.name for p in (run / "snapshots").glob("epoch_*.json"))
    assert snaps == ["epoch_0000.json", "epoch_0001.json"]
    code, out, err = cli(capsys, "plot", "snapshots", run)
    assert code == 0, err
    t = check_png(run / "snapshots" / "spike_rates.png")
    assert t["axes"][0]["legend"] == ["epoch 0", "epoch 1"]
    code, out, err = cli(capsys, "analyze", run, "--batches", 2, "--quiet")
    assert code == 0, err
    res = json.loads((run / "analysis" / "analysis.json").read_text())
    for name, s in res["layers"].items():
        assert s["quantization_error_after"] < s["quantization_error_before"], name
    assert res["plots"]["metrics"] and res["plots"]["snapshots"]["spike_rates"]
    check_report(run / "analysis")


def test_compare(repeated, tmp_path, capsys):
    code, out, err = cli(capsys, "compare", repeated / "seed3", repeated / "seed4", "--labels", "a", "b",
                         "--out", tmp_path)
    assert code == 0, err
    rows = [line for line in (tmp_path / "compare.md").read_text().splitlines() if line.startswith("| a") or
            line.startswith("| b")]
    assert len(rows) == 2
    recs = json.loads((tmp_path / "compare.json").read_text())
    assert [r["label"] for r in recs] == ["a", "b"] and all(r["epochs_done"] == 1 for r in recs)
    t = check_png(tmp_path / "compare.png")
    assert t["axes"][0]["legend"] == ["a", "b"] and t["axes"][0]["ylabel"] == "test accuracy (%)"


def test_snapshots_do_not_change_training(repeated, tmp_path):
    """The same seed without snapshots trains to exactly the same numbers."""
    from inflor.analysis.runs import read_metrics
    from inflor.train.config import load_config
    from inflor.train.trainer import run_training

    cfg = load_config(None, ["model.options.neuron=inflor", "train.seed=3", *TRAIN_OVERRIDES])
    run_training(cfg, tmp_path / "plain", log=lambda s: None)
    with_snaps, plain = read_metrics(repeated / "seed3"), read_metrics(tmp_path / "plain")
    for key in ("train_loss", "train_acc", "test_loss", "test_acc", "spike_rate"):
        assert with_snaps[key] == plain[key], key
