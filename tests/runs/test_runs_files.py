"""The run directory's files (inflor.runs): each written and read back by the one module that owns it."""
import json
import math
import random

import numpy as np
import pytest
import torch

from inflor.errors import AnalysisError, RunError
from inflor.runs import layout
from inflor.runs.config_file import read_config_text, read_run_config, write_config_text
from inflor.runs.files import read_json, write_json
from inflor.runs.layout import RunDir
from inflor.runs.metrics import format_metrics, read_metrics, write_metrics
from inflor.runs.rng import get_rng_state, preserved_rng, set_rng_state
from inflor.runs.snapshots import FORMAT, read_snapshots, write_snapshot
from inflor.runs.summary import final_run_dir, has_checkpoint, read_summary, read_summary_or_empty, write_summary


def test_layout_names_every_file(tmp_path):
    r = RunDir(tmp_path)
    assert r.config == tmp_path / "config.yaml" and r.metrics == tmp_path / "metrics.csv"
    assert r.summary == tmp_path / "summary.json" and r.init == tmp_path / "init.json"
    assert r.last == tmp_path / "checkpoints" / "last.pt" and r.best == tmp_path / "checkpoints" / "best.pt"
    assert r.snapshot(3) == tmp_path / "snapshots" / "epoch_0003.json"
    assert r.stage("warmup").last == tmp_path / "warmup" / "checkpoints" / "last.pt"
    assert RunDir.of_checkpoint(r.best).path == tmp_path and RunDir.of_checkpoint(tmp_path / "x.pt") is None
    assert set(layout.RESERVED) >= {"checkpoints", "snapshots", "tb"}


def test_metrics_keep_every_bit_and_missing_values(tmp_path):
    rows = [{"epoch": 1, "a": 0.1 + 0.2, "b": None}, {"epoch": 2, "a": 1 / 3, "b": 2.5}]
    text = format_metrics(rows, ["epoch", "a", "b"])
    assert text == f"epoch,a,b\n1,{0.1 + 0.2!r},\n2,{1 / 3!r},2.5\n"
    write_metrics(tmp_path / "metrics.csv", rows, ["epoch", "a", "b"])
    cols = read_metrics(tmp_path / "metrics.csv")
    assert cols["a"] == [0.1 + 0.2, 1 / 3] and cols["epoch"] == [1.0, 2.0]
    assert math.isnan(cols["b"][0]) and cols["b"][1] == 2.5
    assert not list(tmp_path.glob(".*.tmp"))


def test_summary_and_stages(tmp_path):
    assert read_summary(tmp_path) == {} and final_run_dir(tmp_path) == tmp_path and not has_checkpoint(tmp_path)
    write_summary(tmp_path, {"status": "completed", "main_stage": "main"})
    assert json.loads((tmp_path / "summary.json").read_text()) == {"status": "completed", "main_stage": "main"}
    assert final_run_dir(tmp_path) == tmp_path / "main"
    RunDir(tmp_path / "main").last.parent.mkdir(parents=True)
    RunDir(tmp_path / "main").last.write_bytes(b"x")
    assert has_checkpoint(tmp_path)
    (tmp_path / "summary.json").write_text("{half")
    assert read_summary_or_empty(tmp_path) == {}
    with pytest.raises(AnalysisError, match="summary.json is not valid JSON"):
        read_summary(tmp_path)
    with pytest.raises(RunError, match="not valid JSON"):
        read_summary(tmp_path, RunError)


def test_config_text_and_run_config(tmp_path):
    assert read_config_text(None) is None and read_run_config(tmp_path) == {}
    write_config_text(tmp_path, "model:\n  name: tinyconv\n")
    assert read_config_text(tmp_path) == "model:\n  name: tinyconv\n"
    assert read_run_config(tmp_path) == {"model": {"name": "tinyconv"}}
    write_summary(tmp_path, {"config": {"model": {"name": "other"}}})
    assert read_run_config(tmp_path) == {"model": {"name": "other"}}   # summary.json's copy first


def test_json_errors_name_the_file(tmp_path):
    p = write_json(tmp_path / "a.json", [1, 2])
    with pytest.raises(AnalysisError, match="holds a JSON list"):
        read_json(p, "a thing")
    write_json(p, {"x": 1}, indent=None)
    assert p.read_text() == '{"x": 1}' and read_json(p, "a thing") == {"x": 1}


def test_snapshots_round_trip_and_refuse_foreign_files(tmp_path):
    write_snapshot(tmp_path, 2, {"layers": {"l": 1}, "histograms": {}})
    write_snapshot(tmp_path, 0, {"layers": {}, "histograms": {}})
    doc = json.loads(RunDir(tmp_path).snapshot(2).read_text())
    assert list(doc)[:2] == ["format", "epoch"] and doc["format"] == FORMAT
    assert [d["epoch"] for d in read_snapshots(tmp_path)] == [0, 2]
    RunDir(tmp_path).snapshot(5).write_text(json.dumps({"format": "other", "epoch": 5}))
    with pytest.raises(AnalysisError, match="epoch_0005.json is not a usable snapshot"):
        read_snapshots(tmp_path)


def _draw():
    return (torch.rand(3).tolist(), np.random.rand(3).tolist(), [random.random() for _ in range(3)],
            np.random.randn(), random.gauss(0, 1))


def test_rng_state_round_trip_through_a_weights_only_file(tmp_path):
    torch.manual_seed(1), np.random.seed(2), random.seed(3)
    np.random.randn(), random.gauss(0, 1)    # leave a cached gaussian in both
    state = get_rng_state()
    torch.save(state, tmp_path / "rng.pt")
    first = _draw()
    set_rng_state(torch.load(tmp_path / "rng.pt", weights_only=True))
    assert _draw() == first


def test_preserved_rng_leaves_every_generator_as_it_was():
    torch.manual_seed(0), np.random.seed(0), random.seed(0)
    with preserved_rng():
        expected = _draw()
    with preserved_rng():
        _draw()
    assert _draw() == expected
