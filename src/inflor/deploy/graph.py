"""A model's data flow as a ``torch.fx`` graph, and its inference form with BN and MPR folded.

``trace(model)`` records ``model.forward_multistep`` with spiking neurons, time-folded layers,
norms and the ``torch.nn`` layers as single nodes, so the folding below, the single-step graph
(``inflor.deploy.stream``) and the NIR export (``inflor.deploy.nir``) read the real wiring of the
network instead of guessing it from module names.

Folding for inference (``fold_model``), both exact up to float rounding:

* (td)BN after a conv / linear:  W' = a·W, b' = a·(b − μ) + β, a = γ·α·V_th / sqrt(σ² + ε)
  (``inflor.norm.fold_batchnorm``), the BN node removed;
* MPR: φ is strictly increasing, so Θ(φ(H) − V_th) = Θ(H − φ⁻¹(V_th)); the neuron gets the
  threshold φ⁻¹(V_th) (``inflor.mpr.phi_inverse``) and no φ. At the papers' V_th = ½, φ⁻¹(½) = ½
  exactly and the spikes are bit for bit those of the unfolded network; at other thresholds
  they may differ where φ(H) lies within a float rounding of V_th.
"""
from __future__ import annotations

import copy

import torch
from torch import fx, nn

from ..layers import TimeFold
from ..mpr import MPR
from ..neuron import BaseNode
from ..norm import TemporalBatchNorm, fold_batchnorm

#: modules kept as one node of the traced graph (torch.nn layers are leaves anyway; conv / linear
#: also as their subclasses, inflor.layers.SpikeConv2d / SpikeLinear)
LEAVES = (BaseNode, TimeFold, TemporalBatchNorm, nn.Conv2d, nn.Linear)


class _Tracer(fx.Tracer):
    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return isinstance(m, LEAVES) or super().is_leaf_module(m, qualname)


class _Multistep(nn.Module):
    """``forward_multistep`` as a module's ``forward`` (what is traced)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model.forward_multistep(x)


def trace(model: nn.Module) -> fx.GraphModule:
    """The ``[T, B, ...] -> [T, B, K]`` graph of ``model.forward_multistep`` (a copy of the model
    in evaluation mode; its modules keep their paths under ``model.``)."""
    root = _Multistep(copy.deepcopy(model).eval())
    try:
        with torch.no_grad():      # inference wiring: norm -> neuron pairs (inflor.pairing) stay two plain calls
            graph = _Tracer().trace(root)
    except Exception as exc:
        raise TypeError(f"cannot trace {type(model).__name__}.forward_multistep for deployment "
                        f"({type(exc).__name__}: {exc}); data-dependent Python control flow is "
                        "not supported") from exc
    return fx.GraphModule(root, graph)


def node_name(target: str) -> str:
    """A module path of the traced graph without the wrapper's ``model.`` prefix."""
    return target[len("model."):] if target.startswith("model.") else target


def _linear_of(gm: fx.GraphModule, node: fx.Node) -> nn.Module | None:
    """The nn.Conv2d / nn.Linear that graph node ``node`` calls (through a TimeFold), else None."""
    if node.op != "call_module":
        return None
    m = gm.get_submodule(node.target)
    inner = m.module if isinstance(m, TimeFold) else m
    return inner if isinstance(inner, (nn.Conv2d, nn.Linear)) else None


def fold_norms(gm: fx.GraphModule) -> list[str]:
    """Fold every BN node whose input is a conv / linear used by nothing else into that layer
    (in place); returns the paths of the BNs that could not be folded."""
    left = []
    for node in list(gm.graph.nodes):
        if node.op != "call_module" or not isinstance(gm.get_submodule(node.target), TemporalBatchNorm):
            continue
        src = node.args[0]
        layer = _linear_of(gm, src) if isinstance(src, fx.Node) else None
        if layer is None or len(src.users) != 1:
            left.append(node_name(node.target))
            continue
        folded = fold_batchnorm(layer, gm.get_submodule(node.target))
        holder = gm.get_submodule(src.target)
        if isinstance(holder, TimeFold):
            holder.module = folded
        else:
            parent, _, attr = src.target.rpartition(".")
            setattr(gm.get_submodule(parent), attr, folded)
        node.replace_all_uses_with(src)
        gm.graph.erase_node(node)
    gm.graph.lint()
    gm.recompile()
    return left


def fold_mpr(node: BaseNode) -> None:
    """MPR into the threshold, in place: V_th ← φ⁻¹(V_th), φ removed (see the module docstring).
    A φ other than ``inflor.mpr.MPR`` has no known inverse and is refused."""
    if node.mpr is None:
        return
    if not isinstance(node.mpr, MPR):
        raise TypeError(f"cannot fold the MPR callable {node.mpr!r} into a threshold: only "
                        "inflor.mpr.MPR has a known inverse")
    node.cfg = type(node.cfg)(**{**node.cfg.as_dict(), "v_threshold": node.mpr.inverse(node.cfg.v_threshold)})
    node.mpr = None


def use_reference(module: nn.Module) -> nn.Module:
    """Every spiking neuron of ``module`` on the reference backend (plain tensor ops), in place:
    what an exporter traces (the fused kernels are compiled code it cannot see into)."""
    for m in module.modules():
        if isinstance(m, BaseNode):
            m.backend = "reference"
    return module


def fold_model(model: nn.Module, norms: bool = True, mpr: bool = True) -> fx.GraphModule:
    """The inference form of ``model``: its traced graph (a copy, evaluation mode) with (td)BN
    folded into the preceding conv / linear and MPR into the thresholds. Call it with
    time-first ``[T, B, ...]`` input; it returns the per-step logits like ``forward_multistep``."""
    gm = trace(model)
    if norms:
        fold_norms(gm)
    if mpr:
        for m in gm.modules():
            if isinstance(m, BaseNode):
                fold_mpr(m)
    return gm
