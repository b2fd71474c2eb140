"""tdBN / BN over (T, B, H, W), time folding and BN folding."""
import math

import pytest
import torch
from torch import nn

from inflor.layers import TimeFold, repeat_time
from inflor.norm import TemporalBatchNorm, fold_batchnorm, make_norm


def test_statistics_over_time_batch_space_per_channel():
    torch.manual_seed(0)
    x = torch.randn(4, 6, 3, 5, 5, dtype=torch.float64) * torch.tensor([1.0, 3.0, 0.5]).view(1, 1, 3, 1, 1).double() + 2
    bn = TemporalBatchNorm(3, alpha=1.0, v_threshold=0.5).double()
    y = bn(x)
    mu = x.mean((0, 1, 3, 4), keepdim=True)
    var = x.var((0, 1, 3, 4), unbiased=False, keepdim=True)
    torch.testing.assert_close(y, 0.5 * (x - mu) / torch.sqrt(var + 1e-5))
    n = 4 * 6 * 5 * 5
    torch.testing.assert_close(bn.running_mean, 0.1 * mu.flatten())
    torch.testing.assert_close(bn.running_var, 0.9 + 0.1 * var.flatten() * n / (n - 1))


@pytest.mark.parametrize("alpha", [1.0, 1 / math.sqrt(2)])
def test_output_scale_alpha_vth_at_init(alpha):
    x = torch.randn(4, 16, 8, 6, 6) * 5 + 3
    y = TemporalBatchNorm(8, alpha=alpha)(x)
    assert y.std((0, 1, 3, 4), unbiased=False).mean().item() == pytest.approx(alpha * 0.5, rel=1e-3)


def test_plain_bn_and_none_and_1d():
    x = torch.randn(3, 10, 4) * 2 + 1
    y = make_norm("bn", 4, dims=1)(x)
    assert y.std((0, 1), unbiased=False).mean().item() == pytest.approx(1.0, rel=1e-3)
    assert isinstance(make_norm("none", 4), nn.Identity)
    with pytest.raises(ValueError, match=r"valid choices: \['tdbn', 'bn', 'none'\]"):
        make_norm("layernorm", 4)
    with pytest.raises(ValueError, match=r"\[T, B, C, H, W\] with C=4"):
        make_norm("tdbn", 4)(torch.randn(2, 3, 5, 2, 2))


def test_eval_uses_running_statistics():
    bn = TemporalBatchNorm(2)
    bn.running_mean.fill_(1.0)
    bn.running_var.fill_(4.0)
    bn.eval()
    x = torch.full((2, 3, 2, 1, 1), 3.0)
    torch.testing.assert_close(bn(x), torch.full_like(x, 0.5 * 2.0 / math.sqrt(4 + 1e-5)))


def test_fold_into_conv_matches_eval_output():
    torch.manual_seed(1)
    conv, bn = nn.Conv2d(3, 4, 3, padding=1, bias=False), TemporalBatchNorm(4, alpha=0.7)
    for _ in range(3):
        bn(TimeFold(conv)(torch.randn(2, 5, 3, 6, 6)))
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-0.3, 0.3)
    bn.eval()
    x = torch.randn(2, 5, 3, 6, 6)
    folded = fold_batchnorm(conv, bn)
    torch.testing.assert_close(TimeFold(folded)(x), bn(TimeFold(conv)(x)), rtol=1e-4, atol=1e-5)
    lin, bn1 = nn.Linear(5, 3), TemporalBatchNorm(3, dims=1)
    bn1(TimeFold(lin)(torch.randn(2, 4, 5)))
    bn1.eval()
    x = torch.randn(2, 4, 5)
    torch.testing.assert_close(TimeFold(fold_batchnorm(lin, bn1))(x), bn1(TimeFold(lin)(x)), rtol=1e-4, atol=1e-5)


def test_time_fold_and_repeat():
    x = torch.randn(2, 3, 1, 4, 4)
    conv = nn.Conv2d(1, 2, 3)
    y = TimeFold(conv)(x)
    assert y.shape == (2, 3, 2, 2, 2)
    torch.testing.assert_close(y[1], conv(x[1]))
    r = repeat_time(torch.randn(3, 2), 4)
    assert r.shape == (4, 3, 2) and torch.equal(r[0], r[3])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", [(3, 5, 6, 7, 9), (2, 4, 6, 16, 16), (3, 11, 6)])
def test_renormalize_replays_training_batch_norm_bit_for_bit(dtype, shape):
    # the fast replay (per-channel affine from the kept batch statistics) is what runs on this
    # CPU — asserted, so the equality below is not a comparison of BN with itself
    from inflor.norm import _affine_replays_batch_norm
    torch.manual_seed(0)
    x = torch.randn(shape, dtype=dtype) * 2 + 0.5
    bn = TemporalBatchNorm(6, dims=len(shape) - 3 if len(shape) == 5 else 1, alpha=0.7).to(dtype)
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-0.3, 0.3)
    y = bn(x)
    assert _affine_replays_batch_norm(x.reshape(-1, *x.shape[2:]))
    assert bn.last_settings[3] is not None
    running = bn.running_mean.clone()
    assert torch.equal(bn.renormalize(x, bn.last_settings), y)
    assert torch.equal(bn.running_mean, running)


def test_renormalize_keeps_batch_norm_where_the_replay_is_not_proven():
    from inflor.norm import _affine_replays_batch_norm
    x = torch.randn(8, 3, 4, 4)
    assert not _affine_replays_batch_norm(x.half())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not _affine_replays_batch_norm(x)
        bn = TemporalBatchNorm(3)
        y = bn(x.view(2, 4, 3, 4, 4))
        assert bn.last_settings[3] is None
        assert torch.equal(bn.renormalize(x.view(2, 4, 3, 4, 4), bn.last_settings), y)


def test_strided_input_keeps_the_batch_norm_recompute_and_stays_exact():
    # a transposed or cropped view rounds differently in ATen's strided path: no affine replay
    x = torch.randn(3, 4, 6, 9, 9)
    for view in (x.transpose(3, 4), x[..., :7]):
        bn = TemporalBatchNorm(6)
        y = bn(view)
        assert bn.last_settings[3] is None
        assert torch.equal(bn.renormalize(view, bn.last_settings), y)


def test_one_value_per_channel_in_training_is_refused_as_torch_does():
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        TemporalBatchNorm(4, dims=1)(torch.randn(1, 1, 4))


def test_renormalize_stays_differentiable_with_grad_mode_on():
    # inside the pairs' backward it writes into scratch memory (out=); called with autograd on,
    # it must stay an ordinary differentiable function of its input
    torch.manual_seed(0)
    bn = TemporalBatchNorm(3, 2)
    x = torch.randn(2, 4, 3, 4, 4)
    y = bn(x)
    xg = x.clone().requires_grad_(True)
    z = bn.renormalize(xg, bn.last_settings)
    assert torch.equal(z, y)
    z.sum().backward()
    assert xg.grad is not None and torch.isfinite(xg.grad).all()
