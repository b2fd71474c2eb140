"""Recipes with ``stages`` (the papers' warm-start protocols): one command runs the warm-up and
the main stage from its weights; a run killed in either stage resumes to the same final metrics
as an uninterrupted one; overrides reach one stage; errors name the stage."""
import csv
import json
import re

import pytest

from inflor.analysis.tables import run_record
from inflor.cli import main
from inflor.commands.eval import evaluate_checkpoint
from inflor.train import trainer as tr
from inflor.train.config import ConfigError, config_diff, dump_config, load_config, validate_config, yaml_load

RECIPE = """\
extends: default
model: {options: {timesteps: 2, width: 4, neuron: srif, norm: none}}
data: {batch_size: 64, test_batch_size: 400}
train: {epochs: 2, max_steps_per_epoch: 3, device: cpu, tensorboard: false, progress: plain}
stages:
  warmup: {loss: {mpd: {weight: 2.0}}, train: {epochs: 1, max_steps_per_epoch: 2}}
  main: {}
"""


def rows(path):
    with open(path) as f:
        return [{k: v for k, v in r.items() if k != "epoch_time"} for r in csv.DictReader(f)]


@pytest.fixture(scope="module")
def recipe(tmp_path_factory):
    p = tmp_path_factory.mktemp("recipe") / "staged.yaml"
    p.write_text(RECIPE)
    return p


@pytest.fixture(scope="module")
def full(recipe, tmp_path_factory):
    """An uninterrupted two-stage run through the command line."""
    out = tmp_path_factory.mktemp("full") / "run"
    assert main(["train", "-c", str(recipe), "--out", str(out)]) == 0
    return out


