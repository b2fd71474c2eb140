"""Half precision through the neurons and the distribution losses.

* Membrane statistics are summed and kept in float32 whatever the input dtype or autocast state,
  so a channel whose Σ H² is far beyond float16's range (65504) still gives the float32 statistics,
  losses and gradients (both backends, which both charge a half-precision input in float32).
* bfloat16 and float16 inputs through the fused kernels give the reference's spikes computed on
  the float32 copy of the same input, gradients within half precision's rounding, and float32
  statistics, for every surrogate family, both MPR kinds, record_stats and detach_reset.
"""
import pytest
import torch
from torch import nn

from inflor.functional import NeuronConfig, neuron_reference
from inflor.fused import fused_neuron
from inflor.losses import im_loss, im_loss_official, mpd_loss
from inflor.mpr import MPR
from inflor.neuron import collect_stats, make_neuron, set_record_stats
from inflor.stats import MembraneStats, membrane_stats, step_sums
from inflor.surrogate import make_surrogate

HALF = (torch.float16, torch.bfloat16)
BACKENDS = {"fused": fused_neuron, "reference": neuron_reference}


def big_channel_input(dtype: torch.dtype) -> torch.Tensor:
    """[T=4, B=8, C=2, 64, 64]: 131 072 values per channel with E[X²] ≈ 2.4, so Σ H² ≈ 4·10⁵ per
    channel (6× float16's largest number); values exactly representable in ``dtype``."""
    g = torch.Generator().manual_seed(0)
    return (torch.randn(4, 8, 2, 64, 64, generator=g) * 1.5 + 0.4).to(dtype)


def losses_and_grad(backend: str, x: torch.Tensor, neuron: str):
    """Statistics, MPD-Loss, both IM-Losses and dL/dx for one layer of ``neuron`` on ``x``."""
    node = make_neuron(neuron, backend=backend)
    node.record_stats = True
    xr = x.detach().requires_grad_(True)
    node(xr)
    st = node.stats
    parts = {"mpd": mpd_loss([st]), "im": im_loss([st]), "im_official": im_loss_official([st])}
    (gx,) = torch.autograd.grad(sum(parts.values()), xr)
    return st, parts, gx


@pytest.mark.parametrize("dtype", HALF)
@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_statistics_of_a_half_precision_layer_equal_the_float32_ones(backend, dtype):
    x = big_channel_input(dtype)
    st, parts, gx = losses_and_grad(backend, x, "if")
    st32, parts32, gx32 = losses_and_grad(backend, x.float(), "if")
    assert float(st32.h_sqsum.detach().min()) > 6 * 65504     # the case float16 cannot hold
    # both backends charge the membrane in float32 from the half input: only the order of the
    # float32 sums differs
    rtol = 1e-4
    for name in ("h_sum", "h_sqsum", "x_sum", "o_sum"):
        a, b = getattr(st, name), getattr(st32, name)
        assert a.dtype == torch.float32, name
        torch.testing.assert_close(a, b, rtol=rtol, atol=1e-2)
    for name, v in parts.items():
        assert v.dtype == torch.float32 and torch.isfinite(v), name
        torch.testing.assert_close(v, parts32[name], rtol=rtol, atol=1e-7)
    # the membrane's gradient: the same, up to its rounding to the input's dtype
    assert gx.dtype == dtype and torch.isfinite(gx).all()
    torch.testing.assert_close(gx, gx32.to(dtype), rtol=0, atol=float(gx32.abs().max()) * 2 ** -7)


def test_statistics_under_cpu_bfloat16_autocast_are_float32_and_finite():
    """A conv → neuron layer under CPU bfloat16 autocast (what ``train.amp`` does on the CPU): the
    conv returns bfloat16, the statistics and losses stay float32 and equal the float32 run's."""
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 4, 3, padding=1)
    x = torch.randn(4 * 8, 3, 64, 64) + 1.0

    def run(amp: bool):
        node = make_neuron("srif", backend="fused")
        node.record_stats = True
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
            h = conv(x).reshape(4, 8, 4, 64, 64)
            node(h)
        return h.dtype, node.stats, mpd_loss([node.stats]) + im_loss([node.stats])

    dt, st, loss = run(True)
    _, st32, loss32 = run(False)
    assert dt == torch.bfloat16 and st.h_sqsum.dtype == torch.float32 and loss.dtype == torch.float32
    assert torch.isfinite(st.h_sqsum).all() and float(st.h_sqsum.max()) > 65504
    # bfloat16 convolution rounds each H by up to 2^-8 relative: the per-channel means agree to that
    torch.testing.assert_close(st.mean(), st32.mean(), rtol=2e-2, atol=2e-2)
    torch.testing.assert_close(loss, loss32, rtol=5e-2, atol=1e-3)


