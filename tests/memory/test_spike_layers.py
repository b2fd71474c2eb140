"""Spike layers keep their binary input as bits: gradients bit-identical to nn.Conv2d / nn.Linear,
at most 1/8 of the bytes saved (seen by saved-tensor hooks), and non-binary input refused."""
import pytest
import torch
from torch import nn

from inflor.bitpack import pack_spikes, unpack_spikes
from inflor.layers import SpikeConv2d, SpikeLinear
from tests.helpers.saved import distinct_saved_bytes


def saved_input_bytes(fn, params):
    """Bytes saved while ``fn`` runs, the layer's own parameters left out (both layers keep W
    alike; the test is about the input); ``(bytes, fn())``."""
    return distinct_saved_bytes(fn, skip=params)


def assert_same_outputs_and_gradients(ref, new, x, g):
    """``ref`` and ``new`` give equal outputs and equal input, weight and bias gradients."""
    out = []
    for m in (ref, new):
        xi = x.clone().requires_grad_(True)
        y = m(xi)
        y.backward(g)
        out.append((y.detach(), xi.grad, m.weight.grad, None if m.bias is None else m.bias.grad))
    for a, b in zip(*out):
        assert (a is None and b is None) or torch.equal(a, b)


def test_pack_hand_case_and_every_byte_roundtrips():
    # 10 elements: Q = 2 bytes, planes of 2 (padded to 16): element 2i + k is bit i of byte k
    x = torch.tensor([1., 0, 1, 1, 0, 0, 0, 0, 0, 1])       # byte 0: x0, x2 (bits 0, 1); byte 1: x3, x9 (bits 1, 4)
    assert pack_spikes(x).tolist() == [1 + 2, 2 + 16]
    assert torch.equal(unpack_spikes(pack_spikes(x), (10,), torch.float32), x)
    every = torch.arange(256, dtype=torch.uint8)
    x = ((every.unsqueeze(0) >> torch.arange(8, dtype=torch.uint8).view(8, 1)) & 1).float()   # [8, 256]
    assert torch.equal(pack_spikes(x), every)
    assert torch.equal(unpack_spikes(every, (8, 256), torch.float32), x)
    # wider planes (as a fused neuron writes [T = 3, N = 2] spikes: Q = N, bit t = step t)
    x = torch.tensor([[1., 0], [1, 1], [0, 1]])
    assert torch.equal(unpack_spikes(torch.tensor([1 + 2, 2 + 4], dtype=torch.uint8), (3, 2), torch.float32), x)
    with pytest.raises(ValueError, match="cannot hold"):
        unpack_spikes(torch.zeros(2, dtype=torch.uint8), (17,), torch.float32)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("bias,stride,padding,groups,mode", [(False, 1, 1, 1, "zeros"), (True, 2, 0, 2, "zeros"),
                                                            (True, 1, 1, 1, "circular")])
def test_spike_conv_gradients_bit_identical(dtype, bias, stride, padding, groups, mode):
    torch.manual_seed(0)
    ref = nn.Conv2d(4, 6, 3, stride=stride, padding=padding, groups=groups, bias=bias,
                    padding_mode=mode).to(dtype)
    new = SpikeConv2d(4, 6, 3, stride=stride, padding=padding, groups=groups, bias=bias,
                      padding_mode=mode).to(dtype)
    new.load_state_dict(ref.state_dict())
    x = (torch.rand(3, 4, 7, 9, dtype=dtype) < 0.3).to(dtype)
    g = torch.randn_like(ref(x))
    assert_same_outputs_and_gradients(ref, new, x, g)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("bias", [False, True])
def test_spike_linear_gradients_bit_identical_on_time_batches(dtype, bias):
    torch.manual_seed(0)
    ref = nn.Linear(37, 5, bias=bias).to(dtype)
    new = SpikeLinear(37, 5, bias=bias).to(dtype)
    new.load_state_dict(ref.state_dict())
    x = (torch.rand(4, 3, 37, dtype=dtype) < 0.3).to(dtype)   # [T, B, F]
    g = torch.randn(4, 3, 5, dtype=dtype)
    assert_same_outputs_and_gradients(ref, new, x, g)


def test_spike_conv_saves_at_most_an_eighth_of_the_bytes():
    """Measured with saved-tensor hooks: they see every tensor both layers save."""
    torch.manual_seed(0)
    ref, new = nn.Conv2d(8, 8, 3, padding=1), SpikeConv2d(8, 8, 3, padding=1)
    x = (torch.rand(16, 8, 16, 16) < 0.2).float().requires_grad_(True)
    ref_bytes, _ = saved_input_bytes(lambda: ref(x * 1.0), list(ref.parameters()))
    new_bytes, _ = saved_input_bytes(lambda: new(x * 1.0), list(new.parameters()))
    assert ref_bytes == x.numel() * 4
    assert 0 < new_bytes <= ref_bytes / 8
    assert new_bytes == x.numel() // 8


