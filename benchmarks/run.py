#!/usr/bin/env python
"""inflor benchmark suite: neurons, whole training steps and memory, against the peers.

    python benchmarks/run.py                 # full run (~10 min on 2 CPU cores)
    python benchmarks/run.py --quick         # smaller shapes, fewer repeats (~3 min)
    python benchmarks/run.py --only neuron   # one part: neuron | network | memory | warmup | compile
    python benchmarks/run.py --update-baseline   # store this run as benchmarks/baseline.json

Prints the tables, writes ``benchmarks/results/latest.json`` and compares the machine-independent
numbers (ratios to the elementwise floor / the ANN twin, bytes kept per input byte) with
``benchmarks/baseline.json``, printing REGRESSION where one is worse than the baseline by more
than the tolerance (``--tolerance``, relative; ``--fail-on-regression`` makes that exit 1).

Definitions (docs/performance.md has the full text):

* **elementwise floor**: ``y = relu(x)`` forward and ``dL/dx = g·1[x>0]`` backward (ATen's
  threshold_backward) over the same float32 ``[T, B, ...]`` tensor, via ``torch.autograd.grad``:
  one read and one write per element forward, two reads and one write backward — the least any
  elementwise layer can move. Every neuron row is timed the same way (forward, then
  ``torch.autograd.grad`` with a fixed random upstream gradient), interleaved round-robin with
  the floor so that machine load hits all rows alike; medians are reported.
* **whole training step**: forward of a [B, 3, 32, 32] batch (repeated T times inside the
  model), cross-entropy of the T-mean logits, backward, SGD-momentum step. The **ANN twin** is the
  same network with every spiking neuron replaced by ``nn.ReLU`` and the same input, so its
  convolutions see the same T·B images.
* **memory kept per input byte**: the distinct tensor storages autograd saves for backward inside
  one neuron layer (``torch.autograd.graph.saved_tensors_hooks``), in bytes, divided by the bytes
  of its float32 input.
* **training-step memory** (part ``memory``, CIFARNet/4 and ResNet-19/4 at T = 4, 8, 16): the
  bytes autograd saves for backward in one training forward (saved-tensor hooks, distinct
  storages, parameters included), and the **peak** resident memory of a whole step (forward,
  backward, SGD step) above the memory at its start, read from Linux's ``VmHWM`` with glibc's mmap
  threshold fixed at 64 KiB (the script re-executes itself with ``MALLOC_MMAP_THRESHOLD_=65536``
  when the part runs), so every tensor is returned to the system when freed; and the step time:
  the median of 2 × 3 steps per row, each row run in processes of its own with the host allocator
  ``inflor train`` uses on a CPU (``--step-allocator heap``, ``train.host_allocator``; ``system``:
  glibc's defaults), with each process's peak resident memory (see ``step_times_in_children``).
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("KINETO_LOG_LEVEL", "5")   # keep the profiler's start/stop lines quiet

import torch  # noqa: E402
from torch import nn  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
warnings.filterwarnings("ignore")

import peers as peer_lib  # noqa: E402
from inflor.layers import unspike  # noqa: E402
from inflor.models.base import SpikingModel  # noqa: E402
from inflor.models.blocks import ConvUnit, LinearUnit, avgpool, linear  # noqa: E402
from inflor.models.resnet import SpikingResNet  # noqa: E402
from inflor.neuron import BaseNode, make_neuron  # noqa: E402
from inflor.train.host_allocator import HOST_ALLOCATORS, use_host_allocator  # noqa: E402


# ------------------------------------------------------------------------------ environment
def environment(threads: int) -> dict:
    cpu = platform.processor() or ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu": cpu,
        "cores": os.cpu_count(),
        "threads": threads,
        "load_average_at_start": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "peers": {name: v for name, (v, _) in peer_lib.available().items()},
    }


# ---------------------------------------------------------------------------------- timing
def interleaved(fns: dict, rounds: int, warmup: int = 2) -> dict:
    """Median and min wall time (ms) of each callable, run round-robin so that load drifts on a
    shared machine affect every row alike."""
    for f in fns.values():
        for _ in range(warmup):
            f()
    times = {k: [] for k in fns}
    for _ in range(rounds):
        for k, f in fns.items():
            t = time.perf_counter()
            f()
            times[k].append((time.perf_counter() - t) * 1e3)
    return {k: {"median_ms": statistics.median(v), "min_ms": min(v)} for k, v in times.items()}


def fwd_bwd(module: nn.Module, x: torch.Tensor, g: torch.Tensor, stats: bool = False):
    def run():
        y = module(x)
        outs, grads = [y], [g]
        if stats:
            st = module.stats
            outs += [st.h_sum, st.h_sqsum]
            grads += [torch.ones_like(st.h_sum), torch.ones_like(st.h_sqsum)]
        torch.autograd.grad(outs, x, grads)
    return run


def elementwise_floor(x: torch.Tensor, g: torch.Tensor):
    """The elementwise floor over ``x`` (see the module docstring): ``relu`` forward and its
    gradient for the upstream ``g`` backward, via ``torch.autograd.grad``; the same bytes as a
    neuron layer on ``x`` moves at the least."""
    return lambda: torch.autograd.grad(torch.relu(x), x, g)


# ------------------------------------------------------------------------------- neurons
def inflor_neurons() -> dict:
    """name -> (module, record_stats)"""
    def node(kind, stats=False, **kw):
        n = make_neuron(kind, **kw)
        n.record_stats = stats
        return n, stats
    return {
        "inflor LIF hard, rectangle (default)": node("lif", backend="fused"),
        "inflor LIF hard, sigmoid a=4 (SJ's surrogate)": node("lif", backend="fused", surrogate_function="sigmoid"),
        "inflor SRIF (soft reset)": node("srif", backend="fused"),
        "inflor InfLoR (SRIF + MPR)": node("inflor", backend="fused"),
        "inflor IF hard, ESG": node("if", backend="fused", surrogate_function="esg"),
        "inflor LIF hard, tanh k=2": node("lif", backend="fused", surrogate_function={"name": "tanh", "k": 2.0}),
        "inflor LIF hard, DSpike": node("lif", backend="fused", surrogate_function="dspike"),
        "inflor LIF hard, triangle": node("lif", backend="fused", surrogate_function="triangle"),
        "inflor LIF hard, ATan": node("lif", backend="fused", surrogate_function="atan"),
        "inflor LIF soft, detach_reset": node("lif", backend="fused", reset="soft", detach_reset=True),
        "inflor LIF hard, s=0.5, V_reset=0.1": node("lif", backend="fused", input_scale=0.5, v_reset=0.1),
        "inflor SRIF + MPR tanh form, rectangle": node("srif", backend="fused", mpr="tanh"),
        "inflor InfLoR, V_th=0.3 (φ's cube-root sides)": node("inflor", backend="fused", v_threshold=0.3),
        "inflor SRIF + MPR tanh form, sigmoid": node("srif", backend="fused", mpr="tanh", surrogate_function="sigmoid"),
        "inflor LIF hard + record_stats": node("lif", stats=True, backend="fused"),
        "inflor LIF hard, reference backend": node("lif", backend="reference"),
    }


HEADLINE = "inflor LIF hard, rectangle (default)"
FLOOR = "elementwise floor (relu fwd+bwd)"


def bench_neurons(shape, rounds: int, peers: dict) -> dict:
    gen = torch.Generator().manual_seed(0)
    x = (torch.randn(shape, generator=gen) * 0.6 + 0.3).requires_grad_(True)
    g = torch.randn(shape, generator=gen)
    rows = {FLOOR: elementwise_floor(x, g)}
    for name, (mod, stats) in inflor_neurons().items():
        rows[name] = fwd_bwd(mod, x, g, stats)
    for name, (version, cls) in peers.items():
        rows[f"{name} {version} LIF"] = fwd_bwd(cls(), x, g)
    t0 = time.time()
    for f in rows.values():   # compile the kernels outside the timing
        f()
    warm = time.time() - t0
    res = interleaved(rows, rounds)
    floor = res[FLOOR]["median_ms"]
    sj = next((v["median_ms"] for k, v in res.items() if k.startswith("SpikingJelly")), None)
    for v in res.values():
        v["x_floor"] = v["median_ms"] / floor
        v["speedup_vs_sj"] = (sj / v["median_ms"]) if sj else None
    return {"shape": list(shape), "rounds": rounds, "first_call_s": warm, "rows": res}


# ------------------------------------------------------------------------------- networks
class CIFARNetReduced(SpikingModel):
    """CIFARNet (inflor.models.cifarnet) with every width divided by ``div``: the same layers,
    built from the same library blocks."""

    def __init__(self, num_classes=10, div=4, **common):
        super().__init__(num_classes, **common)
        w = [128 // div, 256 // div, 512 // div, 1024 // div, 512 // div]
        self.features = nn.Sequential(
            ConvUnit(self, 3, w[0]), ConvUnit(self, w[0], w[1], spikes=True), avgpool(2),
            ConvUnit(self, w[1], w[2]), avgpool(2),
            ConvUnit(self, w[2], w[3]), ConvUnit(self, w[3], w[4], spikes=True), nn.Flatten(2))
        self.classifier = nn.Sequential(LinearUnit(self, w[4] * 64, 1024 // div, spikes=True),
                                        LinearUnit(self, 1024 // div, 512 // div, spikes=True))
        self.fc = linear(512 // div, num_classes, spikes=self.spike_layers)
        self.init_weights()

    def forward_multistep(self, x):
        return self.fc(self.classifier(self.features(x)))


def resnet19_reduced(div=4, **common):
    """ResNet-19 (inflor.models.resnet19) with every width divided by ``div``."""
    w = 128 // div
    return SpikingResNet(10, stem=[(w, 3, 1)], stages=[(w, 3, 1), (2 * w, 3, 2), (4 * w, 2, 2)], **common)


NETWORKS = {"CIFARNet/4": CIFARNetReduced, "ResNet-19/4": resnet19_reduced}


def swap_neurons(model: nn.Module, factory) -> nn.Module:
    """A copy of ``model`` with every inflor neuron replaced by ``factory()`` and its spike layers
    (``SpikeConv2d``/``SpikeLinear``, which keep their input as bits) made plain torch layers, as
    an ANN twin or a peer's network has them."""
    model = unspike(copy.deepcopy(model))
    for name, m in list(model.named_modules()):
        for child_name, child in list(m.named_children()):
            if isinstance(child, BaseNode):
                setattr(m, child_name, factory())
    return model


