"""norm → neuron pairs keep one tensor: the neuron's input is recomputed from the norm's in
backward, bit for bit, and composes with outer saved-tensor hooks (checkpointing, accounting)."""
import pytest
import torch

from inflor.neuron import make_neuron
from inflor.norm import TemporalBatchNorm
from inflor.pairing import norm_neuron
from tests.helpers.saved import distinct_saved_bytes


def _pair(dtype, dims, kind="inflor", stats=False, backend="fused"):
    torch.manual_seed(0)
    C = 6
    norm = TemporalBatchNorm(C, dims).to(dtype)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)
        norm.bias.uniform_(-0.2, 0.2)
    neuron = make_neuron(kind, backend=backend)
    neuron.record_stats = stats
    shape = (4, 3, C, 5, 5) if dims == 2 else (4, 3, C)
    return norm, neuron, torch.randn(shape, dtype=dtype)


def _grads(norm, neuron, y, paired, extra=None, extra_norm=None, spikes=False):
    norm.zero_grad()
    yi = y.clone().requires_grad_(True)
    ei = None if extra is None else extra.clone().requires_grad_(True)
    if paired:
        e = None if ei is None else ((extra_norm, ei * 1.0) if extra_norm else ei * 1.0)
        s = norm_neuron(norm, neuron, yi * 1.0, e, extra_spikes=spikes)
    else:
        z = norm(yi * 1.0)
        s = neuron(z if ei is None else z + (extra_norm(ei * 1.0) if extra_norm else ei * 1.0))
    g = torch.linspace(-1, 1, s.numel(), dtype=s.dtype).view(s.shape)
    loss = (s * g).sum()
    if neuron.stats is not None:
        loss = loss + neuron.stats.h_sqsum.sum()
    loss.backward()
    return [s.detach(), yi.grad, norm.weight.grad, norm.bias.grad] + ([] if ei is None else [ei.grad])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("dims,stats,backend", [(2, False, "fused"), (1, True, "fused"), (2, True, "reference")])
def test_pair_gradients_bit_identical_to_unpaired(dtype, dims, stats, backend):
    norm, neuron, y = _pair(dtype, dims, stats=stats, backend=backend)
    a = _grads(norm, neuron, y, paired=False)
    b = _grads(norm, neuron, y, paired=True)
    for u, v in zip(a, b):
        assert torch.equal(u, v)


@pytest.mark.parametrize("neuron_kind", ["inflor", "lif"])
@pytest.mark.parametrize("kind", ["spikes", "real", "norm"])
def test_residual_pair_bit_identical(kind, neuron_kind):
    norm, neuron, y = _pair(torch.float32, 2, kind=neuron_kind)
    r = (torch.rand_like(y) < 0.3).float() if kind == "spikes" else torch.randn_like(y)
    rn = TemporalBatchNorm(y.shape[2], 2, alpha=0.7) if kind == "norm" else None
    a = _grads(norm, neuron, y, False, r, rn)
    b = _grads(norm, neuron, y, True, r, rn, spikes=kind == "spikes")
    for u, v in zip(a, b):
        assert torch.equal(u, v)


def test_residual_pair_keeps_the_shortcut_spikes_as_bits():
    norm, neuron, y = _pair(torch.float32, 2, kind="lif")
    x = (torch.rand_like(y) < 0.3).float().requires_grad_(True)
    y = y.requires_grad_(True)
    before, _ = distinct_saved_bytes(lambda: neuron(norm(y * 1.0) + x * 1.0))
    after, _ = distinct_saved_bytes(lambda: norm_neuron(norm, neuron, y * 1.0, x * 1.0, extra_spikes=True))
    big = y.numel() * 4
    assert 2 * big <= before < 2 * big + 1024
    assert big + big // 32 <= after < big + big // 32 + 1024


def test_eval_mode_pair_uses_the_running_statistics_as_they_were():
    norm, neuron, y = _pair(torch.float64, 2)
    norm.running_mean.uniform_(-0.1, 0.1)
    norm.eval()
    a = _grads(norm, neuron, y, paired=False)
    b = _grads(norm, neuron, y, paired=True)
    for u, v in zip(a, b):
        assert torch.equal(u, v)


