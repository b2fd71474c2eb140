"""``inflor compare``: one table (run, paper row, best and final test accuracy, epochs, wall time)
and one plot of the test-accuracy curves of several runs (IM-Loss Fig. 4 style); writes
compare.md, compare.json and compare.png."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

PROG = "inflor compare"


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("compare", help="table and accuracy curves of several runs", description=__doc__)
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run directories made by 'inflor train'")
    p.add_argument("--labels", nargs="+", default=None, metavar="LABEL", help="names for the runs, in order")
    p.add_argument("--title", default="Test accuracy", help="title of the plot")
    p.add_argument("--out", default="compare", metavar="DIR", help="output folder (default: ./compare)")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    from .. import plots
    from ..analysis.runs import AnalysisError
    from ..analysis.tables import compare_table, run_record

    if args.labels is not None and len(args.labels) != len(args.runs):
        raise AnalysisError(f"--labels gives {len(args.labels)} names for {len(args.runs)} runs")
    labels = args.labels or [None] * len(args.runs)
    records = [run_record(d, lab) for d, lab in zip(args.runs, labels)]
    seen: dict[str, int] = {}
    for r in records:      # make labels unique for the legend
        n = seen.get(r["label"], 0)
        seen[r["label"]] = n + 1
        if n:
            r["label"] = f"{r['label']} ({n + 1})"
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    curves = {r["label"]: (r["curve"]["epoch"], r["curve"]["test_acc"]) for r in records if r["curve"]["epoch"]}
    table = compare_table(records)
    (out / "compare.md").write_text(table + "\n", encoding="utf-8")
    (out / "compare.json").write_text(json.dumps(records, indent=1), encoding="utf-8")
    print(table)
    if curves:
        path = plots.plot_accuracy_curves(curves, out / "compare.png", title=args.title)
        print(f"wrote {path}")
    else:
        print(f"{PROG}: no run has a test-accuracy column in metrics.csv; no plot drawn")
    print(f"wrote {out / 'compare.md'} and {out / 'compare.json'}")
    return 0
