"""The fused backend against the reference: identical spikes, equal input gradients, statistics
and statistics' gradients, for every variant (resets, decay, input scale, detach_reset, every
surrogate, both MPR kinds, record_stats, chunked long T, dtypes, layouts), plus its fallbacks.

Compilation dominates the run time, so the cases are grouped to share compiled kernels: the
forward kernel depends only on (T, reset kind, record_stats, chunking, dtype), the backward kernel
also on detach_reset, the surrogate family and the MPR kind; every numeric setting is a runtime
input. No timing here: speed lives in ``benchmarks/``.
"""
import math
import warnings

import pytest
import torch

import inflor.fused as fused
from inflor.functional import NeuronConfig, neuron_reference
from inflor.fused import fused_neuron
from inflor.mpr import MPR
from inflor.neuron import BACKENDS, make_neuron
from inflor.surrogate import ESG, SURROGATES, Rectangle, Tanh, make_surrogate

F64 = dict(rtol=1e-9, atol=1e-11)

# a kernel that fails to compile falls back to the reference with a warning, and the comparisons
# below would still pass: here that warning is an error (the fallback tests catch it themselves)
pytestmark = pytest.mark.filterwarnings("error:inflor fused neuron backend. compiling")

CONFIGS = {
    "if_hard": NeuronConfig(),
    "lif_hard": NeuronConfig(decay=0.25),
    "aaai": NeuronConfig(input_scale=0.25),
    "srif": NeuronConfig(reset="soft"),
    "soft_by_vth": NeuronConfig(reset="soft", soft_reset_amount=0.5),
    "hard_v_reset": NeuronConfig(decay=0.8, v_reset=0.2),
    "soft_detach": NeuronConfig(reset="soft", decay=0.9, detach_reset=True),
    "hard_detach_scaled": NeuronConfig(decay=0.5, input_scale=1.7, v_threshold=0.3, detach_reset=True),
}


def make_input(shape, dtype=torch.float64, seed=0, scale=0.8, shift=0.3):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=torch.float64).mul(scale).add(shift).to(dtype)


def run_both(x, cfg, sur, mpr=None, stats=False, seed=1):
    """Forward and backward through both backends with the same random loss; returns
    (spikes, stats, dL/dx) per backend. The loss touches every statistic, channel by channel."""
    g = torch.Generator().manual_seed(seed)
    w_out = torch.randn(x.shape, generator=g, dtype=torch.float64).to(x.device, x.dtype)
    results = []
    for fn in (fused_neuron, neuron_reference):
        xr = x.detach().clone().requires_grad_(True)
        out, st = fn(xr, cfg, sur, mpr, stats)
        loss = (out * w_out).sum()
        if stats:
            w = torch.linspace(-1.0, 1.0, st.channels, dtype=st.h_sum.dtype, device=x.device)
            loss = loss + (w * st.h_sum).sum() + (0.3 * w * st.h_sqsum).sum() + 0.7 * st.x_sum + 1.3 * st.o_sum
        (gx,) = torch.autograd.grad(loss, xr)
        results.append((out, st, gx))
    return results


def assert_match(x, cfg, sur, mpr=None, stats=False, tol=F64):
    (o1, s1, g1), (o2, s2, g2) = run_both(x, cfg, sur, mpr, stats)
    assert o1.dtype == o2.dtype and o1.shape == x.shape
    assert torch.equal(o1, o2), "spikes differ"
    assert o1.sum() > 0 and o1.sum() < o1.numel(), "degenerate test input: all or no spikes"
    torch.testing.assert_close(g1, g2, **tol)
    if stats:
        for name in ("h_sum", "h_sqsum", "x_sum", "o_sum"):
            torch.testing.assert_close(getattr(s1, name), getattr(s2, name), **tol)
        assert (s1.count, s1.timesteps, s1.channels) == (s2.count, s2.timesteps, s2.channels)
    return o1, g1


# ------------------------------------------------------------------ one kernel, every setting
@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_every_reset_decay_scale_and_detach(name):
    assert_match(make_input((4, 3, 5, 2, 2)), CONFIGS[name], Rectangle())


@pytest.mark.parametrize("name,flags", [("if_hard", (True, True, True)), ("lif_hard", (True, False, True)),
                                        ("aaai", (False, True, True)), ("srif", (True, True, False)),
                                        ("hard_v_reset", (True, False, False)),
                                        ("hard_detach_scaled", (False, False, True))])
