"""Where a full-BPTT training step's time goes beyond the ANN twin's: the same network timed
with each memory mechanism of issue 17 switched off in turn.

    PYTHONPATH=src python benchmarks/step_ablation.py --net ResNet-19/4 -T 4 -B 32

Rows: the ANN twin (ReLU, plain layers); inflor as shipped; without spikes as bits in the
neuron's kernels (``inflor.fused.ops.bits_in_kernel`` off: each spike layer packs its input
itself, and a residual pair's shortcut spikes are unpacked into memory for the backward kernel);
with each pair's neuron input
replayed into memory in backward instead of computed in the neuron's kernel
(``inflor.fused.ops.InputRecipe`` refused); without the backward's scratch
memory (``inflor.scratch``: every rebuilt tensor freshly allocated); without the norm → neuron pairs
(``inflor.pairing.norm_neuron`` replaced by its unpaired form ``neuron(norm(y) + r)``: the
neuron keeps its input); without the spike layers (``inflor.layers.unspike``: convs keep float spikes); without
both. Each row runs step after step as a training loop does (a warm-up step, then ``--steps``
timed steps), the rows in turn, ``--passes`` times over; medians and ratios to the ANN twin,
taken in one process, with ``--host-allocator`` applied first (default ``heap``, as ``inflor train``
on a CPU; ``system``: glibc's defaults, as the runs before 2026-12-03). Prints a table and writes
JSON (``--out``).
"""
from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import run as bench  # noqa: E402  (the networks, the ANN twin and the training step of run.py)

from inflor import pairing, scratch  # noqa: E402
from inflor.layers import unspike  # noqa: E402
from inflor.fused import ops  # noqa: E402
from inflor.models import blocks  # noqa: E402
from inflor.pairing import _unpaired  # noqa: E402  (norm_neuron without the pairing)
from inflor.train.host_allocator import use_host_allocator  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--net", choices=list(bench.NETWORKS), default="ResNet-19/4")
    ap.add_argument("-T", type=int, default=4)
    ap.add_argument("-B", type=int, default=32)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--passes", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--host-allocator", choices=bench.STEP_ALLOCATORS, default="heap",
                    help="train.host_allocator of this process (default heap, as inflor train on a CPU)")
    ap.add_argument("--out", default=str(HERE / "results" / "step-ablation.json"))
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    allocator = use_host_allocator(args.host_allocator, "cpu")
    torch.manual_seed(0)
    snn = bench.NETWORKS[args.net](timesteps=args.T, neuron="lif", neuron_options={"backend": "fused"})
    plain = unspike(copy.deepcopy(snn))
    paired = blocks.norm_neuron
    pooled, unpooled = scratch.MIN_BYTES, 1 << 62
    offer, refuse = pairing.offer_input_recipe, (lambda recipe: False)
    bits, no_bits = ops.bits_in_kernel, (lambda x, stats: False)
    rows = {"ANN twin (ReLU)": (bench.swap_neurons(snn, nn.ReLU), paired, pooled),
            "inflor": (snn, paired, pooled),
            "inflor without spikes as bits in the neuron's kernels": (snn, paired, pooled, offer, no_bits),
            "inflor replaying each pair's neuron input": (snn, paired, pooled, refuse),
            "inflor without the scratch memory": (snn, paired, unpooled),
            "inflor without the norm → neuron pairs": (snn, _unpaired, pooled),
            "inflor without the spike layers": (plain, paired, pooled),
            "inflor without both": (plain, _unpaired, pooled)}
    images, labels = bench._batch(args.B)
    times = {k: [] for k in rows}
    try:
        for _ in range(args.passes):
            for name, (model, pair, min_bytes, *switches) in rows.items():
                blocks.norm_neuron, scratch.MIN_BYTES = pair, min_bytes
                pairing.offer_input_recipe = switches[0] if switches else offer
                ops.bits_in_kernel = switches[1] if len(switches) > 1 else bits
                step = bench.train_step(model.train(), images, labels)
                step()
                for _ in range(args.steps):
                    t = time.perf_counter()
                    step()
                    times[name].append(time.perf_counter() - t)
    finally:
        blocks.norm_neuron, scratch.MIN_BYTES, pairing.offer_input_recipe = paired, pooled, offer
        ops.bits_in_kernel = bits
    ann = statistics.median(times["ANN twin (ReLU)"])
    res = {k: {"median_s": statistics.median(v), "min_s": min(v), "x_ann": statistics.median(v) / ann}
           for k, v in times.items()}
    title = (f"training step, {args.net}, B={args.B}, T={args.T}, {torch.get_num_threads()} threads "
             f"(median of {args.passes}×{args.steps} steps, host allocator {allocator})")
    print(bench.table(title, ["", "median s", "min s", "× ANN"],
                      [[k, f"{v['median_s']:.3f}", f"{v['min_s']:.3f}", f"{v['x_ann']:.2f}"] for k, v in res.items()]))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"meta": bench.environment(torch.get_num_threads()), "net": args.net, "B": args.B,
                               "T": args.T, "host_allocator": allocator, "rows": res}, indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
