"""The trainer on the bundled digits with a very small tinyconv: outputs, exact resume, NaN stop,
ESG schedule, smoke mode, optimizer and schedule choices."""
import csv
import json
import math

import pytest
import torch

from inflor.train import trainer as tr
from inflor.train.checkpoint import CheckpointError, load_checkpoint
from inflor.train.config import load_config
from inflor.surrogate import esg_k

TINY = ["model.options={timesteps: 2, width: 4, neuron: srif, norm: tdbn}", "data.batch_size=64",
        "train.epochs=3", "train.max_steps_per_epoch=3", "train.progress=none", "train.tensorboard=false",
        "train.device=cpu", "data.test_batch_size=400"]


def tiny_cfg(*extra):
    return load_config(None, TINY + list(extra))


def run(cfg, out, **kw):
    return tr.run_training(cfg, out, log=lambda s: None, **kw)


def read_csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_short_run_writes_every_output(tmp_path):
    cfg = tiny_cfg("train.tensorboard=true", "train.epochs=2", "loss.mpd.weight=0.5", "loss.im.weight=0.5",
                   "model.options.surrogate=esg")
    s = run(cfg, tmp_path)
    for f in ("config.yaml", "metrics.csv", "summary.json", "checkpoints/last.pt", "checkpoints/best.pt"):
        assert (tmp_path / f).is_file(), f
    assert any((tmp_path / "tb").glob("events.out.tfevents.*"))
    rows = read_csv(tmp_path / "metrics.csv")
    assert list(rows[0]) == tr.METRIC_FIELDS and len(rows) == 2
    for r in rows:
        assert float(r["mpd_loss"]) > 0 and float(r["im_loss"]) > 0
        assert 0 < float(r["spike_rate"]) < 1 and 0 <= float(r["test_acc"]) <= 1
        assert math.isclose(float(r["train_loss"]), float(r["task_loss"]) + 0.5 * float(r["mpd_loss"])
                            + 0.5 * float(r["im_loss"]), rel_tol=1e-4)
    assert [float(r["esg_k"]) for r in rows] == pytest.approx([esg_k(0, 2), esg_k(1, 2)], rel=1e-5)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["epochs_done"] == 2
    assert summary["best_test_acc"] == pytest.approx(max(float(r["test_acc"]) for r in rows))
    assert summary["final_test_acc"] == pytest.approx(float(rows[-1]["test_acc"]), abs=1e-6)
    assert {"inflor", "torch", "python"} <= set(summary["versions"]) and summary["wall_time"] > 0
    assert s["config"]["model"]["name"] == "tinyconv"


