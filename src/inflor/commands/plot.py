"""``inflor plot``: the papers' explanatory figures from inflor's own functions, and a run's
training-time snapshots.

  mpr             MPR response curves: InfLoR φ (Eq. 10) and the AAAI φ for several k
  esg             the asymptotic tanh surrogate and its gradient for several k, and ESG's K(i)
  redistribution  100,000 draws of N(½, 1) before and after MPR, with their quantization errors
  snapshots RUN   a run's per-epoch spike rates and membrane distributions
  all             mpr, esg and redistribution
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

PROG = "inflor plot"
KINDS = ["mpr", "esg", "redistribution", "snapshots", "all"]


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("plot", help="draw the MPR, ESG and redistribution figures, or a run's snapshots",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("kind", choices=KINDS, help="which figure")
    p.add_argument("run", nargs="?", default=None, metavar="RUN_DIR", help="run directory (for 'snapshots')")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="output folder (default: ./plots, or RUN_DIR/snapshots for 'snapshots')")
    p.add_argument("--k", nargs="+", type=float, default=[1, 3, 5, 7], help="k values of the AAAI MPR curves")
    p.add_argument("--esg-k", nargs="+", type=float, default=[1, 3, 10], help="k values of the tanh surrogate")
    p.add_argument("--k-min", type=float, default=1.0, help="ESG K_min")
    p.add_argument("--k-max", type=float, default=10.0, help="ESG K_max")
    p.add_argument("--epochs", type=int, default=1000, help="ESG schedule length N")
    p.add_argument("--samples", type=int, default=100_000, help="draws for 'redistribution'")
    p.add_argument("--seed", type=int, default=0, help="seed for 'redistribution'")
    p.add_argument("--layers", nargs="+", default=None, metavar="NAME", help="layers for 'snapshots'")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    from .. import plots
    from ..analysis.runs import AnalysisError
    from ..runs.layout import RunDir

    if args.kind == "snapshots":
        if not args.run:
            raise AnalysisError("'inflor plot snapshots' needs a run directory: inflor plot snapshots RUN_DIR")
        if not Path(args.run).is_dir():
            raise AnalysisError(f"{args.run} is not a directory")
        from ..analysis.snapshot import plot_snapshots
        made = plot_snapshots(args.run, args.out, layers=args.layers)
        out = Path(args.out) if args.out else RunDir(args.run).snapshots
        print(f"wrote {out / made['spike_rates']}")
        for rel in made["distributions"].values():
            print(f"wrote {out / rel}")
        return 0
    if args.run:
        raise AnalysisError(f"'inflor plot {args.kind}' takes no run directory (got {args.run!r})")
    if any(k <= 0 for k in args.k + args.esg_k) or not 0 < args.k_min <= args.k_max:
        raise AnalysisError("k values must be > 0 and 0 < --k-min <= --k-max")
    if args.epochs < 1 or args.samples < 1:
        raise AnalysisError("--epochs and --samples must be >= 1")
    out = Path(args.out or "plots")
    kinds = ["mpr", "esg", "redistribution"] if args.kind == "all" else [args.kind]
    for kind in kinds:
        if kind == "mpr":
            path = plots.plot_mpr_curves(out / "mpr.png", ks=args.k)
        elif kind == "esg":
            path = plots.plot_esg(out / "esg.png", k_min=args.k_min, k_max=args.k_max, num_epochs=args.epochs,
                                  ks=args.esg_k)
        else:
            path, numbers = plots.plot_redistribution(out / "redistribution.png", samples=args.samples, seed=args.seed)
            (out / "redistribution.json").write_text(json.dumps(numbers, indent=1), encoding="utf-8")
            print(f"N(0.5, 1), {numbers['samples']} samples: quantization error "
                  f"{numbers['quantization_error_before']:.4f} before MPR, {numbers['quantization_error_after']:.4f} after")
        print(f"wrote {path}")
    return 0
