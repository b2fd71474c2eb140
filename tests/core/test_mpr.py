"""MPR φ (InfLoR Eq. 10, AAAI Eq. 8) and the quantization error (InfLoR Eq. 9)."""
import math

import pytest
import torch

from inflor.analysis import quantization_error
from inflor.mpr import MPR, phi_inflor, phi_tanh, resolve_mpr


def test_phi_inflor_pieces_by_hand():
    u = torch.tensor([-7.0, 0.25, 8.0], dtype=torch.float64)
    expected = [1 - 8 ** (1 / 3), math.tanh(3 * -0.25) / (2 * math.tanh(1.5)) + 0.5, 2.0]
    assert phi_inflor(u).tolist() == pytest.approx(expected)


@pytest.mark.parametrize("point,value", [(0.0, 0.0), (0.5, 0.5), (1.0, 1.0)])
def test_phi_inflor_continuous(point, value):
    eps = 1e-9
    u = torch.tensor([point - eps, point, point + eps], dtype=torch.float64)
    assert phi_inflor(u).tolist() == pytest.approx([value] * 3, abs=1e-8)


@pytest.mark.parametrize("k", [1.0, 3.0, 7.0])
def test_phi_tanh_fixed_points(k):
    assert phi_tanh(torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64), k).tolist() == pytest.approx([0, 0.5, 1])


def test_phi_increasing_and_gradients_finite():
    u = torch.linspace(-5, 5, 2001, dtype=torch.float64, requires_grad=True)
    for phi in (phi_inflor, lambda v: phi_tanh(v, 3.0)):
        y = phi(u)
        assert bool((y[1:] > y[:-1]).all())
        (g,) = torch.autograd.grad(y.sum(), u)
        assert torch.isfinite(g).all()


def test_resolve_mpr():
    assert resolve_mpr(None) is None and resolve_mpr("none") is None
    assert resolve_mpr("tanh", 5.0) == MPR("tanh", 5.0)
    with pytest.raises(ValueError, match="valid choices"):
        MPR("sigmoid")


def test_quantization_error_by_hand():
    u = torch.tensor([0.2, 0.7, 1.5, -0.5])
    # spikes 0, 1, 1, 0 -> errors 0.04, 0.09, 0.25, 0.25
    assert quantization_error(u).item() == pytest.approx((0.04 + 0.09 + 0.25 + 0.25) / 4)


def test_quantization_error_normal_half_one_before_and_after_mpr():
    u = torch.randn(100_000, generator=torch.Generator().manual_seed(0), dtype=torch.float64) + 0.5
    before = quantization_error(u).item()
    after = quantization_error(phi_inflor(u)).item()
    assert before == pytest.approx(0.45, abs=0.02)
    assert after == pytest.approx(0.05, abs=0.01)
