"""Checkpoints: atomic writes, strict loads, clear errors for damaged or foreign files."""
import os
import random

import numpy as np
import pytest
import torch

from inflor.models import create_model
from inflor.train import checkpoint as ck


def _state(model):
    return {"format": ck.FORMAT, "model_name": model.model_name, "model_options": model.model_options,
            "model_state": model.state_dict(), "epoch": 1, "config": {"name": "t"},
            "rng": ck.get_rng_state(), "versions": ck.versions()}


def _tiny(**kw):
    opts = dict(num_classes=10, in_channels=1, timesteps=2, width=4)
    opts.update(kw)
    return create_model("tinyconv", **opts)


def test_roundtrip_rebuilds_the_same_model(tmp_path):
    m = _tiny()
    path = ck.save_checkpoint(_state(m), tmp_path / "a.pt")
    m2 = ck.build_model_from_checkpoint(path)
    assert not m2.training
    x = torch.randn(3, 1, 8, 8)
    m.eval()
    assert torch.equal(m(x), m2(x))
    assert [p.name for p in tmp_path.iterdir()] == ["a.pt"]   # no temporary file left


def test_save_is_atomic_when_interrupted(tmp_path, monkeypatch):
    m = _tiny()
    path = ck.save_checkpoint(_state(m), tmp_path / "last.pt")
    before = path.read_bytes()

    def broken_save(obj, f, *a, **k):
        f.write(b"partial")
        raise KeyboardInterrupt("killed while saving")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(KeyboardInterrupt):
        ck.save_checkpoint(_state(_tiny(width=8)), path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_truncated_and_garbage_files_are_named(tmp_path):
    m = _tiny()
    good = ck.save_checkpoint(_state(m), tmp_path / "good.pt")
    data = good.read_bytes()
    (tmp_path / "trunc.pt").write_bytes(data[: len(data) // 2])
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint at all")
    for name in ("trunc.pt", "junk.pt"):
        with pytest.raises(ck.CheckpointError, match=f"cannot read checkpoint .*{name}.*corrupted"):
            ck.load_checkpoint(tmp_path / name)
    with pytest.raises(ck.CheckpointError, match="does not exist"):
        ck.load_checkpoint(tmp_path / "missing.pt")
    torch.save({"state_dict": m.state_dict()}, tmp_path / "foreign.pt")
    with pytest.raises(ck.CheckpointError, match="not an inflor checkpoint"):
        ck.load_checkpoint(tmp_path / "foreign.pt")


def test_other_model_is_rejected_without_partial_load(tmp_path):
    path = ck.save_checkpoint(_state(_tiny(width=4)), tmp_path / "w4.pt")
    target = _tiny(width=8)
    before = {k: v.clone() for k, v in target.state_dict().items()}
    with pytest.raises(ck.CheckpointError, match="does not fit this tinyconv model: .*shape mismatch"):
        ck.load_model_state(target, ck.load_checkpoint(path))
    assert all(torch.equal(before[k], v) for k, v in target.state_dict().items())

    other = create_model("resnet20", num_classes=10, timesteps=1)
    with pytest.raises(ck.CheckpointError, match="holds a 'tinyconv' model, not 'resnet20'"):
        ck.load_model_state(other, ck.load_checkpoint(path))

    # a checkpoint whose tensors do not match its own model description
    bad = ck.load_checkpoint(path)
    bad["model_state"] = _tiny(width=8).state_dict()
    with pytest.raises(ck.CheckpointError, match="does not fit"):
        ck.build_model_from_checkpoint(bad)


def test_rng_state_roundtrip(tmp_path):
    torch.manual_seed(1), np.random.seed(2), random.seed(3)
    path = ck.save_checkpoint({**_state(_tiny()), "rng": ck.get_rng_state()}, tmp_path / "r.pt")
    expect = (torch.rand(3), np.random.rand(3), random.random())
    torch.manual_seed(9), np.random.seed(9), random.seed(9)
    ck.set_rng_state(ck.load_checkpoint(path)["rng"])
    got = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(expect[0], got[0]) and np.array_equal(expect[1], got[1]) and expect[2] == got[2]


def test_checkpoint_loads_with_weights_only(tmp_path):
    path = ck.save_checkpoint(_state(_tiny()), tmp_path / "w.pt")
    d = torch.load(path, weights_only=True)
    assert d["format"] == ck.FORMAT and os.path.getsize(path) > 0
