#!/usr/bin/env python
"""One GPU check anyone can run: correctness of the fused neuron on the device, its speed against
the bandwidth floor and SpikingJelly, a ResNet-19 training step against its ANN twin, and a short
CIFARNet training run with AMP, MPD-Loss and ESG.

    python benchmarks/gpu_check.py                      # --device cuda, the full check (< 8 min on one GPU)
    python benchmarks/gpu_check.py --device cpu --quick # the same logic at small sizes (< 2 min on 2 cores)

Parts (docs/performance.md, "GPU check", has the full text):

1. **neuron checks**: ``BaseNode(backend="fused")`` against ``backend="reference"`` (run on the
   float32 copy of the same input) for every surrogate × {float32, bfloat16, float16} × {MPR,
   record_stats, detach_reset}: spikes equal except at exact ties, input gradients within a
   tolerance per dtype, no gradient silently zero where the reference's is not, the membrane
   statistics within float32 tolerance, and the fused kernels really ran (not a silent fallback
   to the reference). ``--quick`` runs a covering subset: every surrogate, dtype and variant at
   least once.
2. **neuron timing**: forward + backward at T = 4, 8, 32, float32 and bfloat16 (quick: T = 4,
   float32, on a small layer), against the elementwise floor of the same bytes (``run.py``'s) and
   SpikingJelly's LIF on its fastest implementation on the device (named in the table).
3. **ResNet-19 step**: one training step (paper width, T = 4, batch 64; quick: width/16, batch 4)
   against its ANN twin, in float32 and with AMP, with peak memory.
4. **CIFARNet training**: 200 steps (quick: 24, width/16) on synthetic class-dependent
   CIFAR-shaped data with AMP, MPD-Loss on the recorded membrane statistics and the ESG surrogate
   (K scheduled with ``set_epoch``); the losses must be finite and falling.

``--device cpu --quick`` runs on 1 torch thread unless ``--threads`` says otherwise: on a shared
small CPU, OpenMP threads wait for each other's time slices, milliseconds per parallel region.

Writes ``gpu_check.json`` and ``gpu_check.md`` to ``--out`` (default
``benchmarks/results/gpu_check-<device>``), prints the tables, and exits 1 if any correctness
check failed (timings never fail the check), 2 if the device is unavailable.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import itertools
import json
import math
import sys
import time
import traceback
import warnings
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import run as bench  # noqa: E402  (the benchmark suite: timing, floor, ANN twin, reduced networks;
#                                  imported before torch, it quiets the profiler's log lines)
import peers as peer_lib  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402
from inflor.functional import charge, reset, scaled_input  # noqa: E402
from inflor.losses import ce_of_mean, mpd_loss  # noqa: E402
from inflor.models import create_model  # noqa: E402
from inflor.neuron import BaseNode, collect_stats, make_neuron, set_record_stats  # noqa: E402
from inflor.surrogate import ESG, SURROGATES, make_surrogate  # noqa: E402
from inflor.train.trainer import esg_modules  # noqa: E402

PARTS = ("neuron_checks", "neuron_timing", "resnet19_step", "cifarnet_training")

# ------------------------------------------------------------------------------------------------
# 1. fused vs reference
# ------------------------------------------------------------------------------------------------
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}

#: the neuron variants checked, each a preset plus settings (hard and soft resets both appear)
VARIANTS = {
    "mpr": dict(kind="inflor"),                                  # SRIF (soft reset) + InfLoR's φ
    "record_stats": dict(kind="lif", record_stats=True),         # LIF, hard reset, statistics
    "detach_reset": dict(kind="srif", detach_reset=True),        # soft reset, no gradient through it
}

#: ``--quick``: one case per surrogate family and dtype/variant pairing so that every surrogate,
#: every dtype and every variant appears at least once while few kernels are compiled (Tanh, ESG
#: and Sigmoid are one family, "bell", and share their compiled kernels)
QUICK_CASES = [("rectangle", "float32", "mpr"), ("tanh", "bfloat16", "record_stats"),
               ("esg", "bfloat16", "record_stats"), ("sigmoid", "bfloat16", "record_stats"),
               ("dspike", "float16", "mpr"), ("triangle", "float16", "detach_reset"),
               ("atan", "bfloat16", "record_stats")]

#: |φ(H) − V_th| below which the two backends may legitimately fire differently: both compute H
#: in float32, but the fused kernels contract multiply-adds and test H ≥ φ⁻¹(V_th) where the
#: reference evaluates φ(H) (a few float32 ulps apart, ~1e-6 at |H| of a few units)
TIE_EPS = 1e-5
#: a change of the surrogate gradient σ(H) = g(φ(H) − V_th)·φ'(H) by more than this across
#: H ± TIE_EPS marks a window edge or a kink of φ' (a rectangle or DSpike window, InfLoR's φ'
#: at H = 0 and 1), where the backends may pick different sides; smooth surrogates change by
#: < 1e-3 over that width
JUMP_TOL = 1e-3
#: at most this fraction of neurons may be left out of the gradient comparison for ties
MAX_EXCLUDED = 0.05
#: input-gradient tolerance per dtype: the fused gradient is computed in float32 and rounded to the
#: input's dtype once, so it may differ from the reference's (rounded alike) by one ulp of that
#: dtype (rtol), plus float32 differences relative to the largest gradient (atol_scale)
GRAD_TOL = {"float32": dict(rtol=1e-4, atol_scale=1e-5),
            "bfloat16": dict(rtol=2.0 ** -7, atol_scale=1e-5),
            "float16": dict(rtol=2.0 ** -10, atol_scale=1e-5, atol_min=2.0 ** -24)}
#: statistics: float32 sums of the same float32 values in another order, relative to Σ|·| of what
#: is summed, for every input dtype (the statistics are float32 whatever the input dtype)
STATS_RTOL = 1e-4


def case_list(quick: bool) -> list[tuple[str, str, str]]:
    """(surrogate, dtype, variant) cases: ``QUICK_CASES`` or the whole product."""
    if quick:
        return list(QUICK_CASES)
    return list(itertools.product(sorted(SURROGATES), DTYPES, VARIANTS))


def coverage(cases) -> dict:
    """Which surrogates, dtypes and variants the cases leave out (all empty: covering)."""
    return {"surrogates": sorted(set(SURROGATES) - {c[0] for c in cases}),
            "dtypes": sorted(set(DTYPES) - {c[1] for c in cases}),
            "variants": sorted(set(VARIANTS) - {c[2] for c in cases})}


def build_node(surrogate: str, variant: str, backend: str, device) -> BaseNode:
    """The neuron of a case on ``device``; ESG's K is set mid-schedule (epoch 5 of 10)."""
    spec = dict(VARIANTS[variant])
    kind, stats = spec.pop("kind"), spec.pop("record_stats", False)
    sur = make_surrogate(surrogate)
    if isinstance(sur, ESG):
        sur.set_epoch(5, 10)
    node = make_neuron(kind, surrogate_function=sur, backend=backend, **spec).to(device)
    node.record_stats = stats
    return node