def test_identity_settings_are_compiled_in(name, flags):
    """s = 1, λ = 1 and V_reset = 0 select kernels without that multiply or subtract (each of
    these configurations is compared with the reference above); other values stay runtime inputs."""
    cfg = CONFIGS[name]
    spec = fused._spec(fused.op_settings(cfg, None), cfg.reset, cfg.detach_reset, "box", "none", False)
    assert (spec.s_is_1, spec.lam_is_1, spec.v_reset_is_0) == flags


@pytest.mark.parametrize("shape", [(4, 7), (4, 2, 9), (4, 2, 3, 5, 4), (4, 1, 3)])
def test_trailing_shapes(shape):
    assert_match(make_input(shape, seed=3), CONFIGS["lif_hard"], Rectangle())


def test_non_contiguous_inputs():
    base = make_input((5, 6, 4, 3))
    for x in (base.transpose(1, 3)[:4], base[:4, ::2], base.permute(0, 2, 1, 3)[:4]):
        assert not x.is_contiguous()
        assert_match(x, CONFIGS["srif"], Rectangle())


def test_gradient_flows_through_every_step():
    """Sanity of the comparison itself: a loss on the last step reaches the first input."""
    x = make_input((4, 2, 3)).requires_grad_(True)
    out, _ = fused_neuron(x, NeuronConfig(decay=0.9, reset="soft"), Tanh(k=1.0))
    out[-1].sum().backward()
    assert x.grad[0].abs().sum() > 0


# ------------------------------------------------------------------------------ surrogates
SURROGATE_KW = {"rectangle": dict(width=0.8), "tanh": dict(k=2.5), "esg": dict(k_min=1.0, k_max=10.0),
                "sigmoid": dict(alpha=3.0), "atan": dict(alpha=2.5), "triangle": dict(gamma=0.6),
                "dspike": dict(k=3.0)}


@pytest.mark.parametrize("name", sorted(SURROGATES))
def test_every_surrogate(name):
    sur = make_surrogate(name, **SURROGATE_KW[name])
    assert fused.fusable(CONFIGS["srif"], sur, None)
    assert_match(make_input((4, 3, 5, 4)), CONFIGS["srif"], sur)
    assert_match(make_input((4, 3, 5, 4), seed=5), CONFIGS["hard_v_reset"], sur)


def test_esg_k_is_a_runtime_input():
    """ESG's K changes every epoch: gradients follow it and nothing is recompiled."""
    sur = ESG()
    x = make_input((4, 3, 5, 4))
    cfg = CONFIGS["lif_hard"]
    assert_match(x, cfg, sur)
    kernels = dict(fused._KERNELS)
    grads = []
    for epoch in (0, 5, 9):
        sur.set_epoch(epoch, 10)
        grads.append(assert_match(x, cfg, sur)[1])
    assert fused._KERNELS == kernels, "ESG's K must not trigger a recompile"
    assert not torch.allclose(grads[0], grads[2])


# ------------------------------------------------------------------------------------- MPR
@pytest.mark.parametrize("kind,k,vth", [("inflor", 3.0, 0.5), ("inflor", 3.0, 0.3), ("inflor", 2.0, 1.2),
                                        ("tanh", 3.0, 0.5), ("tanh", 5.0, 0.6),
                                        ("tanh", 1.0, 0.35)])
def test_mpr(kind, k, vth):
    cfg = NeuronConfig(reset="soft", v_threshold=vth)
    x = make_input((4, 3, 5, 4), scale=1.5, shift=vth - 0.2)
    assert_match(x, cfg, Rectangle(), MPR(kind, k))


def test_mpr_keeps_spikes_changes_gradients():
    """docs/design.md §2: at V_th = 0.5 MPR leaves the forward spikes unchanged, not the gradients."""
    x = make_input((4, 3, 5, 4))
    cfg = CONFIGS["srif"]
    (o_plain, _, g_plain), _ = run_both(x, cfg, Rectangle())
    (o_mpr, _, g_mpr), _ = run_both(x, cfg, Rectangle(), MPR("inflor"))
    assert torch.equal(o_plain, o_mpr)
    assert not torch.allclose(g_plain, g_mpr)


