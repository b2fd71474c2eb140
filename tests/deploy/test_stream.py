"""Stream.step equals model(x) per step; BN / MPR folding equals the unfolded network."""
import pytest
import torch

from inflor.deploy import Stream, fold_model
from inflor.deploy.graph import fold_mpr
from inflor.neuron import make_neuron, spiking_nodes

from tests.helpers.small_models import model_params, per_neuron, record_spikes, small_model


def _steps(stream, model, x):
    stream.reset()
    if x.dim() == 5:        # event frames [B, T, C, H, W]
        return torch.stack([stream.step(x[:, t]) for t in range(x.shape[1])])
    return torch.stack([stream.step(x) for _ in range(model.timesteps)])


@pytest.mark.parametrize("name", model_params())
def test_stream_equals_model(name):
    """Every spike of every neuron is the same, bit for bit; the logits within 1e-6: the head's
    products and reductions (a linear layer, the voting mean) run on [1, B] rows per step instead
    of [T·B], and the BLAS may pick another kernel, summing in another order, for another row
    count (tinyconv's fc differed by one float32 ulp on a Sapphire Rapids CPU)."""
    model, x = small_model(name, neuron="inflor" if name.startswith("resnet19") else "if")
    gm = fold_model(model)
    streams = Stream(model, fold=False), Stream(model)     # (copies: built before the hooks)
    n = len(spiking_nodes(gm))
    ref_spikes, fold_spikes = record_spikes(model), record_spikes(gm)
    with torch.no_grad():
        ref = model(x)
        folded = gm(model.to_multistep(x))
    for stream, want, want_spikes in zip(streams, (ref, folded), (ref_spikes, fold_spikes)):
        got_spikes = record_spikes(stream.module)
        out = _steps(stream, model, x)
        got = per_neuron(got_spikes, n)
        assert len(got) == len(want_spikes) == n and n > 0
        assert all(torch.equal(a, b) for a, b in zip(got, want_spikes))
        torch.testing.assert_close(out, want, rtol=1e-6, atol=1e-6)
        got_spikes.clear()
        assert torch.equal(_steps(stream, model, x), out)     # reset() starts over


@pytest.mark.parametrize("name,kind", [("tinyconv", "aaai"), ("resnet19_dvs", "srif"), ("cifarnet_voting", "lif")])
def test_folding_matches_unfolded(name, kind):
    model, x = small_model(name, neuron=kind)
    spikes_ref, spikes_fold = [], []
    gm = fold_model(model)
    for m, store in ((model, spikes_ref), (gm, spikes_fold)):
        for _, node in spiking_nodes(m):
            node.register_forward_hook(lambda mod, inp, out, store=store: store.append(out))
    with torch.no_grad():
        ref = model(x)
        out = gm(model.to_multistep(x))
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in gm.modules())
    assert "norm" not in gm.code and "bn" not in gm.code        # every BN node removed
    mismatches = sum(int((a != b).sum()) for a, b in zip(spikes_ref, spikes_fold))
    assert sum(int(s.sum()) for s in spikes_ref) > 0
    assert mismatches == 0
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)


def test_mpr_fold_is_exact_at_half():
    torch.manual_seed(1)
    node = make_neuron("inflor")
    folded = make_neuron("inflor")
    fold_mpr(folded)
    assert folded.mpr is None and folded.v_threshold == 0.5
    x = torch.randn(6, 1000)
    x[0, :10] = torch.tensor([0.5, 0.49999997, 0.50000006, 0.0, 1.0, -0.2, 1.3, 0.4, 0.6, 0.5])
    assert torch.equal(node(x), folded(x))
    # another threshold: the folded one is φ⁻¹(V_th), and spikes agree on random inputs
    node, folded = make_neuron("inflor", v_threshold=0.8), make_neuron("inflor", v_threshold=0.8)
    fold_mpr(folded)
    assert folded.v_threshold == pytest.approx(node.mpr.inverse(0.8)) and folded.v_threshold != 0.8
    assert torch.equal(node(x), folded(x))


def test_step_rejects_wrong_shape():
    model, _ = small_model("tinyconv")
    with pytest.raises(ValueError, match="one time step"):
        Stream(model).step(torch.zeros(2, 3, 8, 8))