def network_variants(net_name: str, T: int, peers: dict, with_peers: bool = True) -> dict:
    torch.manual_seed(0)
    build = NETWORKS[net_name]
    fused_net = build(timesteps=T, neuron="lif", neuron_options={"backend": "fused"})
    out = {
        "inflor (fused)": fused_net,
        "inflor (reference backend)": build(timesteps=T, neuron="lif", neuron_options={"backend": "reference"}),
        "ANN twin (ReLU)": swap_neurons(fused_net, nn.ReLU),
    }
    if with_peers:   # the timing table: also the papers' own neuron (SRIF + MPR), and the peers
        out["inflor (fused), InfLoR neurons"] = build(timesteps=T, neuron="inflor",
                                                      neuron_options={"backend": "fused"})
        for name, (version, cls) in peers.items():
            out[f"{name} {version} neurons"] = swap_neurons(fused_net, cls)
    return out


def train_step(model: nn.Module, images, labels):
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()

    def step():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(images).mean(0), labels)
        loss.backward()
        opt.step()
    return step


def bench_networks(batch: int, T: int, rounds: int, peers: dict) -> dict:
    gen = torch.Generator().manual_seed(0)
    images = torch.randn(batch, 3, 32, 32, generator=gen)
    labels = torch.randint(0, 10, (batch,), generator=gen)
    out = {}
    for net_name in NETWORKS:
        variants = network_variants(net_name, T, peers)
        steps = {k: train_step(m.train(), images, labels) for k, m in variants.items()}
        for s in steps.values():
            s()
        res = interleaved(steps, rounds, warmup=1)
        ann = res["ANN twin (ReLU)"]["median_ms"]
        for v in res.values():
            v["x_ann"] = v["median_ms"] / ann
        out[net_name] = {"batch": batch, "T": T, "rounds": rounds, "rows": res}
    return out


