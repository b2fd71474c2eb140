"""NIR export / import: exact mapping, soft reset never as hard reset, zero spike mismatches."""
import numpy as np
import pytest
import torch

nir = pytest.importorskip("nir")

from inflor.deploy import fold_model, from_nir, to_nir  # noqa: E402
from inflor.deploy.nir import NIRExportError, above, below  # noqa: E402
from inflor.errors import CheckpointError  # noqa: E402
from inflor.neuron import PRESETS, make_neuron, spiking_nodes  # noqa: E402

from tests.helpers.small_models import model_params, record_spikes, small_model  # noqa: E402


def test_threshold_next_float():
    # inflor fires on H >= 0.5, NIR on v > v_threshold: 0.5 becomes the float32 just below it
    assert below(0.5) == float(np.float32(0.49999997))
    assert above(below(0.5)) == 0.5
    h = torch.tensor([0.49999997, 0.5, 0.50000006])
    assert torch.equal(h > below(0.5), h >= 0.5)


def _euler(graph, name, x, dt):
    """An independent forward-Euler reading of one exported neuron (charge, fire on v > thr,
    reset), the way a NIR importer with step dt runs it."""
    nodes = graph.nodes
    if name in nodes:                                     # IF / LIF, hard reset
        n = nodes[name]
        v, out = np.zeros(x.shape[1:]), []
        for xt in x:
            dv = n.r * xt if isinstance(n, nir.IF) else (n.v_leak - v + n.r * xt) / n.tau
            v = np.float32(v + dt * dv)
            z = v > n.v_threshold
            v = np.where(z, n.v_reset, v)
            out.append(z)
        return np.stack(out)
    integ, thr = nodes[f"{name}.integrator"], nodes[f"{name}.threshold"]
    scale, delay = nodes[f"{name}.reset"], nodes[f"{name}.delay"]
    assert np.all(delay.delay == dt)
    v, z, out = np.zeros(x.shape[1:]), np.zeros(x.shape[1:]), []
    for xt in x:
        inp = xt + scale.scale * z                        # the spikes come back one step later
        dv = integ.r * inp if isinstance(integ, nir.I) else (integ.v_leak - v + integ.r * inp) / integ.tau
        v = np.float32(v + dt * dv)
        z = (v > thr.threshold).astype(np.float64)
        out.append(z > 0)
    return np.stack(out)


@pytest.mark.parametrize("kind", sorted(PRESETS))
@pytest.mark.parametrize("dt", [1.0, 0.5])
def test_euler_importer_reproduces_every_preset(kind, dt):
    model, x = small_model("tinyconv", neuron=kind)
    graph = to_nir(model, dt=dt)
    torch.manual_seed(3)
    x = torch.rand(12, 2, 4, 8, 8) * 1.5
    node = fold_model(model).get_submodule("model.features.0.neuron")
    want = node(x).numpy() > 0
    got = _euler(graph, "features.0.neuron", x.numpy().astype(np.float64), dt)
    assert want.any() and (got != want).sum() == 0


@pytest.mark.parametrize("kind", sorted(PRESETS))
def test_soft_reset_is_never_a_hard_reset_node(kind):
    model, _ = small_model("tinyconv", neuron=kind)
    graph = to_nir(model)
    for name, node in spiking_nodes(model):
        if node.reset == "soft":
            assert name not in graph.nodes, f"soft-reset neuron {name} written as one node"
            assert isinstance(graph.nodes[f"{name}.threshold"], nir.Threshold)
            assert isinstance(graph.nodes[f"{name}.reset"], nir.Scale)
        else:
            assert isinstance(graph.nodes[name], (nir.IF, nir.LIF))
    hard = [k for k, v in graph.nodes.items() if isinstance(v, (nir.IF, nir.LIF))]
    assert bool(hard) == (PRESETS[kind]["reset"] == "hard")


def _round_trip(name, kind, tmp_path):
    model, x = small_model(name, neuron=kind)
    path = tmp_path / "m.nir"
    nir.write(str(path), to_nir(model, input_shape=tuple(x.shape[-3:])))
    graph = nir.read(str(path))
    assert graph.check_types()    # the file read back type-checks
    net = from_nir(graph)
    want_spikes, got_spikes = record_spikes(model), record_spikes(net)
    xs = model.to_multistep(x)
    with torch.no_grad():
        want = model.forward_multistep(xs)
        got = net(xs)
    assert len(want_spikes) == len(got_spikes) > 0
    mismatches = sum(int((a != b).sum()) for a, b in zip(want_spikes, got_spikes))
    assert sum(int(s.sum()) for s in want_spikes) > 0
    assert mismatches == 0
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("kind", sorted(PRESETS))
def test_round_trip_every_preset(kind, tmp_path):
    _round_trip("tinyconv", kind, tmp_path)


@pytest.mark.parametrize("name", [p for p in model_params() if getattr(p, "values", (p,))[0] != "cifarnet_voting"])
def test_round_trip_every_model(name, tmp_path):
    _round_trip(name, "srif" if "resnet" in name else "if", tmp_path)


def test_refusals_name_the_node(tmp_path):
    model, _ = small_model("cifarnet_voting")
    with pytest.raises(NIRExportError, match="unflatten|mean") as e:
        to_nir(model)
    assert isinstance(e.value, CheckpointError)
    # resnet20's avg-down shortcut pools a 1×1 map with ceil_mode at 8×8 input: not NIR's AvgPool2d
    model, _ = small_model("resnet20")
    with pytest.raises(NIRExportError, match="'layer4.0.shortcut.0'"):
        to_nir(model, input_shape=(3, 8, 8))
    # a graph inflor cannot build: a CubaLIF node
    shape = np.array([3])
    g = nir.NIRGraph(nodes={"input": nir.Input(input_type={"input": shape}),
                            "cuba": nir.CubaLIF(tau_syn=np.ones(3), tau_mem=np.ones(3), r=np.ones(3),
                                                v_leak=np.zeros(3), v_threshold=np.ones(3)),
                            "output": nir.Output(output_type={"output": shape})},
                     edges=[("input", "cuba"), ("cuba", "output")])
    with pytest.raises(NIRExportError, match="'cuba'"):
        from_nir(g)
    bad = tmp_path / "bad.nir"
    bad.write_text("not hdf5")
    with pytest.raises(NIRExportError, match="not a NIR file"):
        from_nir(bad)


def test_single_neuron_layer_sizes():
    # every parameter array has the layer's full shape (no size-1 layers)
    model, _ = small_model("tinyconv", neuron="lif")
    g = to_nir(model)
    assert g.nodes["features.0.neuron"].tau.shape == (4, 8, 8)
    assert g.metadata["dt"] == 1.0
    node = make_neuron("lif")
    assert node.decay == pytest.approx(1 - 1 / g.nodes["features.0.neuron"].tau.flat[0])


@pytest.mark.parametrize("name", ["tinyconv", "resnet19_fc256"])
def test_a_built_graph_exports_again(name):
    """from_nir's network is itself exportable: to_nir(from_nir(g)) runs the same spikes."""
    model, x = small_model(name, neuron="srif")
    shape = tuple(x.shape[-3:])
    net = from_nir(to_nir(model, input_shape=shape))
    again = from_nir(to_nir(net, input_shape=shape))
    xs = model.to_multistep(x)
    a_spikes, b_spikes = record_spikes(net), record_spikes(again)
    with torch.no_grad():
        assert torch.equal(net(xs), again(xs))
    assert len(a_spikes) == len(b_spikes) > 0 and all(torch.equal(a, b) for a, b in zip(a_spikes, b_spikes))
