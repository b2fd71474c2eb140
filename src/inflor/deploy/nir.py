"""NIR export and import (``nir`` package): ``to_nir(model) -> nir.NIRGraph``, ``from_nir(graph)``.

The exported graph is the inference form of the model (``inflor.deploy.graph.fold_model``: BN
folded into the conv / linear weights, MPR into the threshold). Time is discrete with step
``dt`` (``graph.metadata["dt"]``, 1 unless given); the neuron parameters are chosen so that a
forward-Euler importer stepping that ``dt`` (charge, then fire, then reset, as inflor) runs
inflor's equations H[t] = λU[t-1] + sX[t], O[t] = Θ(H[t] − θ):

=====================  ===========================================================================
inflor                 NIR
=====================  ===========================================================================
hard reset, λ = 1      ``IF``:  r = s/dt, v_threshold = θ⁻, v_reset = V_reset
hard reset, λ < 1      ``LIF``: tau = dt/(1−λ), r = s/(1−λ), v_leak = 0, v_threshold = θ⁻, v_reset
soft reset (SRIF,      subgraph ``<name>.integrator`` → ``<name>.threshold`` (the spikes), with the
InfLoR)                spikes fed back ``<name>.threshold`` → ``<name>.reset`` → ``<name>.delay`` →
                       ``<name>.integrator``: integrator ``I`` (r = s/dt; λ < 1: ``LI`` with tau,
                       r, v_leak as for LIF), ``Threshold`` θ⁻, ``Scale`` −λ·r_soft/s, ``Delay`` dt.
                       So H[t] = λH[t-1] + sX[t] − λ·r_soft·O[t-1] = λ(H[t-1] − r_soft·O[t-1]) + sX[t].
conv (folded BN)       ``Conv2d`` (input_shape, weight, bias, stride, padding, dilation, groups)
nn.Linear              ``Affine`` (``Linear`` without bias)
AvgPool2d              ``AvgPool2d`` (refused with ceil_mode / count_include_pad=False when they
                       change the result)
global average pool    ``AvgPool2d`` over the whole map (metadata ``inflor: global_mean``) +
                       ``Flatten``
flatten                ``Flatten`` (dimensions of one sample: inflor's start_dim − 2)
residual sum           two edges into the same node (NIR sums a node's inputs)
=====================  ===========================================================================

θ is V_th (φ⁻¹(V_th) with MPR), and θ⁻ the float32 number just below it: inflor fires on
H ≥ θ, NIR on v > v_threshold, and for float32 H these agree exactly. A soft reset is never
written as an ``IF`` / ``LIF`` node (NIR's have a hard reset only). Anything else (a layer NIR
cannot express, a BN that could not be folded) is refused with an error naming the module.
``from_nir`` builds exactly these patterns back (any dt) and refuses other graphs by node name.
"""
from __future__ import annotations

import operator

import numpy as np
import torch
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp

from ..errors import CheckpointError
from ..layers import TimeFold
from ..neuron import BaseNode
from ..norm import TemporalBatchNorm
from .graph import fold_model, node_name, use_reference

#: metadata of the AvgPool2d node a global average pool (``x.mean((-2, -1))``) is written as, so
#: that inflor reads it back as that mean (the same sum order) rather than as a pooling
GLOBAL_MEAN = "global_mean"


def below(theta: float) -> float:
    """θ⁻: the largest float32 below float32(θ), so that v > θ⁻ ⇔ v ≥ θ for float32 v."""
    return float(np.nextafter(np.float32(theta), np.float32(-np.inf)))


def above(v_threshold: float) -> float:
    """The smallest float32 θ with v ≥ θ ⇔ v > v_threshold for every float32 v."""
    f = np.float32(v_threshold)
    return float(f if float(f) > v_threshold else np.nextafter(f, np.float32(np.inf)))


def _f32(v: float) -> float:
    return float(np.float32(v))


def _full(shape, value) -> np.ndarray:
    return np.full(tuple(int(s) for s in shape), float(value), dtype=np.float64)


class NIRExportError(CheckpointError):
    """A model (part) NIR cannot express, or a NIR graph inflor cannot build."""


