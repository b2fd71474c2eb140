"""``inflor export`` on a (tiny) default run: the NIR file loads and rebuilds with zero spike
mismatches on 1000 digits images, the ONNX file matches within 1e-5; bad inputs give one line."""
import pytest
import torch

nir = pytest.importorskip("nir")
pytest.importorskip("onnxruntime")

from inflor.cli import main  # noqa: E402
from inflor.data import build_datasets  # noqa: E402
from inflor.deploy import from_nir  # noqa: E402
from inflor.deploy.onnx import run_onnx  # noqa: E402
from inflor.train.checkpoint import build_model_from_checkpoint  # noqa: E402

from tests.helpers.small_models import record_spikes  # noqa: E402

#: the default recipe (tinyconv, SRIF, tdBN on digits), one short epoch
TINY = ["model.options={timesteps: 4, width: 8, neuron: srif, norm: tdbn}", "train.epochs=1",
        "train.max_steps_per_epoch=3", "train.tensorboard=false", "train.progress=none"]


@pytest.fixture(scope="module")
def default_run(tmp_path_factory):
    from inflor.train.config import load_config
    from inflor.train.trainer import run_training
    folder = tmp_path_factory.mktemp("export") / "run"
    run_training(load_config(None, TINY), folder, log=lambda s: None)
    return folder


def _images(n=1000):
    train, test, _ = build_datasets("digits")
    xs = [test[i][0] for i in range(len(test))] + [train[i][0] for i in range(n - len(test))]
    return torch.stack(xs[:n])


def test_export_run_nir_and_onnx(default_run, tmp_path, capsys):
    out_nir, out_onnx = tmp_path / "m.nir", tmp_path / "m.onnx"
    assert main(["export", str(default_run), "--nir", str(out_nir), "--onnx", str(out_onnx)]) == 0
    assert "wrote" in capsys.readouterr().out
    model = build_model_from_checkpoint(default_run / "checkpoints" / "last.pt").eval()
    net = from_nir(nir.read(str(out_nir)))
    x = _images()
    want_spikes, got_spikes = record_spikes(model), record_spikes(net)
    with torch.no_grad():
        want = model(x)
        got = net(model.to_multistep(x))
    mismatches = sum(int((a != b).sum()) for a, b in zip(want_spikes, got_spikes))
    total = sum(a.numel() for a in want_spikes)
    print(f"NIR round trip: {mismatches} spike mismatches of {total}; max |Δlogit| "
          f"{(got - want).abs().max().item():.3g}")
    assert len(want_spikes) == len(got_spikes) == 2 and mismatches == 0
    assert sum(int(s.sum()) for s in want_spikes) > 0
    onnx_logits = run_onnx(out_onnx, [x] * model.timesteps)
    diff = (onnx_logits - want).abs().max().item()
    print(f"ONNX: max |Δlogit| {diff:.3g} over {x.shape[0]} images × {model.timesteps} steps")
    assert diff <= 1e-5


def test_export_needs_an_output(default_run, capsys):
    assert main(["export", str(default_run)]) == 2
    assert "--nir FILE and/or --onnx FILE" in capsys.readouterr().err
