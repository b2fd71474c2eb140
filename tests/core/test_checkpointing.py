"""Activation checkpointing gives the same gradients, statistics and buffers as the plain model."""
import copy

import pytest
import torch
from torch import nn

from inflor.checkpointing import Checkpoint, checkpoint_modules
from inflor.layers import TimeFold
from inflor.losses import im_loss
from inflor.neuron import collect_stats, make_neuron, set_record_stats
from inflor.norm import make_norm


class Block(nn.Module):
    def __init__(self, cin, cout, backend, dropout=0.0):
        super().__init__()
        self.conv = TimeFold(nn.Conv2d(cin, cout, 3, padding=1, bias=False))
        self.norm = make_norm("tdbn", cout, dims=2, alpha=1.0, v_threshold=0.5)
        self.drop = nn.Dropout(dropout)
        self.neuron = make_neuron("lif", backend=backend)

    def forward(self, x):
        return self.neuron(self.drop(self.norm(self.conv(x))))


class Net(nn.Module):
    def __init__(self, backend="reference", dropout=0.0):
        super().__init__()
        self.b1 = Block(2, 4, backend, dropout)
        self.b2 = Block(4, 4, backend, dropout)
        self.fc = nn.Linear(4 * 4 * 4, 3)

    def forward(self, x):
        y = self.b2(self.b1(x))
        return self.fc(y.flatten(2))


def step(model, x, with_stats=False):
    model.zero_grad()
    xr = x.clone().requires_grad_(True)
    out = model(xr)
    loss = out.square().mean()
    if with_stats:
        loss = loss + 2.0 * im_loss(collect_stats(model), 0.5)
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    return out.detach(), xr.grad, grads


def pair(backend="reference", dropout=0.0, dtype=torch.float64):
    torch.manual_seed(0)
    plain = Net(backend, dropout).to(dtype)
    ckpt = copy.deepcopy(plain)
    return plain, ckpt


def assert_same(a, b):
    (o1, gx1, g1), (o2, gx2, g2) = a, b
    torch.testing.assert_close(o1, o2, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(gx1, gx2, rtol=1e-10, atol=1e-12)
    assert len(g1) == len(g2)
    for (n1, v1), (n2, v2) in zip(sorted(g1.items()), sorted(g2.items())):
        assert n1.replace("module.", "") == n2.replace("module.", "")
        torch.testing.assert_close(v1, v2, rtol=1e-10, atol=1e-12)


def x_input(T=6, dtype=torch.float64):
    return torch.randn(T, 2, 2, 4, 4, generator=torch.Generator().manual_seed(1), dtype=dtype)


def test_equal_gradients_and_buffers_updated_once():
    plain, ckpt = pair()
    assert checkpoint_modules(ckpt, names=["b1", "b2"]) == ["b1", "b2"]
    assert isinstance(ckpt.b1, Checkpoint)
    x = x_input()
    for _ in range(2):
        assert_same(step(plain, x), step(ckpt, x))
    sd_plain, sd_ckpt = plain.state_dict(), ckpt.state_dict()
    assert list(sd_plain) == list(sd_ckpt), "the wrapper must not show in state dict keys"
    for k in sd_plain:   # BatchNorm running statistics: one update per step, not two
        torch.testing.assert_close(sd_plain[k], sd_ckpt[k], rtol=1e-12, atol=1e-12)


def test_statistics_gradients_flow_through_checkpointed_blocks():
    plain, ckpt = pair()
    checkpoint_modules(ckpt, types=(Block,))
    for m in (plain, ckpt):
        set_record_stats(m, True)
    x = x_input()
    assert_same(step(plain, x, with_stats=True), step(ckpt, x, with_stats=True))
    s_plain, s_ckpt = collect_stats(plain), collect_stats(ckpt)
    assert len(s_plain) == len(s_ckpt) == 2
    for a, b in zip(s_plain, s_ckpt):   # the stats left behind are the forward's, not the recompute's
        assert b.h_sum.grad_fn is not None
        torch.testing.assert_close(a.h_sum, b.h_sum, rtol=1e-12, atol=1e-12)


def test_dropout_replays_the_same_mask():
    plain, ckpt = pair(dropout=0.3)
    checkpoint_modules(ckpt, names=["b1"])
    x = x_input()
    torch.manual_seed(5)
    a = step(plain, x)
    torch.manual_seed(5)
    b = step(ckpt, x)
    assert_same(a, b)


def test_fused_neurons_inside_checkpoints():
    plain, ckpt = pair(backend="fused")
    checkpoint_modules(ckpt, types=(Block,))
    for m in (plain, ckpt):
        set_record_stats(m, True)
    x = x_input(T=4)
    assert_same(step(plain, x, with_stats=True), step(ckpt, x, with_stats=True))


def test_state_dicts_load_both_ways_and_eval_is_a_plain_call():
    plain, ckpt = pair()
    checkpoint_modules(ckpt, names=["b1", "b2.conv"])
    x = x_input()
    step(plain, x)
    ckpt.load_state_dict(plain.state_dict())           # plain file into the wrapped model
    fresh = Net().double()
    fresh.load_state_dict(ckpt.state_dict())           # wrapped model's file into a plain one
    for m in (plain, ckpt, fresh):
        m.eval()
    with torch.no_grad():
        torch.testing.assert_close(ckpt(x), plain(x))
        torch.testing.assert_close(fresh(x), plain(x))


def test_disabled_and_bad_arguments():
    plain, ckpt = pair()
    checkpoint_modules(ckpt, names=["b1"], enabled=False)
    assert "enabled=False" in repr(ckpt.b1)
    x = x_input()
    assert_same(step(plain, x), step(ckpt, x))
    with pytest.raises(ValueError, match="names"):
        checkpoint_modules(plain)
    with pytest.raises(ValueError, match="no submodule"):
        checkpoint_modules(plain, names=["nope"])