# ----------------------------------------------------------------------------------------------
# export
# ----------------------------------------------------------------------------------------------
def _neuron_nodes(name: str, node: BaseNode, shape, dt: float) -> tuple[dict, list, str, str]:
    """(NIR nodes, internal edges, entry node, exit node) of one spiking neuron (module table)."""
    import nir

    c = node.cfg
    if node.mpr is not None:
        raise NIRExportError(f"neuron {name!r}: its MPR was not folded into the threshold")
    lam, s, thr = c.decay, c.input_scale, below(c.v_threshold)
    if lam == 1.0:
        integ = dict(r=_full(shape, s / dt))
    else:
        integ = dict(tau=_full(shape, dt / (1.0 - lam)), r=_full(shape, s / (1.0 - lam)), v_leak=_full(shape, 0.0))
    if c.reset == "hard":
        cls = nir.IF if lam == 1.0 else nir.LIF
        return {name: cls(**integ, v_threshold=_full(shape, thr), v_reset=_full(shape, c.v_reset))}, [], name, name
    i, th, rs, dl = (f"{name}.{part}" for part in ("integrator", "threshold", "reset", "delay"))
    nodes = {i: nir.I(**integ) if lam == 1.0 else nir.LI(**integ),
             th: nir.Threshold(threshold=_full(shape, thr)),
             rs: nir.Scale(scale=_full(shape, -lam * c.soft_reset_amount / s)),
             dl: nir.Delay(delay=_full(shape, dt))}
    return nodes, [(i, th), (th, rs), (rs, dl), (dl, i)], i, th


def _pool(name: str, pool: nn.AvgPool2d, in_shape) -> "object":
    import nir
    pair = lambda v: np.array(v if isinstance(v, (tuple, list)) else (v, v))   # noqa: E731
    k, s, p = pair(pool.kernel_size), pair(pool.stride), pair(pool.padding)
    H, W = in_shape[-2:]
    exact = all((n + 2 * pp - kk) % ss == 0 for n, kk, ss, pp in zip((H, W), k, s, p))
    if (pool.ceil_mode and not exact) or (not pool.count_include_pad and p.any()) or pool.divisor_override:
        raise NIRExportError(f"layer {name!r} (AvgPool2d with ceil_mode / count_include_pad=False / "
                             "divisor_override on this input size) has no NIR equivalent; refused")
    return nir.AvgPool2d(kernel_size=k, stride=s, padding=p)