# -------------------------------------------------------------------------------- memory
def saved_bytes(fn) -> int:
    """Bytes of the distinct storages autograd saves while ``fn`` runs."""
    storages = {}

    def pack(t):
        s = t.untyped_storage()
        storages[s.data_ptr()] = s.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        keep = fn()
    del keep
    return sum(storages.values())


def peak_step_bytes(step) -> int:
    """Peak allocated bytes during one call of ``step`` (PyTorch profiler allocation events:
    allocations counted when they happen, frees when the freeing scope ends)."""
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step()
    events = []
    for e in prof.events():
        m = e.self_cpu_memory_usage
        if m:
            events.append((e.time_range.start if m > 0 else e.time_range.end, m))
    events.sort()
    cur = peak = 0
    for _, m in events:
        cur += m
        peak = max(peak, cur)
    return peak


def _status_bytes(field: str) -> int:
    import re
    return int(re.search(field + r":\s+(\d+)", Path("/proc/self/status").read_text()).group(1)) * 1024


def _reset_peak_rss() -> bool:
    """Reset Linux's resident high-water mark ``VmHWM`` to the current resident memory
    (``/proc/self/clear_refs``); False where /proc does not allow it."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_rss_step_bytes(step) -> int | None:
    """Peak resident memory of one call of ``step`` above the resident memory at its start:
    Linux's high-water mark ``VmHWM``, reset before the call (``/proc/self/clear_refs``). With
    ``MALLOC_MMAP_THRESHOLD_`` fixed (``main`` sets it), every tensor above 64 KiB is its own
    mapping, returned to the system when freed, so this is the peak of live tensor memory in the
    step, every allocation counted (saved tensors, gradients, backward temporaries, optimizer).
    None where /proc does not allow it."""
    if not _reset_peak_rss():
        return None
    start = _status_bytes("VmRSS")
    step()
    return _status_bytes("VmHWM") - start


#: untimed training steps at the start of each step-timing process. The first compiles and
#: allocates; the next ones still run while glibc's heap grows into the step's allocation pattern.
#: In a fresh process (getrusage's minor page faults per step, by hand at 9197b26) an inflor
#: ResNet-19/4 T = 8 step faulted in 762 k pages on its second step, 479 k on its third and fourth
#: and 135-508 k on the next six (the ANN twin: 248-594 k throughout), and inflor's first timed step
#: after one warm-up step was its slowest of ten in 3 of 3 processes. A training run's thousands of
#: steps are the steady state.
STEP_WARMUP = 3


def bench_memory(shape, batch: int, Ts, peers: dict, rounds: int, allocator: str = "heap",
                 passes: int = 2, warmup: int = STEP_WARMUP) -> dict:
    gen = torch.Generator().manual_seed(0)
    leaf = torch.randn(shape, generator=gen).requires_grad_(True)
    in_bytes = leaf.numel() * leaf.element_size()
    layers = {name: mod for name, (mod, stats) in inflor_neurons().items() if not stats}
    layers["ReLU (for scale)"] = nn.ReLU()
    for name, (version, cls) in peers.items():
        layers[f"{name} {version} LIF"] = cls()
    per_layer = {}
    for name, mod in layers.items():
        b = saved_bytes(lambda: mod(leaf * 1.0))   # a non-leaf input, as inside a network
        per_layer[name] = {"saved_bytes": b, "bytes_per_input_byte": b / in_bytes}
    sj = next((v["bytes_per_input_byte"] for k, v in per_layer.items() if k.startswith("SpikingJelly")), None)
    for v in per_layer.values():
        v["fraction_of_sj"] = v["bytes_per_input_byte"] / sj if sj else None

    return {"neuron_shape": list(shape), "per_layer": per_layer,
            "training_step": bench_training_memory(batch, Ts, peers, rounds, allocator, passes, warmup)}


#: the training-step memory rows' names (``_row_names`` lists them in table order)
ROW_ANN, ROW_FULL, ROW_ONLINE = "ANN twin (ReLU)", "inflor, full BPTT", "inflor, online"


def _sj_rows(version: str) -> tuple[str, str]:
    return f"SpikingJelly {version} (eager)", f"SpikingJelly {version} + memopt level 1"


def memory_variants(net_name: str, T: int, peers: dict, example, only: str | None = None) -> dict:
    """The training-step memory rows: name -> (model, bptt mode); with ``only``, that row alone
    (the others are not built)."""
    torch.manual_seed(0)
    inflor = NETWORKS[net_name](timesteps=T, neuron="lif", neuron_options={"backend": "fused"})
    want = lambda name: only is None or only == name   # noqa: E731
    out = {}
    if want(ROW_ANN):
        out[ROW_ANN] = (swap_neurons(inflor, nn.ReLU), "full")
    if want(ROW_FULL):
        out[ROW_FULL] = (inflor, "full")
    if ONLINE is not None and want(ROW_ONLINE):
        out[ROW_ONLINE] = (copy.deepcopy(inflor), "online")
    if "SpikingJelly" in peers:
        version, cls = peers["SpikingJelly"]
        eager, opt = _sj_rows(version)
        sj = swap_neurons(inflor, cls) if want(eager) or want(opt) else None
        if want(eager):
            out[eager] = (sj, "full")
        memopt = sj_memopt(copy.deepcopy(sj), example) if want(opt) else None
        if memopt is not None:
            out[opt] = (memopt, "full")
    return out


def sj_memopt(model: nn.Module, example):
    """SpikingJelly's ``memopt.optimize_memory`` at level 1 (checkpointing of every conv/linear →
    norm → neuron unit and residual block, with its spike compression; budget "memory", its
    default) — the levels above 1 search by CUDA memory and refuse to run on a CPU."""
    try:
        from spikingjelly.activation_based.memopt import optimize_memory
    except ImportError:
        return None
    from inflor.models.blocks import BasicBlock
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return optimize_memory(model, (ConvUnit, LinearUnit, BasicBlock), lambda m: m(example), level=1)


def _variant_steps(net_name: str, T: int, peers: dict, images, labels, only: str | None = None) -> dict:
    """name -> (model, bptt mode, its training step) of each memory row (``memory_variants``;
    ``only``: that row alone), in train mode."""
    steps = {}
    for name, (model, mode) in memory_variants(net_name, T, peers, images[:2], only).items():
        model.train()
        steps[name] = (model, mode, train_step(model, images, labels) if mode == "full"
                       else ONLINE(model, images, labels))
    return steps


def _batch(batch: int):
    gen = torch.Generator().manual_seed(0)
    return torch.randn(batch, 3, 32, 32, generator=gen), torch.randint(0, 10, (batch,), generator=gen)


def bench_training_memory(batch: int, Ts, peers: dict, rounds: int, allocator: str = "heap",
                          passes: int = 2, warmup: int = STEP_WARMUP) -> dict:
    """Per network and T: saved-for-backward MiB (saved-tensor hooks, distinct storages, one
    training forward) and the peak MiB of a whole step (``peak_rss_step_bytes``), measured here
    (with the fixed mmap threshold); and the median step time, each row timed in processes of its
    own (``step_times_in_children``). Each also as a ratio to the ANN twin."""
    images, labels = _batch(batch)
    loss_fn = nn.CrossEntropyLoss()
    times = step_times_in_children(batch, Ts, rounds, peers, passes=passes, allocator=allocator, warmup=warmup)
    out = {}
    for net_name in NETWORKS:
        by_T = {}
        for T in Ts:
            rows = {}
            for name, (model, mode, step) in _variant_steps(net_name, T, peers, images, labels).items():
                step()   # compile / allocate gradients and optimizer state outside the measurement
                saved = saved_bytes(lambda: loss_fn(model(images).mean(0), labels)) if mode == "full" else None
                peak = peak_rss_step_bytes(step)
                t = (times or {}).get(net_name, {}).get(str(T), {}).get(name, {})
                rows[name] = {"saved_mib": None if saved is None else saved / 2 ** 20,
                              "peak_mib": None if peak is None else peak / 2 ** 20,
                              "step_s": t.get("median_s"), "step_s_min": t.get("min_s"),
                              "step_s_passes": t.get("pass_medians_s"),
                              "process_peak_mib": t.get("process_peak_mib")}
                print(f"  {net_name} T={T} {name}: {rows[name]}", flush=True)
            ann = rows[ROW_ANN]
            for r in rows.values():
                for k in ("saved_mib", "peak_mib", "step_s", "process_peak_mib"):
                    r[f"{k}_x_ann"] = None if r.get(k) is None or not ann.get(k) else r[k] / ann[k]
                r["step_x_ann_per_pass"] = _per_pass_ratio(r.get("step_s_passes"), ann.get("step_s_passes"))
            by_T[str(T)] = rows
        out[net_name] = by_T
    return {"batch": batch, "rounds": rounds, "step_warmup": warmup, "step_passes": passes, "step_allocator": allocator,
            "networks": out}


def _per_pass_ratio(row: list | None, ann: list | None) -> float | None:
    """The median over passes of (the row's median step time / the ANN twin's in the same pass):
    a pass runs the rows' processes one after the other within a few minutes, so a drift in the
    machine's speed between passes cancels in each ratio (the pooled medians' ratio,
    ``step_s_x_ann``, does not)."""
    if not row or not ann or len(row) != len(ann):
        return None
    ratios = [r / a for r, a in zip(row, ann) if r is not None and a]
    return statistics.median(ratios) if ratios else None


def row_step_times(net_name: str, T: int, batch: int, row: str, rounds: int, with_peers: bool,
                   warmup: int = STEP_WARMUP, allocator: str = "heap") -> dict:
    """Wall times (s) of ``rounds`` training steps of one memory row, after ``warmup`` untimed
    steps, and the process's peak resident MiB over those steps (``VmHWM`` reset at their start,
    None without /proc: the libraries, model, compiled kernels and the step's tensors, and under
    ``heap`` what glibc keeps for reuse); run by
    ``step_times_in_children`` in a process of its own, with ``allocator`` applied first as a
    training run on the CPU applies ``train.host_allocator`` (``inflor.train.host_allocator``:
    ``heap`` or ``system``)."""
    in_effect = use_host_allocator(allocator, "cpu")
    peers = peer_lib.available() if with_peers else {}
    images, labels = _batch(batch)
    built = _variant_steps(net_name, T, peers, images, labels, only=row)
    if not built:       # e.g. SpikingJelly's memopt declined this network: no row, no times
        return {"times": [], "allocator": in_effect, "vmhwm_mib": None}
    (_, _, step), = built.values()
    for _ in range(max(1, warmup)):
        step()
    reset = _reset_peak_rss()     # without it VmHWM would be the whole process's peak, not the steps'
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    try:
        hwm = _status_bytes("VmHWM") / 2 ** 20 if reset else None
    except (OSError, AttributeError):
        hwm = None
    return {"times": times, "allocator": in_effect, "vmhwm_mib": hwm}


#: ``--step-allocator``: what the step-timing processes apply before building their row, spelled
#: as ``train.host_allocator`` spells it. ``heap`` (the default) is what ``inflor train`` does on a
#: CPU (``auto``): glibc keeps freed blocks for the next step instead of unmapping them;
#: ``system`` leaves glibc's defaults (every tensor above its mmap threshold, at most 32 MiB, a
#: fresh mapping whose pages fault in again every step)
STEP_ALLOCATORS = tuple(a for a in HOST_ALLOCATORS if a != "auto")


def step_times_in_children(batch: int, Ts, rounds: int, peers: dict, passes: int = 2,
                           allocator: str = "heap", warmup: int = STEP_WARMUP) -> dict:
    """Median and min step time (s) of each memory row, per network and T, each row timed as a
    training run is, in a process of its own: ``row_step_times`` (``allocator`` applied, ``warmup``
    untimed steps, then ``rounds`` steps), ``passes`` times over the rows in turn, so that load
    drifts hit every row alike; with the largest resident MiB of its processes over their timed
    steps (``process_peak_mib``). Own
    processes, because rows timed in one process found the allocator's cache emptied or
    fragmented by each other's tensors (on this CPU that cost a row up to 30%, whichever ran after
    a larger one); and the memory measurement's fixed mmap threshold would charge every row for
    its allocations rather than its work."""
    import subprocess
    if allocator not in STEP_ALLOCATORS:
        raise ValueError(f"step allocator {allocator!r}: expected one of {', '.join(STEP_ALLOCATORS)}")
    env = {k: v for k, v in os.environ.items() if k not in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")}
    code = ("import json, sys; sys.path.insert(0, sys.argv[1]); import torch; "
            "torch.set_num_threads(int(sys.argv[2])); import run; "
            "print(json.dumps(run.row_step_times(sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), sys.argv[6], "
            "int(sys.argv[7]), sys.argv[8] == '1', int(sys.argv[9]), sys.argv[10])))")
    times: dict = {}
    per_pass: dict = {}
    hwm: dict = {}
    for _ in range(passes):
        for net_name in NETWORKS:
            for T in Ts:
                for row in _row_names(peers):
                    proc = subprocess.run(
                        [sys.executable, "-c", code, str(HERE), str(torch.get_num_threads()), net_name, str(T),
                         str(batch), row, str(rounds), "1" if peers else "0", str(warmup), allocator],
                        env=env, capture_output=True, text=True)
                    if proc.returncode != 0:
                        print(f"  step times {net_name} T={T} {row}: failed\n{proc.stderr[-2000:]}", flush=True)
                        per_pass.setdefault((net_name, str(T), row), []).append(None)
                        continue
                    got = json.loads(proc.stdout.strip().splitlines()[-1])
                    if got["allocator"] != allocator:
                        raise RuntimeError(f"the {allocator} allocator could not be applied here "
                                           f"(got {got['allocator']}); use --step-allocator system")
                    t_row = got["times"]
                    times.setdefault(net_name, {}).setdefault(str(T), {}).setdefault(row, []).extend(t_row)
                    per_pass.setdefault((net_name, str(T), row), []).append(statistics.median(t_row) if t_row else None)
                    if got["vmhwm_mib"] is not None:
                        key = (net_name, str(T), row)
                        hwm[key] = max(hwm.get(key, 0.0), got["vmhwm_mib"])
                    print(f"  step times {net_name} T={T} {row}: {' '.join(f'{t:.2f}' for t in t_row)} s"
                          f" (process peak {got['vmhwm_mib'] or float('nan'):.0f} MiB)", flush=True)
    return {net: {T: {row: {"median_s": statistics.median(v), "min_s": min(v),
                            "pass_medians_s": per_pass[net, T, row], "process_peak_mib": hwm.get((net, T, row))}
                      for row, v in by_row.items()}
                  for T, by_row in by_T.items()} for net, by_T in times.items()}


def _row_names(peers: dict) -> list[str]:
    """The memory rows' names, in table order (as ``memory_variants`` names them)."""
    names = [ROW_ANN, ROW_FULL] + ([ROW_ONLINE] if ONLINE is not None else [])
    if "SpikingJelly" in peers:
        names += list(_sj_rows(peers["SpikingJelly"][0]))
    return names