def test_step_sums_and_membrane_stats_accumulate_in_float32():
    h = torch.full((2, 3, 4), 300.0, dtype=torch.float16)          # 300² = 90 000 > 65504
    s, sq = step_sums(h)
    assert s.dtype == sq.dtype == torch.float32
    assert sq.tolist() == [2 * 4 * 90000.0] * 3
    st = membrane_stats(h.unsqueeze(0), x=h, o=torch.ones_like(h))
    assert st.h_sqsum.dtype == st.x_sum.dtype == st.o_sum.dtype == torch.float32
    assert float(st.x_sum) == 300.0 * 24
    assert membrane_stats(h.double().unsqueeze(0)).h_sum.dtype == torch.float64


def test_hand_made_half_statistics_are_widened():
    st = MembraneStats(h_sum=torch.ones(3, dtype=torch.float16), h_sqsum=torch.ones(3, dtype=torch.bfloat16),
                       count=1, timesteps=1, x_sum=torch.tensor(1.0, dtype=torch.float16))
    assert st.h_sum.dtype == st.h_sqsum.dtype == st.x_sum.dtype == torch.float32 and st.o_sum is None


# ------------------------------------------------------------ every dtype through the kernels
SURROGATE_KW = {"rectangle": dict(width=0.8), "tanh": dict(k=2.5), "dspike": dict(k=3.0),
                "triangle": dict(gamma=0.6), "atan": dict(alpha=2.0)}
# (surrogate, variant) per dtype: every family, both MPR kinds, record_stats and detach_reset
# appear for both half dtypes; a case is one compiled kernel pair, so the grid is a covering one
CASES = [("rectangle", "mpr_inflor"), ("tanh", "stats_detach"), ("dspike", "mpr_tanh"),
         ("triangle", "detach"), ("atan", "mpr_inflor_stats")]


def _case(variant: str):
    cfg = NeuronConfig(reset="soft", decay=0.9, detach_reset="detach" in variant)
    mpr = MPR("inflor") if "mpr_inflor" in variant else MPR("tanh", 4.0) if "mpr_tanh" in variant else None
    return cfg, mpr, "stats" in variant


@pytest.mark.parametrize("dtype", HALF)
@pytest.mark.parametrize("name,variant", CASES)
def test_half_inputs_through_the_fused_kernels(name, variant, dtype):
    cfg, mpr, stats = _case(variant)
    sur = make_surrogate(name, **SURROGATE_KW[name])
    g = torch.Generator().manual_seed(1)
    x = (torch.randn(4, 2, 3, 16, generator=g) * 0.8 + 0.3).to(dtype)
    w = torch.randn(x.shape, generator=g)
    results = {}
    for backend, fn in BACKENDS.items():
        xr = (x if backend == "fused" else x.float()).detach().requires_grad_(True)
        out, st = fn(xr, cfg, sur, mpr, stats)
        loss = (out.float() * w).sum()
        if stats:
            loss = loss + 0.1 * st.h_sum.sum() + 0.05 * st.h_sqsum.sum() + 0.3 * st.x_sum + 0.2 * st.o_sum
        (gx,) = torch.autograd.grad(loss, xr)
        results[backend] = (out, st, gx)
    (o, st, gx), (o_ref, st_ref, gx_ref) = results["fused"], results["reference"]
    assert o.dtype == dtype and gx.dtype == dtype
    # the kernels compute in float32 from the half input: the same spikes as the float32 reference
    assert torch.equal(o.float(), o_ref), "spikes differ"
    assert 0 < o_ref.sum() < o_ref.numel()
    assert (gx_ref != 0).any()
    assert not ((gx == 0) & (gx_ref.abs() > 1e-3)).any(), "a gradient is silently zero"
    # dL/dx: the float32 reference's, rounded once to the half dtype
    torch.testing.assert_close(gx, gx_ref.to(dtype), rtol=0, atol=float(gx_ref.abs().max()) * 2 ** -7)
    if stats:
        for f in ("h_sum", "h_sqsum", "x_sum", "o_sum"):
            assert getattr(st, f).dtype == torch.float32
            torch.testing.assert_close(getattr(st, f), getattr(st_ref, f), rtol=1e-5, atol=1e-4)


def test_collect_stats_of_a_half_precision_network_are_float32():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Identity())
    node = make_neuron("inflor")
    net.append(node)
    set_record_stats(net)
    net(torch.randn(2, 3, 4, 5, dtype=torch.bfloat16))
    (st,) = collect_stats(net)
    assert st.h_sum.dtype == torch.float32 and mpd_loss([st]).dtype == torch.float32
