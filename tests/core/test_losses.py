"""MPD-Loss, IM-Loss and the task losses against docs/design.md §6 written out here."""
import pytest
import torch
import torch.nn.functional as F

from inflor.losses import (ce_of_mean, ce_per_step, im_loss, im_loss_official, membrane_stats,
                           mpd_loss, mpd_terms)
from inflor.neuron import IFNode, collect_stats, set_record_stats
from inflor.stats import MembraneStats


def relu(v):
    return max(v, 0.0)


def mpd_by_hand(h, vth=0.5, kd=1.0, ks=0.25, km=1.25, terms="DSM"):
    """h: [T, B, C, H, W]; returns the layer's channel-mean of the chosen terms (plain floats)."""
    total = 0.0
    C = h.shape[2]
    for c in range(C):
        v = h[:, :, c].reshape(-1).double()
        mu = v.mean().item()
        sigma = (v.var(unbiased=False).item() + 1e-10) ** 0.5
        d = relu(mu - kd * sigma - vth) ** 2 + relu(vth - mu - kd * sigma) ** 2
        s = relu(mu - ks * sigma - 1) ** 2 + relu(-mu - ks * sigma) ** 2
        m = relu(max(mu - km * sigma, 1 - mu - km * sigma)) ** 2
        total += sum({"D": d, "S": s, "M": m}[t] for t in terms)
    return total / C


@pytest.mark.parametrize("terms", ["DSM", "D", "S", "M", "DS", "SM"])
def test_mpd_loss_equals_formula(terms):
    g = torch.Generator().manual_seed(3)
    layers = [torch.randn(2, 3, 4, 2, 2, generator=g, dtype=torch.float64) * s + m
              for s, m in [(0.1, 0.9), (2.0, -0.5), (0.3, 0.4)]]
    expected = sum(mpd_by_hand(h, terms=terms) for h in layers) / len(layers)
    assert mpd_loss(layers, terms=terms).item() == pytest.approx(expected, rel=1e-9)
    assert mpd_loss([membrane_stats(h) for h in layers], terms=terms).item() == pytest.approx(expected, rel=1e-9)


def stats_of(mu, sigma):
    """A one-channel MembraneStats with exactly this μ and σ (two points μ ± σ)."""
    h = torch.tensor([mu - sigma, mu + sigma], dtype=torch.float64).reshape(1, 2, 1)
    return membrane_stats(h)


@pytest.mark.parametrize("mu,sigma,zero", [
    (0.5, 0.2, True),    # threshold within μ ± σ
    (0.9, 0.2, False),   # μ − σ = 0.7 > V_th: degenerate (always fires)
    (0.1, 0.2, False),   # μ + σ = 0.3 < V_th: never fires
])
def test_degeneration_zero_exactly_when_constraint_holds(mu, sigma, zero):
    d = mpd_terms(stats_of(mu, sigma))["D"].item()
    assert (d == 0) is zero


@pytest.mark.parametrize("mu,sigma,zero", [(0.5, 0.4, True), (1.3, 0.4, False), (-0.3, 0.4, False),
                                           (1.05, 0.4, True)])
def test_saturation_zero_exactly_when_constraint_holds(mu, sigma, zero):
    # constraint: μ − 0.25σ ≤ 1 and μ + 0.25σ ≥ 0
    assert (mpd_terms(stats_of(mu, sigma))["S"].item() == 0) is zero


@pytest.mark.parametrize("mu,sigma,zero", [(0.5, 0.5, True), (0.5, 0.2, False), (0.2, 0.4, False),
                                           (0.0, 0.8, True)])
def test_mismatch_zero_exactly_when_constraint_holds(mu, sigma, zero):
    # constraint: μ − 1.25σ ≤ 0 and μ + 1.25σ ≥ 1 (the band spans the window [0, 1])
    assert (mpd_terms(stats_of(mu, sigma))["M"].item() == 0) is zero


def test_im_loss_equals_formula():
    g = torch.Generator().manual_seed(4)
    layers = [torch.randn(3, 2, 5, generator=g, dtype=torch.float64) + m for m in (0.1, 0.5, 1.2)]
    expected = sum((h.mean().item() - 0.5) ** 2 for h in layers) / 3
    assert im_loss(layers).item() == pytest.approx(expected, rel=1e-12)


def test_im_loss_official_form():
    g = torch.Generator().manual_seed(5)
    T = 4
    xs = [torch.rand(T, 2, 3, generator=g, dtype=torch.float64) for _ in range(4)]
    hs = [x.clone() for x in xs]
    os_ = [(x > 0.5).double() for x in xs]
    roles = ["standalone", "block_output", "block_output", "block_output"]
    stats = [membrane_stats(h, x=x, o=o, role=r) for h, x, o, r in zip(hs, xs, os_, roles)]
    zs = [os_[0].mean(), xs[1].mean(), xs[2].mean(), xs[3].mean()]
    terms = [(z.item() - 0.5 / T) ** 2 for z in zs]
    assert im_loss_official(stats).item() == pytest.approx((terms[1] + terms[2]) / 2)
    assert im_loss_official(stats, drop_first_last=False).item() == pytest.approx(sum(terms) / 4)


def test_losses_backpropagate_into_membrane_through_the_neuron():
    torch.manual_seed(6)
    x = (torch.randn(4, 8, 3, 2, 2) * 0.3 + 1.2).requires_grad_()
    net = torch.nn.Sequential(IFNode(reset="soft"))
    set_record_stats(net)
    net(x)
    stats = collect_stats(net)
    assert len(stats) == 1 and stats[0].name == "0"
    for loss in (mpd_loss(stats), im_loss(stats)):
        (g,) = torch.autograd.grad(loss, x, retain_graph=True)
        assert g.abs().sum() > 0
    # IM-loss pulls mean(H) towards V_th: a gradient step lowers it
    loss = im_loss(stats)
    (g,) = torch.autograd.grad(loss, x)
    x2 = (x - 0.5 * g).detach()
    net(x2)
    assert im_loss(collect_stats(net)).item() < loss.item()


def test_restricted_selection():
    a, b = IFNode(), IFNode(role="block_inner")
    net = torch.nn.Sequential(a, b)
    set_record_stats(net)
    net(torch.rand(2, 3, 4))
    assert [s.name for s in collect_stats(net, im_restricted_only=True)] == ["0"]
    assert len(collect_stats(net)) == 2


def test_mpd_loss_errors():
    with pytest.raises(ValueError, match="'D', 'S', 'M'"):
        mpd_loss([torch.rand(2, 2, 3)], terms="DX")
    with pytest.raises(ValueError, match="set_record_stats"):
        mpd_loss([])


def test_stats_pooling_equals_one_batch():
    h = torch.randn(3, 10, 4, dtype=torch.float64)
    pooled = membrane_stats(h[:, :4]) + membrane_stats(h[:, 4:])
    whole = membrane_stats(h)
    torch.testing.assert_close(pooled.mean(), whole.mean())
    torch.testing.assert_close(pooled.std(), whole.std())
    assert isinstance(pooled, MembraneStats) and pooled.count == whole.count


def test_task_losses():
    torch.manual_seed(7)
    logits, y = torch.randn(3, 5, 4), torch.randint(0, 4, (5,))
    assert ce_of_mean(logits, y).item() == pytest.approx(F.cross_entropy(logits.mean(0), y).item())
    per = sum(F.cross_entropy(logits[t], y).item() for t in range(3)) / 3
    assert ce_per_step(logits, y).item() == pytest.approx(per, rel=1e-6)
    with pytest.raises(ValueError, match=r"\[T, B, K\]"):
        ce_of_mean(logits.mean(0), y)
