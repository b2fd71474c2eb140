"""The fused neuron under a user's ``torch.compile``: one ``torch.ops.inflor.neuron`` node per
neuron (no graph break), the same kernels at run time, the same results as eager, only the input
saved for backward, and bad input still refused with the eager message.

Compilation is the cost here, so the models are tiny and the whole-model traces stop right after
dynamo has captured the graph (a backend that records it and declines to compile).
"""
import pytest
import torch
from torch import nn

import inflor.fused as fused
from inflor.losses import ce_of_mean, mpd_loss
from inflor.models import create_model, list_models
from inflor.neuron import collect_stats, make_neuron, set_record_stats, spiking_nodes


class _Captured(Exception):
    pass


def capture_graph(model: nn.Module, x: torch.Tensor) -> torch.fx.GraphModule:
    """The FX graph dynamo captures for ``model(x)`` with ``fullgraph=True`` (which raises on any
    graph break); nothing is compiled or run."""
    graphs = []

    def record(gm, example_inputs):
        graphs.append(gm)
        raise _Captured

    torch._dynamo.reset()
    with pytest.raises(Exception) as info:
        torch.compile(model, backend=record, fullgraph=True)(x)
    if not graphs:
        raise info.value
    return graphs[0]


def neuron_ops(gm: torch.fx.GraphModule) -> int:
    return sum(n.target is torch.ops.inflor.neuron.default or n.target is torch.ops.inflor.neuron
               for n in gm.graph.nodes)


TINY_INPUTS = {
    # name -> (options, input [B, ...] or [B, T, ...] for event data)
    "tinyconv": (dict(width=4), (2, 1, 8, 8)),
}


def _input_for(name: str, model) -> torch.Tensor:
    if name in TINY_INPUTS:
        return torch.rand(TINY_INPUTS[name][1])
    opts = model.model_options
    c = opts.get("in_channels", 3)
    size = opts.get("input_size", 64 if "imagenet" in name or name.startswith(("resnet18", "resnet34")) else 32)
    if c == 2:      # event frames [B, T, 2, H, W]
        return (torch.rand(1, opts["timesteps"], 2, size, size) < 0.2).float()
    return torch.rand(1, c, size, size)


@pytest.mark.slow
@pytest.mark.parametrize("name", list_models())
def test_every_registered_model_traces_whole_with_one_op_per_neuron(name):
    model = create_model(name, num_classes=10, **{"timesteps": 1, **TINY_INPUTS.get(name, ({}, None))[0]})
    for _, node in spiking_nodes(model):
        node.backend = "fused"
    set_record_stats(model)
    gm = capture_graph(model.eval(), _input_for(name, model))
    assert neuron_ops(gm) == len(spiking_nodes(model)) > 0


@pytest.mark.slow
def test_resnet19_default_neurons_have_no_graph_break():
    """The issue's own check: ``torch._dynamo.explain`` of a ResNet-19 with its default neurons
    (``backend="auto"``: the fused kernels at these sizes)."""
    torch._dynamo.reset()
    model = create_model("resnet19", num_classes=10, timesteps=2)
    ex = torch._dynamo.explain(model)(torch.rand(2, 3, 32, 32))
    assert ex.graph_break_count == 0 and ex.graph_count == 1
    assert neuron_ops(ex.graphs[0]) == len(spiking_nodes(model))


def _tiny_net(neuron: str) -> nn.Module:
    torch.manual_seed(0)
    return create_model("tinyconv", num_classes=3, width=3, timesteps=2, neuron=neuron,
                        neuron_options={"backend": "fused"}).double()


