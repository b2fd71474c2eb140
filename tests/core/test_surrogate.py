"""Surrogates: g is the derivative of the primitive, the spike backward is g, ESG's schedule."""
import math

import pytest
import torch

from inflor.surrogate import (ESG, SURROGATES, ATan, DSpike, Rectangle, Sigmoid, Tanh, Triangle,
                              esg_k, make_surrogate)

ALL = [Rectangle(), Rectangle(0.6), Tanh(3.0), ESG(), Sigmoid(4.0), ATan(2.0), Triangle(0.5), DSpike(3.0)]


@pytest.mark.parametrize("sg", ALL, ids=lambda s: repr(s))
def test_forward_is_heaviside_backward_is_g(sg):
    x = torch.linspace(-2, 2, 401, dtype=torch.float64, requires_grad=True)
    o = sg(x)
    assert torch.equal(o.detach(), (x.detach() >= 0).double())
    o.sum().backward()
    torch.testing.assert_close(x.grad, sg.grad(x.detach()))


@pytest.mark.parametrize("sg", ALL, ids=lambda s: repr(s))
def test_g_is_derivative_of_primitive_float64(sg):
    # points away from the kinks of the piecewise surrogates
    x = torch.tensor([-1.7, -0.61, -0.37, -0.2, -0.05, 0.03, 0.21, 0.33, 0.47, 0.88, 1.3],
                     dtype=torch.float64, requires_grad=True)
    (d,) = torch.autograd.grad(sg.primitive(x).sum(), x)
    torch.testing.assert_close(d, sg.grad(x.detach()))


def test_tanh_backward_formula():
    k = 2.5
    x = torch.tensor([-0.4, 0.0, 0.1, 0.7], dtype=torch.float64, requires_grad=True)
    Tanh(k)(x).sum().backward()
    expected = [(k / 2) * (1 - math.tanh(k * v) ** 2) for v in (-0.4, 0.0, 0.1, 0.7)]
    assert x.grad.tolist() == pytest.approx(expected)


def test_rectangle_window_is_zero_to_one_at_threshold_half():
    h = torch.tensor([-0.01, 0.01, 0.5, 0.99, 1.01])
    assert Rectangle().grad(h - 0.5).tolist() == [0, 1, 1, 1, 0]


def test_esg_schedule():
    N = 100
    assert esg_k(0, N) == pytest.approx(1.0)
    assert esg_k(N / 2, N) == pytest.approx(math.sqrt(10), rel=1e-9)  # ≈ 3.16
    assert esg_k(N, N) == pytest.approx(10.0)
    assert esg_k(25, N) == pytest.approx(1.78, abs=0.01)
    s = ESG()
    assert s.k == 1.0
    s.set_epoch(50, 100)
    assert s.k == pytest.approx(3.1623, abs=1e-4)
    x = torch.tensor([0.1], requires_grad=True)
    s(x).sum().backward()
    assert x.grad.item() == pytest.approx(s.k / 2 * (1 - math.tanh(s.k * 0.1) ** 2), rel=1e-6)


def test_surrogate_state_survives_checkpoint():
    s = ESG(k_min=1.0, k_max=8.0)
    s.set_epoch(30, 40)
    restored = ESG(k_min=1.0, k_max=8.0)
    restored.load_state_dict(s.state_dict())
    assert restored.k == s.k and float(restored.k_max) == 8.0
    assert set(s.state_dict()) == {"k_value", "k_min", "k_max"}


def test_make_surrogate():
    assert isinstance(make_surrogate("esg"), ESG)
    assert make_surrogate({"name": "tanh", "k": 5.0}).k == 5.0
    assert isinstance(make_surrogate(None), Rectangle)
    with pytest.raises(ValueError, match="valid choices"):
        make_surrogate("erf")
    assert set(SURROGATES) >= {"rectangle", "tanh", "esg", "sigmoid", "atan", "triangle"}
    with pytest.raises(ValueError, match="k_min <= k_max"):
        ESG(k_min=5, k_max=2)


def test_repr_shows_values_and_survives_the_meta_device():
    from inflor.surrogate import ESG
    assert repr(ESG(k_min=2.0, k_max=8.0)) == "ESG(k_value=2, k_min=2, k_max=8)"
    with torch.device("meta"):
        meta = ESG()
    assert repr(meta) == "ESG(k_value=?, k_min=?, k_max=?)"