@dataclass
class NeuronRun:
    spikes: torch.Tensor          # as returned
    grad: torch.Tensor            # dL/dx, in x's dtype
    stats: dict | None            # h_sum, h_sqsum, x_sum, o_sum (float64 copies)
    saved_bytes: int              # what autograd kept for backward


def run_node(node: BaseNode, x: torch.Tensor, w: torch.Tensor) -> NeuronRun:
    """Forward and backward of ``node`` on a copy of ``x``. The loss is Σ w·O, plus, with
    statistics, Σ_c c·(h_sum + 0.3·h_sqsum) + 0.7·x_sum + 1.3·o_sum (c from −1 to 1 over the
    channels), so every statistic's gradient reaches dL/dx. The statistics' weights are rounded to
    bfloat16 values, exact in every dtype, so both backends receive the same upstream gradients
    whatever dtype their statistics have."""
    xr = x.detach().clone().requires_grad_(True)
    box = {}
    saved = bench.saved_bytes(lambda: box.update(y=node(xr)))
    y, st = box["y"], node.stats
    outs, grads = [y], [w.to(y.dtype)]
    stats = None
    if st is not None:
        c = torch.linspace(-1.0, 1.0, st.channels, device=x.device)
        for t, gv in ((st.h_sum, c), (st.h_sqsum, 0.3 * c), (st.x_sum, torch.tensor(0.7)),
                      (st.o_sum, torch.tensor(1.3))):
            outs.append(t)
            grads.append(gv.to(t.device, torch.bfloat16).to(t.dtype).expand_as(t))
        stats = {k: getattr(st, k).detach().double() for k in ("h_sum", "h_sqsum", "x_sum", "o_sum")}
    (g,) = torch.autograd.grad(outs, xr, grads)
    return NeuronRun(y.detach(), g, stats, saved)


def membrane_trace(x: torch.Tensor, spikes: torch.Tensor, node: BaseNode) -> torch.Tensor:
    """H[t] in float64 for input ``x`` and the given spike train, through the engine's own
    equations (``inflor.functional``: charge, then reset with these spikes)."""
    cfg, u, hs = node.cfg, None, []
    xd, od = x.double(), spikes.double()
    for t in range(x.shape[0]):
        h = charge(u, scaled_input(xd[t], cfg), cfg)
        u = reset(h, od[t], cfg)
        hs.append(h)
    return torch.stack(hs)


def fire_margin(h: torch.Tensor, node: BaseNode) -> torch.Tensor:
    """z = φ(H) − V_th (H − V_th without MPR): the neuron fires where z ≥ 0."""
    return (node.mpr(h) if node.mpr is not None else h) - node.cfg.v_threshold


def surrogate_slope(h: torch.Tensor, node: BaseNode) -> torch.Tensor:
    """σ(H) = g(φ(H) − V_th)·φ'(H), the reference's dO/dH, in float64."""
    hh = h.detach().double().requires_grad_(True)
    with torch.enable_grad():
        phi = node.mpr(hh) if node.mpr is not None else hh
        (dphi,) = torch.autograd.grad(phi.sum(), hh)
    return node.surrogate_function.grad(phi.detach() - node.cfg.v_threshold) * dphi


