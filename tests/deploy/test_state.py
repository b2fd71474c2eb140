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


#: the fused kernels compile per structure (~30 s each on a 2-core CPU): hard and soft reset, a
#: decay, MPR
FUSED = [pytest.param(kind, "rectangle", "fused", marks=pytest.mark.slow) for kind in ("lif", "srif", "inflor")]


@pytest.mark.parametrize("kind,surrogate,backend",
                         [(k, s, "reference") for k in sorted(PRESETS) for s in sorted(SURROGATES)] + FUSED)
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
    if backend == "fused":      # the kernels' state equals the reference's (within its contract)
        ref = make_neuron(kind, surrogate_function=make_surrogate(surrogate), backend="reference")
        u0 = torch.randn(3, 5) * 0.3
        s_ref, u_ref = ref(x, state=u0, return_state=True)
        s_fused, u_fused = node(x, state=u0, return_state=True)
        assert torch.equal(s_fused, s_ref)
        torch.testing.assert_close(u_fused, u_ref, rtol=1e-6, atol=1e-6)
        u0 = u0.requires_grad_(True)
        g_ref = torch.autograd.grad((ref(x, state=u0, return_state=True)[0] * w).sum(), (x, u0))
        g_fused = torch.autograd.grad((node(x, state=u0, return_state=True)[0] * w).sum(), (x, u0))
        for a, b in zip(g_fused, g_ref):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


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


@pytest.mark.slow
def test_state_through_the_operator_under_torch_compile():
    """``torch.compile(fullgraph=True)`` of a call with a state: one ``inflor::neuron`` node, the
    same spikes, final membrane and dL/dU0 as the eager fused path."""
    torch.manual_seed(2)
    node = make_neuron("lif", backend="fused")
    x = torch.randn(3, 2, 4, dtype=torch.float64) * 0.7
    u0 = (torch.randn(2, 4, dtype=torch.float64) * 0.3).requires_grad_(True)

    def f(x, u0):
        s, u = node(x, state=u0, return_state=True)
        return (s * torch.arange(4, dtype=x.dtype)).sum() + (u * u).sum(), s, u

    torch._dynamo.reset()
    loss_e, s_e, u_e = f(x, u0)
    g_e, = torch.autograd.grad(loss_e, u0)
    loss_c, s_c, u_c = torch.compile(f, fullgraph=True)(x, u0)
    g_c, = torch.autograd.grad(loss_c, u0)
    assert torch.equal(s_c, s_e)
    torch.testing.assert_close(u_c, u_e)
    torch.testing.assert_close(g_c, g_e)
    assert g_e.abs().sum() > 0
