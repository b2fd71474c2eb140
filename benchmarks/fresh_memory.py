"""What a fresh large tensor costs on the CPU: one pass (``addcmul``, as the norm replay of
``inflor.pairing``) written into a new tensor against the same pass written into a buffer that is
reused, at sizes around glibc's largest mmap threshold (32 MiB).

    python benchmarks/fresh_memory.py

Prints a table and writes JSON (``--out``). Medians of ``--repeats`` calls after 3 warm-up
calls, in one process (``inflor.scratch`` explains why the difference matters).
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


def _median_ms(fn, repeats: int) -> float:
    for _ in range(3):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e3


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mib", type=int, nargs="+", default=[8, 16, 32, 64])
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", default=str(HERE / "results" / "fresh-memory.json"))
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = {}
    for mib in args.mib:
        C = 32
        y = torch.randn((mib << 20) // 4 // (C * 1024), C, 32, 32)
        a, b = torch.rand(1, C, 1, 1), torch.rand(1, C, 1, 1)
        out = torch.empty_like(y)
        fresh = _median_ms(lambda: torch.addcmul(b, y, a), args.repeats)
        reused = _median_ms(lambda: torch.addcmul(b, y, a, out=out), args.repeats)
        rows[mib] = {"fresh_ms": fresh, "reused_ms": reused, "ratio": fresh / reused}
    print(bench.table(f"addcmul over a float32 tensor, {torch.get_num_threads()} threads (median ms)",
                      ["MiB", "into a fresh tensor", "into a reused buffer", "fresh / reused"],
                      [[str(k), f"{v['fresh_ms']:.2f}", f"{v['reused_ms']:.2f}", f"{v['ratio']:.1f}"]
                       for k, v in rows.items()]))
    out_path = Path(args.out)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps({"meta": bench.environment(torch.get_num_threads()), "rows": rows}, indent=1))
    print(f"wrote {out_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
