"""End-to-end checks of inflor analyze / plot / repeat / compare on tiny runs.

Tiny means: tinyconv of width 8 with T = 2 on the bundled 8×8 digits, runs of one epoch of two
steps, analysis of two batches.
"""
import json
import math
import re
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


def write_run(root: Path, neuron: str, name="ckrun", seed=0, spread=1.0, **options) -> Path:
    """A run directory with a checkpoint written through the trainer's checkpoint API;
    ``spread`` scales the norm layers' weights, and so the membrane potentials' spread."""
    from inflor.models import create_model
    from inflor.train.checkpoint import FORMAT, save_checkpoint

    torch.manual_seed(seed)
    opts = dict(MODEL_OPTS, **options)
    model = create_model("tinyconv", neuron=neuron, **opts)
    with torch.no_grad():
        for key, value in model.state_dict().items():
            if key.endswith("norm.weight"):
                value.mul_(spread)
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
    """The words of a PNG the tool wrote, after checking that every panel labels both axes and
    that an x axis counting epochs has whole-number ticks only."""
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size[0] >= min_w and im.size[1] >= min_h, (path, im.size)
    texts = read_png_texts(path)
    assert texts["axes"], path
    for ax in texts["axes"]:
        assert ax["xlabel"] and ax["ylabel"], (path, ax)
        if ax["xlabel"].startswith("epoch"):
            assert ax["xticklabels"] and all(re.fullmatch(r"[−-]?\d+", t) for t in ax["xticklabels"]), (path, ax)
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
    assert res["hist_spec"] == {"coverage": 0.99, "bins": 40, "range": None}
    assert res["energy"]["constants_pj"] == {"e_mac": 3.1, "e_ac": 0.1}
    assert list(res["plots"]["histograms"]) == ["features.1.neuron"]
    check_report(out)


def _outside(hist: dict, lo: float, hi: float) -> tuple[float, float]:
    """The fractions of a stored histogram's values below lo and above hi (bins by their centre)."""
    counts = hist["counts"]
    n = sum(counts) + hist["below"] + hist["above"] + hist["nonfinite"]
    centre = [hist["lo"] + (i + 0.5) * hist["width"] for i in range(len(counts))]
    below = hist["below"] + sum(c for c, x in zip(counts, centre) if x < lo)
    above = hist["above"] + hist["nonfinite"] + sum(c for c, x in zip(counts, centre) if x > hi)
    return below / n, above / n


def _hidden(hist: dict, lo: float, hi: float) -> float:
    return sum(_outside(hist, lo, hi))