# ------------------------------------------------------------------------------ statistics
@pytest.mark.parametrize("shape", [(4, 3, 7), (4, 3, 5, 2, 3)])
@pytest.mark.parametrize("name", ["lif_hard", "soft_detach", "hard_detach_scaled"])
def test_record_stats_and_their_gradients(name, shape):
    """(The surrogate and MPR enter the backward only through dO/dH, independently of the
    statistics' terms, so one surrogate here covers them.)"""
    assert_match(make_input(shape, seed=7), CONFIGS[name], Rectangle(), stats=True)


# shapes [T, B, C, *spatial] with at least ROWS_MIN_S positions per channel: the rows layout (the
# statistics summed per row inside the kernels) on the CPU. 20 = 2 vectors of 8 + a tail of 4.
ROWS_SHAPES = [(3, 2, 3, 4, 5), (3, 3, 2, 16)]


def test_which_inputs_use_the_rows_layout():
    assert fused.ROWS_MIN_S == 16
    use = lambda shape, stats=True: fused._use_rows(torch.zeros(shape), stats)  # noqa: E731
    assert use((3, 2, 3, 4, 4)) and use((3, 2, 3, 17)) and use((3, 2, 3, 4, 5))
    assert not use((3, 2, 3, 5, 3)) and not use((3, 2, 7)) and not use((3, 2))   # S = 15, 1, 1
    assert not use((3, 2, 3, 4, 4), stats=False)
    assert not fused._use_rows(torch.zeros((3, 2, 3, 4, 4), device="meta"), True)


@pytest.mark.parametrize("shape", ROWS_SHAPES)
@pytest.mark.parametrize("name", ["lif_hard", "soft_detach", "hard_detach_scaled"])
def test_record_stats_in_the_rows_layout(name, shape):
    assert fused._use_rows(torch.zeros(shape), True)
    assert_match(make_input(shape, seed=7), CONFIGS[name], Rectangle(), stats=True)


@pytest.mark.parametrize("name", ["sigmoid", "dspike", "atan", "triangle"])
def test_record_stats_in_the_rows_layout_every_surrogate_family(name):
    """The rows backward evaluates the surrogate with V_th per row (see the rows layout's note):
    every family, hard and soft reset."""
    sur = make_surrogate(name, **SURROGATE_KW[name])
    assert_match(make_input((2, 2, 3, 16), seed=2), CONFIGS["lif_hard"], sur, stats=True)
    assert_match(make_input((2, 2, 3, 16), seed=3), CONFIGS["srif"], sur, stats=True)


@pytest.mark.parametrize("sur", ["rectangle", "sigmoid"])
def test_record_stats_with_mpr(sur):
    """With MPR the forward sums per row and the backward reads x as [T, N] (per-element spread
    gradients of the statistics); and the small-S flat layout in both."""
    cfg = NeuronConfig(reset="soft")
    for shape in ((2, 2, 3, 16), (2, 2, 3, 5)):
        x = make_input(shape, scale=1.5, shift=0.3)
        assert_match(x, cfg, make_surrogate(sur, **SURROGATE_KW[sur]), MPR("inflor", 3.0), stats=True)


def test_record_stats_in_the_rows_layout_float32_and_non_contiguous():
    x = make_input((3, 2, 4, 4, 6), dtype=torch.float32)
    assert_match(x, CONFIGS["lif_hard"], Rectangle(), stats=True, tol=F32)
    base = make_input((3, 4, 2, 4, 8))
    x = base.transpose(1, 2)[:, :, :, :, ::2].transpose(3, 4)     # [3, 2, 4, 4, 4], S = 16
    assert not x.is_contiguous() and fused._use_rows(x, True)
    assert_match(x, CONFIGS["lif_hard"], Rectangle(), stats=True)


