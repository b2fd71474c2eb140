"""``inflor analyze``: per-layer membrane statistics, quantization error, MPD terms, SOPs and
energy of a trained model on its test set; writes analysis.json, PNG plots and report.html."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

PROG = "inflor analyze"


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "analyze", aliases=["analyse"], help="look inside a trained spiking network (membrane, spikes, energy)",
        description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("path", metavar="RUN_DIR_OR_CHECKPOINT",
                   help="a run directory made by 'inflor train' or a checkpoint file (.pt)")
    p.add_argument("--checkpoint", choices=["best", "last"], default="best",
                   help="which checkpoint of a run directory (the other one if it is missing)")
    p.add_argument("--data", default=None, help="dataset name (default: the run's data.name)")
    p.add_argument("--data-root", default=None, help="dataset folder (default: the run's data.root)")
    p.add_argument("--split", choices=["test", "train"], default="test", help="which split to run")
    p.add_argument("--batch-size", type=int, default=None, help="batch size (default: the run's)")
    p.add_argument("--batches", type=int, default=None, metavar="N",
                   help="only the first N batches (default: the whole split)")
    p.add_argument("--layers", nargs="+", default=None, metavar="NAME",
                   help="spiking layers to analyse: module paths or patterns such as 'layer2.*' (default: all)")
    p.add_argument("--hist-layers", nargs="+", default=None, metavar="NAME",
                   help="layers to draw membrane histograms for (default: every analysed layer)")
    p.add_argument("--hist-range", nargs=2, type=float, default=None, metavar=("LO", "HI"),
                   help="x range of the histograms' main panels (default: from the data: the central 99%% "
                        "of the values with 0, 1, V_th and the surrogate window)")
    p.add_argument("--hist-bins", type=int, default=None,
                   help="bins across a histogram's main panel (default: 160)")
    p.add_argument("--e-mac", type=float, default=None, help="energy of one MAC in pJ (default 4.6, 45 nm)")
    p.add_argument("--e-ac", type=float, default=None, help="energy of one accumulate in pJ (default 0.9, 45 nm)")
    p.add_argument("--device", default="cpu", help="torch device")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="output folder (default: RUN_DIR/analysis, or analysis-<checkpoint> beside a checkpoint)")
    p.add_argument("--quiet", action="store_true", help="no progress bar and no summary table")
    p.set_defaults(func=run)
    return p


def _print_summary(result: dict, out: Path) -> None:
    rows = [("layer", "spike", "mean H", "std H", "H<0 %", "[0,1] %", "H>1 %", "QE before", "QE after", "window",
             "L_D", "L_S", "L_M")]
    for name, s in result["layers"].items():
        rows.append((name, f"{s['spike_rate']:.4f}", f"{s['membrane_mean']:.4f}", f"{s['membrane_std']:.4f}",
                     f"{100 * s['fraction_below_0']:.1f}", f"{100 * s['fraction_in_0_1']:.1f}",
                     f"{100 * s['fraction_above_1']:.1f}",
                     f"{s['quantization_error_before']:.4f}", f"{s['quantization_error_after']:.4f}",
                     "-" if s["window_fraction"] is None else f"{s['window_fraction']:.4f}",
                     f"{s['mpd']['D']:.2e}", f"{s['mpd']['S']:.2e}", f"{s['mpd']['M']:.2e}"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))))
    acc = result.get("accuracy")
    print(f"samples {result['samples']}" + (f", accuracy {100 * acc:.2f}%" if acc is not None else ""))
    e = result.get("energy")
    if e:
        t = e["total"]
        ratio = t.get("energy_ratio_ann_over_snn")
        print(f"per sample: ANN {t['ann_macs']:.4g} MACs = {t['ann_energy_pj'] / 1e6:.4g} µJ; SNN {t['snn_macs']:.4g} "
              f"MACs + {t['sops']:.4g} SOPs = {t['snn_energy_pj'] / 1e6:.4g} µJ"
              + (f" ({ratio:.2f}× less)" if ratio else ""))
    print(f"wrote {out / 'analysis.json'} and {out / 'report.html'}")


def _check_fits(model, loader, device, ckpt_path, data_name) -> None:
    """One forward pass on two samples of the first batch: a model that rejects the data's shape
    becomes a clear message instead of a traceback from deep inside the analysis."""
    import torch

    from ..analysis.runs import AnalysisError

    batch = next(iter(loader), None)
    if batch is None:
        raise AnalysisError(f"dataset {data_name!r} has no samples in this split")
    x = batch[0] if isinstance(batch, (tuple, list)) else batch
    try:
        with torch.no_grad():
            model.eval()(x[:2].to(device))
    except (RuntimeError, ValueError, TypeError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise AnalysisError(f"the model of {ckpt_path} cannot run on dataset {data_name!r} "
                            f"({first[:300]}); pass the dataset it was trained on with --data") from None


def run(args) -> int:
    from ..analysis.report import analyze
    from ..analysis.runs import (AnalysisError, build_test_loader, find_checkpoint, load_model, read_config_text,
                                 read_metrics)
    from ..analysis.probe import select_layers
    from ..energy import EnergyConstants

    if args.batches is not None and args.batches < 1:
        raise AnalysisError(f"--batches must be >= 1, got {args.batches}")
    if args.batch_size is not None and args.batch_size < 1:
        raise AnalysisError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.hist_bins is not None and args.hist_bins < 1:
        raise AnalysisError(f"--hist-bins must be >= 1, got {args.hist_bins}")
    if args.hist_range is not None and not args.hist_range[0] < args.hist_range[1]:
        raise AnalysisError(f"--hist-range needs LO < HI, got {args.hist_range}")
    ckpt_path, run_dir = find_checkpoint(args.path, args.checkpoint)
    model, ckpt = load_model(ckpt_path)
    if run_dir is not None:   # read every input before anything is written: a damaged file stops here
        from ..analysis.snapshot import load_snapshots
        load_snapshots(run_dir)
    try:
        select_layers(model, args.layers)
        if args.hist_layers:
            chosen = {n for n, _ in select_layers(model, args.layers)}
            hist = [n for n, _ in select_layers(model, args.hist_layers)]
            outside = [n for n in hist if n not in chosen]
            if outside:
                raise AnalysisError(f"--hist-layers {outside} are not among the analysed --layers")
        else:
            hist = None
        constants = EnergyConstants(**{k: v for k, v in (("e_mac", args.e_mac), ("e_ac", args.e_ac))
                                       if v is not None})
    except ValueError as e:
        raise AnalysisError(str(e)) from None
    config = ckpt.get("config") or {}
    try:
        model.to(args.device)
    except (RuntimeError, AssertionError) as e:
        raise AnalysisError(f"cannot use device {args.device!r}: {e}") from None
    mpd_cfg = (config.get("loss") or {}).get("mpd") or {}
    mpd_options = {k: float(mpd_cfg[k]) for k in ("k_d", "k_s", "k_m") if mpd_cfg.get(k) is not None}
    loader, data_desc = build_test_loader(config, args.data, args.data_root, args.batch_size, args.split)
    if args.out:
        out = Path(args.out)
    elif run_dir is not None:
        out = run_dir / "analysis"
    else:
        out = ckpt_path.parent / f"analysis-{ckpt_path.stem}"
    source = {"checkpoint": str(ckpt_path), "run_dir": str(run_dir) if run_dir else None,
              "model_name": ckpt.get("model_name"), "epoch": ckpt.get("epoch"),
              "best_acc": ckpt.get("best_acc"), "run_name": config.get("name")}
    config_text = read_config_text(run_dir)
    if config_text is None and config:
        import yaml
        config_text = yaml.safe_dump(config, sort_keys=False)
    metrics = read_metrics(run_dir) if run_dir is not None else None
    _check_fits(model, loader, args.device, ckpt_path, data_desc["name"])
    result = analyze(model, loader, out, layers=args.layers, max_batches=args.batches, hist_layers=hist,
                     device=args.device, constants=constants, source=source, data=data_desc,
                     config_text=config_text, metrics=metrics, progress=not args.quiet and sys.stderr.isatty(),
                     hist_range=args.hist_range, hist_bins=args.hist_bins, run_dir=run_dir,
                     mpd_options=mpd_options)
    if not args.quiet:
        _print_summary(result, out)
    return 0