def test_resume_reaches_the_same_result(tmp_path):
    extra = ["model.options.surrogate=esg", "loss.mpd.weight=0.5", "data.options={augment: true}"]
    full = run(tiny_cfg(*extra), tmp_path / "full")
    part = run(tiny_cfg(*extra, "train.stop_after_epochs=1"), tmp_path / "part")
    assert part["status"] == "stopped" and part["epochs_done"] == 1
    assert load_checkpoint(tmp_path / "part/checkpoints/last.pt")["epoch"] == 1
    resumed = run(tiny_cfg(*extra), tmp_path / "part", resume=True)
    assert resumed["status"] == "completed" and resumed["epochs_done"] == 3

    def strip(rows):
        return [{k: v for k, v in r.items() if k != "epoch_time"} for r in rows]
    assert strip(read_csv(tmp_path / "part/metrics.csv")) == strip(read_csv(tmp_path / "full/metrics.csv"))
    a = load_checkpoint(tmp_path / "full/checkpoints/last.pt")["model_state"]
    b = load_checkpoint(tmp_path / "part/checkpoints/last.pt")["model_state"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    k_buffers = [k for k in b if k.endswith("k_value")]
    assert k_buffers and all(float(b[k]) == pytest.approx(esg_k(2, 3)) for k in k_buffers)
    assert resumed["best_test_acc"] == full["best_test_acc"]


def test_stop_from_a_callback_then_resume(tmp_path):
    def kill_after_first(trainer, epoch, row):
        if epoch == 0:
            raise tr.StopRun()
    s = run(tiny_cfg("train.epochs=2"), tmp_path, callbacks=[kill_after_first])
    assert s["status"] == "stopped" and len(read_csv(tmp_path / "metrics.csv")) == 1
    s = run(tiny_cfg("train.epochs=2"), tmp_path, resume=True)
    assert s["status"] == "completed" and len(read_csv(tmp_path / "metrics.csv")) == 2


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    calls = {"n": 0}
    real = tr.TASK_LOSSES["ce_mean"]

    def flaky(logits, target, **kw):
        out = real(logits, target, **kw)
        if torch.is_grad_enabled():
            calls["n"] += 1
            if calls["n"] == 5:          # epoch 2, step 2 (3 steps per epoch)
                return out * float("nan")
        return out

    monkeypatch.setitem(tr.TASK_LOSSES, "ce_mean", flaky)
    with pytest.raises(tr.NonFiniteLossError, match=r"the task loss is not finite at epoch 2, step 2"):
        run(tiny_cfg(), tmp_path)
    assert load_checkpoint(tmp_path / "checkpoints/last.pt")["epoch"] == 1
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["status"] == "nonfinite" and "epoch 2, step 2" in summary["error"]


def test_resume_refuses_another_model(tmp_path):
    run(tiny_cfg("train.epochs=1"), tmp_path)
    with pytest.raises(CheckpointError, match="was saved from model 'tinyconv'"):
        run(tiny_cfg("train.epochs=1", "model.options.width=8"), tmp_path, resume=True)


def test_new_run_refuses_to_overwrite_and_resume_needs_a_checkpoint(tmp_path):
    run(tiny_cfg("train.epochs=1"), tmp_path / "a")
    with pytest.raises(tr.RunError, match="already holds a run"):
        run(tiny_cfg("train.epochs=1"), tmp_path / "a")
    with pytest.raises(tr.RunError, match="nothing to resume"):
        run(tiny_cfg("train.epochs=1"), tmp_path / "b", resume=True)


def test_missing_dataset_raises_file_not_found(tmp_path):
    cfg = load_config(None, ["data.name=cifar10", f"data.root={tmp_path}", "train.progress=none",
                             "train.tensorboard=false", "model.options={timesteps: 1, width: 4}"])
    with pytest.raises(FileNotFoundError, match="cifar-10-batches-py"):
        run(cfg, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_bad_model_option_is_a_config_error_before_any_data(tmp_path):
    from inflor.train.config import ConfigError
    cfg = load_config(None, ["model.options.neuronn=if", "data.name=cifar10", f"data.root={tmp_path}"])
    with pytest.raises(ConfigError, match="unknown option.*neuronn.*valid options"):
        run(cfg, tmp_path / "run")


def test_smoke_runs_one_step_without_data():
    res = tr.smoke_test(load_config(None, ["data.name=cifar100", "model.options={timesteps: 1, width: 4}",
                                           "loss.mpd.weight=2", "loss.task=ce_per_step"]), out=None)
    assert res["logits_shape"] == [1, 2, 100] and res["loss"]["mpd"] > 0
    res = tr.smoke_test(load_config(None, ["model.name=resnet20", "data.name=cifar10", "model.options.timesteps=1",
                                           "loss.im.weight=1", "loss.im.form=official"]), image_size=16, out=None)
    assert res["loss"]["im"] > 0


def test_activation_checkpointing_trains_the_same(tmp_path):
    plain = run(tiny_cfg("train.epochs=1"), tmp_path / "plain")
    ckpt = run(tiny_cfg("train.epochs=1", "train.activation_checkpointing=blocks"), tmp_path / "ckpt")
    assert ckpt["final_test_acc"] == plain["final_test_acc"]
    a = load_checkpoint(tmp_path / "plain/checkpoints/last.pt")["model_state"]
    b = load_checkpoint(tmp_path / "ckpt/checkpoints/last.pt")["model_state"]
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def test_schedule_and_weight_decay_groups():
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2))
    cfg = load_config(None, ["optim.wd_on_bn_bias=false", "sched.warmup=2", "train.epochs=10"])
    opt = tr.build_optimizer(model, cfg)
    assert [g["weight_decay"] for g in opt.param_groups] == [1e-4, 0.0]
    assert [len(g["params"]) for g in opt.param_groups] == [1, 3]
    sched = tr.EpochSchedule(opt, "cosine", 10, warmup=2)
    lrs = [sched.set_epoch(e) for e in range(10)]
    assert lrs[0] == pytest.approx(0.1 / 3) and lrs[2] == pytest.approx(0.1)
    assert lrs[-1] < lrs[3] < lrs[2]
    plain = tr.EpochSchedule(tr.build_optimizer(model, load_config()), "cosine", 4)
    assert [plain.set_epoch(e) for e in range(4)] == pytest.approx(
        [0.1 * 0.5 * (1 + math.cos(math.pi * e / 4)) for e in range(4)])