def to_nir(model: nn.Module, input_shape=None, dt: float = 1.0):
    """The NIR graph of ``model`` (see the module docstring). ``input_shape``: one sample of one
    step, ``(C, H, W)`` (default: the model's ``in_channels`` × ``input_size``², 32 if unknown)."""
    import nir

    if input_shape is None:
        size = getattr(model, "input_size", None) or 32
        input_shape = (getattr(model, "in_channels", 3), size, size)
    gm = use_reference(fold_model(model).cpu())      # shapes only: no kernel compiled for them
    ShapeProp(gm).propagate(torch.zeros(1, 1, *input_shape))
    nodes, edges, src = {}, [], {}

    def connect(args_node, target):
        for a in src[args_node]:
            edges.append((a, target))

    for n in gm.graph.nodes:
        shape = tuple(n.meta["tensor_meta"].shape[2:]) if "tensor_meta" in n.meta else None
        if n.op == "placeholder":
            nodes["input"] = nir.Input(input_type={"input": np.array(shape)})
            src[n] = ["input"]
        elif n.op == "output":
            out = n.args[0]
            nodes["output"] = nir.Output(output_type={"output": np.array(out.meta["tensor_meta"].shape[2:])})
            connect(out, "output")
        elif n.op == "call_module":
            m, name = gm.get_submodule(n.target), node_name(n.target)
            inp = n.args[0]
            in_shape = tuple(inp.meta["tensor_meta"].shape[2:])
            inner = m.module if isinstance(m, TimeFold) else m
            if isinstance(m, BaseNode):
                new, internal, entry, exit_ = _neuron_nodes(name, m, in_shape, dt)
                nodes.update(new)
                edges.extend(internal)
                connect(inp, entry)
                src[n] = [exit_]
                continue
            if isinstance(inner, (nn.Identity, nn.Dropout)):
                src[n] = src[inp]
                continue
            if isinstance(inner, nn.Conv2d) and isinstance(m, TimeFold):
                if inner.padding_mode != "zeros" or isinstance(inner.padding, str):
                    raise NIRExportError(f"layer {name!r}: only zero padding given as numbers is exported")
                bias = inner.bias if inner.bias is not None else torch.zeros(inner.out_channels)
                nodes[name] = nir.Conv2d(input_shape=tuple(in_shape[-2:]), weight=_np(inner.weight),
                                         stride=inner.stride, padding=inner.padding, dilation=inner.dilation,
                                         groups=inner.groups, bias=_np(bias))
            elif isinstance(inner, nn.AvgPool2d) and isinstance(m, TimeFold):
                nodes[name] = _pool(name, inner, in_shape)
            elif isinstance(m, nn.Linear):
                nodes[name] = (nir.Affine(weight=_np(m.weight), bias=_np(m.bias)) if m.bias is not None
                               else nir.Linear(weight=_np(m.weight)))
            elif isinstance(m, nn.Flatten) and m.start_dim >= 2:
                end = m.end_dim if m.end_dim < 0 else m.end_dim - 2
                nodes[name] = nir.Flatten(input_type={"input": np.array(in_shape)}, start_dim=m.start_dim - 2,
                                          end_dim=end)
            elif isinstance(m, TemporalBatchNorm):
                raise NIRExportError(f"norm {name!r} could not be folded into a preceding conv/linear "
                                     "layer and NIR has no BatchNorm node; refused")
            else:
                raise NIRExportError(f"layer {name!r} ({type(inner).__name__}) has no NIR mapping in inflor; "
                                     "exportable: conv, linear, average pooling, flatten, residual sums, "
                                     "IF/LIF/SRIF/InfLoR neurons (see docs/deploy.md)")
            connect(inp, name)
            src[n] = [name]
        elif n.op == "call_function" and n.target in (operator.add, torch.add) and len(n.args) == 2 \
                and all(isinstance(a, fx.Node) for a in n.args) and not n.kwargs:
            src[n] = src[n.args[0]] + src[n.args[1]]
        elif n.op == "call_method" and n.target == "mean" and _is_global_mean(n):
            name = _fx_name(n)
            in_shape = tuple(n.args[0].meta["tensor_meta"].shape[2:])
            H, W = in_shape[-2:]
            nodes[name] = nir.AvgPool2d(kernel_size=np.array([H, W]), stride=np.array([H, W]),
                                        padding=np.array([0, 0]), metadata={"inflor": GLOBAL_MEAN})
            connect(n.args[0], name)
            if len(n.meta["tensor_meta"].shape) == 5:       # keepdim: [T, B, C, 1, 1] (from_nir's form)
                src[n] = [name]
                continue
            nodes[f"{name}.flatten"] = nir.Flatten(input_type={"input": np.array([in_shape[0], 1, 1])}, start_dim=0)
            edges.append((name, f"{name}.flatten"))
            src[n] = [f"{name}.flatten"]
        else:
            raise NIRExportError(f"operation {_fx_name(n)!r} ({n.op} {getattr(n.target, '__name__', n.target)}) "
                                 "has no NIR mapping in inflor; refused (see docs/deploy.md)")
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata={"dt": float(dt), "source": "inflor"})


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy().astype(np.float32)


def _fx_name(n: fx.Node) -> str:
    """A readable name for an operation of the traced forward_multistep."""
    return f"forward_multistep: {n.name}"


def _is_global_mean(n: fx.Node) -> bool:
    dims = n.args[1] if len(n.args) > 1 else n.kwargs.get("dim")
    keep = bool(n.kwargs.get("keepdim", False))
    return tuple(dims or ()) in ((-2, -1), (-1, -2)) and len(n.meta["tensor_meta"].shape) == (5 if keep else 3)


# ----------------------------------------------------------------------------------------------
# import
# ----------------------------------------------------------------------------------------------
def _uniform(name: str, field: str, arr) -> float:
    a = np.asarray(arr, dtype=np.float64)
    if a.size == 0 or not np.all(a == a.flat[0]):
        raise NIRExportError(f"NIR node {name!r}: {field} differs between neurons of the layer; inflor "
                             "neurons share one value per layer")
    return float(a.flat[0])


def _integrator(name: str, node, dt: float) -> tuple[float, float]:
    """(λ, s) of an IF / I (r) or LIF / LI (tau, r, v_leak = 0) node, Euler-stepped with dt."""
    if hasattr(node, "tau"):
        if _uniform(name, "v_leak", node.v_leak) != 0.0:
            raise NIRExportError(f"NIR node {name!r}: v_leak ≠ 0 has no inflor equivalent")
        tau = _uniform(name, "tau", node.tau)
        return _f32(1.0 - dt / tau), _f32(_uniform(name, "r", node.r) * dt / tau)
    return 1.0, _f32(_uniform(name, "r", node.r) * dt)