@pytest.mark.slow
@pytest.mark.parametrize("neuron", ["inflor"])
def test_compiled_training_step_equals_eager_and_runs_the_fused_kernels(neuron, monkeypatch):
    """Inductor-compiled forward + backward of a network with record_stats and MPD-Loss: logits,
    loss and every parameter gradient equal the eager ones (float64, so no spike can flip on a
    rounding difference), and the compiled graph calls the fused kernels."""
    x = torch.rand(2, 1, 8, 8, dtype=torch.float64)
    y = torch.tensor([0, 2])

    def step(model, calls):
        model.zero_grad()
        logits = model(x)
        loss = ce_of_mean(logits, y) + mpd_loss(collect_stats(model))
        loss.backward()
        return logits.detach(), loss.detach(), [p.grad.clone() for p in model.parameters()], calls

    real_run = fused._run

    def counting(calls):
        def run(direction, *args):
            calls.append(direction)
            return real_run(direction, *args)
        return run

    eager_calls, compiled_calls = [], []
    net = _tiny_net(neuron)
    set_record_stats(net)
    step(net, [])       # once uncounted: a pair's first backward also checks its kernel (fused.ops)
    monkeypatch.setattr(fused, "_run", counting(eager_calls))
    eager = step(net, eager_calls)
    torch._dynamo.reset()
    compiled_net = torch.compile(net, fullgraph=True)
    monkeypatch.setattr(fused, "_run", counting(compiled_calls))
    compiled = step(compiled_net, compiled_calls)
    assert eager_calls.count("fwd") == eager_calls.count("bwd") == 2
    assert compiled_calls == eager_calls
    torch.testing.assert_close(compiled[0], eager[0], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(compiled[1], eager[1], rtol=1e-12, atol=1e-12)
    for a, b in zip(compiled[2], eager[2]):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_compiled_neuron_saves_only_its_input():
    """What the compiled graph keeps for backward, seen by saved-tensor hooks: the input x, the
    surrogate's 0-d parameter and an empty chunk-boundary tensor; no membrane, no spikes."""
    node = make_neuron("srif", backend="fused", mpr="inflor")
    x = torch.randn(4, 2, 3, 8, 8, requires_grad=True)
    saved = []

    def pack(t):
        saved.append(t)
        return t

    torch._dynamo.reset()
    compiled = torch.compile(node, fullgraph=True)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = compiled(x)
    out.sum().backward()
    assert sum(t.numel() for t in saved) == x.numel() + 1
    assert any(t.shape == x.shape for t in saved)
    torch.testing.assert_close(x.grad, torch.autograd.grad(node(x).sum(), x)[0])


def test_bad_input_under_compile_gets_the_eager_message():
    node = make_neuron("if", backend="fused")
    torch._dynamo.reset()
    with pytest.raises(ValueError, match="no time dimension"):
        torch.compile(node)(torch.randn(5))


@pytest.mark.parametrize("shape,stats,mpr", [((4, 2, 3, 5), False, None),      # flat layout
                                             ((3, 2, 3, 16), True, "inflor"),  # rows layout, MPR
                                             ((20, 2, 3, 4), True, None)])     # chunked: bounds
def test_operator_passes_opcheck_and_equals_the_eager_path(shape, stats, mpr):
    """``torch.library.opcheck`` (schema, fake implementation, autograd registration) on the
    registered operator, and the operator called directly equals ``fused_neuron``'s eager path."""
    from inflor.functional import NeuronConfig
    from inflor.mpr import resolve_mpr
    from inflor.surrogate import Rectangle

    cfg, sur, phi = NeuronConfig(reset="soft", decay=0.9), Rectangle(), resolve_mpr(mpr)
    x = torch.randn(*shape, dtype=torch.float64).mul(0.8).add(0.3).requires_grad_(True)
    args = (fused.op_settings(cfg, phi), cfg.reset, cfg.detach_reset, Rectangle.fused_key(),
            "none" if phi is None else phi.kind, stats)
    torch.library.opcheck(torch.ops.inflor.neuron.default, (x, sur.width, *args),
                          test_utils=("test_schema", "test_faketensor", "test_autograd_registration"))
    out = torch.ops.inflor.neuron(x, sur.width, *args)
    spikes, st = fused.fused_neuron(x, cfg, sur, phi, stats)
    assert torch.equal(out[0], spikes)
    loss_op = (out[0] * torch.linspace(-1, 1, x.shape[-1], dtype=x.dtype)).sum()
    loss_eager = (spikes * torch.linspace(-1, 1, x.shape[-1], dtype=x.dtype)).sum()
    if stats:
        torch.testing.assert_close(out[1], st.h_sum, rtol=0, atol=0)
        loss_op, loss_eager = loss_op + out[2].sum() + out[3], loss_eager + st.h_sqsum.sum() + st.x_sum
    assert torch.equal(torch.autograd.grad(loss_op, x)[0], torch.autograd.grad(loss_eager, x)[0])
