"""Spiking neuron modules: thin, stateless ``nn.Module`` wrappers of ``inflor.functional``.

Call a node on a multi-step tensor ``[T, B, ...]`` and get float spikes of the same shape. A node
holds no membrane state between calls, so there is no "reset the network after every batch" step.

Presets (``make_neuron(kind)``), all with V_th = 0.5:

=========  ====================================================  =========================
kind       equations                                             source
=========  ====================================================  =========================
``if``     H = U + X, hard reset to 0                            InfLoR baseline
``lif``    H = 0.25·U + X, hard reset to 0                       InfLoR Eq. 6, IM-Loss code
``aaai``   H = U + 0.25·X, hard reset to 0                       AAAI'22 MPR abstract
``srif``   H = U + X, soft reset U = H − 1 (the spike value)     InfLoR Eq. 8
``inflor`` SRIF + MPR φ of InfLoR Eq. 10                         InfLoR-SNN
=========  ====================================================  =========================
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from .functional import NeuronConfig, check_multistep, neuron_reference
from .fused import auto_neuron, fused_neuron
from .mpr import resolve_mpr
from .stats import MembraneStats
from .surrogate import make_surrogate

ROLES = ("standalone", "block_output", "block_inner")

#: name -> callable(x, cfg, surrogate, mpr, record_stats, state=None, return_state=False) ->
#: (spikes, stats) or, with return_state, (spikes, stats, U_final); faster backends register
#: themselves here and are tested against "reference".
BACKENDS: dict[str, Callable] = {"reference": neuron_reference, "fused": fused_neuron}


class BaseNode(nn.Module):
    """Multi-step spiking neuron implementing docs/design.md §2 (see ``inflor.functional``).

    Args:
        v_threshold: V_th (> 0). 0.5 in all the papers.
        decay: λ in H = λU + sX (1 = IF).
        input_scale: s in H = λU + sX (0.25 in the AAAI form).
        reset: ``"hard"`` (U = H(1−O) + v_reset·O) or ``"soft"`` (U = H − soft_reset_amount·O).
        v_reset: the hard-reset value.
        soft_reset_amount: what a soft reset subtracts; 1 = the spike value (InfLoR SRIF).
            SpikingJelly's soft reset (``v_reset=None``) subtracts V_th: pass ``v_threshold``.
        mpr: ``None``, ``"inflor"``, ``"tanh"`` or a callable φ; ``mpr_k`` its k.
        surrogate_function: a ``Surrogate`` or its name (default ``Rectangle()``).
        detach_reset: stop the gradient through O in the reset.
        backend: ``"auto"`` (fastest available), or a key of ``inflor.neuron.BACKENDS``.
        role: ``"standalone"``, ``"block_output"`` or ``"block_inner"`` (residual-block position).
        im_restrict: whether IM-Loss restricts this neuron (default: not for ``block_inner``).

    When ``record_stats`` is True, each forward leaves ``self.stats`` (``MembraneStats`` of H,
    differentiable) for the distribution losses.
    """

    def __init__(self, v_threshold: float = 0.5, decay: float = 1.0, input_scale: float = 1.0,
                 reset: str = "hard", v_reset: float = 0.0, soft_reset_amount: float = 1.0,
                 mpr=None, mpr_k: float | None = None, surrogate_function=None,
                 detach_reset: bool = False, backend: str = "auto", role: str = "standalone",
                 im_restrict: bool | None = None):
        super().__init__()
        self.cfg = NeuronConfig(v_threshold=float(v_threshold), decay=float(decay),
                                input_scale=float(input_scale), reset=reset, v_reset=float(v_reset),
                                soft_reset_amount=float(soft_reset_amount), detach_reset=bool(detach_reset))
        self.mpr = resolve_mpr(mpr, mpr_k)
        self.surrogate_function = make_surrogate(surrogate_function)
        if backend != "auto" and backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; valid choices: {['auto', *BACKENDS]}")
        self.backend = backend
        if role not in ROLES:
            raise ValueError(f"role must be one of {list(ROLES)}, got {role!r}")
        self.role = role
        self.im_restrict = (role != "block_inner") if im_restrict is None else bool(im_restrict)
        self.record_stats = False
        self.stats: MembraneStats | None = None

    # SpikingJelly-style read access to the settings
    v_threshold = property(lambda self: self.cfg.v_threshold)
    decay = property(lambda self: self.cfg.decay)
    reset = property(lambda self: self.cfg.reset)
    detach_reset = property(lambda self: self.cfg.detach_reset)

    def _backend_fn(self) -> Callable:
        if self.backend != "auto":
            return BACKENDS[self.backend]
        return auto_neuron   # the fused kernels where worthwhile, else the reference

    def forward(self, x: torch.Tensor, state: torch.Tensor | None = None, return_state: bool = False):
        """Spikes ``[T, B, ...]`` for ``x [T, B, ...]``, starting from membrane ``state`` (U₀ of
        shape ``x.shape[1:]``; ``None`` = 0). With ``return_state=True`` returns
        ``(spikes, U[T-1])``: feeding that U as the next call's ``state`` continues the sequence
        exactly (see ``inflor.functional``); pass ``u.detach()`` for truncated BPTT."""
        check_multistep(x, type(self).__name__)
        fn = self._backend_fn()
        if state is None and not return_state:
            spikes, stats = fn(x, self.cfg, self.surrogate_function, self.mpr, self.record_stats)
            u = None
        else:
            spikes, stats, u = fn(x, self.cfg, self.surrogate_function, self.mpr, self.record_stats,
                                  state=state, return_state=True)
        if stats is not None:
            stats.role = self.role
        self.stats = stats
        return (spikes, u) if return_state else spikes

    def extra_repr(self) -> str:
        c = self.cfg
        parts = [f"v_threshold={c.v_threshold:g}", f"decay={c.decay:g}", f"reset={c.reset!r}"]
        if c.input_scale != 1.0:
            parts.append(f"input_scale={c.input_scale:g}")
        if c.reset == "soft":
            parts.append(f"soft_reset_amount={c.soft_reset_amount:g}")
        elif c.v_reset:
            parts.append(f"v_reset={c.v_reset:g}")
        if self.mpr is not None:
            parts.append(f"mpr={self.mpr!r}")
        if c.detach_reset:
            parts.append("detach_reset=True")
        if self.role != "standalone":
            parts.append(f"role={self.role!r}")
        return ", ".join(parts)


class IFNode(BaseNode):
    """Integrate-and-fire: H = U + X (λ = 1). ``reset="soft"`` with the default
    ``soft_reset_amount=1`` is InfLoR's SRIF; add ``mpr="inflor"`` for the full InfLoR neuron."""

    def __init__(self, v_threshold: float = 0.5, reset: str = "hard", mpr=None,
                 surrogate_function=None, detach_reset: bool = False, **kwargs):
        super().__init__(v_threshold=v_threshold, decay=1.0, reset=reset, mpr=mpr,
                         surrogate_function=surrogate_function, detach_reset=detach_reset, **kwargs)


