"""Explicit neuron state: chunked runs equal one call bit for bit, gradients flow through the state."""
import pytest
import torch

from inflor.functional import NeuronConfig, neuron_reference
from inflor.neuron import PRESETS, make_neuron
from inflor.surrogate import SURROGATES, make_surrogate


def test_hand_computed_state():
    # IF, V_th = 0.5, U0 = 0.3, X = [0.3, 0.1]: H0 = 0.6 fires; hard: U = 0, H1 = 0.1 (no spike);
    # soft (r = 1): U = -0.4, H1 = -0.3
    x = torch.tensor([[0.3], [0.1]])
    u0 = torch.tensor([0.3])
    for kind, u_final in (("if", 0.1), ("srif", -0.3)):
        spikes, u = make_neuron(kind)(x, state=u0, return_state=True)
        assert spikes.flatten().tolist() == [1.0, 0.0]
        assert u.item() == pytest.approx(u_final)
    # without a state the same input does not fire
    assert make_neuron("if")(x).sum() == 0


@pytest.mark.parametrize("kind", sorted(PRESETS))
@pytest.mark.parametrize("surrogate", sorted(SURROGATES))
@pytest.mark.parametrize("backend", ["reference", "fused"])
def test_chunked_equals_whole(kind, surrogate, backend):
    torch.manual_seed(0)
    node = make_neuron(kind, surrogate_function=make_surrogate(surrogate), backend=backend)
    x = (torch.randn(7, 3, 5) * 0.7).requires_grad_(True)
    whole, u_whole = node(x, return_state=True)
    assert torch.equal(whole, node(x))        # return_state changes nothing
    outs, u = [], None
    for t0, t1 in ((0, 2), (2, 3), (3, 7)):
        o, u = node(x[t0:t1], state=u, return_state=True)
        outs.append(o)
    chunked = torch.cat(outs)
    assert torch.equal(chunked, whole) and torch.equal(u, u_whole)
    # gradients flow through the passed state: the same dL/dx as the whole sequence
    w = torch.randn_like(whole)
    gw, = torch.autograd.grad((whole * w).sum() + u_whole.sum(), x)
    gc, = torch.autograd.grad((chunked * w).sum() + u.sum(), x)
    torch.testing.assert_close(gc, gw, rtol=0, atol=0)


def test_state_gradient_and_detach():
    node = make_neuron("lif", detach_reset=True)
    u0 = torch.full((2, 3), 0.2, requires_grad=True)
    x = torch.full((3, 2, 3), 0.1)
    _, u = node(x, state=u0, return_state=True)
    g, = torch.autograd.grad(u.sum(), u0)
    # no spike (H stays < 0.5), reset detached: U[T-1] = λ³U0 + ..., so dU/dU0 = 0.25³
    torch.testing.assert_close(g, torch.full((2, 3), 0.25 ** 3))
    _, u = node(x, state=u0.detach(), return_state=True)
    assert not u.requires_grad          # a detached state cuts the graph (truncated BPTT)


def test_state_shape_is_checked():
    with pytest.raises(ValueError, match="one step's shape"):
        make_neuron("if")(torch.zeros(2, 3, 4), state=torch.zeros(4, 3))


def test_half_input_state_in_float32():
    cfg = NeuronConfig()
    x = torch.rand(3, 4).half()
    s, _, u = neuron_reference(x, cfg, make_surrogate(None), return_state=True)
    assert s.dtype == torch.float16 and u.dtype == torch.float32