@pytest.mark.slow
def test_histograms_show_membranes_spread_wide(tmp_path, capsys):
    """Membranes far beyond the old fixed range [-1.5, 2.5]: no panel hides more than 1 % of the
    values unless a panel of the same figure shows all of them, and each title says how much
    it leaves out."""
    run = write_run(tmp_path, "inflor", spread=6.0)
    code, out, err = cli(capsys, "analyze", run, "--batches", 4, "--batch-size", 8)
    assert code == 0, err
    res = json.loads((run / "analysis" / "analysis.json").read_text())
    wide = [_hidden(h["before"], -1.5, 2.5) for h in res["histograms"].values()]
    assert max(wide) > 0.1, wide                        # the case of the issue: much outside the old range
    for name, hists in res["histograms"].items():
        texts = check_png(run / "analysis" / res["plots"]["histograms"][name])
        for panel in texts["axes"]:
            hist = hists["after" if "φ(H)" in panel["xlabel"] else "before"]
            hidden = _hidden(hist, *panel["xlim"])
            if panel["yscale"] == "linear" and hidden == 0:
                assert "all values in view" in panel["title"], (name, panel["title"])
            elif panel["yscale"] == "linear":
                said = re.search(r"outside the view: ([\d.]+) % below, ([\d.]+) % above", panel["title"])
                assert said, (name, panel["title"])
                assert [float(v) / 100 for v in said.groups()] == [pytest.approx(f, rel=0.05, abs=1e-6)
                                                                   for f in _outside(hist, *panel["xlim"])]
            if hidden > 0.01:
                whole = [p for p in texts["axes"] if p["xlabel"] == panel["xlabel"] and _hidden(hist, *p["xlim"]) == 0]
                assert whole and whole[0]["yscale"] == "log", (name, panel)
        assert {"threshold V_th = 0.5", "spike values 0 and 1"} <= set(texts["legend"])
    # RecDis's split in the printed table and in the report, from the same exact counts
    s = res["layers"]["features.0.neuron"]
    split = [s["fraction_below_0"], s["fraction_in_0_1"], s["fraction_above_1"]]
    assert sum(split) == pytest.approx(1.0) and min(split) > 0
    assert "H<0 %" in out and f"{100 * split[0]:.1f}" in out.splitlines()[1]
    report = (run / "analysis" / "report.html").read_text(encoding="utf-8")
    assert "<th>H &lt; 0 (%)</th><th>0 ≤ H ≤ 1 (%)</th><th>H &gt; 1 (%)</th>" in report
    assert f"<td>{100 * split[2]:.1f}</td>" in report


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
    doc = json.loads((tmp_path / "compare.json").read_text())
    assert doc["keys"] == {"name": "name", "train.seed": "seed"}      # repeat names its runs after the seed
    recs = doc["runs"]
    assert [r["label"] for r in recs] == ["a", "b"] and all(r["epochs_done"] == 1 for r in recs)
    assert [r["differs"] for r in recs] == [{"name": "default-seed3", "seed": "3"},
                                            {"name": "default-seed4", "seed": "4"}]
    t = check_png(tmp_path / "compare.png")
    assert t["legend"] == ["a", "b"] and t["axes"][0]["ylabel"] == "test accuracy (%)"
    assert t["axes"][0]["xticklabels"] == ["1"]
    parser = _Links()
    parser.feed((tmp_path / "compare.html").read_text(encoding="utf-8"))
    assert parser.src == ["compare.png"]
    # without --labels the runs are named by their seeds
    code, out, err = cli(capsys, "compare", repeated / "seed3", repeated / "seed4", "--out", tmp_path / "auto")
    assert code == 0 and "| name=default-seed3, seed=3 | default-seed3 | 3 |" in out


@pytest.mark.slow
def test_compare_names_an_ablation(tmp_path, capsys):
    """The issue's ablation: one recipe with neuron=if, srif, inflor and if with MPD-Loss."""
    tiny = ["train.epochs=2", "train.max_steps_per_epoch=2", "train.tensorboard=false", "train.progress=none",
            "model.options.timesteps=2", "model.options.width=8", "data.batch_size=8", "data.test_batch_size=8"]
    runs = {"a": ["model.options.neuron=if"], "b": ["model.options.neuron=srif"],
            "c": ["model.options.neuron=inflor"], "d": ["model.options.neuron=if", "loss.mpd.weight=2"]}
    for folder, overrides in runs.items():
        assert main(["train", *overrides, *tiny, "--out", str(tmp_path / folder)]) == 0
    capsys.readouterr()
    code, out, err = cli(capsys, "compare", *(tmp_path / f for f in runs), "--out", tmp_path / "cmp")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "| run | neuron | mpd.weight | best acc (%) | final acc (%) | epochs | wall time |"
    labels = [line.split(" | ")[0].lstrip("| ") for line in lines[2:6]]
    assert labels == ["neuron=if", "neuron=srif", "neuron=inflor", "neuron=if, mpd.weight=2"]
    assert [line.split(" | ")[1:3] for line in lines[2:6]] == [["if", "0"], ["srif", "0"], ["inflor", "0"],
                                                               ["if", "2"]]
    t = check_png(tmp_path / "cmp" / "compare.png")
    assert t["legend"] == labels and t["title"] == "4 runs differing in neuron, mpd.weight"
    assert [a["xticklabels"] for a in t["axes"]] == [["1", "2"]] * 3
    assert [a["ylabel"] for a in t["axes"]] == ["test accuracy (%)", "train loss (cross-entropy, nats)",
                                                 "spike rate (spikes / neuron / step)"]
    page = (tmp_path / "cmp" / "compare.html").read_text(encoding="utf-8")
    assert "<code>mpd.weight</code> = <code>loss.mpd.weight</code>" in page
    assert "<td>neuron=if, mpd.weight=2</td>" in page


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