def test_two_stages_run_end_to_end(full, capsys):
    summary = json.loads((full / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["main_stage"] == "main"
    assert [s["name"] for s in summary["stages"]] == ["warmup", "main"]
    assert [s["status"] for s in summary["stages"]] == ["completed", "completed"]
    warm = json.loads((full / "warmup" / "summary.json").read_text())
    main_s = json.loads((full / "main" / "summary.json").read_text())
    assert warm["epochs_done"] == 1 and main_s["epochs_done"] == 2
    assert warm["config"]["loss"]["mpd"]["weight"] == 2.0 and main_s["config"]["loss"]["mpd"]["weight"] == 0.0
    assert rows(full / "warmup" / "metrics.csv")[0]["mpd_loss"] != "0.0"
    assert all(r["mpd_loss"] == "0.0" for r in rows(full / "main" / "metrics.csv"))
    assert main_s["config"]["train"]["init_from"] == str(full / "warmup" / "checkpoints" / "last.pt")
    assert summary["best_test_acc"] == main_s["best_test_acc"] and summary["final_test_acc"] == main_s["final_test_acc"]
    assert summary["wall_time"] == pytest.approx(warm["wall_time"] + main_s["wall_time"])
    # the main stage started from the warm-up's final weights: its epoch-0 test = inflor eval of them
    init = json.loads((full / "main" / "init.json").read_text())
    ev = evaluate_checkpoint(full / "warmup" / "checkpoints" / "last.pt")
    assert init["test_acc"] == ev["test_acc"] == warm["final_test_acc"]
    # the run directory reads like any run (compare, repeat)
    rec = run_record(full)
    assert rec["best_acc"] == pytest.approx(100 * main_s["best_test_acc"]) and len(rec["curve"]["test_acc"]["epoch"]) == 2
    # inflor analyze finds its main stage's checkpoint
    from inflor.analysis.runs import find_checkpoint
    assert find_checkpoint(full) == (full / "main" / "checkpoints" / "best.pt", full / "main")
    # a run made of stages is a warm-start source too: its main stage's last.pt
    from inflor.train.warmstart import resolve_init_checkpoint
    assert resolve_init_checkpoint(full) == full / "main" / "checkpoints" / "last.pt"


def test_killed_after_the_warmup_resumes_to_the_same_result(recipe, full, tmp_path):
    out = tmp_path / "run"

    def kill_after_warmup(trainer, epoch, row):       # killed right after the warm-up's last checkpoint
        if trainer.out.name == "warmup":
            raise tr.StopRun()
    s = tr.run_training(load_config(str(recipe)), out, callbacks=[kill_after_warmup], log=lambda m: None)
    assert s["status"] == "stopped" and [e["status"] for e in s["stages"]] == ["stopped", "not started"]
    assert not (out / "main").exists()
    assert main(["train", "--out", str(out), "--resume"]) == 0
    assert json.loads((out / "summary.json").read_text())["status"] == "completed"
    for stage in ("warmup", "main"):
        assert rows(out / stage / "metrics.csv") == rows(full / stage / "metrics.csv"), stage


def test_killed_in_the_main_stage_resumes_to_the_same_result(recipe, full, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "-c", str(recipe), "--out", str(out), "stages.main.train.stop_after_epochs=1"]) == 0
    assert "continue with --resume --out" in capsys.readouterr().out
    s = json.loads((out / "summary.json").read_text())
    assert s["status"] == "stopped" and s["epochs_done"] == 1
    assert "stop_after_epochs" not in (out / "config.yaml").read_text().split("stages:")[1]   # a one-shot stop
    # only run-time settings may change on resume, in a stage too
    assert main(["train", "--out", str(out), "--resume", "stages.warmup.loss.mpd.weight=1"]) == 2
    assert "--resume may only change run-time settings" in capsys.readouterr().err
    assert main(["train", "-c", str(recipe), "--out", str(out), "--resume"]) == 0
    assert "stage 1/2 'warmup': completed earlier" in capsys.readouterr().out
    assert rows(out / "main" / "metrics.csv") == rows(full / "main" / "metrics.csv")
    # a finished run is not overwritten
    assert main(["train", "-c", str(recipe), "--out", str(out)]) == 1
    assert "already holds a run (stages warmup, main); pass --resume" in capsys.readouterr().err


def test_smoke_runs_every_stage_from_the_previous_weights(recipe, capsys):
    assert main(["train", "-c", str(recipe), "--smoke"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [ln.split(":")[1].strip() for ln in lines] == ["staged/warmup", "staged/main"]
    # a stage whose model does not fit the weights the one before leaves fails in the smoke test
    assert main(["train", "-c", str(recipe), "--smoke", "stages.main.model.options.width=8"]) == 2   # the recipe's stages do not fit each other: a usage error
    assert "first mismatch: 'features.0.conv.module.weight'" in capsys.readouterr().err


def test_stage_settings_are_checked_and_overridable(recipe):
    cfg = load_config(str(recipe), ["stages.warmup.train.max_steps_per_epoch=5", "train.epochs=3"])
    from inflor.train.stages import stage_configs
    (w, wc), (m, mc) = stage_configs(cfg, "OUT")
    assert (w, m) == ("warmup", "main")
    assert (wc["train"]["epochs"], wc["train"]["max_steps_per_epoch"]) == (1, 5)   # the stage's own settings win
    assert (mc["train"]["epochs"], mc["train"]["max_steps_per_epoch"]) == (3, 3)   # the recipe's reach the rest
    assert wc["train"]["init_from"] is None and mc["train"]["init_from"] == "OUT/warmup/checkpoints/last.pt"
    for over, msg in [
        ("stages.warmpu.train.epochs=1", "no stage 'warmpu'; the recipe's stages are warmup, main (did you mean 'warmup'?)"),
        ("stages.main.paper.name=x", "a stage may set model, data, optim, sched, loss, train, not 'paper'"),
        ("stages.main.train.epochz=1", "unknown key 'train.epochz'"),
        ("stages.main.train.epochs=0", "'stages.main': 'train.epochs' must be >= 1"),
        ("stages.main.train.init_from=x.pt", "only the first stage may set it"),
        ("stages.main.model.options.neuron=srf", None),
    ]:
        if msg is None:     # model options are checked where the model is built (as for any run)
            load_config(str(recipe), [over])
            continue
        with pytest.raises(ConfigError, match=re.escape(msg)):
            load_config(str(recipe), [over])
    with pytest.raises(ConfigError, match="this recipe has no stages"):
        load_config(None, ["stages.main.train.epochs=2"])
    with pytest.raises(ConfigError, match="stage name 'tb'"):
        validate_config({"stages": {"tb": {}}})
    # run-time settings of a stage are run-time settings
    saved = yaml_load(dump_config(cfg))
    other = load_config(str(recipe), ["stages.warmup.train.max_steps_per_epoch=5", "train.epochs=3",
                                      "stages.main.train.progress=none"])
    assert config_diff(validate_config(saved), other) == []
