"""Peers' NIR importers on inflor's files (skipped when the peer is not installed): each reports
its spike agreement with inflor, or its refusal. The hard-reset presets only (no peer imports a
soft reset). snnTorch fixes its own dt = 1e-4 and applies NIR's Flatten with the batch dimension
included, so the network here has no flatten: Linear → neuron → Linear."""
import pytest
import torch
from torch import nn

nir = pytest.importorskip("nir")
pytest.importorskip("nirtorch")

from inflor.deploy import to_nir  # noqa: E402
from inflor.neuron import make_neuron  # noqa: E402


class _MLP(nn.Module):
    def __init__(self, kind):
        super().__init__()
        torch.manual_seed(0)
        self.fc1 = nn.Linear(6, 32)
        self.neuron = make_neuron(kind)
        self.fc2 = nn.Linear(32, 3)

    def forward_multistep(self, x):
        return self.fc2(self.neuron(self.fc1(x)))


@pytest.mark.parametrize("kind", ["if", "lif", "aaai"])
def test_snntorch_imports_hard_reset(kind, capsys):
    snntorch_import = pytest.importorskip("snntorch.import_nir")
    model = _MLP(kind).eval()
    x = torch.rand(8, 4, 6) * 2
    with torch.no_grad():
        want = model.neuron(model.fc1(x))
    assert want.sum() > 0
    graph = to_nir(model, input_shape=(6,), dt=1e-4)      # snnTorch's importer assumes dt = 1e-4
    try:
        net = snntorch_import.import_from_nir(graph)
        spikes, state = [], None
        hook = net.get_submodule("neuron").register_forward_hook(
            lambda mod, inp, out: spikes.append(out[0] if isinstance(out, tuple) else out))
        with torch.no_grad():
            for t in range(x.shape[0]):
                _, state = net(x[t], state)
        hook.remove()
        got = torch.stack(spikes)
    except Exception as exc:          # the peer refuses the file: report it
        report = f"snnTorch refuses the {kind} file: {type(exc).__name__}: {str(exc)[:120]}"
        got = None
    else:
        mismatches = int((got != want).sum())
        report = f"snnTorch on the {kind} file: {mismatches} spike mismatches of {want.numel()}"
    with capsys.disabled():
        print("\n" + report)
    if kind == "lif":   # LIF maps exactly onto snnTorch's Leaky(beta = 1 - dt/tau, reset to zero)
        assert got is not None and int((got != want).sum()) == 0, report