def edge_mask(h: torch.Tensor, node: BaseNode, eps: float = TIE_EPS, tol: float = JUMP_TOL) -> torch.Tensor:
    """Where σ jumps within H ± eps: a window edge or a kink, whose side may differ between
    backends (float32 rounding); True there."""
    return (surrogate_slope(h + eps, node) - surrogate_slope(h - eps, node)).abs() > tol


def compare_spikes(o_fused, o_ref, z_ref, z_fused, eps: float = TIE_EPS) -> dict:
    """Spikes of the fused backend against the reference's, per neuron (one trajectory over T):

    * a neuron whose spike trains differ must first differ at a tie, |z_ref| ≤ eps (after that
      its membrane legitimately differs);
    * every fused spike must agree with its own membrane, O = [z_fused ≥ 0] where |z_fused| > eps
      (z_fused from the fused spike train, so diverged neurons are checked too);
    * the input must exercise both outcomes (0 < spike rate < 1).

    Returns the counts and ``ok``; ``diverged`` is a [N] mask of neurons whose trains differ."""
    T = o_ref.shape[0]
    of, orf = o_fused.double().reshape(T, -1), o_ref.double().reshape(T, -1)
    zr, zf = z_ref.reshape(T, -1), z_fused.reshape(T, -1)
    differ = of != orf
    diverged = differ.any(0)
    steps = torch.arange(T, device=differ.device).unsqueeze(1).expand_as(differ)
    first = torch.where(differ, steps, T - 1).min(0).values     # first differing step (T-1 where none)
    z_first = zr.gather(0, first.unsqueeze(0)).squeeze(0)
    unexplained = int((diverged & (z_first.abs() > eps)).sum())
    inconsistent = int(((of != (zf >= 0).double()) & (zf.abs() > eps)).sum())
    rate = float(orf.mean())
    ok = unexplained == 0 and inconsistent == 0 and 0.0 < rate < 1.0
    return {"ok": ok, "mismatched_spikes": int(differ.sum()), "neurons_diverged_at_ties": int(diverged.sum()),
            "unexplained": unexplained, "fused_inconsistent": inconsistent, "spike_rate": rate,
            "diverged": diverged}


def grad_tolerance(dtype: str, scale: float) -> tuple[float, float]:
    """(rtol, atol) for input gradients of ``dtype`` whose largest magnitude is ``scale``."""
    t = GRAD_TOL[dtype]
    return t["rtol"], max(t["atol_scale"] * scale, t.get("atol_min", 0.0))


def compare_gradients(g_fused: torch.Tensor, g_ref: torch.Tensor, keep: torch.Tensor, dtype: str) -> dict:
    """dL/dx of the fused backend (in ``dtype``) against the reference's (float32, rounded to
    ``dtype`` as the fused one is), on the neurons in ``keep`` ([N] over the flattened
    non-time dimensions). Fails beyond the dtype's tolerance, and separately where the fused
    gradient is exactly zero while the reference's is not (the failure SpikingJelly PR #660 found
    in Triton surrogates), and where the reference's gradient is zero everywhere (nothing
    checked)."""
    T = g_ref.shape[0]
    gr = g_ref.detach().to(DTYPES[dtype]).double().reshape(T, -1)[:, keep]
    gf = g_fused.detach().double().reshape(T, -1)[:, keep]
    scale = float(gr.abs().max()) if gr.numel() else 0.0
    rtol, atol = grad_tolerance(dtype, scale)
    err = (gf - gr).abs()
    bad = err > atol + rtol * gr.abs()
    zero = (gf == 0) & (gr.abs() > atol)
    rel = float((err / (atol + rtol * gr.abs())).max()) if gr.numel() else 0.0
    ok = scale > 0 and not bool(bad.any()) and not bool(zero.any()) and bool(torch.isfinite(gf).all())
    return {"ok": ok, "max_abs_err": float(err.max()) if gr.numel() else 0.0, "err_over_tol": rel,
            "rtol": rtol, "atol": atol, "out_of_tolerance": int(bad.sum()),
            "zero_where_ref_nonzero": int(zero.sum()), "ref_scale": scale}


def channel_abs_sums(v: torch.Tensor) -> torch.Tensor:
    """Σ|v| per channel (dim 2 of [T, B, C, ...]; a [T, B] tensor is one channel)."""
    a = v.abs()
    if a.dim() == 2:
        return a.sum().reshape(1)
    return a.transpose(0, 2).reshape(a.shape[2], -1).sum(1)


def channel_sums(v: torch.Tensor) -> torch.Tensor:
    """Σ v per channel (as ``channel_abs_sums``)."""
    if v.dim() == 2:
        return v.sum().reshape(1)
    return v.transpose(0, 2).reshape(v.shape[2], -1).sum(1)


def compare_stats(fused: dict, ref: dict, scales: dict, allowances: dict, rtol: float = STATS_RTOL) -> dict:
    """Each statistic of the fused backend against the reference's: |Δ| ≤ rtol·scale + allowance,
    elementwise, where ``scales`` are Σ|·| of what is summed (rounding of float32 sums) and
    ``allowances`` the exact float64 differences that diverged-at-a-tie neurons make (zero when
    the spike trains agree). Non-finite values fail."""
    out, ok = {}, True
    for k in ("h_sum", "h_sqsum", "x_sum", "o_sum"):
        f, r = fused[k].reshape(-1), ref[k].reshape(-1)
        tol = rtol * scales[k].reshape(-1) + allowances[k].reshape(-1)
        err = (f - r).abs()
        good = bool(torch.isfinite(f).all()) and bool((err <= tol).all())
        ok &= good
        out[k] = {"ok": good, "max_abs_err": float(err.max()), "max_err_over_tol": float((err / tol.clamp(min=1e-30)).max())}
    return {"ok": ok, **out}


