"""Fused multi-step neuron backend: ``inflor.neuron.BACKENDS["fused"]``.

Same contract and results as ``inflor.functional.neuron_reference`` (the readable
specification), computed by two compiled kernels instead of a Python loop of small eager ops:

* **forward**: one pass over time per element. It reads X[0..T-1] once, keeps U in a register,
  and writes O[0..T-1] (plus, with ``record_stats``, the sums of H, H², sX and O: on the CPU
  per row of a channel's spatial positions inside the same loop, see the rows layout below;
  otherwise per element over T, reduced per channel afterwards). With gradients on the CPU, where
  one kernel covers all T steps, T a multiple of 8 (outside the rows layout), it also writes
  the spikes as ``inflor.bitpack`` bytes (1/32 of their float32 size),
  which the next spike layer keeps instead of reading the spikes again to pack them
  (``bitpack.remember_packed``).
* **backward**: one pass per element. It reads X again, *recomputes* H[0..T-1] forwards in
  registers, then walks time backwards reading dL/dO[t] and writing dL/dX[t]. (For a norm →
  neuron pair, ``inflor.pairing``, it may read the norm's input instead and compute X from it:
  ``ops.InputRecipe``, with an identity shortcut's spikes read bit by bit from their bytes.)

Only the input X (in its own dtype, no copy) is saved for backward: no H, no spikes, no surrogate
values. Recomputing H costs a few flops per element; storing it would cost a full tensor.
Gradients of the statistics (Σ H, Σ H², Σ sX, Σ O) are folded into the same backward pass, so a
loss on them needs no stored copy of H either.

The kernels are plain PyTorch functions with the time loop unrolled (T is a compile-time
constant; sizes are dynamic). Inductor turns each into one C++/OpenMP loop on CPU and one Triton
kernel on GPU: one source for both. On CPU the source is traced once with symbolic sizes and
compiled as a standalone artifact (``torch._inductor.standalone_compile``), called without a
dynamo frame around it; elsewhere it goes through ``torch.compile``. Every number that changes between calls or
epochs is a runtime tensor input (V_th, λ, s, V_reset or the soft-reset amount, surrogate width or
sharpness — so ESG's K changes per epoch without recompiling — and MPR's k); only the structure
is compiled in: hard or soft reset, ``detach_reset``, the surrogate family, the MPR kind,
``record_stats``, T, and whether s, λ and V_reset take the presets' identity values (1, 1, 0:
their multiply or subtract is left out). A network uses one or two such structures, and each
specialised step is a handful of vector instructions fewer than a generic one. Long sequences
run in chunks of at most ``MAX_UNROLL`` steps, passing U (and dL/dU) between chunks; the same
state passing gives the explicit state of ``inflor.functional`` (an initial U₀ in, the final U
out, dL/dU₀ back).

Surrogate families (g as a function of z = Ĥ - V_th)::

    box            A·1[|z| < W]                                 Rectangle
    bell           A·e/(1+e)², e = exp(-B|z|)                   Tanh, ESG, Sigmoid
    windowed_bell  A·e/(1+e)²·1[|z| < W]                        DSpike
    triangle       A·max(W - |z|, 0)                            Triangle
    atan           A/(1 + (B z)²)                               ATan

(``(k/2)(1 - tanh²(kz)) = 2k·e/(1+e)²`` with B = 2k, and ``α σ(αz)(1 - σ(αz)) = α e/(1+e)²`` with
B = α: one exp, no tanh. In float32 that exp is the kernels' own inlined polynomial,
``_exp2_neg``: a library exp is an out-of-line call per 8 lanes.)

MPR: φ is strictly increasing, so the forward tests ``H ≥ φ⁻¹(V_th)`` (a scalar computed once)
instead of evaluating φ per element. With a box surrogate the backward's window
``|φ(H) - V_th| < W`` is likewise ``φ⁻¹(V_th - W) < H < φ⁻¹(V_th + W)``, so only φ' is evaluated,
and for InfLoR's defaults (V_th = ½, width 1: 0 < H < 1) only φ' of the middle, tanh piece: no
cube roots. Other surrogates evaluate φ and φ'. Spikes and windows equal the reference's except,
possibly, where φ(H) lies within a few ulps of their edges.

Both kernels sit behind one PyTorch operator, ``torch.ops.inflor.neuron`` (with its fake
implementation and autograd formula registered through ``torch.library``), so the same path runs
eagerly and inside a user's ``torch.compile(model, fullgraph=True)``: no graph break at a neuron,
the compiled graph calls these kernels and saves for backward what the operator saves (x).

Membrane statistics are summed and returned in float32 (float64 for float64 input) whatever the
input dtype: a half-precision Σ H² of an ImageNet layer overflows. Half-precision inputs are
computed in float32 inside the kernels; spikes and dL/dx come back in the input's dtype.

Uses the reference, with one warning, for what it cannot fuse: a surrogate class without a
declared fused form (see ``inflor.surrogate.Surrogate``), an MPR callable other than
``inflor.mpr.MPR``, or a surrogate in ``spiking=False`` mode. Where compilation fails, it warns
once and runs the same kernel source uncompiled. ``INFLOR_FUSED=0`` in the environment makes
``backend="auto"`` use the reference.

The package, one layer per module (each imports only the ones above it):

    lowering     a neuron's settings, surrogate and MPR -> the kernels' structure ``Spec`` and
                 runtime parameters p (``op_settings``, ``_params``, the ``FUSED_FORMS`` reading)
    kernel_math  the pointwise functions: surrogate families, MPR's φ and φ', the inlined exp
    kernels      the kernel source, ``_make_forward`` / ``_make_backward``
    compilation  inductor / standalone compile, the kernel cache, ``_run`` (warn-once fallback)
    ops          layout and chunks, the ``inflor::neuron`` / ``inflor::neuron_backward``
                 operators with their fake and autograd registrations, the eager ``_NeuronFn``,
                 and the input recipes a norm → neuron pair hands its backward (``InputRecipe``)
    entry        ``fused_neuron`` and ``auto_neuron``, what ``inflor.neuron`` calls

Every name of those modules is also an attribute of ``inflor.fused``. Setting one there (as tests
do with ``monkeypatch.setattr(fused, "_run", ...)``) sets it in the modules that hold it, so the
new value is the one used.
"""
from __future__ import annotations

