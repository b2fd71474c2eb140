"""Compilation: each kernel variant compiled once by inductor (a standalone artifact on the CPU,
``torch.compile`` elsewhere) and cached per structure, dtype, device and thread count; where
compiling fails, ``_run`` warns once and runs the kernel source uncompiled."""
from __future__ import annotations

import logging
import sys
import threading
import types
import warnings
from typing import Callable

import torch

from .kernels import _affine_input, _make_backward, _make_forward
from .lowering import N_PARAMS, Spec, _compute_dtype

# A CUDA build of torch compiling for the CPU logs "No CUDA runtime is found" at every first
# compile; on a CPU machine that is expected, not a problem worth a warning line per run.
if not torch.cuda.is_available():
    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)

# ----------------------------------------------------------------------------------------------
# Compilation cache and fallback
# ----------------------------------------------------------------------------------------------
_KERNELS: dict[tuple, Callable] = {}
_FAILED: set[tuple] = set()
_WARNED: set[str] = set()
_LOCK = threading.Lock()


def _warn_once(key: str, msg: str) -> None:
    if key not in _WARNED:
        _WARNED.add(key)
        warnings.warn(msg, RuntimeWarning, stacklevel=4)


def _fresh_function(fn: Callable, name: str) -> Callable:
    """A copy of ``fn`` with its own code object. torch.compile keeps its cache (and its
    recompile limit) per code object, so each kernel variant gets its own."""
    kw = {"co_name": name}
    if sys.version_info >= (3, 11):
        kw["co_qualname"] = name
    code = fn.__code__.replace(**kw)
    return types.FunctionType(code, fn.__globals__, name, fn.__defaults__, fn.__closure__)


#: Inductor settings for these kernels:
#: * ``realize_opcount_threshold``: materialise (in registers: everything is fused into one loop)
#:   any subexpression of more than a few ops that is used more than once, instead of re-inlining
#:   it at every use: the unrolled time loop and the cube-root iterations would otherwise grow the
#:   compile time exponentially;
#: * ``pattern_matcher`` off: there is nothing for it to match in a pointwise loop, and it cost
#:   ~2 s of every first compile;
#: * ``-ffp-contract=fast`` (inductor's default is off, to match eager bit for bit): lets the C++
#:   compiler fuse multiply-adds (the exp polynomial, the membrane update); on the benchmark's CPU
#:   the backward kernels ran 13% faster. Our contract with the reference is equality within float
#:   tolerance, which the tests check with this flag on;
#: and, per CPU thread count (see ``_thread_options``), ``cpp.threads`` and ``cpp.dynamic_threads``.
_INDUCTOR_OPTIONS = {"realize_opcount_threshold": 4, "max_fusion_size": 100000, "pattern_matcher": False,
                     "cpp.enable_floating_point_contract_flag": "fast"}


def _cpu_threads(device_type: str) -> int:
    """The OpenMP thread count a CPU kernel is generated for (0 elsewhere). Inductor bakes
    ``torch.get_num_threads()`` into the C++ (serial code for 1 thread) but leaves it out of its
    on-disk cache key, so a kernel first compiled at 1 thread would be served, serial, to every
    later process. Passing it as ``cpp.threads`` puts it in the key; it is in ours too, so a
    ``torch.set_num_threads`` mid-process gets kernels for the new count."""
    return torch.get_num_threads() if device_type == "cpu" else 0


def _thread_options(threads: int) -> dict:
    """Inductor's threading options for CPU kernels compiled for ``threads`` OpenMP threads (0: not
    a CPU kernel).

    * ``cpp.threads``: see ``_cpu_threads``.
    * ``cpp.dynamic_threads`` when there is more than one thread: every loop then gets an OpenMP
      parallel region. Without it, inductor parallelises a loop only if its *size hint* is large,
      and the hint of a kernel traced with symbolic sizes is the example's: with a small example
      every kernel came out serial at any thread count, and inductor's disk cache, which does not
      key on hints, went on serving those (this option is part of its key). At 1 thread the loop
      stays serial: inside an OpenMP region the compiler produced ~8% slower code."""
    if not threads:
        return {}
    return {"cpp.threads": threads, "cpp.dynamic_threads": threads > 1}