#: the online-through-time training step (``train.bptt: online``), when inflor has it
try:
    from inflor.train.online import online_train_step as ONLINE  # noqa: E402
except ImportError:
    ONLINE = None


# -------------------------------------------------------------------------------- warm-up
WARMUP_SCRIPT = r"""
import json, sys, time
t0 = time.perf_counter()
import torch
from inflor.neuron import make_neuron
t1 = time.perf_counter()
torch.set_num_threads(int(sys.argv[2]))
kind, _, stats = sys.argv[1].partition(" + ")    # "lif" or "lif + record_stats"
node = make_neuron(kind, backend="fused")
node.record_stats = bool(stats)
x = (torch.randn(4, 8, 64, 16, 16) * 0.6 + 0.3).requires_grad_(True)
y = node(x)
t2 = time.perf_counter()
(y.sum() + (node.stats.h_sqsum.sum() if stats else 0.0)).backward()
t3 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "first_forward_s": t2 - t1, "first_backward_s": t3 - t2,
                  "total_s": t3 - t0}))
"""


def bench_warmup(threads: int) -> dict:
    """Wall time of a fresh process from ``import torch`` to its first backward through a fused
    neuron: ``cached`` with inductor's on-disk cache as it is, ``new configuration`` with the
    compiled-graph caches switched off, so both kernels are compiled from scratch (what a user
    pays the first time a neuron configuration is used on a machine)."""
    import subprocess
    out = {}
    for kind in ("lif", "inflor", "lif + record_stats"):
        for label, env in (("cached", {}), ("new configuration",
                                            {"TORCHINDUCTOR_FX_GRAPH_CACHE": "0",
                                             "TORCHINDUCTOR_AUTOGRAD_CACHE": "0"})):
            run = subprocess.run([sys.executable, "-c", WARMUP_SCRIPT, kind, str(threads)],
                                 env={**os.environ, **env}, capture_output=True, text=True, check=True)
            out[f"{kind}, {label}"] = json.loads(run.stdout.strip().splitlines()[-1])
    return out


