"""Lowering: what the fused kernels are told about a neuron. Its surrogate's and MPR's declared
fused forms (``inflor.surrogate.FUSED_FORMS``, ``inflor.mpr.phi_inverse``) and its settings become
the compiled-in structure (``Spec``) and the runtime parameter vector p (``P_*`` slots); see the
package docstring (``inflor.fused``) for the kernels and docs/design.md §10 for the contract."""
from __future__ import annotations

import math
import weakref
from typing import NamedTuple

import torch

from ..functional import NeuronConfig
from ..mpr import MPR, phi_inverse
from ..surrogate import FUSED_FORMS, Surrogate

# ----------------------------------------------------------------------------------------------
# What can be fused: surrogate families and MPR kinds, with their runtime parameters
# ----------------------------------------------------------------------------------------------
# parameter vector p (compute dtype, on the input's device):
P_VTH, P_LAM, P_S, P_D, P_A, P_B, P_W, P_THR, P_MK, P_MINV, P_MKINV, P_LO, P_HI = range(13)
N_PARAMS = 13


def _surrogate_form(s) -> str | None:
    """The fused operator's key of surrogate ``s`` (its class declares a fused form, see
    ``inflor.surrogate.Surrogate``), None for anything else (a class without its own form, or
    ``spiking=False``, which runs the smooth primitive)."""
    if not isinstance(s, Surrogate) or not s.spiking or type(s).fused_family is None:
        return None
    return type(s).fused_key()


def _mpr_kind(mpr) -> str | None:
    """"none", or the kind of an ``inflor.mpr.MPR``; None for any other callable."""
    if mpr is None:
        return "none"
    return mpr.kind if type(mpr) is MPR else None


def fusable(cfg: NeuronConfig, surrogate, mpr) -> bool:
    """Whether this neuron runs on the fused kernels (else the fused backend uses the reference)."""
    return _surrogate_form(surrogate) is not None and _mpr_kind(mpr) is not None


# ----------------------------------------------------------------------------------------------
# The kernels' structure: compiled in (T and the structure are closure constants of the
# kernel source; everything numeric comes in through the parameter vector p)
# ----------------------------------------------------------------------------------------------
class Spec(NamedTuple):
    T: int            # steps in this kernel (unrolled)
    family: str       # surrogate family ("" for the forward, which does not use it)
    mpr: str          # "none" | "tanh" | "inflor" ("" for the forward)
    stats: bool       # per-element partial sums out / statistics gradients in
    state: bool       # U in and out (chunks of a longer sequence)
    reset: str        # "hard" | "soft": which update U = f(H, O) (its values are runtime inputs)
    detach: bool      # detach_reset: no gradient through the reset (backward only)
    # the identity values of the defaults, compiled in so that their multiply or subtract is left
    # out (every other value of these settings is a runtime input):
    s_is_1: bool = False          # input_scale s = 1: H = λU + X
    lam_is_1: bool = False        # decay λ = 1 (IF): H = U + sX, dL/dU[t-1] = dL/dH[t]
    v_reset_is_0: bool = False    # hard reset to V_reset = 0: U = H·(1 - O)
    # x as rows [T, R, S]: statistics summed per row inside the kernel, per-row inputs (see the
    # operator's note; the backward also uses it for an input recipe's per-channel a, b)
    rows: bool = False
    # backward only: x is a norm's input y and the neuron's input is recomputed in the kernel as
    # z = addcmul(b, y, a) (+ extra[t] with ``extra``), a and b per row or per element of a step
    # (see ``inflor.fused.ops.InputRecipe``)
    affine: bool = False
    extra: bool = False
    # backward only, with ``extra``: the extra term comes as spikes' bytes [T/8, ...] in
    # ``inflor.bitpack``'s layout (an identity shortcut's kept spikes), read bit by bit in the
    # kernel instead of unpacked into memory first
    extra_bits: bool = False
    # forward only: the spikes also come out as bytes [T/8, ...] in ``inflor.bitpack``'s layout
    # (the next spike layer's kept input, not packed again there)
    bits: bool = False


# ----------------------------------------------------------------------------------------------
# Parameters
# ----------------------------------------------------------------------------------------------
_PARAM_CACHE: dict[tuple, tuple] = {}
_VALUE_CACHE: dict[int, tuple] = {}


