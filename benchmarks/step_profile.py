"""Where one training step's CPU time goes, the ANN twin against inflor (full BPTT), each in a
fresh process of its own under ``torch.profiler``: the convolutions (forward and backward, the
same work in both) apart from everything else (what the neurons and the memory mechanisms
change).

    PYTHONPATH=src python benchmarks/step_profile.py --net ResNet-19/4 -T 8 -B 32

Prints a table (per step: total, convolutions, the rest, and the largest other operators) and
writes JSON (``--out``). Per row: a warm-up step, then ``--steps`` profiled steps. Profiled
times carry the profiler's own overhead; compare rows, not these with unprofiled step times.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import torch
from torch import nn

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import run as bench  # noqa: E402  (networks, ANN twin, training step, table, environment)

ROWS = ("ANN twin (ReLU)", "inflor, full BPTT")
CONV = ("aten::convolution_backward", "aten::mkldnn_convolution")


def profile_row(net: str, T: int, B: int, row: str, steps: int) -> dict:
    """Per-step self CPU time (s) of every operator of ``steps`` profiled training steps."""
    from torch.profiler import ProfilerActivity, profile
    torch.manual_seed(0)
    model = bench.NETWORKS[net](timesteps=T, neuron="lif", neuron_options={"backend": "fused"})
    if row == ROWS[0]:
        model = bench.swap_neurons(model, nn.ReLU)
    images, labels = bench._batch(B)
    step = bench.train_step(model.train(), images, labels)
    step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    return {e.key: e.self_cpu_time_total / 1e6 / steps for e in prof.key_averages()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--net", choices=list(bench.NETWORKS), default="ResNet-19/4")
    ap.add_argument("-T", type=int, default=8)
    ap.add_argument("-B", type=int, default=32)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--row", choices=ROWS, help=argparse.SUPPRESS)     # a child process's row
    ap.add_argument("--out", default=str(HERE / "results" / "step-profile.json"))
    args = ap.parse_args(argv)
    if args.row:
        print(json.dumps(profile_row(args.net, args.T, args.B, args.row, args.steps)))
        return 0
    ops = {}
    for row in ROWS:
        proc = subprocess.run([sys.executable, __file__, "--net", args.net, "-T", str(args.T), "-B", str(args.B),
                               "--steps", str(args.steps), "--row", row], capture_output=True, text=True, check=True)
        ops[row] = json.loads(proc.stdout.strip().splitlines()[-1])
    summary = {}
    for row, by_op in ops.items():
        total = sum(by_op.values())
        conv = sum(by_op.get(k, 0.0) for k in CONV)
        summary[row] = {"total_s": total, "conv_s": conv, "rest_s": total - conv}
    ann = summary[ROWS[0]]
    lines = [[row, f"{v['total_s']:.3f}", f"{v['total_s'] / ann['total_s']:.2f}", f"{v['conv_s']:.3f}",
              f"{v['rest_s']:.3f}", f"{(v['rest_s'] - ann['rest_s']) / ann['total_s']:+.3f}"]
             for row, v in summary.items()]
    print(bench.table(f"profiled training step, {args.net}, B={args.B}, T={args.T}, {torch.get_num_threads()} threads, "
                      f"each row in a fresh process (s per step, self CPU time)",
                      ["", "total", "× ANN", "convolutions", "the rest", "rest − ANN's rest, × ANN total"], lines))
    top = sorted((k for k in ops[ROWS[1]] if k not in CONV), key=lambda k: -ops[ROWS[1]][k])[:15]
    print(bench.table("largest other operators (ms per step)", ["operator", *ROWS],
                      [[k[:70], f"{ops[ROWS[0]].get(k, 0.0) * 1e3:.1f}", f"{ops[ROWS[1]][k] * 1e3:.1f}"] for k in top]))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"meta": bench.environment(torch.get_num_threads()), "net": args.net, "B": args.B,
                               "T": args.T, "steps": args.steps, "summary": summary, "ops": ops}, indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