def test_spike_linear_saves_bits():
    lin = SpikeLinear(64, 8)
    x = (torch.rand(4, 2, 64) < 0.5).float()
    b, _ = saved_input_bytes(lambda: lin(x), list(lin.parameters()))
    assert b == x.numel() // 8


def test_non_binary_input_is_refused_when_kept_and_plain_without_grad():
    conv = SpikeConv2d(2, 3, 3)
    x = torch.full((1, 2, 5, 5), 0.25)
    with pytest.raises(ValueError, match="binary input.*0.25"):
        conv(x)
    with torch.no_grad():
        torch.testing.assert_close(conv(x), nn.functional.conv2d(x, conv.weight, conv.bias))
    with pytest.raises(ValueError, match="binary"):
        SpikeLinear(4, 2)(torch.tensor([[0.0, 1.0, 2.0, 0.0]]))


def test_state_dict_names_are_those_of_the_torch_layers():
    assert SpikeConv2d(2, 3, 3).state_dict().keys() == nn.Conv2d(2, 3, 3).state_dict().keys()
    assert SpikeLinear(2, 3).state_dict().keys() == nn.Linear(2, 3).state_dict().keys()
    assert isinstance(SpikeConv2d(2, 3, 3), nn.Conv2d) and isinstance(SpikeLinear(2, 3), nn.Linear)


class _Heaviside(nn.Module):
    """Spikes 1[y > 0] with a straight-through gradient (y − y.detach() adds exactly 0)."""

    def forward(self, y):
        return (y > 0).to(y.dtype) + (y - y.detach())


def test_spike_layers_trace_whole_under_compile_and_match_eager():
    torch.manual_seed(0)
    net = nn.Sequential(SpikeConv2d(2, 3, 3, padding=1), _Heaviside(), nn.Flatten(),
                        SpikeLinear(3 * 5 * 5, 2)).double()
    x = (torch.rand(2, 2, 5, 5) < 0.5).double()
    net(x).sum().backward()
    eager = [p.grad.clone() for p in net.parameters()]
    net.zero_grad()
    torch._dynamo.reset()
    cnet = torch.compile(net, fullgraph=True, backend="aot_eager")
    cnet(x).sum().backward()
    for a, b in zip(eager, [p.grad for p in net.parameters()]):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize("make", [lambda: (torch.nn.Linear(12, 5), SpikeLinear(12, 5), (6, 12)),
                                  lambda: (torch.nn.Conv2d(3, 4, 3, padding=1), SpikeConv2d(3, 4, 3, padding=1),
                                           (2, 3, 6, 6))])
def test_under_cpu_bfloat16_autocast_equals_the_plain_layer(make):
    """Autocast casts a conv / linear's input and parameters to bfloat16: the spike layers do the
    same, so forward and gradients equal the plain layer's (a float32 weight with a bfloat16 grad
    once made the backward fail)."""
    plain, spike, shape = make()
    spike.load_state_dict(plain.state_dict())
    x = (torch.rand(shape, generator=torch.Generator().manual_seed(0)) > 0.5).float()
    outs, grads = [], []
    for m in (plain, spike):
        m.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = m(x)
        (y.float() ** 2).sum().backward()
        outs.append(y)
        grads.append(m.weight.grad.clone())
    assert outs[1].dtype == outs[0].dtype == torch.bfloat16
    assert torch.equal(outs[0], outs[1]) and torch.equal(grads[0], grads[1])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("numel", [8 * 1024, 8 * 1024 + 5])
def test_compiled_pack_and_unpack_equal_the_plain_code(dtype, numel):
    # at least COMPILE_MIN_NUMEL elements: the compiled kernels run; the plain functions they
    # compile (and fall back to) are the reference, the last partial byte included
    from inflor import bitpack
    assert numel >= bitpack.COMPILE_MIN_NUMEL
    x = (torch.rand(numel, generator=torch.Generator().manual_seed(1)) < 0.3).to(dtype)
    packed = pack_spikes(x)
    padded = torch.cat([x, x.new_zeros((-numel) % 8)]).view(8, -1)
    ref, bad = bitpack._pack_planes(padded)
    assert not bool(bad) and torch.equal(packed, ref) and packed.numel() == (numel + 7) // 8
    assert torch.equal(unpack_spikes(packed, (numel,), dtype), x)
    plain = torch.full((8, packed.numel()), 7.0, dtype=dtype)
    bitpack._unpack_planes(packed, plain, 8)
    assert torch.equal(plain.reshape(-1)[:numel], x)
    x[numel - 1] = 0.5          # in the compiled pass, at the very end
    with pytest.raises(ValueError, match="binary input.*0.5"):
        pack_spikes(x)


def test_helper_kernel_falls_back_to_plain_code_with_one_warning(monkeypatch):
    from inflor.fused import compilation

    def broken(*a, **k):
        raise RuntimeError("no compiler here")
    monkeypatch.setattr(compilation, "_HELPERS", {})
    monkeypatch.setattr(compilation, "_FAILED", set())
    monkeypatch.setattr(compilation, "_WARNED", set())
    monkeypatch.setattr(compilation, "_READY", set())
    monkeypatch.setattr(compilation, "_standalone_helper", broken)     # the CPU's compile path
    x = (torch.rand(16384) < 0.5).float()
    with pytest.warns(RuntimeWarning, match="compiling the pack_spikes kernel failed.*no compiler here"):
        packed = pack_spikes(x)
    with pytest.warns(RuntimeWarning, match="compiling the unpack_spikes kernel failed"):
        assert torch.equal(unpack_spikes(packed, x.shape, x.dtype), x)
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert torch.equal(pack_spikes(x), packed)     # remembered: no second warning, no retry


