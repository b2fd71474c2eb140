"""The fused neuron kernels on a power-of-two step size against one just off it.

A neuron's input x [T, N] is read and its output written as T streams N elements apart. When
N·4 bytes is a power of two (every layer of the registered networks at a power-of-two batch),
all 2T streams of a kernel start at the same offset within a cache page, so they compete for the
same cache sets; N + 592 moves each stream to its own sets. ReLU (one stream in, one out) for
scale. Each row: the median of ``--rounds`` calls, sizes in turn, ``--passes`` times over.

    PYTHONPATH=src python benchmarks/stride_aliasing.py

Prints a table and writes JSON (``--out``).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import run as bench  # noqa: E402  (table, environment)

from inflor.neuron import make_neuron  # noqa: E402


def _median_ms(fn, rounds: int) -> list[float]:
    fn()
    out = []
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1e3)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-T", type=int, default=8)
    ap.add_argument("--log2n", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--passes", type=int, default=3)
    ap.add_argument("--out", default=str(HERE / "results" / "stride-aliasing.json"))
    args = ap.parse_args(argv)
    neuron = make_neuron("lif", backend="fused")
    sizes = (1 << args.log2n, (1 << args.log2n) + 592)
    times: dict = {n: {"neuron forward": [], "neuron backward": [], "ReLU forward": []} for n in sizes}
    for _ in range(args.passes):
        for n in sizes:
            x = torch.randn(args.T, n)
            xr = x.clone().requires_grad_(True)
            g = torch.randn_like(x)
            out = neuron(xr)
            with torch.no_grad():
                times[n]["neuron forward"] += _median_ms(lambda: neuron(x), args.rounds)
            times[n]["neuron backward"] += _median_ms(
                lambda: torch.autograd.grad(out, xr, g, retain_graph=True), args.rounds)
            times[n]["ReLU forward"] += _median_ms(lambda: torch.relu(x), args.rounds)
    res = {str(n): {k: statistics.median(v) for k, v in by.items()} for n, by in times.items()}
    p2, off = (res[str(n)] for n in sizes)
    print(bench.table(f"LIF neuron kernels, x [{args.T}, N] float32, {torch.get_num_threads()} threads (median ms)",
                      ["", f"N = 2^{args.log2n}", f"N = 2^{args.log2n} + 592", "ratio"],
                      [[k, f"{p2[k]:.2f}", f"{off[k]:.2f}", f"{p2[k] / off[k]:.2f}"] for k in p2]))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"meta": bench.environment(torch.get_num_threads()), "T": args.T,
                               "ms": res}, indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
