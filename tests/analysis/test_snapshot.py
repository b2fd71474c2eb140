"""Training-time snapshots: epoch specs, files, and no side effects on the run."""
import json

import pytest
import torch

from inflor.analysis.snapshot import load_snapshots, plot_snapshots, snapshot, snapshot_epochs
from inflor.models import create_model


def test_snapshot_epochs():
    assert snapshot_epochs("0,1,last", 10) == {0, 1, 10}
    assert snapshot_epochs("every:4", 10) == {0, 4, 8, 10}
    assert snapshot_epochs("all", 2) == {0, 1, 2}
    assert snapshot_epochs("none", 5) == set() and snapshot_epochs(None, 5) == set()
    assert snapshot_epochs([0, 3], 5) == {0, 3}
    with pytest.raises(ValueError, match="outside 0..5"):
        snapshot_epochs("7", 5)
    with pytest.raises(ValueError, match="bad snapshot epoch"):
        snapshot_epochs("first", 5)


def test_snapshot_has_no_side_effects(tmp_path):
    torch.manual_seed(0)
    model = create_model("tinyconv", num_classes=10, in_channels=1, timesteps=2, width=8, neuron="inflor")
    model.train()
    data = [(torch.randn(4, 1, 8, 8), torch.randint(0, 10, (4,))) for _ in range(3)]
    before = torch.get_rng_state()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    for epoch in (0, 3):
        snapshot(model, data, tmp_path, epoch, max_batches=2)
    assert torch.equal(torch.get_rng_state(), before)
    assert model.training
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())   # BN stats untouched
    docs = load_snapshots(tmp_path)
    assert [d["epoch"] for d in docs] == [0, 3] and docs[0]["samples"] == 8
    assert docs[0]["layers"] == docs[1]["layers"]
    doc = json.loads((tmp_path / "snapshots" / "epoch_0003.json").read_text())
    assert set(doc["layers"]) == {"features.0.neuron", "features.1.neuron"}
    made = plot_snapshots(tmp_path, layers=["features.1.neuron"])
    assert (tmp_path / "snapshots" / made["spike_rates"]).is_file()
    assert list(made["distributions"]) == ["features.1.neuron"]


def test_version_1_snapshots_are_still_read(tmp_path):
    """Files written before the histograms kept every value: fixed bins plus a hist_spec."""
    layer = {"spike_rate": 0.2, "settings": {"v_threshold": 0.5}}
    hist = {"counts": [0, 5, 10, 5], "below": 2, "above": 1}
    for epoch in (0, 1):
        doc = {"format": "inflor-snapshot-v1", "epoch": epoch, "samples": 4, "batches": 1, "accuracy": 0.5,
               "layers": {"sn": layer}, "hist_spec": {"lo": -1.0, "hi": 2.0, "bins": 4},
               "histograms": {"sn": {"before": hist, "after": hist}}}
        path = tmp_path / "snapshots" / f"epoch_{epoch:04d}.json"
        path.parent.mkdir(exist_ok=True)
        path.write_text(json.dumps(doc))
    docs = load_snapshots(tmp_path)
    assert [d["epoch"] for d in docs] == [0, 1] and "hist_spec" not in docs[0]
    assert docs[0]["histograms"]["sn"]["before"] == {"lo": -1.0, "width": 0.75, "counts": [0, 5, 10, 5],
                                                     "below": 2, "above": 1, "nonfinite": 0}
    made = plot_snapshots(tmp_path)
    assert (tmp_path / "snapshots" / made["distributions"]["sn"]).is_file()