def stats_scales_and_allowances(x32, h_ref, h_fused, o_ref, o_fused, node) -> tuple[dict, dict]:
    """(scales, allowances) for ``compare_stats`` from the float64 membranes of both spike
    trains (see there)."""
    sx = scaled_input(x32.double(), node.cfg)
    scales = {"h_sum": channel_abs_sums(h_ref), "h_sqsum": channel_sums(h_ref * h_ref),
              "x_sum": sx.abs().sum().reshape(1), "o_sum": o_ref.double().sum().reshape(1).clamp(min=1.0)}
    allow = {"h_sum": (channel_sums(h_fused) - channel_sums(h_ref)).abs(),
             "h_sqsum": (channel_sums(h_fused ** 2) - channel_sums(h_ref ** 2)).abs(),
             "x_sum": torch.zeros(1, dtype=torch.float64, device=x32.device),
             "o_sum": (o_fused.double().sum() - o_ref.double().sum()).abs().reshape(1)}
    return scales, allow


def fused_ran(run: NeuronRun, x: torch.Tensor) -> dict:
    """The fused kernels keep only their input for backward (docs/performance.md), the reference
    several tensors per step: more than 1.5× the input's bytes means the fused backend silently
    fell back to the reference and the comparison would be vacuous."""
    in_bytes = x.numel() * x.element_size()
    return {"ok": run.saved_bytes <= 1.5 * in_bytes + 4096, "saved_bytes": run.saved_bytes, "input_bytes": in_bytes}


def check_case(surrogate: str, dtype: str, variant: str, shape, device, seed: int = 0) -> dict:
    """Every check of one (surrogate, dtype, variant) case; ``ok`` if all pass."""
    gen = torch.Generator().manual_seed(seed)
    x32 = (torch.randn(shape, generator=gen) * 0.8 + 0.3).to(device)
    w = torch.randn(shape, generator=gen).to(device)
    xd = x32.to(DTYPES[dtype])
    wd = w.to(DTYPES[dtype])
    fused_node = build_node(surrogate, variant, "fused", device)
    ref_node = build_node(surrogate, variant, "reference", device)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        f = run_node(fused_node, xd, wd)
    r = run_node(ref_node, xd.float(), wd.float())
    xf = xd.float()
    h_ref, h_fused = membrane_trace(xf, r.spikes, ref_node), membrane_trace(xf, f.spikes, ref_node)
    spikes = compare_spikes(f.spikes, r.spikes, fire_margin(h_ref, ref_node), fire_margin(h_fused, ref_node))
    diverged = spikes.pop("diverged")
    edges = edge_mask(h_ref, ref_node).reshape(shape[0], -1).any(0)
    keep = ~(diverged | edges)
    excluded = 1.0 - float(keep.double().mean())
    checks = {"spikes": spikes,
              "excluded_for_ties": {"ok": excluded <= MAX_EXCLUDED, "fraction": excluded,
                                    "at_window_edges": int(edges.sum())},
              "gradients": compare_gradients(f.grad, r.grad, keep, dtype),
              "fused_kernels_ran": fused_ran(f, xd)}
    if f.stats is not None:
        scales, allow = stats_scales_and_allowances(xf, h_ref, h_fused, r.spikes, f.spikes, ref_node)
        checks["stats"] = compare_stats(f.stats, r.stats, scales, allow)
    fallback = [str(m.message) for m in caught if "inflor fused" in str(m.message)]
    if fallback:
        checks["warnings"] = {"ok": False, "messages": fallback}
    return {"surrogate": surrogate, "dtype": dtype, "variant": variant,
            "ok": all(c["ok"] for c in checks.values()), "checks": checks}


def neuron_checks(device, quick: bool) -> dict:
    """Part 1: every case of ``case_list``; the cases' results and the settings used."""
    cases = case_list(quick)
    shape = (4, 4, 8, 8, 8) if quick else (4, 32, 32, 16, 16)   # T = 4: parts 2–4 reuse these kernels
    out = {"shape": list(shape), "subset": "covering" if quick else "full product",
           "n_cases": len(cases), "n_product": len(SURROGATES) * len(DTYPES) * len(VARIANTS),
           "missing": coverage(cases), "tie_eps": TIE_EPS, "grad_tol": GRAD_TOL, "stats_rtol": STATS_RTOL,
           "cases": []}
    for i, (s, d, v) in enumerate(cases):
        t = time.time()
        res = check_case(s, d, v, shape, device, seed=i)
        res["seconds"] = time.time() - t
        out["cases"].append(res)
        print(f"  {s:9s} {d:8s} {v:12s} {'ok' if res['ok'] else 'FAIL'} ({res['seconds']:.1f} s)", flush=True)
    out["ok"] = all(c["ok"] for c in out["cases"])
    return out