def test_spikes_made_in_inference_mode_train_a_spike_layer():
    with torch.inference_mode():
        x = (torch.rand(4, 16) < 0.5).float()
    lin = SpikeLinear(16, 3)
    lin(x).sum().backward()
    torch.testing.assert_close(lin.weight.grad, torch.ones(3, 1) * x.sum(0))


@pytest.mark.parametrize("T,stats,dtype,in_kernel", [
    (8, False, torch.float32, True),        # flat layout, one byte per element: bit t = step t
    (8, True, torch.float32, False),        # rows layout (statistics per row): packed by the layer
    (16, False, torch.float64, True),       # two byte planes: bit i of plane j = step 2i + j
    (12, False, torch.float32, False),      # a byte would not hold whole steps: packed by the layer
    (4, False, torch.float32, False),       # the same
    (16, True, torch.float32, False),       # rows layout in two chunks of 8: packed by the layer
    (1, False, torch.float32, False)])      # a byte per spike would be 1/4: packed by the layer
def test_a_fused_neurons_spikes_reach_the_spike_layer_already_packed(monkeypatch, T, stats, dtype, in_kernel):
    """With gradients the fused forward kernel writes the spikes' bytes as ``pack_spikes`` would
    (T a multiple of 8, one kernel, flat layout); the next spike layer keeps those instead of
    packing its input again, and its gradients stay bit-identical to nn.Conv2d's."""
    from inflor import bitpack
    from inflor.layers import TimeFold
    from inflor.neuron import make_neuron
    calls = []
    real = bitpack.pack_spikes
    monkeypatch.setattr(bitpack, "pack_spikes", lambda t: calls.append(t) or real(t))
    torch.manual_seed(0)
    neuron = make_neuron("lif", backend="fused")
    neuron.record_stats = stats
    spike, plain = SpikeConv2d(6, 4, 3, padding=1).to(dtype), nn.Conv2d(6, 4, 3, padding=1).to(dtype)
    plain.load_state_dict(spike.state_dict())
    x = torch.randn(T, 3, 6, 5, 5, dtype=dtype) + 0.4
    grads = []
    for conv in (spike, plain):
        xi = x.clone().requires_grad_(True)
        s = neuron(xi)
        y = TimeFold(conv)(s)
        y.backward(torch.linspace(-1, 1, y.numel(), dtype=dtype).view(y.shape))
        grads.append((y.detach(), xi.grad, conv.weight.grad, conv.bias.grad))
        if conv is spike:
            kept = [p for ref, _, p in bitpack._RECENT if ref() is s._base]
            assert len(kept) == 1 and torch.equal(unpack_spikes(kept[0], s.shape, dtype), s)
            assert kept[0].numel() == (-(-T // 8) * s[0].numel() if in_kernel else (s.numel() + 7) // 8)
            if in_kernel and T % 8 == 0:
                assert torch.equal(kept[0], real(s))
            assert len(calls) == (0 if in_kernel else 1)
    for a, b in zip(*grads):
        assert torch.equal(a, b)


def test_spikes_packed_by_the_neuron_only_with_gradients():
    from inflor import bitpack
    from inflor.neuron import make_neuron
    neuron = make_neuron("lif", backend="fused")
    x = torch.randn(8, 2, 3, 4, 4)
    bitpack._RECENT.clear()
    neuron(x)                                   # nothing requires a gradient: nothing kept
    with torch.no_grad():
        neuron(x.requires_grad_(True))
    assert not bitpack._RECENT


@pytest.mark.parametrize("stats", [False, True])
def test_the_forward_kernel_writing_bytes_gives_the_same_spikes_and_statistics(stats):
    """With gradients the forward is another kernel variant (it also writes the bytes): its spikes
    and statistics equal the plain variant's (no gradients) bit for bit (flat layout; with
    statistics over 3 positions per channel, too few for the rows layout)."""
    from inflor import bitpack
    from inflor.neuron import make_neuron
    neuron = make_neuron("lif", backend="fused")
    neuron.record_stats = stats
    x = torch.randn(8, 4, 6, 3) + 0.4
    with torch.no_grad():
        plain = neuron(x)
    st_plain = neuron.stats
    bitpack._RECENT.clear()
    with_bytes = neuron(x.clone().requires_grad_(True))
    assert len(bitpack._RECENT) == 1 and torch.equal(plain, with_bytes.detach())
    if stats:
        for name in ("h_sum", "h_sqsum", "x_sum", "o_sum"):
            assert torch.equal(getattr(st_plain, name), getattr(neuron.stats, name).detach())
