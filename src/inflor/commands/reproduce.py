"""``inflor reproduce TABLE``: run every row of a paper table (or of a table file) with N seeds and
write the table in the paper's layout, "reproduced (mean ± std)" beside "reported", the
difference and the runs' folders: OUT/reproduce.md and OUT/reproduce.json.

Each row is ``inflor repeat -c RECIPE --seeds N ROW_OVERRIDES OVERRIDES --out OUT/<row>``: seeds
that completed earlier are reused, interrupted ones resumed, so the same command continues a
killed reproduction. A row that cannot run (e.g. its dataset is missing) is reported as not run,
with the reason, and the others go on.

Tables: the paper tables by their recipes' prefix (imloss_tab1, recdis_tab1, inflor_tab4, ...),
the shipped table files (digits: the papers' claims on the bundled 8x8 digits), or a YAML file.
"""
from __future__ import annotations

import argparse
import json
import shlex
import time
from pathlib import Path

from ..logs import progress, warning

PROG = "inflor reproduce"


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("reproduce", help="run every row of a paper table with N seeds; reported vs reproduced",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                              epilog="Examples: inflor reproduce digits --seeds 3 --out runs/repro-digits;  "
                                     "inflor reproduce imloss_tab1 --seeds 3 data.root=~/data --out runs/imloss-t1")
    p.add_argument("table", nargs="?", help="a paper table (e.g. imloss_tab1), a shipped table file (digits) or a "
                                            "YAML table file; --list lists them")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides applied to every row")
    p.add_argument("--seeds", type=int, default=3, metavar="N", help="runs per row (default 3, as the papers)")
    p.add_argument("--seed0", type=int, default=None, metavar="S", help="first seed (default: each recipe's train.seed)")
    p.add_argument("--rows", default=None, metavar="ROW[,ROW...]", help="run only these rows (their keys, comma-separated)")
    p.add_argument("--out", metavar="DIR", help="folder of the runs (default: runs/reproduce-<table>-<time>)")
    p.add_argument("--list", action="store_true", help="list the tables and exit")
    p.set_defaults(func=run)
    return p


def _run_row(row, args, out: Path) -> dict:
    """``inflor repeat`` of one row; its repeat.json, or the reason it did not run."""
    from ..errors import InflorError, message
    from . import repeat

    rargs = argparse.Namespace(config=row.recipe, overrides=list(row.overrides) + list(args.overrides),
                               seeds=args.seeds, seed0=args.seed0, out=str(out), force=False, snapshots=None,
                               snapshot_batches=10)
    try:
        repeat.run(rargs)          # the command's body: its errors are raised to us
    except (InflorError, FileNotFoundError) as e:     # a row's own problem: report it, go on with the others
        reason = " ".join(message(e).split())
        reason = reason if len(reason) <= 240 else reason[:237] + "..."
        warning(f"{PROG}: row {row.key} not run: {reason}")
        return {"error": reason}
    return json.loads((out / "repeat.json").read_text(encoding="utf-8"))


def _pct_to_fraction(v):
    return None if v is None else v / 100


def _result(doc: dict, seeds_asked: int) -> dict:
    """A row's result from its repeat.json (percent there, fractions here, like summary.json)."""
    per_seed = [{"seed": r.get("seed"), "run_dir": r.get("run_dir"), "status": r.get("status"),
                 "best_acc": _pct_to_fraction(r.get("best_acc")), "best_epoch": r.get("best_epoch"),
                 "final_acc": _pct_to_fraction(r.get("final_acc")), "epochs_done": r.get("epochs_done"),
                 "wall_time": r.get("wall_time")} for r in doc["runs"]]
    return {"runs": sum(r["best_acc"] is not None for r in per_seed), "seeds_asked": seeds_asked,
            "best_acc_mean": _pct_to_fraction(doc["best_acc_mean"]), "best_acc_std": _pct_to_fraction(doc["best_acc_std"]),
            "final_acc_mean": _pct_to_fraction(doc["final_acc_mean"]),
            "final_acc_std": _pct_to_fraction(doc["final_acc_std"]),
            "wall_time": sum(r["wall_time"] or 0.0 for r in per_seed), "seeds": per_seed}


def _machine() -> dict:
    import os
    import platform

    import torch
    return {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(), "platform": platform.platform(),
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "load_average": [round(x, 1) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None}


def run(args) -> int:
    from .reproduction import list_tables, load_table, render_table
    from ..analysis.runs import AnalysisError
    from ..train.checkpoint import versions

    if args.list:
        print("\n".join(list_tables()))
        return 0
    if not args.table:
        raise AnalysisError("give a TABLE (inflor reproduce --list lists them)")
    if args.seeds < 1:
        raise AnalysisError(f"--seeds must be >= 1, got {args.seeds}")
    table = load_table(args.table)
    rows = table.rows
    if args.rows:
        args.rows = [k.strip() for k in args.rows.split(",") if k.strip()]
        unknown = sorted(set(args.rows) - {r.key for r in rows})
        if unknown:
            raise AnalysisError(f"--rows: no row {', '.join(unknown)} in {table.id}; rows: "
                                f"{', '.join(r.key for r in rows)}")
        rows = [r for r in rows if r.key in args.rows]
    out = Path(args.out) if args.out else Path("runs") / f"reproduce-{table.id}-{time.strftime('%Y%m%d-%H%M%S')}"
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    records = []
    for i, row in enumerate(rows):
        progress(f"[{i + 1}/{len(rows)}] {table.id} row {row.key}: {', '.join(row.cells)}")
        doc = _run_row(row, args, out / row.key)
        rec = {"key": row.key, "cells": row.cells, "recipe": row.recipe, "overrides": row.overrides,
               "reported": row.reported, "reported_std": row.reported_std, "note": row.note,
               "run_dir": str(out / row.key)}
        if "error" in doc:
            rec["error"] = doc["error"]
        else:
            rec["result"] = _result(doc, args.seeds)
        records.append(rec)
    command = " ".join(["inflor", "reproduce", shlex.quote(args.table), "--seeds", str(args.seeds)]
                       + (["--seed0", str(args.seed0)] if args.seed0 is not None else [])
                       + (["--rows", ",".join(args.rows)] if args.rows else []) + [shlex.quote(o) for o in args.overrides]
                       + ["--out", shlex.quote(str(out))])
    record = {"format": "inflor-reproduction-v1", "table": table.id, "title": table.title, "columns": table.columns,
              "command": command, "seeds": args.seeds, "overrides": list(args.overrides),
              "date": time.strftime("%Y-%m-%d"), "wall_time": time.perf_counter() - t0, "versions": versions(),
              "machine": _machine(),
              "rows": records}
    (out / "reproduce.json").write_text(json.dumps(record, indent=1), encoding="utf-8")
    md = f"# {table.title}\n\n`{command}`\n\n{render_table(record)}\n"
    (out / "reproduce.md").write_text(md, encoding="utf-8")
    print(md)
    print(f"wrote {out / 'reproduce.md'} and {out / 'reproduce.json'} ({record['wall_time']:.0f} s)")
    return 0 if all("result" in r and r["result"]["runs"] == args.seeds for r in records) else 1
