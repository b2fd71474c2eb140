"""ONNX single step: onnxruntime over a whole sequence matches PyTorch within 1e-5."""
import json

import pytest
import torch

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from inflor.deploy import to_onnx  # noqa: E402
from inflor.deploy.onnx import run_onnx  # noqa: E402
from inflor.neuron import PRESETS  # noqa: E402

from tests.helpers.small_models import small_model  # noqa: E402


@pytest.mark.parametrize("kind", sorted(PRESETS))
def test_onnx_matches_pytorch_every_preset(kind, tmp_path):
    model, x = small_model("tinyconv", neuron=kind)
    path = to_onnx(model, tmp_path / "m.onnx")
    proto = onnx.load(str(path))
    names = json.loads({p.key: p.value for p in proto.metadata_props}["inflor_state_names"])
    assert names == ["features.0.neuron", "features.1.neuron"]
    assert [i.name for i in proto.graph.input] == ["x", "state_0", "state_1"]
    got = run_onnx(path, [x[:1]] * model.timesteps)     # another batch size than the export's
    with torch.no_grad():
        want = model(x[:1])
    assert (got - want).abs().max().item() <= 1e-5


@pytest.mark.parametrize("name", [pytest.param("resnet19_dvs", marks=pytest.mark.slow), "cifarnet_voting"])
def test_onnx_residual_and_events(name, tmp_path):
    model, x = small_model(name, neuron="srif")
    path = to_onnx(model, tmp_path / "m.onnx", example=(x[:, 0] if x.dim() == 5 else x))
    steps = [x[:, t] for t in range(x.shape[1])] if x.dim() == 5 else [x] * model.timesteps
    got = run_onnx(path, steps)
    with torch.no_grad():
        want = model(x)
    assert (got - want).abs().max().item() <= 1e-5