def _make_neuron(name: str, **kwargs) -> BaseNode:
    try:
        return BaseNode(backend="reference", **kwargs)
    except ValueError as exc:
        raise NIRExportError(f"NIR node {name!r}: not an inflor neuron ({exc})") from exc


class NIRNetwork(nn.Module):
    """A network built from a NIR graph: ``forward(x [T, B, ...]) -> [T, B, ...]`` (the graph's
    output per step). Modules are registered under the graph's node names ('.' → '_')."""

    def __init__(self, order: list[str], inputs: dict[str, list[str]], modules: dict[str, nn.Module],
                 input_shape: tuple[int, ...]):
        super().__init__()
        self.order, self.inputs = order, inputs
        # what inflor.deploy's Stream / to_onnx read from a model: one sample's step is [C, H, W]
        self.in_channels = int(input_shape[0]) if input_shape else None
        self.input_size = int(input_shape[-1]) if len(input_shape) == 3 else None
        self.layers = nn.ModuleDict({k.replace(".", "_"): m for k, m in modules.items()})
        self.names = {k: k.replace(".", "_") for k in modules}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        values = {}
        for name in self.order:
            srcs = self.inputs[name]
            v = x if not srcs else values[srcs[0]]
            for extra in srcs[1:]:
                v = v + values[extra]
            values[name] = self.layers[self.names[name]](v) if name in self.names else v
        return values[self.order[-1]]

    forward_multistep = forward


class _GlobalMean(nn.Module):
    def forward(self, x):
        return x.mean(dim=(-2, -1), keepdim=True)