# --------------------------------------------------------------------- a user's torch.compile
def bench_compile(batch: int, T: int, rounds: int) -> dict:
    """A training step of each network (InfLoR neurons, fused) and of its ANN twin, eager and
    under the user's ``torch.compile(model, fullgraph=True)`` (each neuron one
    ``torch.ops.inflor.neuron`` node); the first compiled step's wall time is the compile cost.
    Also the per-call cost of that operator's dispatcher, which eager calls skip: a small
    [4, 2048] neuron's fwd+bwd through ``torch.ops.inflor.neuron`` vs the eager entry."""
    from inflor import fused
    gen = torch.Generator().manual_seed(0)
    images = torch.randn(batch, 3, 32, 32, generator=gen)
    labels = torch.randint(0, 10, (batch,), generator=gen)
    out = {"batch": batch, "T": T, "rounds": rounds, "networks": {}}
    for net_name, build in NETWORKS.items():
        torch.manual_seed(0)
        snn = build(timesteps=T, neuron="inflor", neuron_options={"backend": "fused"})
        steps, compile_s = {}, {}
        for label, model in (("inflor (fused), InfLoR neurons", snn), ("ANN twin (ReLU)", swap_neurons(snn, nn.ReLU))):
            steps[f"{label}, eager"] = train_step(model.train(), images, labels)
            torch._dynamo.reset()
            compiled = train_step(torch.compile(copy.deepcopy(model).train(), fullgraph=True), images, labels)
            t = time.perf_counter()
            compiled()
            compile_s[label] = time.perf_counter() - t
            steps[f"{label}, torch.compile"] = compiled
        res = interleaved(steps, rounds, warmup=1)
        for label, s in compile_s.items():
            res[f"{label}, torch.compile"]["first_step_s"] = s
            res[f"{label}, torch.compile"]["x_eager"] = (res[f"{label}, torch.compile"]["median_ms"]
                                                         / res[f"{label}, eager"]["median_ms"])
        ann = res["ANN twin (ReLU), eager"]["median_ms"]
        for v in res.values():
            v["x_ann_eager"] = v["median_ms"] / ann
        out["networks"][net_name] = res
    node = make_neuron("inflor", backend="fused")
    x = torch.randn(4, 2048, generator=gen).requires_grad_(True)
    g = torch.randn(4, 2048, generator=gen)
    args = (fused.op_settings(node.cfg, node.mpr), node.cfg.reset, node.cfg.detach_reset,
            type(node.surrogate_function).fused_key(), node.mpr.kind, False)

    def through_operator():
        torch.autograd.grad(torch.ops.inflor.neuron(x, node.surrogate_function.width, *args)[0], x, g)
    calls = interleaved({"eager entry": fwd_bwd(node, x, g), "torch.ops.inflor.neuron": through_operator},
                        rounds * 20, warmup=5)
    out["dispatch_us"] = {k: {"median_us": v["median_ms"] * 1e3, "min_us": v["min_ms"] * 1e3} for k, v in calls.items()}
    return out


