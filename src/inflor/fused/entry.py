"""Entry points: what ``inflor.neuron`` (``BACKENDS["fused"]``, ``backend="auto"``) calls."""
from __future__ import annotations

import os
from typing import Callable

import torch

from ..functional import NeuronConfig, check_multistep, initial_state, neuron_reference
from ..stats import MembraneStats
from ..surrogate import Surrogate
from .compilation import _warn_once
from .lowering import _mpr_kind, _surrogate_form, fusable, op_settings
from .ops import _NeuronFn

#: devices with an inductor code generator (others, e.g. "meta" for shape inference, use the
#: reference)
_DEVICES = ("cpu", "cuda", "xpu")
#: ``backend="auto"`` uses the fused path from this many elements on (smaller inputs, e.g. in
#: unit tests, are not worth a compile)
AUTO_MIN_NUMEL = 1 << 15


def fused_neuron(x: torch.Tensor, cfg: NeuronConfig, surrogate: Surrogate,
                 mpr: Callable | None = None, record_stats: bool = False,
                 state: torch.Tensor | None = None, return_state: bool = False):
    """The fused backend; same signature and results as ``neuron_reference``. Eagerly through
    ``_NeuronFn``; inside ``torch.compile`` as one ``torch.ops.inflor.neuron`` node per call.
    Explicit state (an initial ``state`` U₀, ``return_state``) is the kernels' chunk state: U₀ in,
    U[T-1] out, dL/dU₀ from the backward (``inflor.functional``'s contract)."""
    check_multistep(x)
    explicit = state is not None or return_state
    kw = dict(state=state, return_state=True) if explicit else {}
    key, kind = _surrogate_form(surrogate), _mpr_kind(mpr)
    if key is None or kind is None:
        what = "MPR callable" if kind is None else "surrogate"
        _warn_once(f"unfusable-{what}", f"inflor fused neuron backend: this {what} "
                   f"({type(mpr if kind is None else surrogate).__name__}) has no fused kernel; "
                   "using the reference implementation for it")
        return neuron_reference(x, cfg, surrogate, mpr, record_stats, **kw)
    if x.numel() == 0 or x.device.type not in _DEVICES:
        return neuron_reference(x, cfg, surrogate, mpr, record_stats, **kw)
    if state is not None:
        state = initial_state(state, x)
    sparam = getattr(surrogate, type(surrogate).fused_param)
    args = (op_settings(cfg, mpr), cfg.reset, cfg.detach_reset, key, kind, bool(record_stats))
    if torch.compiler.is_compiling():
        out = torch.ops.inflor.neuron(x, sparam, *args, state, explicit)
    else:
        # with gradients the kernel also writes the spikes as bits for a spike layer to keep
        # (inflor.bitpack.remember_packed); without, nothing keeps them
        bits = torch.is_grad_enabled() and (x.requires_grad or sparam.requires_grad
                                            or (state is not None and state.requires_grad))
        out = _NeuronFn.apply(x, sparam, state, args + (explicit,), bits)
    spikes, h_sum, h_sqsum, x_sum, o_sum, _, u_final = out
    stats = None
    if record_stats:
        stats = MembraneStats(h_sum=h_sum, h_sqsum=h_sqsum, count=x.numel() // h_sum.numel(),
                              timesteps=x.shape[0], x_sum=x_sum, o_sum=o_sum)
    return (spikes, stats, u_final) if explicit else (spikes, stats)


def auto_neuron(x: torch.Tensor, cfg: NeuronConfig, surrogate: Surrogate,
                mpr: Callable | None = None, record_stats: bool = False,
                state: torch.Tensor | None = None, return_state: bool = False):
    """What ``backend="auto"`` runs: the fused kernels for inputs of at least ``AUTO_MIN_NUMEL``
    elements whose surrogate and MPR are fusable, else the reference (silently); explicit state
    as in ``fused_neuron``."""
    kw = dict(state=state, return_state=True) if state is not None or return_state else {}
    if x.numel() < AUTO_MIN_NUMEL or not _ENABLED or not fusable(cfg, surrogate, mpr):
        return neuron_reference(x, cfg, surrogate, mpr, record_stats, **kw)
    return fused_neuron(x, cfg, surrogate, mpr, record_stats, **kw)


_ENABLED = os.environ.get("INFLOR_FUSED", "1").strip().lower() not in ("0", "false", "no", "off")
