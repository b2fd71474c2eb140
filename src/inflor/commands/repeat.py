"""``inflor repeat``: train one recipe with several seeds and report mean ± std of the best and
final test accuracy, as the papers do ("93.84 ± 0.12"); writes repeat.md and repeat.json.

Runs go to OUT/seed<S> one after another in this process (through the trainer's Python API). A
seed whose run already completed is reused; one that was interrupted is resumed.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from ..logs import progress, warning

PROG = "inflor repeat"


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("repeat", help="run a recipe with several seeds; mean ± std table",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                              epilog="Example: inflor repeat -c default --seeds 3 train.epochs=5 --out runs/rep")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides, as for 'inflor train'")
    p.add_argument("-c", "--config", metavar="RECIPE", help="recipe file or shipped recipe name (default: 'default')")
    p.add_argument("--seeds", type=int, required=True, metavar="N", help="number of runs")
    p.add_argument("--seed0", type=int, default=None, metavar="S",
                   help="first seed (default: the recipe's train.seed); runs use S .. S+N-1")
    p.add_argument("--out", metavar="DIR", help="folder of the runs (default: runs/repeat-<recipe>-<time>)")
    p.add_argument("--force", action="store_true", help="retrain seeds whose run already completed "
                                                        "(their folders must be removed first)")
    p.add_argument("--snapshots", default=None, metavar="EPOCHS",
                   help="take training-time snapshots, e.g. '0,1,last' (same as train.snapshots=...)")
    p.add_argument("--snapshot-batches", type=int, default=10, metavar="N", help="test batches per snapshot")
    p.set_defaults(func=run)
    return p


def _completed(run_dir: Path, epochs: int) -> bool:
    from ..analysis.runs import read_summary
    s = read_summary(run_dir)
    return s.get("status") == "completed" and s.get("epochs_done") == epochs


def run(args) -> int:
    from ..analysis.runs import AnalysisError
    from ..analysis.tables import paper_label, repeat_markdown, repeat_summary, run_record
    from ..train.config import load_config, parse_overrides, set_key
    from ..runs.summary import has_checkpoint
    from ..train.trainer import RunError, run_training

    if args.seeds < 1:
        raise AnalysisError(f"--seeds must be >= 1, got {args.seeds}")
    if any(k == "train.seed" for k, _ in parse_overrides(args.overrides)):
        raise AnalysisError("do not override train.seed: use --seed0 S (runs use seeds S .. S+N-1)")
    base = load_config(args.config, args.overrides)
    if args.snapshots:
        from ..analysis.snapshot import snapshot_epochs
        try:
            snapshot_epochs(args.snapshots, base["train"]["epochs"])
        except ValueError as e:
            raise AnalysisError(f"--snapshots: {e}") from None
    s0 = base["train"]["seed"] if args.seed0 is None else args.seed0
    if s0 < 0:
        raise AnalysisError(f"--seed0 must be >= 0, got {s0}")
    recipe = base.get("name") or "run"
    out = Path(args.out) if args.out else Path("runs") / f"repeat-{recipe}-{time.strftime('%Y%m%d-%H%M%S')}"
    out.mkdir(parents=True, exist_ok=True)
    records = []
    for i in range(args.seeds):
        seed = s0 + i
        cfg = json.loads(json.dumps(base))
        set_key(cfg, "train.seed", seed)
        cfg["name"] = f"{recipe}-seed{seed}"
        run_dir = out / f"seed{seed}"
        epochs = cfg["train"]["epochs"]
        if _completed(run_dir, epochs) and not args.force:
            progress(f"[{i + 1}/{args.seeds}] seed {seed}: completed earlier in {run_dir}, reused")
        else:
            resume = has_checkpoint(run_dir)
            if resume and args.force:
                raise AnalysisError(f"--force: remove {run_dir} first")
            progress(f"[{i + 1}/{args.seeds}] seed {seed} -> {run_dir}" + (" (resuming)" if resume else ""))
            if args.snapshots:
                set_key(cfg, "train.snapshots", args.snapshots)
                set_key(cfg, "train.snapshot_batches", args.snapshot_batches)
            try:
                run_training(cfg, run_dir, resume=resume)
            except RunError as e:
                warning(f"{PROG}: seed {seed} failed: {e}")
        try:
            records.append(run_record(run_dir))
        except AnalysisError as e:
            warning(f"{PROG}: seed {seed}: {e}")
            records.append({"run_dir": str(run_dir), "seed": seed, "label": cfg["name"], "best_acc": None,
                            "final_acc": None, "status": "failed"})
        records[-1]["seed"] = seed
    agg = repeat_summary(records)
    paper = paper_label(base.get("paper"))
    md = repeat_markdown(recipe, agg, records, paper)
    (out / "repeat.md").write_text(md, encoding="utf-8")
    doc = {"recipe": recipe, "config": args.config or "default", "overrides": args.overrides, "paper": paper,
           "seeds": [s0 + i for i in range(args.seeds)], **agg,
           "runs": [{k: v for k, v in r.items() if k != "curve"} for r in records]}
    (out / "repeat.json").write_text(json.dumps(doc, indent=1), encoding="utf-8")
    print(md)
    print(f"wrote {out / 'repeat.md'} and {out / 'repeat.json'}")
    return 0 if agg["runs"] == args.seeds else 1