def test_pair_keeps_one_tensor_instead_of_two():
    """saved-tensor hooks see what both paths keep: the unpaired path keeps y and z (2 × 4 bytes
    per element, plus per-channel vectors), the pair y only."""
    norm, neuron, y = _pair(torch.float32, 2, kind="lif")
    y = y.requires_grad_(True)
    before, _ = distinct_saved_bytes(lambda: neuron(norm(y * 1.0)))
    after, _ = distinct_saved_bytes(lambda: norm_neuron(norm, neuron, y * 1.0))
    big = y.numel() * 4
    assert 2 * big <= before < 2 * big + 1024
    assert big <= after < big + 1024


def test_pair_under_checkpoint_equals_plain():
    from torch.utils.checkpoint import checkpoint
    norm, neuron, y = _pair(torch.float64, 2)
    yi = y.clone().requires_grad_(True)
    s = checkpoint(lambda t: norm_neuron(norm, neuron, t * 1.0), yi, use_reentrant=False)
    (s * torch.arange(s.numel(), dtype=s.dtype).view(s.shape)).sum().backward()
    yj = y.clone().requires_grad_(True)
    s2 = neuron(norm(yj * 1.0))
    (s2 * torch.arange(s2.numel(), dtype=s2.dtype).view(s2.shape)).sum().backward()
    assert torch.equal(yi.grad, yj.grad)


