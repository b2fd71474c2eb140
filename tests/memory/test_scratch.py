"""inflor.scratch: a backward pass's large temporaries recycled within it, and gradients handed to
autograd so that it accumulates a second one in place."""
import copy

import pytest
import torch
from torch.profiler import ProfilerActivity, profile

from inflor import scratch


def _in_backward(fn):
    """Run ``fn()`` inside the backward of a one-node graph; return what it returned."""
    out = {}

    class Node(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x.clone()

        @staticmethod
        def backward(ctx, g):
            out["value"] = fn()
            return g

    Node.apply(torch.ones(2, requires_grad=True)).sum().backward()
    return out["value"]


def test_outside_backward_it_is_torch_empty():
    t = scratch.empty((512, 1024), torch.float32, "cpu")
    assert t.shape == (512, 1024) and t.dtype == torch.float32 and t._base is None
    assert scratch._pool() is None


def test_a_dropped_buffer_is_reused_a_held_one_is_not(monkeypatch):
    monkeypatch.setattr(scratch, "MIN_BYTES", 1024)

    def body():
        a = scratch.empty((64, 16), torch.float32, "cpu")          # 4 KiB
        a_ptr = a.data_ptr()
        b = scratch.empty((16, 64), torch.float32, "cpu")          # a is held: new memory
        held = b.data_ptr() != a_ptr
        del a
        c = scratch.empty((4, 256), torch.float32, "cpu")          # a dropped: its memory again
        d = scratch.empty((2, 256), torch.float64, "cpu")          # same bytes, other dtype
        reused = c.data_ptr() == a_ptr
        other = d.data_ptr() not in (a_ptr, b.data_ptr())          # b and c are held
        small = scratch.empty((8,), torch.float32, "cpu")          # under MIN_BYTES: not pooled
        d_ptr = d.data_ptr()
        del d
        half = scratch.empty((4, 128), torch.float32, "cpu")       # d's buffer: twice the size
        pool = scratch._pool()
        return held, reused, other, small._base is None, half.data_ptr() == d_ptr, len(pool.buffers), pool

    held, reused, other, plain_small, larger_serves, n, pool = _in_backward(body)
    assert held and reused and other and plain_small and larger_serves and n == 3
    assert pool.buffers == []       # emptied when the backward ended


def test_the_pool_holds_at_most_max_buffers_and_drops_unused_ones_of_other_sizes(monkeypatch):
    monkeypatch.setattr(scratch, "MIN_BYTES", 1024)

    def body():
        held = [scratch.empty((256 * (i + 1),), torch.float32, "cpu") for i in range(scratch.MAX_BUFFERS + 2)]
        full = len(scratch._pool().buffers)
        assert held[-1]._base is None                              # all in use: not pooled
        first = held[0].data_ptr()
        del held[1:]
        again = scratch.empty((256 * 9,), torch.float32, "cpu")    # a new size: the unused go
        kept = [b.data_ptr() for b in scratch._pool().buffers]
        return full, kept, first, again.data_ptr()

    full, kept, first, again = _in_backward(body)
    assert full == scratch.MAX_BUFFERS
    assert kept == [first, again]          # the one still in use, and the new one


def test_a_nested_backward_has_its_own_pool_and_the_outer_one_comes_back(monkeypatch):
    monkeypatch.setattr(scratch, "MIN_BYTES", 1024)

    def body():
        outer = scratch._pool()
        a = scratch.empty((1024,), torch.float32, "cpu")
        with torch.enable_grad():      # a backward inside a backward (e.g. reentrant checkpoint)
            inner = _in_backward(scratch._pool)
        return outer, inner, scratch._pool(), a

    outer, inner, again, a = _in_backward(body)
    assert inner is not outer and again is outer
    assert outer.buffers == [] and inner.buffers == []


def test_a_failed_backward_leaves_no_pool_behind(monkeypatch):
    import gc
    import weakref
    monkeypatch.setattr(scratch, "MIN_BYTES", 1024)
    seen = []

    def body():
        scratch.empty((1024,), torch.float32, "cpu")
        seen.append(weakref.ref(scratch._pool()))
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        _in_backward(body)
    gc.collect()
    assert seen and seen[0]() is None


def test_pooling_is_off_where_the_use_count_check_fails(monkeypatch):
    assert scratch._idle_count() > 0                     # this torch: the check passes
    monkeypatch.setattr(scratch, "MIN_BYTES", 1024)
    monkeypatch.setattr(scratch, "_IDLE", 0)
    t = _in_backward(lambda: scratch.empty((1024,), torch.float32, "cpu"))
    assert t._base is None


def _accumulations(returns):
    """Which add ran when autograd summed two gradients of ``s`` (a first one from a neuron-like
    node returning ``returns(g)``, a second through a view, as a residual block's input gets)."""
    class Neuron(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def backward(ctx, g):
            return returns((g * 2).reshape(-1), g.shape)

    x = torch.randn(64, 64, requires_grad=True)
    s = x * 1
    z = (s.view(-1) * 3).view(64, 64) * 1 + s
    out = Neuron.apply(z)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        out.sum().backward()
    return [e.name for e in prof.events() if e.name in ("aten::add", "aten::add_")]


def test_reshaped_gradients_are_accumulated_in_place():
    assert _accumulations(lambda t, shape: t.view(shape)) == ["aten::add"]       # the view keeps t
    assert _accumulations(scratch.reshaped) == ["aten::add_"]


def test_reshaped_is_the_same_memory_and_values():
    t = torch.arange(12.0)
    with torch.no_grad():       # as in a backward
        r = scratch.reshaped(t, (3, 4))
    assert r.data_ptr() == t.data_ptr() and torch.equal(r, t.view(3, 4)) and r._base is None
    u = torch.arange(12.0, requires_grad=True) * 1     # grad mode on (create_graph): on the graph
    assert scratch.reshaped(u, (3, 4)).grad_fn is not None


def _resnet_step(model, x):
    model.zero_grad()
    model(x).sum().backward()
    return [p.grad.clone() for p in model.parameters()]


def test_resnet_gradients_identical_with_the_pool_forced_on(monkeypatch):
    """Every scratch request of a ResNet's backward pooled (MIN_BYTES = 0): the replayed norm
    outputs, residual sums and unpacked spikes (by the compiled unpacking) come from recycled
    buffers, some larger than asked for, and every gradient is bit-identical to the run with the
    pool off."""
    from inflor.models.resnet import SpikingResNet
    torch.manual_seed(0)
    model = SpikingResNet(10, stem=[(8, 3, 1)], stages=[(8, 2, 1), (16, 1, 2)], timesteps=2,
                          neuron_options={"backend": "fused"}).train()
    twin = copy.deepcopy(model)
    x = torch.randn(2, 3, 8, 8)
    monkeypatch.setattr(scratch, "MIN_BYTES", 1 << 62)
    off = _resnet_step(twin, x)
    reused = []
    take = scratch.empty

    def counting(shape, dtype, device):
        pool = scratch._pool()
        before = [b.data_ptr() for b in pool.buffers] if pool else []
        t = take(shape, dtype, device)
        reused.append(t.data_ptr() in before)
        return t

    monkeypatch.setattr(scratch, "MIN_BYTES", 0)
    monkeypatch.setattr(scratch, "empty", counting)
    from inflor import bitpack
    monkeypatch.setattr(bitpack, "COMPILE_MIN_NUMEL", 0)       # the compiled unpacking, into scratch
    on = _resnet_step(model, x)
    assert sum(reused) >= len(reused) // 2, reused        # most requests found a free buffer
    for a, b in zip(off, on):
        assert torch.equal(a, b)