# ---------------------------------------------------------------------------- reporting
def table(title: str, header: list[str], rows: list[list]) -> str:
    cells = [[str(c) for c in r] for r in [header] + rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    line = lambda r: "| " + " | ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))) + " |"  # noqa: E731
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([f"\n{title}", line(cells[0]), sep] + [line(r) for r in cells[1:]])


def fmt(v, spec=".2f"):
    return "—" if v is None else format(v, spec)


def report(results: dict) -> str:
    out = []
    if "neuron" in results:
        n = results["neuron"]
        rows = [[k, fmt(v["median_ms"]), fmt(v["min_ms"]), fmt(v["x_floor"]) + "×", fmt(v["speedup_vs_sj"]) + "×"]
                for k, v in n["rows"].items()]
        out.append(table(f"(a) neuron fwd+bwd, float32 {n['shape']} (first calls incl. compile: {n['first_call_s']:.1f} s)",
                         ["", "median ms", "min ms", "× floor", "speed-up vs SJ"], rows))
    if "network" in results:
        for net, r in results["network"].items():
            rows = [[k, fmt(v["median_ms"], ".1f"), fmt(v["min_ms"], ".1f"), fmt(v["x_ann"]) + "×"] for k, v in r["rows"].items()]
            out.append(table(f"(b) training step, {net}, B={r['batch']}, T={r['T']}, 32×32",
                             ["", "median ms", "min ms", "× ANN twin"], rows))
    if "warmup" in results:
        rows = [[k, f"{v['import_s']:.1f}", f"{v['first_forward_s']:.1f}", f"{v['first_backward_s']:.1f}",
                 f"{v['total_s']:.1f}"] for k, v in results["warmup"].items()]
        out.append(table("(d) warm-up of a fresh process, [4, 8, 64, 16, 16] float32 (s)",
                         ["", "import torch+inflor", "first forward", "first backward", "total"], rows))
    if "compile" in results:
        c = results["compile"]
        for net, res in c["networks"].items():
            rows = [[k, fmt(v["median_ms"], ".1f"), fmt(v["min_ms"], ".1f"), fmt(v.get("first_step_s"), ".1f"),
                     fmt(v.get("x_eager")) + ("×" if "x_eager" in v else ""), fmt(v["x_ann_eager"]) + "×"]
                    for k, v in res.items()]
            out.append(table(f"(e) training step under the user's torch.compile, {net}, B={c['batch']}, T={c['T']}",
                             ["", "median ms", "min ms", "first step s (compile)", "× eager", "× ANN eager"], rows))
        rows = [[k, fmt(v["median_us"], ".0f"), fmt(v["min_us"], ".0f")] for k, v in c["dispatch_us"].items()]
        out.append(table("(e) one small neuron [4, 2048] fwd+bwd, eager entry vs the registered operator (µs)",
                         ["", "median µs", "min µs"], rows))
    if "memory" in results:
        m = results["memory"]
        rows = [[k, f"{v['saved_bytes'] / 2**20:.1f}", fmt(v["bytes_per_input_byte"]), fmt(v["fraction_of_sj"])]
                for k, v in m["per_layer"].items()]
        out.append(table(f"(c) memory kept for backward by one neuron layer, float32 {m['neuron_shape']}",
                         ["", "MB", "bytes / input byte", "fraction of SJ"], rows))
        tm = m["training_step"]
        for net, by_T in tm["networks"].items():
            rows = []
            for T, res in by_T.items():
                for k, v in res.items():
                    rows.append([k, T, fmt(v["saved_mib"], ".0f"), fmt(v["saved_mib_x_ann"]),
                                 fmt(v["peak_mib"], ".0f"), fmt(v["peak_mib_x_ann"]),
                                 fmt(v["step_s"], ".2f"), fmt(v["step_s_x_ann"]), fmt(v.get("step_x_ann_per_pass")),
                                 fmt(v.get("process_peak_mib"), ".0f")])
            out.append(table(f"(c) training step memory and time, {net}, B={tm['batch']}, 32×32 "
                             f"(step s: median of {tm.get('step_passes', 2)}×{tm.get('rounds', 1)} steps, {tm.get('step_allocator', 'default')} allocator; "
                             "× ANN per pass: median over passes of the ratio within a pass)",
                             ["", "T", "saved MiB", "× ANN", "peak MiB", "× ANN", "step s", "× ANN", "× ANN per pass",
                              "process peak MiB"], rows))
    return "\n".join(out)


# --------------------------------------------------------------------- baseline comparison
def tracked(results: dict) -> dict:
    """The numbers compared with the baseline (lower is better), machine-independent ratios."""
    out = {}
    for k, v in results.get("neuron", {}).get("rows", {}).items():
        if k.startswith("inflor"):
            out[f"neuron × floor: {k}"] = v["x_floor"]
    for net, r in results.get("network", {}).items():
        for k, v in r["rows"].items():
            if k.startswith("inflor"):
                out[f"step × ANN: {net} {k}"] = v["x_ann"]
    for net, res in results.get("compile", {}).get("networks", {}).items():
        k = "inflor (fused), InfLoR neurons, torch.compile"
        if k in res:
            out[f"compiled step × eager: {net} {k}"] = res[k]["x_eager"]
    for k, v in results.get("memory", {}).get("per_layer", {}).items():
        if k.startswith("inflor"):
            out[f"bytes kept / input byte: {k}"] = v["bytes_per_input_byte"]
    for net, by_T in results.get("memory", {}).get("training_step", {}).get("networks", {}).items():
        for T, res in by_T.items():
            for k, v in res.items():
                if k.startswith("inflor") and v["peak_mib_x_ann"] is not None:
                    out[f"step peak memory × ANN: {net} T={T} {k}"] = v["peak_mib_x_ann"]
    return out


def compare(results: dict, baseline: dict, tol: float) -> tuple[str, int]:
    now, base = tracked(results), tracked(baseline)
    rows, bad = [], 0
    for k, v in now.items():
        b = base.get(k)
        if b is None:
            rows.append([k, "—", fmt(v), "", "new"])
            continue
        change = v / b - 1 if b else 0.0
        status = "ok"
        if change > tol:
            status, bad = "REGRESSION", bad + 1
        elif change < -tol:
            status = "improved"
        rows.append([k, fmt(b), fmt(v), f"{change:+.0%}", status])
    title = f"comparison with benchmarks/baseline.json (tolerance {tol:.0%}; lower is better)"
    return table(title, ["metric", "baseline", "now", "change", ""], rows), bad


# ------------------------------------------------------------------------------------- main
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="smaller shapes and fewer repeats (~3 min)")
    ap.add_argument("--only", choices=["neuron", "network", "memory", "warmup", "compile"], action="append",
                    help="run only these parts (repeatable)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    ap.add_argument("--memory-batch", type=int, default=None,
                    help="batch of the training-step memory part (default 8 with --quick, else 32)")
    ap.add_argument("--memory-timesteps", type=int, nargs="+", default=[4, 8, 16],
                    help="T of the training-step memory part (default 4 8 16)")
    ap.add_argument("--step-allocator", choices=STEP_ALLOCATORS, default="heap",
                    help="train.host_allocator of the processes that time the memory part's steps (default heap: "
                         "what inflor train does on a CPU; system: glibc's defaults; see STEP_ALLOCATORS)")
    ap.add_argument("--step-passes", type=int, default=2,
                    help="passes over the memory part's rows, one process per row and pass, 3 timed steps each "
                         "(default 2: medians of 6 steps; more narrow this machine's ±10–20%% per-process spread)")
    ap.add_argument("--step-warmup", type=int, default=STEP_WARMUP,
                    help=f"untimed steps at the start of each step-timing process (default {STEP_WARMUP}: "
                         "compiling, then glibc's heap growing into the step's pattern; see STEP_WARMUP)")
    ap.add_argument("--no-peers", action="store_true", help="leave out SpikingJelly, snnTorch and Norse")
    ap.add_argument("--out", default=str(HERE / "results" / "latest.json"))
    ap.add_argument("--baseline", default=str(HERE / "baseline.json"))
    ap.add_argument("--tolerance", type=float, default=0.25,
                    help="relative worsening that counts as a regression (default 0.25)")
    ap.add_argument("--update-baseline", action="store_true", help="write this run to --baseline")
    ap.add_argument("--fail-on-regression", action="store_true")
    args = ap.parse_args(argv)
    if (args.only is None or "memory" in args.only) and os.environ.get("MALLOC_MMAP_THRESHOLD_") is None \
            and argv is None and sys.platform.startswith("linux"):
        # peak memory of a training step is read from the resident set (peak_rss_step_bytes):
        # a fixed mmap threshold makes glibc return every freed tensor to the system at once
        os.environ["MALLOC_MMAP_THRESHOLD_"] = "65536"
        os.execv(sys.executable, [sys.executable, *sys.argv])

    if args.threads:
        torch.set_num_threads(args.threads)
    parts = args.only or ["neuron", "network", "memory", "warmup", "compile"]
    peers = {} if args.no_peers else peer_lib.available()
    q = args.quick
    results = {"meta": environment(torch.get_num_threads()), "quick": q}
    print(f"inflor benchmarks on {results['meta']['cpu']} ({results['meta']['cores']} cores, "
          f"{results['meta']['threads']} torch threads), torch {torch.__version__}; "
          f"peers: {results['meta']['peers'] or 'none installed'}", flush=True)
    if "neuron" in parts:
        shape = (4, 8, 128, 16, 16) if q else (4, 32, 128, 16, 16)
        results["neuron"] = bench_neurons(shape, 7 if q else 25, peers)
        print(report({"neuron": results["neuron"]}), flush=True)
    if "network" in parts:
        results["network"] = bench_networks(8 if q else 16, 4, 3 if q else 8, peers)
        print(report({"network": results["network"]}), flush=True)
    if "memory" in parts:
        shape = (4, 8, 128, 16, 16) if q else (4, 32, 128, 16, 16)
        batch = args.memory_batch or (8 if q else 32)
        results["memory"] = bench_memory(shape, batch, tuple(args.memory_timesteps), peers, 3, args.step_allocator,
                                         args.step_passes, args.step_warmup)
        print(report({"memory": results["memory"]}), flush=True)
    if "warmup" in parts:
        results["warmup"] = bench_warmup(torch.get_num_threads())
        print(report({"warmup": results["warmup"]}), flush=True)
    if "compile" in parts:
        results["compile"] = bench_compile(8 if q else 16, 4, 3 if q else 8)
        print(report({"compile": results["compile"]}), flush=True)
    results["meta"]["load_average_at_end"] = os.getloadavg() if hasattr(os, "getloadavg") else None

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1))
    print(f"\nwrote {out}")
    bad = 0
    base_path = Path(args.baseline)
    if base_path.exists() and not args.update_baseline:
        baseline = json.loads(base_path.read_text())
        text, bad = compare(results, baseline, args.tolerance)
        print(text)
        bm, rm = baseline.get("meta", {}), results["meta"]
        for key in ("threads", "cpu", "torch"):
            if bm.get(key) != rm.get(key):
                print(f"note: baseline {key} = {bm.get(key)!r}, this run {rm.get(key)!r}: ratios may differ")
        if baseline.get("quick") != results["quick"]:
            print("note: baseline and this run differ in --quick (shapes), compare like with like")
        print(f"\n{bad} regression(s) beyond {args.tolerance:.0%}" if bad else "\nno regression")
    if args.update_baseline:
        base_path.write_text(json.dumps(results, indent=1))
        print(f"wrote baseline {base_path}")
    return 1 if (bad and args.fail_on_regression) else 0


if __name__ == "__main__":
    sys.exit(main())