def test_pair_under_cpu_autocast_bit_identical():
    norm, neuron, y = _pair(torch.float32, 2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        a = _grads(norm, neuron, y.bfloat16(), paired=False)
        b = _grads(norm, neuron, y.bfloat16(), paired=True)
    for u, v in zip(a, b):
        assert torch.equal(u, v)


def test_pair_holds_no_float_copy_of_its_neuron_input_or_shortcut_spikes():
    """After the call, the norm's output z and the shortcut spikes (kept as bits) are freed:
    only the recipe's references remain (a closure holding them would defeat the pair)."""
    import weakref
    norm, neuron, y = _pair(torch.float32, 2, kind="lif")
    y = y.requires_grad_(True)
    x = (torch.rand_like(y) < 0.3).float().requires_grad_(True)
    seen = {}
    def record(m, a, o):
        seen["z"] = weakref.ref(o)
    norm.register_forward_hook(record)
    shortcut = x * 1.0
    ref_x = weakref.ref(shortcut)
    s = norm_neuron(norm, neuron, y * 1.0, shortcut, extra_spikes=True)
    del shortcut
    assert ref_x() is None and seen["z"]() is None
    s.sum().backward()
    assert y.grad is not None and x.grad is not None


def test_block_input_spikes_are_packed_once_for_its_conv_and_its_shortcut(monkeypatch):
    from inflor import bitpack
    from inflor.layers import SpikeConv2d, TimeFold
    calls = []
    real = bitpack.pack_spikes
    monkeypatch.setattr(bitpack, "pack_spikes", lambda t: calls.append(t) or real(t))
    norm, neuron, y = _pair(torch.float32, 2, kind="lif")
    conv = TimeFold(SpikeConv2d(6, 6, 3, padding=1))
    x = (torch.rand_like(y) < 0.3).float().requires_grad_(True)

    def block(x, paired):
        h = conv(x)
        return norm_neuron(norm, neuron, h, x, extra_spikes=True) if paired else neuron(norm(h) + x)
    xs = x * 1.0
    s = block(xs, True)
    assert len(calls) == 1 and calls[0]._base is xs  # conv (a TimeFold view) and shortcut: one packing
    g = torch.linspace(-1, 1, s.numel()).view(s.shape)
    grads = torch.autograd.grad((s * g).sum(), [x, conv.module.weight])
    ref = torch.autograd.grad((block(x * 1.0, False) * g).sum(), [x, conv.module.weight])
    assert all(torch.equal(a, b) for a, b in zip(grads, ref))
    xs2 = x * 1.0
    conv(xs2)
    n = len(calls)
    with torch.no_grad():
        xs2[0] = 0.0                                     # changed in place: packed again
    norm_neuron(norm, neuron, torch.randn_like(y), xs2, extra_spikes=True)
    assert len(calls) == n + 1


def _recipe_calls(monkeypatch):
    from inflor.fused import ops
    calls = []
    real = ops._run_with_recipe
    monkeypatch.setattr(ops, "_run_with_recipe", lambda spec, *a: calls.append(spec) or real(spec, *a))
    return calls


@pytest.mark.parametrize("kind,stats", [("inflor", False), ("lif", False), ("lif", True)])
def test_fused_backward_recomputes_the_pairs_input_in_its_kernel(monkeypatch, kind, stats):
    """In training on the CPU the pair hands the fused backward y and the norm's per-channel map
    (InputRecipe) instead of z: flat layout with MPR, rows layout for LIF (with and without
    statistics), with the shortcut term; the gradients are those of the unpaired path."""
    calls = _recipe_calls(monkeypatch)
    norm, neuron, y = _pair(torch.float32, 2, kind=kind, stats=stats)
    r = (torch.rand_like(y) < 0.3).float()
    a = _grads(norm, neuron, y, False, r)
    assert not calls
    b = _grads(norm, neuron, y, True, r)     # kept as floats (as spikes at T = 4: z replayed, below)
    assert [(c.affine, c.extra, c.rows) for c in calls] == [(True, True, kind == "lif")]
    assert all(torch.equal(u, v) for u, v in zip(a, b))
    from inflor.fused import ops
    assert ops._AFFINE_EXACT and all(ops._AFFINE_EXACT.values())     # the kernel's z was exact: used


@pytest.mark.parametrize("kind,stats,T,dims,dtype,spikes", [
    ("inflor", False, 20, 2, torch.float32, False),    # flat layout, two chunks (MAX_UNROLL = 16)
    ("lif", True, 12, 2, torch.float32, False),        # rows layout with statistics, two chunks of ≤ 8
    ("lif", False, 12, 2, torch.float32, False),       # one flat chunk: too long for the rows layout
    ("lif", False, 4, 1, torch.float64, False),        # [T, B, C] input, float64
    ("lif", False, 8, 2, torch.float32, True),         # the shortcut's bits read in the kernel (rows)
    ("inflor", False, 16, 2, torch.float32, True),     # the same, flat layout, two byte planes
    ("lif", False, 8, 2, torch.float64, True),         # float64: the bits unpacked for the kernel
    ("lif", True, 16, 2, torch.float32, True),         # two chunks: the bits unpacked for the kernel
    ("lif", False, 4, 2, torch.float32, True)])        # T = 4: the same
def test_recipe_in_chunks_and_other_shapes(monkeypatch, kind, stats, T, dims, dtype, spikes):
    """The shortcut term as floats (a real-valued shortcut), or as spikes packed by
    ``pack_spikes`` (Q = ⌈numel/8⌉): the kernel reads those bit by bit where that is its own
    layout (T a multiple of 8, one kernel, float32); elsewhere they are unpacked for it."""
    from inflor.fused import compilation, ops
    calls = _recipe_calls(monkeypatch)
    norm, neuron, _ = _pair(dtype, dims, kind=kind, stats=stats)
    y = torch.randn((T, 3, 6, 5, 5) if dims == 2 else (T, 3, 6), dtype=dtype)
    r = (torch.rand_like(y) < 0.3).to(dtype)
    a = _grads(norm, neuron, y, False, r)
    b = _grads(norm, neuron, y, True, r, spikes=spikes)
    assert all(torch.equal(u, v) for u, v in zip(a, b))
    chunks = 2 if T > 16 or (stats and T > 8) else 1
    in_kernel = spikes and T % 8 == 0 and chunks == 1 and dtype == torch.float32
    assert len(calls) == chunks and all(c.affine and c.extra for c in calls)
    assert all(c.rows == (kind == "lif" and dims == 2 and (stats or T <= 8)) for c in calls)
    assert all(c.extra_bits == in_kernel for c in calls)
    # in float32 the kernel's own result was exact, so it is the one used from now on (in float64
    # some variants round z once differently from the replay; the first-call check then replays)
    if dtype == torch.float32:
        assert all(ops._AFFINE_EXACT[(compilation._kernel_key("bwd", c, dtype, "cpu"), False)] for c in calls)


def test_recipe_not_taken_in_eval_mode_or_by_the_reference_backend_or_without_fma(monkeypatch):
    """Nor where the recomputation compiled alone does not round like ATen's addcmul."""
    from inflor.fused import ops
    calls = _recipe_calls(monkeypatch)
    for backend, train, fma in (("fused", False, True), ("reference", True, True), ("fused", True, False)):
        monkeypatch.setattr(ops, "_affine_rounds_like_aten", lambda dtype, device, fma=fma: fma)
        norm, neuron, y = _pair(torch.float32, 2, kind="lif", backend=backend)
        norm.train(train)
        a = _grads(norm, neuron, y, paired=False)
        b = _grads(norm, neuron, y, paired=True)
        assert all(torch.equal(u, v) for u, v in zip(a, b))
    assert not calls


def test_a_kernel_that_rounds_the_affine_map_differently_falls_back_to_the_replay(monkeypatch):
    """The affine input must round like ATen's batch norm (one fused multiply-add); a kernel that
    rounds the product first (emulated here on the uncompiled kernel source) is caught by the
    first-call check, and z is materialised for it from then on, with the same gradients."""
    from inflor.fused import compilation, kernels, ops
    monkeypatch.setattr(kernels, "_affine_input",
                        lambda y, a, b, extra: ((y.double() * a.double()).to(y.dtype) + b)
                        + (0.0 if extra is None else extra))
    monkeypatch.setattr(compilation, "_kernel", lambda direction, spec, *a: (
        kernels._make_forward if direction == "fwd" else kernels._make_backward)(spec))
    monkeypatch.setattr(ops, "_AFFINE_EXACT", {})
    calls = _recipe_calls(monkeypatch)
    norm, neuron, y = _pair(torch.float32, 2, kind="lif")
    a = _grads(norm, neuron, y, paired=False)
    for _ in range(2):
        b = _grads(norm, neuron, y, paired=True)
        assert all(torch.equal(u, v) for u, v in zip(a, b))
    assert len(calls) == 2 and list(ops._AFFINE_EXACT.values()) == [False]


@pytest.mark.parametrize("T", [8, 16])
def test_shortcut_spikes_of_a_fused_neuron_are_read_in_the_kernel(monkeypatch, T):
    """A block's input spikes come from a fused neuron, whose kernel wrote their bytes (one and
    two planes per step group): the residual pair's backward kernel reads those bytes bit by bit
    (no unpacking after a kernel variant's first call), with the gradients of the unpaired path."""
    from inflor import bitpack, pairing
    calls, unpacked = _recipe_calls(monkeypatch), []
    real = bitpack.unpack_spikes
    monkeypatch.setattr(pairing, "unpack_spikes", lambda *a: unpacked.append(a) or real(*a))  # z's replay
    norm, neuron, _ = _pair(torch.float32, 2, kind="lif")
    first = make_neuron("lif", backend="fused")
    y = torch.randn(T, 3, 6, 5, 5)
    x0 = torch.randn(T, 3, 6, 5, 5) + 0.5
    out = []
    for paired in (False, True, True):
        unpacked.clear()        # a kernel variant's first call is checked against the unpacked z
        norm.zero_grad()
        xi, yi = x0.clone().requires_grad_(True), y.clone().requires_grad_(True)
        spikes = first(xi)          # the block's input, bytes written by the kernel
        s = (norm_neuron(norm, neuron, yi * 1.0, spikes, extra_spikes=True) if paired
             else neuron(norm(yi * 1.0) + spikes))
        (s * torch.linspace(-1, 1, s.numel()).view(s.shape)).sum().backward()
        out.append([s.detach(), xi.grad, yi.grad, norm.weight.grad, norm.bias.grad])
    assert all(torch.equal(u, v) for o in out[1:] for u, v in zip(out[0], o))
    assert [c.extra_bits for c in calls] == [True, True] and not unpacked