# ------------------------------------------------------------------------------------------------
# 2. neuron timing
# ------------------------------------------------------------------------------------------------
def synced(fn, device):
    """``fn`` followed by a device synchronisation, so wall time covers the kernels."""
    if torch.device(device).type != "cuda":
        return fn

    def run():
        fn()
        torch.cuda.synchronize()
    return run


def sj_row(device) -> tuple[str, object]:
    """(row name, adapter or the reason there is none) for SpikingJelly's LIF on ``device``."""
    version = peer_lib._version("spikingjelly")
    if version is None:
        return "SpikingJelly LIF", "not installed"
    try:
        impl = peer_lib.sj_implementation(device)
        return f"SpikingJelly {version} LIF ({impl})", peer_lib.SJLIFFused().to(device)
    except Exception as exc:   # installed but not runnable here: a row that says so, not a failure
        return f"SpikingJelly {version} LIF", f"failed: {type(exc).__name__}: {exc}"


def time_neurons_at(shape, dtype: str, device, rounds: int) -> dict:
    """The floor, inflor's LIF with SpikingJelly's settings (hard reset, λ = 0.25, V_th = 0.5, its
    sigmoid α = 4 surrogate) and SpikingJelly's LIF, fwd+bwd on one input. (The InfLoR neuron is
    timed inside ResNet-19 in part 3; each extra row here is a kernel compile per T and dtype.)"""
    gen = torch.Generator().manual_seed(0)
    x = (torch.randn(shape, generator=gen) * 0.6 + 0.3).to(device, DTYPES[dtype]).requires_grad_(True)
    g = torch.randn(shape, generator=gen).to(device, DTYPES[dtype])
    rows = {bench.FLOOR: bench.elementwise_floor(x, g),
            "inflor LIF hard, sigmoid α=4 (fused)": bench.fwd_bwd(
                make_neuron("lif", backend="fused", surrogate_function="sigmoid").to(device), x, g)}
    name, sj = sj_row(device)
    notes = {}
    if isinstance(sj, nn.Module):
        try:
            bench.fwd_bwd(sj, x, g)()
            rows[name] = bench.fwd_bwd(sj, x, g)
        except Exception as exc:
            notes[name] = f"failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    else:
        notes[name] = sj
    res = bench.interleaved({k: synced(f, device) for k, f in rows.items()}, rounds)
    floor = res[bench.FLOOR]["median_ms"]
    floor_bytes = 5 * x.numel() * x.element_size()   # relu: read+write forward, 2 reads+write backward
    for v in res.values():
        v["x_floor"] = v["median_ms"] / floor
    res[bench.FLOOR]["GB_per_s"] = floor_bytes / (floor * 1e-3) / 1e9
    for k, why in notes.items():
        res[k] = {"note": why}
    return res


def neuron_timing(device, quick: bool) -> dict:
    """Part 2: ``time_neurons_at`` for each T and dtype."""
    # quick: each T and dtype is a new kernel pair, seconds of compile each on a small CPU
    Ts, dtypes = ((4,), ("float32",)) if quick else ((4, 8, 32), ("float32", "bfloat16"))
    rest = (4, 16, 16, 16) if quick else (64, 256, 32, 32)
    rounds = 3 if quick else 20
    out = {"layer": ["T", *rest], "rounds": rounds, "by": {}}
    for dtype in dtypes:
        for T in Ts:
            out["by"][f"{dtype}, T={T}"] = time_neurons_at((T, *rest), dtype, device, rounds)
            print(f"  timed {dtype} T={T}", flush=True)
    return out


# ------------------------------------------------------------------------------------------------
# 3. ResNet-19 training step
# ------------------------------------------------------------------------------------------------
def precisions(device) -> dict:
    """name -> autocast dtype (None: float32) or the reason it is skipped on this device. AMP is
    float16 with gradient scaling on CUDA (inflor's trainer default) and bfloat16 on the CPU."""
    if torch.device(device).type == "cuda":
        return {"float32": None, "AMP float16": torch.float16, "AMP bfloat16": torch.bfloat16}
    return {"float32": None, "AMP bfloat16": torch.bfloat16,
            "AMP float16": "skipped: float16 autocast on the CPU is not what AMP means there (inflor's "
                           "trainer uses bfloat16) and not every CPU op supports it"}


def autocast(device_type: str, dtype):
    """Autocast to ``dtype`` on the device, or nothing (float32) when ``dtype`` is None."""
    return contextlib.nullcontext() if dtype is None else torch.autocast(device_type, dtype=dtype)


def grad_scaler(amp_dtype, device_type: str):
    """A gradient scaler for float16 autocast (as inflor's trainer uses one), else None."""
    return torch.amp.GradScaler(device_type) if amp_dtype == torch.float16 else None


def backward_and_step(loss: torch.Tensor, opt: torch.optim.Optimizer, scaler) -> None:
    """zero_grad, backward and optimiser step, through ``scaler`` when there is one."""
    opt.zero_grad(set_to_none=True)
    if scaler is None:
        loss.backward()
        opt.step()
        return
    scaler.scale(loss).backward()
    scaler.step(opt)
    scaler.update()