def test_rows_kernels_are_one_loop_nest():
    """The point of the rows layout: per-element stores and per-row sums in one loop over rows
    (inductor splits it when some value reads nothing per row; see the rows layout's note).
    Checked on the longest chunk, with state, for the forward and a bell-family backward; and as
    a training step at T = 8 runs them: the backward of a residual pair reading y, a, b and the
    shortcut's bytes; and the flat forward writing its spikes' bytes too is one loop over
    elements. (A rows forward writing bytes split the loop: the bytes are written by the flat
    forward only, ``ops._forward``.)"""
    T = fused.ROWS_MAX_UNROLL
    base = fused.Spec(T=T, family="", mpr="", stats=True, state=True, reset="hard", detach=False, rows=True)
    pair = base._replace(family="bell", mpr="none", stats=False, state=False, affine=True, extra=True,
                         extra_bits=True)
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        for direction, spec in (("fwd", base), ("bwd", base._replace(family="windowed_bell", mpr="none",
                                                                      reset="soft")),
                                ("bwd", pair),
                                ("fwd", base._replace(stats=False, state=False, rows=False, bits=True))):
            src = _generated_source(fused._kernel(direction, spec, torch.float32, "cpu"))
            assert src.count("for(int64_t x0") == 1, f"{direction} {spec}: the loop split"
            assert "for(int64_t x1" in src or not spec.rows
    finally:
        torch.set_num_threads(old)


def test_stats_gradient_needs_no_spike_gradient():
    """A loss on the statistics alone (the IM-Loss case) back-propagates into x."""
    x = make_input((4, 3, 5)).requires_grad_(True)
    _, st = fused_neuron(x, CONFIGS["lif_hard"], Rectangle(), None, True)
    ((st.mean() - 0.5) ** 2).sum().backward()
    xr = x.detach().clone().requires_grad_(True)
    _, sr = neuron_reference(xr, CONFIGS["lif_hard"], Rectangle(), None, True)
    ((sr.mean() - 0.5) ** 2).sum().backward()
    torch.testing.assert_close(x.grad, xr.grad, **F64)


# ----------------------------------------------------------------------- T: short and long
def test_single_step():
    assert_match(make_input((1, 4, 6), shift=0.6), CONFIGS["lif_hard"], Rectangle())


def test_long_sequences_run_in_chunks(monkeypatch):
    """T > MAX_UNROLL runs chunk by chunk, carrying U forwards and dL/dU backwards, and adding
    up the statistics (MAX_UNROLL lowered to 4 to keep the compile small)."""
    monkeypatch.setattr(fused, "MAX_UNROLL", 4)
    assert fused._chunks(10) == [(0, 4), (4, 8), (8, 10)]
    assert fused._chunks(10, 8) == [(0, 8), (8, 10)]
    x = make_input((8, 3, 4, 3), seed=11)
    assert_match(x, CONFIGS["hard_v_reset"], Rectangle(), stats=True)
    assert_match(x, CONFIGS["soft_detach"], Rectangle(), stats=True)


def test_long_sequences_run_in_chunks_in_the_rows_layout(monkeypatch):
    """The same with the statistics summed per row (chunks of ROWS_MAX_UNROLL, lowered to 2)."""
    monkeypatch.setattr(fused, "ROWS_MAX_UNROLL", 2)
    x = make_input((5, 2, 3, 16), seed=11)
    assert_match(x, CONFIGS["hard_v_reset"], Rectangle(), stats=True)
    assert_match(x, CONFIGS["soft_detach"], Rectangle(), stats=True)
    # with MPR the backward reads the chunks' U, saved in rows, as [N]
    assert_match(x, CONFIGS["srif"], Rectangle(), MPR("inflor", 3.0), stats=True)


# ----------------------------------------------------------------------------------- dtypes
def test_float32():
    x = make_input((4, 3, 5, 4), dtype=torch.float32)
    assert_match(x, CONFIGS["lif_hard"], Rectangle(), tol=dict(rtol=1e-5, atol=1e-6))
    assert_match(x, CONFIGS["srif"], Rectangle(), tol=dict(rtol=1e-5, atol=1e-6))


F32 = dict(rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["tanh", "esg", "sigmoid", "dspike", "atan", "triangle"])
def test_float32_surrogates(name):
    """float32 runs the kernels' own exp (a polynomial, see ``_exp_nonpositive``), not torch's:
    gradients equal the reference's torch.tanh/sigmoid-based ones within float32 tolerance."""
    sur = make_surrogate(name, **SURROGATE_KW[name])
    assert_match(make_input((4, 3, 5, 4), dtype=torch.float32), CONFIGS["srif"], sur, tol=F32)