def _kernel_key(direction: str, spec: Spec, dtype: torch.dtype, device_type: str) -> tuple:
    """What a compiled kernel is cached under (in ``_KERNELS``, ``_FAILED`` and ``_READY``)."""
    return (direction, spec, dtype, device_type, _cpu_threads(device_type))


def _kernel(direction: str, spec: Spec, dtype: torch.dtype, device_type: str) -> Callable:
    key = _kernel_key(direction, spec, dtype, device_type)
    threads = key[-1]
    fn = _KERNELS.get(key)
    if fn is not None:
        return fn
    with _LOCK:
        fn = _KERNELS.get(key)
        if fn is None:
            src = (_make_forward if direction == "fwd" else _make_backward)(spec)
            options = dict(_INDUCTOR_OPTIONS, **_thread_options(threads))
            if spec.rows:   # see the rows layout's note
                options["realize_opcount_threshold"] = 30
            if device_type == "cpu":
                fn = _standalone(direction, spec, src, dtype, options)
            else:
                flags = "".join(f"_{f}" for f in ("detach", "stats", "state", "s_is_1", "lam_is_1",
                                                    "v_reset_is_0", "rows", "affine", "extra", "extra_bits", "bits")
                                if getattr(spec, f))
                name = "inflor_{}_T{}_{}_{}_{}{}_{}_{}".format(
                    direction, spec.T, spec.reset, spec.family or "any", spec.mpr or "any", flags,
                    str(dtype).replace("torch.", ""), device_type)
                # sizes are marked dynamic before the first call (see _run), the rest is static
                fn = torch.compile(_fresh_function(src, name), fullgraph=True, options=options)
            _KERNELS[key] = fn
    return fn


#: which arguments a kernel takes, given its structure (the others are None)
def _present(direction: str, spec: Spec) -> tuple[bool, ...]:
    u0 = spec.state or spec.rows
    if direction == "fwd":          # x, p, u0, thr_row
        return (True, True, u0, spec.rows)
    # x, gout, p, u0, gu_in, g1, g2, gxs, gos, thr_row, vth_row, aff_a, aff_b, extra
    return ((True, True, True, u0, spec.state) + (spec.stats,) * 4 + (spec.rows,) * 2
            + (spec.affine,) * 2 + (spec.extra,))


#: the example size N of a traced kernel: inductor's size hint (see _standalone); in the rows
#: layout [R, S] = [512, 128]
_EXAMPLE_N = 1 << 16
_EXAMPLE_ROWS = 512