def make_step(model: nn.Module, images, labels, amp_dtype):
    """One SGD-momentum training step (CE of the T-mean logits; the forward under autocast when
    ``amp_dtype`` is given, float16 with gradient scaling); returns the loss as a float."""
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    dev = images.device.type
    scaler = grad_scaler(amp_dtype, dev)

    def step():
        with autocast(dev, amp_dtype):
            logits = model(images)
        loss = ce_of_mean(logits.float(), labels)
        backward_and_step(loss, opt, scaler)
        return float(loss.detach())
    return step


def peak_memory(step, device) -> tuple[float, str]:
    """(peak MB of one call of ``step`` above what was allocated before, how it was measured)."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        step()
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - base) / 2 ** 20, "torch.cuda.max_memory_allocated"
    return bench.peak_step_bytes(step) / 2 ** 20, "CPU: profiler allocation events (run.py peak_step_bytes)"


def resnet19_models(quick: bool, device) -> dict:
    """The InfLoR ResNet-19 (quick: every width /16) and its ANN twin (neurons → ReLU)."""
    torch.manual_seed(0)
    if quick:
        snn = bench.resnet19_reduced(div=16, timesteps=4, neuron="inflor")
    else:
        snn = create_model("resnet19", timesteps=4, neuron="inflor")
    return {"SNN (InfLoR neurons)": snn.to(device), "ANN twin (ReLU)": bench.swap_neurons(snn, nn.ReLU).to(device)}


def resnet19_step(device, quick: bool) -> dict:
    """Part 3: step time, × ANN twin and peak memory per precision."""
    batch, rounds = (4, 2) if quick else (64, 10)
    gen = torch.Generator().manual_seed(0)
    images = torch.randn(batch, 3, 32, 32, generator=gen).to(device)
    labels = torch.randint(0, 10, (batch,), generator=gen).to(device)
    out = {"network": "ResNet-19/16" if quick else "ResNet-19", "batch": batch, "T": 4, "rounds": rounds,
           "rows": {}, "checks": {}}
    for prec, amp in precisions(device).items():
        if isinstance(amp, str):
            out["rows"][prec] = {"note": amp}
            continue
        models = resnet19_models(quick, device)
        steps = {k: make_step(m.train(), images, labels, amp) for k, m in models.items()}
        losses = {k: s() for k, s in steps.items()}   # compile / allocate outside the timing
        res = bench.interleaved({k: synced(s, device) for k, s in steps.items()}, rounds, warmup=1)
        ann = res["ANN twin (ReLU)"]["median_ms"]
        for k, s in steps.items():
            res[k]["x_ann"] = res[k]["median_ms"] / ann
            res[k]["peak_mb"], out["memory_measured_by"] = peak_memory(s, device)
            out["rows"][f"{prec}: {k}"] = res[k]
        finite = all(math.isfinite(v) for v in losses.values())
        out["checks"][f"{prec}: loss finite"] = {"ok": finite, "losses": losses}
        print(f"  ResNet-19 step {prec}", flush=True)
    out["ok"] = all(c["ok"] for c in out["checks"].values())
    return out


# ------------------------------------------------------------------------------------------------
# 4. CIFARNet training with AMP, MPD-Loss and ESG
# ------------------------------------------------------------------------------------------------
#: MPD-Loss weight λ (RecDis Eq. 20, the recipes' ``loss.mpd.weight``)
MPD_WEIGHT = 2.0


def class_patterns(num_classes: int, device, seed: int = 0) -> torch.Tensor:
    """One smooth random image per class ([K, 3, 32, 32], unit variance): 4×4 noise upsampled."""
    gen = torch.Generator().manual_seed(seed)
    low = torch.randn(num_classes, 3, 4, 4, generator=gen)
    img = nn.functional.interpolate(low, size=(32, 32), mode="bilinear", align_corners=False)
    return (img / img.std()).to(device)


def synthetic_batch(patterns: torch.Tensor, batch: int, gen: torch.Generator):
    """CIFAR-shaped images of random classes: the class pattern plus unit noise, and the labels."""
    y = torch.randint(0, patterns.shape[0], (batch,), generator=gen)
    noise = torch.randn(batch, *patterns.shape[1:], generator=gen)
    y = y.to(patterns.device)
    return patterns[y] + noise.to(patterns.device), y


def cifarnet_model(quick: bool, device) -> nn.Module:
    """CIFARNet (the registry's; quick: run.py's CIFARNet/16) with IM-Loss's LIF and ESG,
    recording membrane statistics."""
    torch.manual_seed(0)
    opts = dict(timesteps=4, neuron="lif", surrogate="esg")
    model = bench.CIFARNetReduced(div=16, **opts) if quick else create_model("cifarnet", **opts)
    set_record_stats(model)
    return model.to(device)


def is_falling(values: list[float], factor: float = 0.8) -> dict:
    """Whether the mean of the last quarter is below ``factor`` × the mean of the first."""
    q = max(1, len(values) // 4)
    first, last = sum(values[:q]) / q, sum(values[-q:]) / q
    return {"ok": last < factor * first, "first_quarter_mean": first, "last_quarter_mean": last}


def set_esg_epoch(model: nn.Module, step: int, per_epoch: int, epochs: int) -> None:
    """At the first step of each "epoch" of ``per_epoch`` steps, ESG's K follows its schedule."""
    if step % per_epoch == 0:
        for m in esg_modules(model):
            m.set_epoch(step // per_epoch, epochs)


def training_checks(log: dict) -> dict:
    """Every loss finite, the task and total losses falling, ESG's K risen."""
    k = log["esg_k"]
    return {"losses finite": {"ok": all(math.isfinite(v) for n in ("task", "mpd", "total") for v in log[n])},
            "task loss falling": is_falling(log["task"]), "total loss falling": is_falling(log["total"]),
            "ESG K scheduled": {"ok": k[-1] > k[0], "first": k[0], "last": k[-1]}}


def cifarnet_training(device, quick: bool) -> dict:
    """Part 4: train CIFARNet on synthetic data (CE of the T-mean logits + 2 × MPD-Loss, SGD
    momentum, AMP), then ``training_checks``."""
    steps, batch, epochs = (24, 16, 4) if quick else (200, 64, 10)
    dev = torch.device(device).type
    amp = precisions(device)["AMP float16" if dev == "cuda" else "AMP bfloat16"]
    model = cifarnet_model(quick, device).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    scaler = grad_scaler(amp, dev)
    patterns, gen = class_patterns(10, device), torch.Generator().manual_seed(1)
    log = {"task": [], "mpd": [], "total": [], "esg_k": []}
    t0 = time.time()
    for step in range(steps):
        set_esg_epoch(model, step, max(1, steps // epochs), epochs)
        x, y = synthetic_batch(patterns, batch, gen)
        with autocast(dev, amp):
            logits = model(x)
        parts = {"task": ce_of_mean(logits.float(), y), "mpd": mpd_loss(collect_stats(model))}
        parts["total"] = parts["task"] + MPD_WEIGHT * parts["mpd"]
        backward_and_step(parts["total"], opt, scaler)
        for k, v in parts.items():
            log[k].append(float(v.detach()))
        log["esg_k"].append(esg_modules(model)[0].k)
    checks = training_checks(log)
    return {"network": "CIFARNet/16" if quick else "CIFARNet", "steps": steps, "batch": batch, "T": 4,
            "amp": str(amp).replace("torch.", ""), "mpd_weight": MPD_WEIGHT, "seconds": time.time() - t0,
            "log": log, "checks": checks, "ok": all(c["ok"] for c in checks.values())}


# ------------------------------------------------------------------------------------------------
# environment, report, main
# ------------------------------------------------------------------------------------------------
def _dist_version(*names: str) -> str | None:
    for n in names:
        try:
            return importlib.metadata.version(n)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def environment(device) -> dict:
    """What ran the check: device name, torch, CUDA, triton, SpikingJelly, and the host as
    run.py describes it (CPU model, cores, torch threads, load average, peers)."""
    dev = torch.device(device)
    host = bench.environment(torch.get_num_threads())
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else host["cpu"] or "cpu"
    return {"date": host["date"], "device": str(dev), "device_name": name, "torch": torch.__version__,
            "cuda": torch.version.cuda, "triton": _dist_version("triton", "pytorch-triton"),
            "spikingjelly": peer_lib._version("spikingjelly"), "host": host}


def failures(results: dict) -> list[str]:
    """One line per failed correctness check (or part that raised)."""
    out = []
    for part in PARTS:
        r = results.get(part)
        if r is None:
            continue
        if "error" in r:
            out.append(f"{part}: raised {r['error'].splitlines()[-1]}")
        for c in r.get("cases", []):
            if not c["ok"]:
                bad = [k for k, v in c["checks"].items() if not v["ok"]]
                out.append(f"{part}: {c['surrogate']} {c['dtype']} {c['variant']}: {', '.join(bad)}")
        for k, v in r.get("checks", {}).items():
            if not v["ok"]:
                out.append(f"{part}: {k}")
    return out


def _case_row(c: dict) -> list:
    ch = c["checks"]
    s, g = ch["spikes"], ch["gradients"]
    st = ch.get("stats")
    stats = "—" if st is None else ("ok" if st["ok"] else "FAIL " + ",".join(k for k in ("h_sum", "h_sqsum", "x_sum", "o_sum") if not st[k]["ok"]))
    return [c["surrogate"], c["dtype"], c["variant"], f"{s['mismatched_spikes']} ({s['neurons_diverged_at_ties']} ties)",
            f"{g['err_over_tol']:.2g}", g["zero_where_ref_nonzero"], stats,
            "yes" if ch["fused_kernels_ran"]["ok"] else "NO (fallback)", "ok" if c["ok"] else "FAIL"]


def report(results: dict) -> str:
    """The markdown tables of every part present."""
    m, out = results["meta"], []
    out.append(f"# inflor GPU check — {m['device_name']} ({m['device']}), torch {m['torch']}, triton "
               f"{m['triton'] or '—'}, SpikingJelly {m['spikingjelly'] or 'not installed'}, "
               f"{'quick' if results['quick'] else 'full'} mode")
    n = results.get("neuron_checks")
    if n and "cases" in n:
        sub = (f"a covering subset of {n['n_cases']} of the {n['n_product']} cases: every surrogate, dtype and "
               f"variant appears at least once" if n["subset"] == "covering" else f"all {n['n_cases']} cases")
        out.append(bench.table(f"1. fused vs reference, input {n['shape']} ({sub}); gradient error as a multiple "
                               "of its tolerance (≤ 1 passes)",
                               ["surrogate", "dtype", "variant", "spike mismatches", "grad err/tol",
                                "zero grads", "stats", "fused ran", ""], [_case_row(c) for c in n["cases"]]))
    t = results.get("neuron_timing")
    if t and "by" in t:
        for key, rows in t["by"].items():
            body = [[k, bench.fmt(v.get("median_ms")), (bench.fmt(v["x_floor"]) + "×") if "x_floor" in v else "—",
                     v.get("note", bench.fmt(v.get("GB_per_s"), ".3g") + " GB/s" if "GB_per_s" in v else "")]
                    for k, v in rows.items()]
            out.append(bench.table(f"2. neuron fwd+bwd, {key}, layer {t['layer']}",
                                   ["", "median ms", "× floor", ""], body))
    r = results.get("resnet19_step")
    if r and "rows" in r:
        body = [[k, bench.fmt(v.get("median_ms"), ".1f"), (bench.fmt(v["x_ann"]) + "×") if "x_ann" in v else "—",
                 bench.fmt(v.get("peak_mb"), ".0f"), v.get("note", "")] for k, v in r["rows"].items()]
        out.append(bench.table(f"3. training step, {r['network']}, B={r['batch']}, T={r['T']} (peak memory: "
                               f"{r.get('memory_measured_by', '—')})",
                               ["", "median ms", "× ANN twin", "peak MB", ""], body))
    c = results.get("cifarnet_training")
    if c and "checks" in c:
        body = [[k, "ok" if v["ok"] else "FAIL",
                 ", ".join(f"{a} {b:.4g}" for a, b in v.items() if isinstance(b, float))] for k, v in c["checks"].items()]
        out.append(bench.table(f"4. {c['network']}, {c['steps']} steps, B={c['batch']}, AMP {c['amp']}, "
                               f"MPD-Loss ×{c['mpd_weight']}, ESG ({c['seconds']:.0f} s)", ["check", "", ""], body))
    for part in PARTS:
        if "error" in results.get(part, {}):
            out.append(f"\n{part} raised:\n```\n{results[part]['error']}```")
    bad = results.get("failures", [])
    out.append("\n" + ("all correctness checks passed" if not bad else
                       f"{len(bad)} correctness check(s) FAILED:\n" + "\n".join(f"- {b}" for b in bad)))
    return "\n".join(out) + "\n"


def write(results: dict, out_dir: Path) -> str:
    """Write gpu_check.json and gpu_check.md; return the markdown."""
    results["failures"] = failures(results)
    results["passed"] = not results["failures"]
    text = report(results)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "gpu_check.json").write_text(json.dumps(results, indent=1, default=str))
    (out_dir / "gpu_check.md").write_text(text)
    return text


PART_FUNCTIONS = {"neuron_checks": neuron_checks, "neuron_timing": neuron_timing,
                  "resnet19_step": resnet19_step, "cifarnet_training": cifarnet_training}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda", help="cuda (default), cuda:N or cpu")
    ap.add_argument("--out", default=None, help="output folder (default benchmarks/results/gpu_check-<device>)")
    ap.add_argument("--quick", action="store_true", help="small sizes and a covering subset of the neuron cases")
    ap.add_argument("--only", choices=PARTS, action="append", help="run only these parts (repeatable)")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch CPU threads (default: torch's own; 1 with --device cpu --quick)")
    args = ap.parse_args(argv)
    dev = torch.device(args.device)
    threads = args.threads or (1 if dev.type == "cpu" and args.quick else None)
    if threads:   # on a shared CPU, OpenMP threads wait for each other's time slices (ms per region)
        torch.set_num_threads(threads)
    if dev.type == "cuda" and not torch.cuda.is_available():
        print(f"--device {args.device}: CUDA is not available here (torch {torch.__version__}); "
              "run with --device cpu for the CPU version of the check", file=sys.stderr)
        return 2
    out_dir = Path(args.out or HERE / "results" / f"gpu_check-{dev.type}")
    results = {"meta": environment(dev), "quick": args.quick}
    t0 = time.time()
    print(f"inflor GPU check on {results['meta']['device_name']} ({dev}), torch {torch.__version__}", flush=True)
    for part in args.only or PARTS:
        print(f"{part} ...", flush=True)
        t = time.time()
        try:
            results[part] = PART_FUNCTIONS[part](dev, args.quick)
        except Exception:   # a part that raises is a failed check; the others still run
            results[part] = {"error": traceback.format_exc()}
        results[part]["seconds"] = time.time() - t
        results["meta"]["wall_s"] = time.time() - t0
        write(results, out_dir)   # after every part, so a run cut short keeps what it had
    text = write(results, out_dir)
    print(text)
    print(f"wrote {out_dir / 'gpu_check.json'} and {out_dir / 'gpu_check.md'} ({results['meta']['wall_s']:.0f} s)")
    return 0 if results["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