import sys
import types

from . import compilation, entry, kernel_math, kernels, lowering, ops
from .lowering import (N_PARAMS, P_A, P_B, P_D, P_HI, P_LAM, P_LO, P_MINV, P_MK, P_MKINV, P_S,
    P_THR, P_VTH, P_W, Spec, _PARAM_CACHE, _VALUE_CACHE, _compute_dtype, _mpr_kind, _param_value,
    _params, _prepare, _spec, _surrogate_form, fusable, op_settings)  # noqa: F401
from .kernel_math import (_EXP2_POLY, _LOG2E, _SurrogateParams, _cbrt_ge1, _exp2_neg,
    _exp_nonpositive, _inflor_sides, _phi_and_grad, _phi_grad, _scale, _surrogate_grad, _tanh_exp,
    _tanh_form, _tanh_form_grad)  # noqa: F401
from .kernels import (_affine_input, _bit_step, _charge_and_fire, _make_backward, _make_forward, _settings,
    _spike_bytes)  # noqa: F401
from .compilation import (_EXAMPLE_N, _EXAMPLE_ROWS, _FAILED, _HELPERS, _INDUCTOR_OPTIONS, _KERNELS,
    _LOCK, _READY, _SIZED, _TIME_FIRST, _WARNED, _cpu_threads, _dyn, _fresh_function, _kernel,
    _kernel_key, _present, _run, _standalone, _standalone_helper, _thread_options, _warn_once, compiled_or_eager,
    _affine_rounds_like_aten, _AFFINE_PROBES)  # noqa: F401
from .ops import (_AFFINE_EXACT, _HANDOFF, MAX_UNROLL, ROWS_MAX_UNROLL, ROWS_MIN_S, InputRecipe, Tensor,
    _NeuronFn, _backward, _channel_shape, _chunks, _forward, _layout, _neuron_backward_op_fake, _neuron_op_backward,
    bits_in_kernel,
    _neuron_op_fake, _neuron_op_setup, _per_row, _run_with_recipe, _saved_with_recipe, _use_rows,
    neuron_backward, neuron_backward_op, neuron_forward, neuron_op, offer_input_recipe)  # noqa: F401
from .entry import (AUTO_MIN_NUMEL, _DEVICES, _ENABLED, auto_neuron, fused_neuron)  # noqa: F401
# names the single-file module had in scope (imported there), kept so old imports keep working
from ..functional import NeuronConfig, check_multistep, neuron_reference  # noqa: F401,E402
from ..mpr import MPR, phi_inverse  # noqa: F401,E402
from ..stats import MembraneStats  # noqa: F401,E402
from ..surrogate import FUSED_FORMS, Surrogate  # noqa: F401,E402

__all__ = ["fused_neuron", "auto_neuron", "fusable", "MAX_UNROLL", "AUTO_MIN_NUMEL"]

_PARTS = (lowering, kernel_math, kernels, compilation, ops, entry)


class _Package(types.ModuleType):
    """``inflor.fused`` itself: setting an attribute also sets it in each part module that holds
    the same object under that name (where it is defined, and where it was imported by name), so
    that the parts see the new value."""

    def __setattr__(self, name: str, value) -> None:
        old = self.__dict__.get(name, _PARTS)   # _PARTS: a sentinel no part holds under a name
        for part in _PARTS:
            if part.__dict__.get(name, self) is old:
                setattr(part, name, value)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