def from_nir(graph, dt: float | None = None) -> NIRNetwork:
    """Build a network from a NIR graph (or a path to a ``.nir`` file) written by ``to_nir`` or
    of the same patterns (module docstring). ``dt``: the time step (default the graph's
    ``metadata["dt"]``, else 1). Anything else is refused with an error naming the node."""
    import nir

    if not isinstance(graph, nir.NIRGraph):
        try:
            graph = nir.read(str(graph))
        except Exception as exc:
            raise NIRExportError(f"{graph}: not a NIR file ({type(exc).__name__}: {exc})") from exc
    dt = float(dt if dt is not None else (graph.metadata or {}).get("dt", 1.0))
    nodes = dict(graph.nodes)
    edges = [tuple(e) for e in graph.edges]
    succ = {k: [b for a, b in edges if a == k] for k in nodes}
    # collapse each soft-reset subgraph I/LI -> Threshold -> Scale -> Delay -> I into one neuron
    alias, modules, internal = {}, {}, set()
    for name, node in nodes.items():
        if type(node) not in (nir.I, nir.LI):
            continue
        th = [t for t in succ[name] if isinstance(nodes[t], nir.Threshold)]
        loop = [(t, sc, dl) for t in th for sc in succ[t] if isinstance(nodes[sc], nir.Scale)
                for dl in succ[sc] if isinstance(nodes[dl], nir.Delay) and name in succ[dl]]
        if len(succ[name]) != 1 or len(loop) != 1:
            raise NIRExportError(f"NIR node {name!r} ({type(node).__name__}): inflor builds an integrator only as "
                                 "the soft-reset pattern integrator → Threshold → Scale → Delay → integrator")
        t, sc, dl = loop[0]
        if _uniform(dl, "delay", nodes[dl].delay) != dt:
            raise NIRExportError(f"NIR node {dl!r}: the reset feedback must be delayed by one step dt={dt}")
        lam, s = _integrator(name, node, dt)
        thr = above(_uniform(t, "threshold", nodes[t].threshold))
        scale = _uniform(sc, "scale", nodes[sc].scale)
        r = _f32(-scale * s / lam) if lam > 0 else 1.0
        group = name[: -len(".integrator")] if name.endswith(".integrator") else name
        modules[group] = _make_neuron(name, v_threshold=thr, decay=lam, input_scale=s, reset="soft",
                                      soft_reset_amount=r)
        alias[name] = alias[t] = group
        internal |= {(name, t), (t, sc), (sc, dl), (dl, name)}
        internal |= {sc, dl}
    inputs: dict[str, list[str]] = {}
    for a, b in edges:
        if (a, b) in internal:
            continue
        if a in internal or b in internal:
            raise NIRExportError(f"NIR edge {a!r} → {b!r} enters a soft-reset neuron's feedback loop")
        inputs.setdefault(alias.get(b, b), []).append(alias.get(a, a))
    names = [k for k in nodes if k not in internal and alias.get(k, k) == k] + sorted(set(modules) - set(nodes))
    for name in names:
        if name in modules:
            continue
        node = nodes[name]
        kind = type(node).__name__
        if isinstance(node, (nir.Input, nir.Output)):
            continue
        if isinstance(node, (nir.IF, nir.LIF)):
            lam, s = _integrator(name, node, dt)
            v_reset = _uniform(name, "v_reset", node.v_reset) if node.v_reset is not None else 0.0
            modules[name] = _make_neuron(name, v_threshold=above(_uniform(name, "v_threshold", node.v_threshold)),
                                         decay=lam, input_scale=s, reset="hard", v_reset=v_reset)
        elif isinstance(node, nir.Conv2d):
            w = torch.from_numpy(np.asarray(node.weight, dtype=np.float32))
            conv = nn.Conv2d(w.shape[1] * node.groups, w.shape[0], tuple(w.shape[2:]), stride=tuple(node.stride),
                             padding=tuple(node.padding), dilation=tuple(node.dilation), groups=node.groups)
            with torch.no_grad():
                conv.weight.copy_(w)
                conv.bias.copy_(torch.from_numpy(np.asarray(node.bias, dtype=np.float32)))
            modules[name] = TimeFold(conv)
        elif isinstance(node, (nir.Affine, nir.Linear)):
            w = torch.from_numpy(np.asarray(node.weight, dtype=np.float32))
            lin = nn.Linear(w.shape[1], w.shape[0], bias=isinstance(node, nir.Affine))
            with torch.no_grad():
                lin.weight.copy_(w)
                if isinstance(node, nir.Affine):
                    lin.bias.copy_(torch.from_numpy(np.asarray(node.bias, dtype=np.float32)))
            modules[name] = lin
        elif isinstance(node, nir.AvgPool2d):
            if (node.metadata or {}).get("inflor") == GLOBAL_MEAN:
                modules[name] = _GlobalMean()
            else:
                modules[name] = TimeFold(nn.AvgPool2d(tuple(int(v) for v in node.kernel_size),
                                                      tuple(int(v) for v in node.stride),
                                                      tuple(int(v) for v in node.padding)))
        elif isinstance(node, nir.Flatten):
            end = int(node.end_dim)        # NIR counts the dimensions of one sample, [T, B, ...] has two more
            modules[name] = nn.Flatten(int(node.start_dim) + 2, end if end < 0 else end + 2)
        else:
            raise NIRExportError(f"NIR node {name!r} ({kind}) is not a node inflor can build (IF, LIF, the "
                                 "soft-reset subgraph, Conv2d, Affine, Linear, AvgPool2d, Flatten, Input, Output)")
    order = _toposort(names, inputs)
    ins = [k for k in order if isinstance(nodes.get(k), nir.Input)]
    outs = [k for k in order if isinstance(nodes.get(k), nir.Output)]
    if len(ins) != 1 or len(outs) != 1:
        raise NIRExportError(f"the NIR graph has {len(ins)} Input and {len(outs)} Output nodes; inflor builds "
                             "graphs with one of each")
    if order[0] != ins[0] or order[-1] != outs[0]:
        order = [ins[0]] + [k for k in order if k not in (ins[0], outs[0])] + [outs[0]]
    in_type = nodes[ins[0]].input_type.get("input")
    return NIRNetwork(order, {k: inputs.get(k, []) for k in order}, modules,
                      tuple(int(v) for v in np.asarray(in_type).reshape(-1)) if in_type is not None else ())


def _toposort(names: list[str], inputs: dict[str, list[str]]) -> list[str]:
    done, order = set(), []
    pending = list(names)
    while pending:
        ready = [k for k in pending if all(a in done for a in inputs.get(k, []))]
        if not ready:
            raise NIRExportError(f"the NIR graph has a cycle through {sorted(pending)[:3]} other than a soft-reset "
                                 "neuron's feedback; inflor cannot build it")
        for k in ready:
            done.add(k)
            order.append(k)
        pending = [k for k in pending if k not in done]
    return order
