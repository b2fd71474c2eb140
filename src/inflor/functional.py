"""The neuron engine as a pure function: one equation set, every variant a setting of it.

docs/design.md §2, per time step t with U[-1] = U₀ (0 unless an initial ``state`` is given)::

    H[t] = λ · U[t-1] + s · X[t]               λ = decay (IF: 1), s = input_scale
    Ĥ[t] = φ(H[t]) if MPR else H[t]
    O[t] = Θ(Ĥ[t] - V_th)                      Θ(x) = 1 for x >= 0
    hard reset:  U[t] = H[t] · (1 - O[t]) + V_reset · O[t]
    soft reset:  U[t] = H[t] - r · O[t]         r = soft_reset_amount (1, the spike value, for SRIF)

Backward: dO/dH = g(Ĥ - V_th) · φ'(H), g the surrogate; the reset carries gradient unless
``detach_reset``. Precision: a half-precision input is charged in float32 (the membrane of a long
sequence would otherwise drift by its rounding every step); spikes and dL/dX come back in the
input's dtype, the membrane statistics in float32. ``neuron_reference`` is the readable specification (a Python loop over T);
faster backends must match it.

Explicit state: ``state=U₀`` starts the recurrence from a given membrane (shape ``x.shape[1:]``,
in the accumulation dtype), and ``return_state=True`` also returns the final membrane U[T-1].
Nothing is kept between calls, so running ``x[:k]`` and then ``x[k:]`` with the first call's
final U as the second's state is the same computation as one call on ``x`` (bit for bit), and
gradients flow through the passed state unless the caller detaches it (truncated BPTT).
"""
from __future__ import annotations

from dataclasses import dataclass, asdict
from typing import Callable

import torch

from .stats import MembraneStats, accumulation_dtype, step_sums
from .surrogate import Surrogate

RESETS = ("hard", "soft")


@dataclass(frozen=True)
class NeuronConfig:
    """Scalar settings of the neuron equations (see the module docstring).

    Mapping to peers: SpikingJelly ``v_reset=None`` (soft reset by V_th) is
    ``reset="soft", soft_reset_amount=v_threshold``; its ``LIFNode(tau, decay_input=False)`` is
    ``decay = 1 - 1/tau``. snnTorch ``Leaky(beta)`` is ``decay = beta`` with
    ``reset_mechanism="subtract"`` ↔ ``reset="soft", soft_reset_amount=threshold`` (snnTorch
    delays the reset by one step; inflor resets in the step that fires).
    """

    v_threshold: float = 0.5
    decay: float = 1.0
    input_scale: float = 1.0
    reset: str = "hard"
    v_reset: float = 0.0
    soft_reset_amount: float = 1.0
    detach_reset: bool = False

    def __post_init__(self):
        if self.reset not in RESETS:
            raise ValueError(f"reset must be one of {list(RESETS)} ('hard': U = H(1-O) + v_reset·O; "
                             f"'soft': U = H - soft_reset_amount·O), got {self.reset!r}")
        if not self.v_threshold > 0:
            raise ValueError(f"v_threshold must be a positive number, got {self.v_threshold}")
        if not 0.0 <= self.decay <= 1.0:
            raise ValueError(f"decay λ must lie in [0, 1] (1 = IF, 0.25 = the IM-Loss LIF), got {self.decay}")
        if not self.input_scale > 0:
            raise ValueError(f"input_scale must be > 0, got {self.input_scale}")

    def as_dict(self) -> dict:
        return asdict(self)


