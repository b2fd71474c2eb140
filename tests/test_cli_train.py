"""``inflor train`` / ``inflor eval`` end to end on the bundled digits, and the CLI's error paths."""
import json
import os
import subprocess
import sys

import pytest

from inflor.cli import main
from inflor.config import docs as recipes_doc

TINY = ["model.options={timesteps: 2, width: 4, neuron: srif, norm: tdbn}", "data.batch_size=64",
        "train.epochs=2", "train.max_steps_per_epoch=4", "train.device=cpu", "data.test_batch_size=400"]


def cli(*args, timeout=600):
    env = {**os.environ, "CI": "true"}
    return subprocess.run([sys.executable, "-m", "inflor", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=timeout)


def test_train_then_eval_through_the_command_line(tmp_path, capsys):
    out = tmp_path / "run"
    p = cli("train", "--out", out, *TINY)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert [ln.split("  ")[0] for ln in lines if ln.startswith("epoch ")] == ["epoch 1/2", "epoch 2/2"]
    assert lines[-1].startswith("done: best test acc") and "Traceback" not in p.stderr
    for f in ("config.yaml", "metrics.csv", "summary.json", "checkpoints/last.pt", "checkpoints/best.pt"):
        assert (out / f).is_file(), f
    assert list((out / "tb").glob("events.out.tfevents.*"))
    summary = json.loads((out / "summary.json").read_text())

    assert main(["eval", str(out / "checkpoints" / "last.pt"), "--json", "--output", str(tmp_path / "eval.json")]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res == json.loads((tmp_path / "eval.json").read_text())
    assert res["model"] == "tinyconv" and res["dataset"] == "digits" and res["samples"] == 360
    assert res["test_acc"] == pytest.approx(summary["final_test_acc"], abs=1e-9)
    assert 0 < res["spike_rate"] < 1


def test_resume_a_stopped_run_from_the_command_line(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--out", str(out), *TINY, "train.tensorboard=false", "train.stop_after_epochs=1"]) == 0
    assert "stopped after epoch 1 of 2; continue with --resume" in capsys.readouterr().out
    # only run-time settings may change on resume
    assert main(["train", "--out", str(out), "--resume", "optim.lr=0.5"]) == 2
    assert "--resume may only change run-time settings" in capsys.readouterr().err
    assert main(["train", "--out", str(out), "--resume", "train.progress=none"]) == 0
    assert json.loads((out / "summary.json").read_text())["epochs_done"] == 2
    # re-running the original command with -c and --resume is accepted when it matches the saved run
    assert main(["train", "-c", "default", "--out", str(out), "--resume", *TINY, "train.tensorboard=false",
                 "train.progress=none"]) == 0
    assert main(["train", "-c", "default", "--out", str(out), "--resume", *TINY, "optim.lr=0.3"]) == 2
    assert "differs from the run saved" in capsys.readouterr().err


@pytest.mark.parametrize("args, code, message", [
    (["train", "optim.lrr=1"], 2, "unknown key 'optim.lrr'; valid keys under 'optim': name, lr"),
    (["train", "model.options.neuron=srf", "--smoke"], 2, "unknown neuron kind 'srf'; valid choices"),
    (["train", "-c", "no_such_recipe"], 2, "recipe 'no_such_recipe' not found"),
    (["train", "--resume"], 2, "--resume needs --out DIR"),
    (["train", "data.name=cifar11"], 2, "valid choices: cifar10, cifar100, cifar10_dvs, digits"),
    (["train", "data.options.cutot=false", "data.name=cifar10"], 2, "valid options of dataset 'cifar10'"),
])
def test_errors_are_one_clean_line(args, code, message, capsys):
    assert main(args) == code
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_missing_dataset_is_reported_cleanly(tmp_path, capsys):
    assert main(["train", "data.name=cifar10", f"data.root={tmp_path}", "--out", str(tmp_path / "r"),
                 "model.options={timesteps: 1, width: 4}"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("inflor train: error: dataset files not found")
    assert str(tmp_path / "cifar-10-batches-py") in err and "data_batch_1" in err


def test_eval_reports_bad_checkpoints(tmp_path, capsys):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\x00" * 100)
    assert main(["eval", str(bad)]) == 1
    assert f"cannot read checkpoint {bad}" in capsys.readouterr().err
    assert main(["eval", str(tmp_path / "none.pt")]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_smoke_prints_ok_with_timings(capsys):
    assert main(["train", "--smoke", "model.options={timesteps: 1, width: 4}", "loss.im.weight=2",
                 "model.options.surrogate=esg"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("smoke OK: default: tinyconv") and "backward" in out and "im " in out


def test_list_and_print_config(capsys):
    assert main(["train", "--list-recipes"]) == 0
    out = capsys.readouterr().out
    assert "inflor_tab4_c10_resnet19_t4" in out and "96.27%" in out and "_inflor_cifar" not in out
    assert main(["train", "-c", "recdis_tab1_c10_cifarnet_d", "--print-config", "train.epochs=7"]) == 0
    out = capsys.readouterr().out
    assert "terms: D\n" in out and "epochs: 7\n" in out and "reported_acc: 0.9129" in out


def test_generated_docs_are_current():
    docs = recipes_doc.repo_docs()
    assert recipes_doc.render() == (docs / "recipes.md").read_text(), \
        "docs/recipes.md is out of date: run python -m inflor.config.docs"
    text = (docs / "training.md").read_text()
    assert recipes_doc.with_schema(text) == text, \
        "the config table of docs/training.md is out of date: run python -m inflor.config.docs"