def _standalone(direction: str, spec: Spec, src: Callable, dtype: torch.dtype, options: dict) -> Callable:
    """The CPU kernel as a standalone inductor artifact: the source traced once with symbolic
    sizes (every size is dynamic) and compiled, with no dynamo frame around it, so a call costs
    ~13 µs instead of ~50 µs of guard checks. What the guards would check is our cache key
    (structure, dtype, device, threads) plus the layout the caller guarantees: contiguous flat
    [T, N] / [N] tensors. The example sizes are ≥ 2, so no size is specialised to 0 or 1; and
    large, because inductor takes them as the size hint that decides whether a loop is worth
    running in parallel (with N = 17 every kernel came out serial, whatever the thread count)."""
    from torch.fx.experimental.proxy_tensor import make_fx
    present = _present(direction, spec)
    cdt = _compute_dtype(dtype)
    T = spec.T
    # one step: [N], or in the rows layout [R, S] (distinct sizes, each its own symbol), and what
    # comes per element of a step (u0 with state, g1, g2) or per row ([R, 1]: thr, u0 without state)
    if spec.rows:
        step, row = (_EXAMPLE_ROWS, _EXAMPLE_N // _EXAMPLE_ROWS), (_EXAMPLE_ROWS, 1)
    else:
        step = row = (_EXAMPLE_N,)
    u0 = step if spec.state else row
    g12 = row if spec.rows else step      # also the affine map's a, b
    z = lambda shape, dt=cdt: torch.zeros(shape, dtype=dt)   # noqa: E731
    # distinct tensors (the tracer would take one object passed twice for one input)
    if direction == "fwd":
        examples = [z((T, *step), dtype), z(N_PARAMS), z(u0), z(row)]
    else:
        examples = [z((T, *step), dtype), z((T, *step), dtype), z(N_PARAMS), z(u0), z(step),
                    z(g12), z(g12), z(1), z(1), z(row), z(row), z(g12, dtype), z(g12, dtype),
                    z((T // 8, *step), torch.uint8) if spec.extra_bits else z((T, *step), dtype)]
    examples = [e for e, keep in zip(examples, present) if keep]

    def full_args(given):
        it = iter(given)
        return [next(it) if keep else None for keep in present]

    gm = make_fx(lambda *given: src(*full_args(given)), tracing_mode="symbolic")(*examples)
    with torch._inductor.config.patch(options):
        art = torch._inductor.standalone_compile(gm, examples)
    def run(*args):
        # the artifact asserts dense strides (an unused statistic's gradient arrives expanded)
        return art(*[a.contiguous() for a, keep in zip(args, present) if keep])

    run.artifact = art
    return run


# ----------------------------------------------------------------------------------------------
# Small helper kernels (e.g. ``inflor.bitpack``'s): one function, compiled on first use
# ----------------------------------------------------------------------------------------------
_HELPERS: dict[tuple, Callable] = {}


def compiled_or_eager(fn: Callable, name: str, *args):
    """``fn(*args)`` compiled (every size dynamic, one graph: on the CPU a standalone artifact,
    ``_standalone_helper``; elsewhere ``torch.compile``), compiled on first use per
    name, device type, the dtypes among ``args`` and the CPU thread count (see
    ``_thread_options``), so each such kernel has its own recompile budget; where compiling fails, warn
    once and run ``fn`` itself from then on: the same result, slower. Inside a caller's
    ``torch.compile`` trace, ``fn`` is traced into the caller's graph instead."""
    if torch.compiler.is_compiling():
        return fn(*args)
    device_type = next(a.device.type for a in args if isinstance(a, torch.Tensor))
    dtypes = tuple(a.dtype if isinstance(a, torch.Tensor) else a for a in args
                   if isinstance(a, (torch.Tensor, torch.dtype)))
    consts = tuple(a for a in args if not isinstance(a, (torch.Tensor, torch.dtype)))  # traced in as constants
    key = ("helper", name, device_type, dtypes, consts, _cpu_threads(device_type))
    if key not in _FAILED and device_type in ("cpu", "cuda", "xpu"):
        compiled = _HELPERS.get(key)
        try:
            if compiled is None:
                options = dict(_thread_options(key[-1]))
                if device_type == "cpu":
                    compiled = _HELPERS[key] = _standalone_helper(fn, args, options)
                else:
                    compiled = _HELPERS[key] = torch.compile(_fresh_function(fn, f"inflor_{name}"), dynamic=True,
                                                             fullgraph=True, options=options)
            out = compiled(*args)
        except Exception as exc:  # compilation unavailable or broken: remember, warn once
            if key in _READY:     # it compiled and ran before: an error of this call, not of compiling
                raise
            _FAILED.add(key)
            _warn_once(f"compile-{name}", f"inflor: compiling the {name} kernel failed ({type(exc).__name__}: "
                                          f"{str(exc).splitlines()[0] if str(exc) else ''}); running it "
                                          "uncompiled (same result, slower)")
        else:
            _READY.add(key)
            return out
    return fn(*args)


def _standalone_helper(fn: Callable, args: tuple, options: dict) -> Callable:
    """A helper on the CPU as a standalone inductor artifact (see ``_standalone``: no dynamo
    frame, so a call costs a few µs instead of ~0.2 ms of guards and wrappers; a backward pass
    unpacks spikes once per spike layer). Traced on the first call's arguments with every size
    symbolic; sizes equal in those arguments are taken to be equal in every call (so a helper's
    arguments may share a size only where they always do), and arguments that are not tensors
    are constants of the trace (``compiled_or_eager`` keys on them). Tensors must be contiguous
    (the artifact checks strides); one the helper writes into (``out``) is written in place."""
    from torch.fx.experimental.proxy_tensor import make_fx
    tensors = [i for i, a in enumerate(args) if isinstance(a, torch.Tensor)]

    def traced(*given):
        full = list(args)
        for i, t in zip(tensors, given):
            full[i] = t
        out = fn(*full)
        return () if out is None else out       # a helper that only writes into an argument

    examples = [args[i] for i in tensors]
    gm = make_fx(traced, tracing_mode="symbolic")(*examples)
    with torch._inductor.config.patch(options):
        art = torch._inductor.standalone_compile(gm, examples)

    def run(*call_args):
        out = art(*[call_args[i] for i in tensors])
        return None if isinstance(out, (tuple, list)) and len(out) == 0 else out

    run.artifact = art
    return run


_AFFINE_PROBES: dict[tuple, bool] = {}


def _affine_rounds_like_aten(dtype: torch.dtype, device_type: str) -> bool:
    """Whether ``kernels._affine_input`` compiled with the kernels' options (``-ffp-contract=fast``
    makes ``addcmul(b, y, a)`` one fused multiply-add) gives ATen's ``addcmul`` bit for bit, the
    shortcut term included: checked once per dtype, device type and thread count on a probe with
    a vectorised body and a scalar tail (what a norm → neuron pair's backward relies on,
    ``inflor.fused.ops.InputRecipe``). False where compiling fails (the uncompiled kernel source
    is ATen's own ``addcmul``, but a kernel that cannot compile falls back per call anyway)."""
    threads = _cpu_threads(device_type)
    key = (dtype, device_type, threads)
    ok = _AFFINE_PROBES.get(key)
    if ok is None:
        gen = torch.Generator().manual_seed(0)
        y, a, b = (torch.randn(n, 4099, generator=gen, dtype=dtype).to(device_type) for n in (8, 1, 1))
        r = (torch.rand(8, 4099, generator=gen) < 0.3).to(dtype).to(device_type)
        try:
            fn = _standalone_helper(_affine_input, (y, a, b, r), dict(_INDUCTOR_OPTIONS, **_thread_options(threads))) \
                if device_type == "cpu" else torch.compile(_affine_input, fullgraph=True, options=_INDUCTOR_OPTIONS)
            got = fn(y, a, b, r)
            ok = torch.equal(got[0] if isinstance(got, (tuple, list)) else got, torch.addcmul(b, y, a) + r)
        except Exception:   # no compiler: no recipes (the replay is exact by itself)
            ok = False
        _AFFINE_PROBES[key] = ok
    return ok


# which arguments of a kernel have sizes: time-first ones (dimension 0 is T) and the rest
_TIME_FIRST = {"fwd": (0,), "bwd": (0, 1, 13)}
_SIZED = {"fwd": (2, 3), "bwd": (3, 4, 5, 6, 9, 10, 11, 12)}
_READY: set[tuple] = set()


def _run(direction: str, spec: Spec, dtype: torch.dtype, device_type: str, *args):
    """Run a kernel, compiling it on first use. If compilation fails (no C++ compiler, a broken
    toolchain), warn once and run the same kernel source uncompiled: the same equations, slower."""
    key = _kernel_key(direction, spec, dtype, device_type)
    if key not in _FAILED:
        if key not in _READY and device_type != "cpu":
            # torch.compile path: one compiled kernel serves every size, so mark the sizes dynamic
            # for the first compile (the CPU artifacts are traced with symbolic sizes, see
            # _standalone)
            for i in _TIME_FIRST[direction]:
                if args[i] is not None:
                    _dyn(args[i])
            for i in _SIZED[direction]:
                if args[i] is not None:
                    _dyn(args[i], first=0)
        try:
            out = _kernel(direction, spec, dtype, device_type)(*args)
        except Exception as exc:  # compilation unavailable or broken: remember, warn once
            _FAILED.add(key)
            _warn_once("compile", f"inflor fused neuron backend: compiling the kernel failed "
                                  f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); "
                                  "falling back to running its source uncompiled (correct but "
                                  "slower). Set INFLOR_FUSED=0 to use the reference instead.")
        else:
            _READY.add(key)
            return out
    return (_make_forward if direction == "fwd" else _make_backward)(spec)(*args)


def _dyn(*tensors: torch.Tensor, first: int = 1) -> None:
    """One compiled kernel serves every size: mark the sizes (all dimensions from ``first`` on;
    dimension 0 of a chunk is time) dynamic."""
    for t in tensors:
        for d in range(first, t.dim()):
            torch._dynamo.maybe_mark_dynamic(t, d)