@pytest.mark.parametrize("kind,k,vth,sur", [("inflor", 3.0, 0.5, "rectangle"),   # middle piece only
                                            ("inflor", 3.0, 0.3, "rectangle"),   # cube roots too
                                            ("inflor", 3.0, 0.5, "tanh"),        # φ and φ' everywhere
                                            ("tanh", 4.0, 0.5, "sigmoid")])
def test_float32_mpr(kind, k, vth, sur):
    cfg = NeuronConfig(reset="soft", v_threshold=vth)
    x = make_input((4, 3, 5, 4), dtype=torch.float32, scale=1.5, shift=vth - 0.2)
    assert_match(x, cfg, make_surrogate(sur, **SURROGATE_KW[sur]), MPR(kind, k), tol=F32)


def test_default_inflor_window_needs_only_the_middle_piece():
    """A box surrogate's window |φ(H) - V_th| < W is an interval of H; InfLoR's defaults (V_th = ½,
    width 1) put it at 0 < H < 1, where φ is the tanh form, so the kernel skips the cube roots."""
    def kernel_kind(vth, width):
        cfg = NeuronConfig(reset="soft", v_threshold=vth)
        settings = tuple(fused.op_settings(cfg, MPR("inflor", 3.0)))
        p, kind = fused._params(settings, "soft", Rectangle.fused_key(), width, "inflor", torch.float64,
                                torch.device("cpu"))
        return kind, p[fused.P_LO].item(), p[fused.P_HI].item()
    assert kernel_kind(0.5, 1.0) == ("tanh", 0.0, 1.0)
    kind, lo, hi = kernel_kind(0.3, 1.0)
    assert kind == "inflor" and lo < 0.0 < hi < 1.0
    assert kernel_kind(0.5, 1.2)[0] == "inflor"
    # the window in H is exactly where the reference's mask on φ(H) is open
    h = torch.linspace(-2.0, 3.0, 2001, dtype=torch.float64)
    ref = (MPR("inflor", 3.0)(h) - 0.3).abs() < 0.5
    assert torch.equal(ref, (h > lo) & (h < hi))


def test_polynomial_exp():
    """exp(y), y ≤ 0, within (2 + |y|)·1e-7 relative error over float32's normal range (the |y|
    term is float32's rounding of y·log2(e)), flushed to 2^-126 below it; float64 is torch.exp."""
    y = torch.cat([-torch.logspace(-8, 1.94, 20001), torch.zeros(1)]).double()   # float32 values
    got = fused._exp_nonpositive(y.float()).double()
    want = torch.exp(y)
    assert ((got - want).abs() / want / (2.0 + y.abs())).max() < 1e-7
    assert ((got - want).abs() / want)[y > -1.0].max() < 2e-7
    tiny = fused._exp_nonpositive(torch.tensor([-90.0, -1e4, -math.inf]))
    assert torch.equal(tiny, torch.full((3,), 2.0 ** -126))
    assert torch.equal(fused._exp_nonpositive(y), torch.exp(y))
    # whole powers of two are exact: 2^-k comes from the exponent bits, the polynomial is 1 at 0
    k = torch.arange(0.0, 127.0)
    assert torch.equal(fused._exp2_neg(k), torch.exp2(-k))


def test_bfloat16_computes_in_float32():
    """Half inputs are computed in float32 inside the kernel: spikes equal the reference run in
    float32 on the same values; gradients equal its gradients rounded to bfloat16."""
    x = make_input((4, 3, 5, 4), dtype=torch.bfloat16)
    cfg = CONFIGS["lif_hard"]
    (o16, _, g16), _ = run_both(x, cfg, Rectangle())
    (o32, _, g32), _ = run_both(x.float(), cfg, Rectangle())
    assert o16.dtype == torch.bfloat16 and g16.dtype == torch.bfloat16
    assert torch.equal(o16.float(), o32)
    torch.testing.assert_close(g16.float(), g32.to(torch.bfloat16).float(), rtol=1e-2, atol=1e-2)


# ------------------------------------------------------------------------ memory (not time)
def test_saves_only_the_input_for_backward():
    """What autograd keeps for the neuron: the input x itself (no copy, no H, no spikes), the
    surrogate's 0-d parameter and the (here empty) chunk-boundary membranes."""
    x = make_input((4, 3, 5, 4), dtype=torch.float32).requires_grad_(True)
    y = x * 1.0   # a non-leaf input, as in a network
    saved = []

    def pack(t):
        saved.append(t)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out, _ = fused_neuron(y, CONFIGS["lif_hard"], Rectangle())
    big = [t for t in saved if t.numel() > 1]
    assert len(big) == 1 and big[0].data_ptr() == y.data_ptr()
    assert sorted(t.numel() for t in saved if t.numel() <= 1) == [0, 1]