def _param_value(t: torch.Tensor) -> float:
    """The surrogate's runtime parameter as a float. Reading a GPU tensor synchronises, so off the
    CPU the value is cached per tensor object and version (ESG's ``fill_`` per epoch bumps it)."""
    if t.device.type == "cpu":
        return float(t)
    hit = _VALUE_CACHE.get(id(t))
    if hit is not None and hit[0]() is t and hit[1] == t._version:
        return hit[2]
    v = float(t)
    if len(_VALUE_CACHE) > 512:
        _VALUE_CACHE.clear()
    _VALUE_CACHE[id(t)] = (weakref.ref(t), t._version, v)
    return v


def _params(settings: tuple, reset: str, surrogate: str, value: float, mpr: str,
            dtype: torch.dtype, device: torch.device) -> tuple[torch.Tensor, str]:
    """The runtime parameter vector p and the MPR kind the backward kernel evaluates, cached per
    (settings, surrogate and its value, MPR, dtype, device). ``settings`` is the operator's
    (V_th, λ, s, V_reset, r, MPR k).

    The kernel's MPR kind is the neuron's, except that InfLoR's φ with a box surrogate whose
    window φ⁻¹(V_th ∓ W) lies inside [0, 1] (the default: V_th = ½, width 1 gives 0 < H < 1)
    only ever needs φ' of its middle piece, the tanh form: no cube roots."""
    key = (settings, reset, surrogate, value, mpr, dtype, device)
    hit = _PARAM_CACHE.get(key)
    if hit is not None:
        return hit
    vth, lam, s, v_reset, r, k = settings
    form = FUSED_FORMS[surrogate]
    a, b, w = form.fused_values(value)
    vals = [0.0] * N_PARAMS
    vals[P_VTH], vals[P_LAM], vals[P_S] = vth, lam, s
    vals[P_D] = v_reset if reset == "hard" else -r
    vals[P_A], vals[P_B], vals[P_W] = a, b, w
    vals[P_THR] = phi_inverse(mpr, k, vth)
    kernel_mpr = mpr
    if mpr != "none":
        d = 2.0 * math.tanh(k / 2.0)
        vals[P_MK], vals[P_MINV], vals[P_MKINV] = k, 1.0 / d, k / d
        vals[P_LO] = phi_inverse(mpr, k, vth - w)
        vals[P_HI] = phi_inverse(mpr, k, vth + w)
        if mpr == "inflor" and form.fused_family == "box" and 0.0 <= vals[P_LO] and vals[P_HI] <= 1.0:
            kernel_mpr = "tanh"
    p = torch.tensor(vals, dtype=torch.float64).to(device=device, dtype=dtype)
    if len(_PARAM_CACHE) > 512:
        _PARAM_CACHE.clear()
    _PARAM_CACHE[key] = (p, kernel_mpr)
    return p, kernel_mpr


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def op_settings(cfg: NeuronConfig, mpr) -> list[float]:
    """The operator's numeric settings: (V_th, λ, s, V_reset, r, MPR k; 0 without MPR)."""
    return [cfg.v_threshold, cfg.decay, cfg.input_scale, cfg.v_reset, cfg.soft_reset_amount,
            0.0 if mpr is None else mpr.k]


def _spec(settings: tuple, reset: str, detach: bool, family: str, kernel_mpr: str, stats: bool) -> Spec:
    """The kernels' structure for these settings (T and chunking are filled in per call)."""
    _, lam, s, v_reset, _, _ = settings
    return Spec(T=0, family=family, mpr=kernel_mpr, stats=stats, state=False, reset=reset,
                detach=bool(detach), s_is_1=s == 1.0, lam_is_1=lam == 1.0,
                v_reset_is_0=reset == "hard" and v_reset == 0.0)


def _prepare(x, sparam, settings, reset, detach, surrogate, mpr, stats) -> tuple[torch.Tensor, Spec]:
    settings = tuple(float(v) for v in settings)
    p, kernel_mpr = _params(settings, reset, surrogate, _param_value(sparam), mpr,
                            _compute_dtype(x.dtype), x.device)
    return p, _spec(settings, reset, detach, FUSED_FORMS[surrogate].fused_family, kernel_mpr, stats)