class LIFNode(BaseNode):
    """Leaky integrate-and-fire with multiplicative decay: H = λU + X (λ = ``decay``, 0.25 in the
    IM-Loss code; SpikingJelly's ``tau`` with ``decay_input=False`` is λ = 1 − 1/τ)."""

    def __init__(self, decay: float = 0.25, v_threshold: float = 0.5, reset: str = "hard", mpr=None,
                 surrogate_function=None, detach_reset: bool = False, **kwargs):
        super().__init__(v_threshold=v_threshold, decay=decay, reset=reset, mpr=mpr,
                         surrogate_function=surrogate_function, detach_reset=detach_reset, **kwargs)


PRESETS: dict[str, dict] = {
    "if": dict(decay=1.0, reset="hard"),
    "lif": dict(decay=0.25, reset="hard"),
    "aaai": dict(decay=1.0, input_scale=0.25, reset="hard"),
    "srif": dict(decay=1.0, reset="soft", soft_reset_amount=1.0),
    "inflor": dict(decay=1.0, reset="soft", soft_reset_amount=1.0, mpr="inflor"),
}


def make_neuron(kind: str = "if", **overrides) -> BaseNode:
    """A neuron from a preset name (see the module table) with keyword overrides."""
    if kind not in PRESETS:
        raise ValueError(f"unknown neuron kind {kind!r}; valid choices: {sorted(PRESETS)}")
    kwargs = {**PRESETS[kind], **overrides}
    return BaseNode(**kwargs)


def spiking_nodes(model: nn.Module) -> list[tuple[str, BaseNode]]:
    """All spiking neurons of ``model`` with their module paths, in registration order."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, BaseNode)]


def set_record_stats(model: nn.Module, enabled: bool = True) -> None:
    """Ask every neuron to report (or stop reporting) its membrane statistics."""
    for name, node in spiking_nodes(model):
        node.record_stats = enabled
        if not enabled:
            node.stats = None


def collect_stats(model: nn.Module, im_restricted_only: bool = False) -> list[MembraneStats]:
    """The statistics left by the last forward, in module order, named by module path."""
    out = []
    for name, node in spiking_nodes(model):
        if node.stats is None or (im_restricted_only and not node.im_restrict):
            continue
        node.stats.name = name
        out.append(node.stats)
    return out