def check_multistep(x: torch.Tensor, who: str = "neuron") -> None:
    """Raise a clear error unless ``x`` is a floating multi-step tensor ``[T, B, ...]``."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{who} expects a torch.Tensor [T, B, ...], got {type(x).__name__}")
    if x.dim() < 2:
        raise ValueError(f"{who} expects a multi-step tensor [T, B, ...] (time first, then batch); "
                         f"got shape {tuple(x.shape)} with no time dimension. Repeat a static input "
                         f"T times, e.g. x.unsqueeze(0).repeat(T, 1, ...)")
    if not x.is_floating_point():
        raise TypeError(f"{who} expects a floating-point tensor, got dtype {x.dtype}")


def scaled_input(x_t: torch.Tensor, cfg: NeuronConfig) -> torch.Tensor:
    """s · X[t] (no multiply when s = 1)."""
    return x_t if cfg.input_scale == 1.0 else cfg.input_scale * x_t


def charge(u: torch.Tensor | None, sx_t: torch.Tensor, cfg: NeuronConfig) -> torch.Tensor:
    """H[t] = λ · U[t-1] + s · X[t], with ``u=None`` standing for U[-1] = 0 and ``sx_t`` = s·X[t]."""
    if u is None:
        return sx_t
    return (u if cfg.decay == 1.0 else cfg.decay * u) + sx_t


def reset(h: torch.Tensor, o: torch.Tensor, cfg: NeuronConfig) -> torch.Tensor:
    """U[t] = H·(1 − O) + V_reset·O (hard) or H − r·O (soft), O the (possibly detached) spike."""
    if cfg.reset == "hard":
        u = h * (1.0 - o)
        return u + cfg.v_reset * o if cfg.v_reset != 0.0 else u
    return h - cfg.soft_reset_amount * o


def initial_state(state: torch.Tensor | None, x: torch.Tensor) -> torch.Tensor | None:
    """U₀ for input ``x [T, B, ...]``: ``None`` (U₀ = 0, no add) or ``state`` checked to have one
    step's shape ``x.shape[1:]`` and cast to the accumulation dtype (float32 for half inputs)."""
    if state is None:
        return None
    if not isinstance(state, torch.Tensor) or tuple(state.shape) != tuple(x.shape[1:]):
        got = tuple(state.shape) if isinstance(state, torch.Tensor) else type(state).__name__
        raise ValueError(f"neuron state must be a tensor of one step's shape {tuple(x.shape[1:])} "
                         f"(the input [T, B, ...] without T), got {got}")
    return state.to(accumulation_dtype(x.dtype))


def neuron_reference(x: torch.Tensor, cfg: NeuronConfig, surrogate: Surrogate,
                     mpr: Callable[[torch.Tensor], torch.Tensor] | None = None,
                     record_stats: bool = False, state: torch.Tensor | None = None,
                     return_state: bool = False):
    """Run the neuron over ``x`` of shape ``[T, B, ...]``; return spikes ``[T, B, ...]`` and, if
    ``record_stats``, the per-channel ``MembraneStats`` of H (differentiable), as
    ``(spikes, stats)``; with ``return_state`` ``(spikes, stats, U[T-1])``. ``state`` is U₀
    (see the module docstring; ``None`` = 0)."""
    check_multistep(x)
    T = x.shape[0]
    spikes = []
    h_sums, h_sqsums = [], []
    # half-precision inputs are charged in float32 (float64 stays float64), as the fused kernels
    # do; spikes and dL/dx come back in the input's dtype, the statistics in float32
    acc = accumulation_dtype(x.dtype)
    x_sum = x.new_zeros((), dtype=acc)
    u = initial_state(state, x)
    for t in range(T):
        xt = scaled_input(x[t].to(acc), cfg)
        h = charge(u, xt, cfg)
        h_hat = mpr(h) if mpr is not None else h
        o = surrogate(h_hat - cfg.v_threshold)
        u = reset(h, o.detach() if cfg.detach_reset else o, cfg)
        spikes.append(o)
        if record_stats:
            s, sq = step_sums(h)
            h_sums.append(s)
            h_sqsums.append(sq)
            x_sum = x_sum + xt.sum(dtype=acc)
    out = torch.stack(spikes).to(x.dtype)
    if return_state:
        final = u if u is not None else x.new_zeros(x.shape[1:], dtype=acc)
        stats = _stats(out, x, T, h_sums, h_sqsums, x_sum, acc) if record_stats else None
        return out, stats, final
    if not record_stats:
        return out, None
    return out, _stats(out, x, T, h_sums, h_sqsums, x_sum, acc)


def _stats(out, x, T, h_sums, h_sqsums, x_sum, acc) -> MembraneStats:
    h_sum = torch.stack(h_sums).sum(0)
    stats = MembraneStats(h_sum=h_sum, h_sqsum=torch.stack(h_sqsums).sum(0),
                          count=x.numel() // h_sum.numel(), timesteps=T, x_sum=x_sum,
                          o_sum=out.sum(dtype=acc))
    return stats
