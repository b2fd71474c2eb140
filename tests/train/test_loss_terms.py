"""A loss term is declared once (inflor.train.objective.register_term): the objective, the NaN
check, metrics.csv, the epoch log line and the --smoke line all follow from that declaration."""
import csv
import math

import pytest
import torch

from inflor.errors import NonFiniteLossError
from inflor.train import load_config, run_training, smoke_test
from inflor.train import objective
from inflor.train.objective import LossTerm, register_term, unregister_term

TINY = ["model.options={timesteps: 2, width: 4, neuron: srif, norm: tdbn}", "data.batch_size=64",
        "train.epochs=1", "train.max_steps_per_epoch=2", "train.progress=plain", "train.tensorboard=false",
        "train.device=cpu", "data.test_batch_size=400", "loss.mpd.weight=0.5"]
WEIGHT = 0.25


@pytest.fixture
def toy():
    """A toy L2 regulariser, 1e-3 · Σ w² (or NaN when ``state["nan"]``)."""
    state = {"nan": False, "calls": 0}

    def compute(model, cfg, vth):
        state["calls"] += 1
        l2 = 1e-3 * sum(p.pow(2).sum() for p in model.parameters())
        return l2 * float("nan") if state["nan"] else l2

    register_term(LossTerm("toy", lambda cfg: WEIGHT, compute, needs_stats=False))
    try:
        yield state
    finally:
        unregister_term("toy")


def test_a_registered_term_enters_the_objective(toy):
    cfg = load_config(None, TINY + ["loss.mpd.weight=0"])
    model = torch.nn.Linear(3, 2)
    logits = torch.randn(2, 4, 2)       # (T, B, classes)
    y = torch.tensor([0, 1, 1, 0])
    parts = objective.compute_loss(model, logits, y, cfg)
    assert list(parts) == ["task", "mpd", "im", "toy", "total"]
    l2 = 1e-3 * (model.weight.pow(2).sum() + model.bias.pow(2).sum())
    assert torch.allclose(parts["toy"], l2)
    assert torch.allclose(parts["total"], parts["task"] + WEIGHT * l2)
    assert not objective.needs_stats(cfg)          # the toy term reads no membrane statistics
    assert objective.part_names() == ["total", "task", "mpd", "im", "toy"]
    assert "toy_loss" in objective.metric_fields() and "toy_loss" not in objective.METRIC_FIELDS
    assert objective.metric_fields().index("toy_loss") == objective.metric_fields().index("im_loss") + 1
    assert objective.format_losses({"total": 1.0, "task": 0.5, "mpd": 0.25, "im": 0.0, "toy": 0.125}) == \
        "loss 1.0000 (task 0.5000, mpd 0.2500, im 0.0000, toy 0.1250)"


def test_a_registered_term_reaches_metrics_log_and_smoke(toy, tmp_path):
    logs = []
    run_training(load_config(None, TINY), tmp_path, log=logs.append)
    with open(tmp_path / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == objective.metric_fields() and "toy_loss" in rows[0]
    r = rows[0]
    assert float(r["toy_loss"]) > 0 and toy["calls"] >= 2
    # the total is the task loss plus each term times its weight (epoch means of per-batch sums)
    assert math.isclose(float(r["train_loss"]), float(r["task_loss"]) + 0.5 * float(r["mpd_loss"])
                        + WEIGHT * float(r["toy_loss"]), rel_tol=1e-5)
    line = next(ln for ln in logs if ln.startswith("epoch 1/1"))
    assert f"im {float(r['im_loss']):.4f}, toy {float(r['toy_loss']):.4f})" in line
    out = []
    res = smoke_test(load_config(None, TINY), out=out.append)
    assert res["loss"]["toy"] > 0 and ", toy " in out[0]


def test_a_registered_term_is_checked_for_nan(toy, tmp_path):
    toy["nan"] = True
    with pytest.raises(NonFiniteLossError, match=r"the toy loss is not finite at epoch 1, step 1"):
        run_training(load_config(None, TINY), tmp_path, log=lambda s: None)
    with pytest.raises(NonFiniteLossError, match="smoke test: the toy loss is not finite"):
        smoke_test(load_config(None, TINY), out=None)


def test_names_are_declared_once():
    with pytest.raises(ValueError, match="already declared"):
        register_term(LossTerm("mpd", lambda cfg: 1.0, lambda m, c, v: torch.zeros(())))
