"""``train.init_from``: a run starts from exactly the given weights (weights only), its epoch-0
evaluation equals ``inflor eval`` of that checkpoint, and another architecture is refused with the
first mismatched layer named, leaving the model untouched."""
import json

import pytest
import torch

from inflor.commands.eval import evaluate_checkpoint
from inflor.train import trainer as tr
from inflor.train import warmstart
from inflor.train.checkpoint import CheckpointError, load_checkpoint
from inflor.train.config import load_config

TINY = ["model.options={timesteps: 2, width: 4, neuron: srif, norm: tdbn}", "data.batch_size=64",
        "train.epochs=1", "train.max_steps_per_epoch=3", "train.progress=none", "train.tensorboard=false",
        "train.device=cpu", "data.test_batch_size=400"]


def cfg(*extra):
    return load_config(None, TINY + list(extra))


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A finished one-epoch run to start from (seed 3, so its weights differ from seed 0's init)."""
    out = tmp_path_factory.mktemp("source")
    tr.run_training(cfg("train.seed=3"), out, log=lambda s: None)
    return out


def _setup(c, out):
    t = tr.Trainer(c, out, log=lambda s: None)
    t.setup()
    return t


def test_init_from_starts_from_exactly_those_weights(source, tmp_path):
    ck = load_checkpoint(source / "checkpoints" / "last.pt")
    t = _setup(cfg("train.init_from=" + str(source)), tmp_path / "warm")   # a run directory: its last.pt
    own = t.model.state_dict()
    assert own.keys() == ck["model_state"].keys()
    assert all(torch.equal(own[k], ck["model_state"][k]) for k in own)    # BN running statistics too
    fresh = _setup(cfg(), tmp_path / "cold").model.state_dict()          # the same seed without init_from
    assert not torch.equal(fresh["fc.weight"], own["fc.weight"])
    # weights only: a fresh optimizer, epoch 0, no best accuracy carried over
    assert t.optimizer.state_dict()["state"] == {} and t.start_epoch == 0 and t.best_acc is None

    init = json.loads((tmp_path / "warm" / "init.json").read_text())
    ev = evaluate_checkpoint(source / "checkpoints" / "last.pt")         # what `inflor eval` prints
    assert init["checkpoint"] == str((source / "checkpoints" / "last.pt").resolve()) and init["epoch"] == 1
    assert (init["test_acc"], init["samples"]) == (ev["test_acc"], ev["samples"])
    assert init["test_loss"] == pytest.approx(ev["test_loss"], rel=1e-6)
    assert init["spike_rate"] == pytest.approx(ev["spike_rate"], rel=1e-9)
    assert init["last_spiking_layer"] == "features.1.neuron" and 0 < init["last_layer_spike_rate"] < 1
    # and it equals the source run's own last evaluation
    assert init["test_acc"] == json.loads((source / "summary.json").read_text())["final_test_acc"]


def test_another_architecture_is_refused_naming_the_first_layer(source, tmp_path):
    last = source / "checkpoints" / "last.pt"
    with pytest.raises(CheckpointError, match=r"first mismatch: 'features\.0\.conv\.module\.weight' is \(4, 1, 3, 3\) "
                                              r"in the checkpoint but \(8, 1, 3, 3\) in this model \(\d+ mismatches"):
        _setup(cfg(f"train.init_from={last}", "model.options.width=8"), tmp_path / "a")
    with pytest.raises(CheckpointError, match=r"first mismatch: 'features\.0\.norm\.weight' \(4,\) of the checkpoint "
                                              r"is not in this model"):
        _setup(cfg(f"train.init_from={last}", "model.options.norm=none"), tmp_path / "b")
    # nothing is copied when anything differs
    from inflor.models import create_model
    m = create_model("tinyconv", num_classes=10, in_channels=1, timesteps=2, width=4, norm="none")
    before = {k: v.clone() for k, v in m.state_dict().items()}
    with pytest.raises(CheckpointError):
        warmstart.load_init(m, last)
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())


def test_surrogate_settings_are_this_runs_own(source, tmp_path):
    """The source used the rectangle; a run with ESG loads its weights and keeps its own K range."""
    t = _setup(cfg(f"train.init_from={source}", "model.options.surrogate={name: esg, k_max: 7}"), tmp_path / "esg")
    sd = t.model.state_dict()
    assert float(sd["features.0.neuron.surrogate_function.k_max"]) == 7.0
    ck = load_checkpoint(source / "checkpoints" / "last.pt")["model_state"]
    assert torch.equal(sd["features.0.conv.module.weight"], ck["features.0.conv.module.weight"])


def test_missing_sources_are_named(tmp_path):
    with pytest.raises(CheckpointError, match=r"train.init_from: .*nope does not exist; expected a checkpoint file"):
        warmstart.resolve_init_checkpoint(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match=r"has no checkpoints/last.pt \(the run has not finished an epoch\)"):
        warmstart.resolve_init_checkpoint(tmp_path / "empty")


def test_smoke_loads_init_weights_and_checks_them(source):
    last = source / "checkpoints" / "last.pt"
    res = tr.smoke_test(cfg(f"train.init_from={last}"), out=None)
    assert res["loss"]["total"] == res["loss"]["total"]
    with pytest.raises(tr.RunError, match="first mismatch: 'features.0.conv.module.weight'"):
        tr.smoke_test(cfg(f"train.init_from={last}", "model.options.width=8"), out=None)


def test_a_bad_source_is_refused_before_any_data_is_read(tmp_path):
    c = load_config(None, ["data.name=cifar10", f"data.root={tmp_path}", f"train.init_from={tmp_path / 'nope.pt'}",
                           "model.options={timesteps: 1, width: 4}", "train.progress=none", "train.tensorboard=false"])
    with pytest.raises(CheckpointError, match="nope.pt does not exist"):     # not the missing CIFAR files
        _setup(c, tmp_path / "run")