def test_cpu_kernels_are_compiled_per_thread_count():
    """Inductor bakes the OpenMP thread count into CPU code but not into its disk-cache key; the
    count is passed explicitly (``cpp.threads``) and is part of our key, so a kernel compiled
    serially at 1 thread is never served to a 2-thread process or after set_num_threads."""
    spec = fused.Spec(T=2, family="", mpr="", stats=False, state=False, reset="hard", detach=False)
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        k1 = fused._kernel("fwd", spec, torch.float32, "cpu")
        torch.set_num_threads(2)
        k2 = fused._kernel("fwd", spec, torch.float32, "cpu")
        assert k1 is not k2 and fused._kernel("fwd", spec, torch.float32, "cpu") is k2
    finally:
        torch.set_num_threads(old)
    assert fused._cpu_threads("cuda") == 0


def _generated_source(kernel) -> str:
    """The C++/Python inductor generated for a CPU kernel (a private attribute of torch's)."""
    src = getattr(getattr(getattr(kernel, "artifact", None), "_compiled_fn", None), "source_code", None)
    if src is None:
        pytest.skip("this torch version does not expose the generated source of a standalone artifact")
    return src


def test_cpu_kernels_run_in_parallel_with_more_than_one_thread():
    """With 2 threads the generated loop is an OpenMP parallel region (once it was serial at any
    thread count: inductor decided from the traced example's size); at 1 thread it is plain."""
    spec = fused.Spec(T=3, family="", mpr="", stats=False, state=False, reset="hard", detach=False)
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        parallel = _generated_source(fused._kernel("fwd", spec, torch.float32, "cpu"))
        torch.set_num_threads(1)
        serial = _generated_source(fused._kernel("fwd", spec, torch.float32, "cpu"))
    finally:
        torch.set_num_threads(old)
    assert "#pragma omp parallel" in parallel
    assert "#pragma omp parallel" not in serial


# ---------------------------------------------------------------- integration and fallbacks
def test_registered_and_picked_by_auto(monkeypatch):
    assert BACKENDS["fused"] is fused_neuron
    calls = []
    monkeypatch.setattr(fused, "fused_neuron", lambda *a: calls.append(1) or neuron_reference(*a))
    node = make_neuron("lif")
    x = make_input((4, 2, 3), dtype=torch.float32)
    monkeypatch.setattr(fused, "AUTO_MIN_NUMEL", 10 ** 9)
    node(x)
    assert not calls, "tiny inputs stay on the reference"
    monkeypatch.setattr(fused, "AUTO_MIN_NUMEL", 0)
    node(x)
    assert calls, "backend='auto' must pick the fused kernels"


def test_node_with_fused_backend_matches_reference_node():
    x = make_input((4, 3, 5, 4))
    nodes = [make_neuron("srif", backend=b) for b in ("fused", "reference")]
    outs, stats, grads = [], [], []
    for node in nodes:
        node.record_stats = True
        xr = x.clone().requires_grad_(True)
        y = node(xr)
        (y.sum() + node.stats.h_sqsum.sum()).backward()
        outs.append(y), stats.append(node.stats), grads.append(xr.grad)
    assert torch.equal(*outs)
    torch.testing.assert_close(stats[0].h_sum, stats[1].h_sum, **F64)
    torch.testing.assert_close(*grads, **F64)


def test_fig2_spike_counts_on_the_fused_path():
    x = (torch.tensor([1.5, 1.2, 1.5, 0.9, 1.4], dtype=torch.float64) * 0.5).reshape(5, 1).repeat(1, 2)
    srif = fused_neuron(x, NeuronConfig(reset="soft"), Rectangle())[0]
    hard = fused_neuron(x, NeuronConfig(reset="hard"), Rectangle())[0]
    assert srif[:, 0].tolist() == [1, 0, 1, 1, 0] and hard[:, 0].tolist() == [1, 1, 1, 0, 1]


def test_custom_mpr_and_smooth_surrogate_fall_back_to_the_reference():
    x = make_input((4, 3, 5))
    cfg = CONFIGS["srif"]
    custom = lambda u: u * 0.9 + 0.05  # noqa: E731
    with pytest.warns(RuntimeWarning, match="MPR"):
        out, _ = fused_neuron(x, cfg, Rectangle(), custom)
    assert torch.equal(out, neuron_reference(x, cfg, Rectangle(), custom)[0])
    smooth = Rectangle(spiking=False)
    assert not fused.fusable(cfg, smooth, None)
    fused._WARNED.discard("unfusable-surrogate")
    with pytest.warns(RuntimeWarning, match="surrogate"):
        out, _ = fused_neuron(x, cfg, smooth)
    torch.testing.assert_close(out, neuron_reference(x, cfg, smooth)[0])


def test_compile_failure_falls_back_with_one_warning(monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("no C++ compiler")
    monkeypatch.setattr(fused, "_kernel", broken)
    monkeypatch.setattr(fused, "_FAILED", set())
    monkeypatch.setattr(fused, "_WARNED", set())
    x = make_input((4, 3, 5))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            assert_match(x, CONFIGS["lif_hard"], Rectangle(), stats=True)
    assert len([w for w in caught if "falling back" in str(w.message)]) == 1


def test_backward_compile_failure_runs_the_kernel_source_uncompiled(monkeypatch):
    real = fused._kernel

    def fwd_only(direction, *args):
        if direction == "bwd":
            raise RuntimeError("backward kernel unavailable")
        return real(direction, *args)
    monkeypatch.setattr(fused, "_kernel", fwd_only)
    monkeypatch.setattr(fused, "_FAILED", set())
    monkeypatch.setattr(fused, "_WARNED", set())
    with pytest.warns(RuntimeWarning, match="falling back"):
        assert_match(make_input((4, 3, 5)), CONFIGS["lif_hard"], Rectangle(), stats=True)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_reference():
    x = make_input((4, 3, 5, 4), dtype=torch.float32).cuda()
    assert_match(x, CONFIGS["lif_hard"], Rectangle().cuda(), tol=dict(rtol=1e-5, atol=1e-6))
    assert_match(x, CONFIGS["srif"], ESG().cuda(), MPR("inflor"), stats=True,
                 tol=dict(rtol=1e-5, atol=1e-5))


def test_meta_tensors_use_the_reference():
    """Shape inference on the meta device (no data, no compiler) goes through the reference."""
    x = torch.empty(4, 2, 3, device="meta")
    out, st = fused_neuron(x, CONFIGS["lif_hard"], Rectangle().to("meta"), None, True)
    assert out.device.type == "meta" and out.shape == x.shape and st.h_sum.shape == (3,)


def test_a_new_surrogate_declares_its_fused_form_in_its_own_class():
    """Adding a surrogate of an existing family touches its class only: a family, the buffer of
    its runtime parameter and (A, B, W). A subclass that declares nothing (it may redefine grad)
    is not taken for its parent's form."""
    from inflor.surrogate import FUSED_FORMS, Surrogate

    class HalfBox(Surrogate):
        """g(x) = 2·1[|x| < h/4]/h: a box of width h/2 (so not Rectangle's formula)."""
        fused_family, fused_param = "box", "h"

        def __init__(self, h=1.0):
            super().__init__()
            self._buffer("h", h)

        @staticmethod
        def fused_values(v):
            return 2.0 / v, 0.0, v / 4.0

        def grad(self, x):
            return (x.abs() < self.h.to(x.dtype) / 4).to(x.dtype) * 2.0 / self.h.to(x.dtype)

        def primitive(self, x):
            return (2.0 * x / self.h.to(x.dtype) + 0.5).clamp(0.0, 1.0)

    class SharperTanh(Tanh):
        def grad(self, x):
            return 2.0 * super().grad(x)

    try:
        assert FUSED_FORMS[HalfBox.fused_key()] is HalfBox
        assert fused.fusable(CONFIGS["srif"], HalfBox(), None)
        assert_match(make_input((4, 3, 5)), CONFIGS["srif"], HalfBox(1.2))
        assert SharperTanh.fused_family is None and not fused.fusable(CONFIGS["srif"], SharperTanh(), None)
    finally:
        FUSED_FORMS.pop(HalfBox.fused_key(), None)
