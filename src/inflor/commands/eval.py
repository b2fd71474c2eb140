"""``inflor eval``: evaluate a checkpoint on the test split of its dataset.

Examples:

    inflor eval runs/default-20260101-120000/checkpoints/best.pt
    inflor eval runs/r19/checkpoints/best.pt data.root=/data --json
"""
from __future__ import annotations

import argparse
import json
import time


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "eval", help="evaluate a checkpoint on the test split",
        description=__doc__.replace("``", ""),
        epilog="Overrides (dotted.key=value) change the saved run's data section, e.g. data.root=DIR, "
               "data.test_batch_size=256, data.options.size=48.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", help="a checkpoint written by inflor train (last.pt / best.pt)")
    p.add_argument("overrides", nargs="*", default=[], metavar="KEY=VALUE",
                   help="overrides of the saved data.* settings")
    p.add_argument("--data", metavar="NAME", help="evaluate on another dataset of the same shape (data.name)")
    p.add_argument("--root", metavar="DIR", help="dataset folder (data.root)")
    p.add_argument("--batch-size", type=int, metavar="N", help="evaluation batch size")
    p.add_argument("--device", default=None, help="auto (default: the saved run's), cpu, cuda, cuda:N")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--output", metavar="FILE", help="also write the JSON result to FILE")
    p.set_defaults(func=run)
    return p


def evaluate_checkpoint(path, overrides=(), data=None, root=None, batch_size=None, device=None) -> dict:
    """Rebuild the model of a checkpoint, build the test split of its dataset and evaluate."""
    from inflor.config import upgrade_saved_config
    from inflor.runs.checkpoint import build_model_from_checkpoint, load_checkpoint
    from inflor.runs.loader import rebuild_loader
    from inflor.train.config import ConfigError, apply_overrides, parse_overrides, validate_config
    from inflor.train.trainer import check_data_config, evaluate, resolve_device

    ck = load_checkpoint(path)
    cfg = upgrade_saved_config(ck["config"])   # a checkpoint of an earlier inflor: today's spelling
    pairs = parse_overrides(list(overrides))
    bad = [k for k, _ in pairs if not (k.startswith("data.") or k in ("train.device", "train.amp"))]
    if bad:
        raise ConfigError(f"inflor eval only takes data.* overrides (and train.device), got {', '.join(bad)}")
    if data:
        pairs.append(("data.name", data))
    if root:
        pairs.append(("data.root", root))
    if batch_size:
        pairs.append(("data.test_batch_size", batch_size))
    if device:
        pairs.append(("train.device", device))
    cfg = validate_config(apply_overrides(cfg, pairs))
    check_data_config(cfg)
    model = build_model_from_checkpoint(ck)
    dev = resolve_device(cfg["train"]["device"])
    d = cfg["data"]
    loader, _, info = rebuild_loader(d["name"], root=d["root"], options=d["options"],
                                     batch_size=d["test_batch_size"] or d["batch_size"], workers=d["workers"],
                                     pin_memory=dev.type == "cuda")
    if info.num_classes != ck["model_options"].get("num_classes", info.num_classes):
        raise ConfigError(f"dataset {info.name!r} has {info.num_classes} classes but the model in "
                          f"{path} was trained for {ck['model_options']['num_classes']}")
    t0 = time.perf_counter()
    res = evaluate(model.to(dev), loader, dev, cfg)
    return {"checkpoint": str(path), "model": ck["model_name"], "dataset": info.name, "epoch": ck["epoch"],
            "test_acc": res["acc"], "test_loss": res["loss"], "spike_rate": res["spike_rate"],
            "samples": res["samples"], "eval_time": time.perf_counter() - t0,
            "reported_acc": (cfg.get("paper") or {}).get("reported_acc")}


def run(args) -> int:
    res = evaluate_checkpoint(args.checkpoint, args.overrides, data=args.data, root=args.root,
                              batch_size=args.batch_size, device=args.device)
    text = json.dumps(res, indent=2)
    if args.output:
        with open(args.output, "w") as f:
            f.write(text + "\n")
    if args.json:
        print(text)
    else:
        rate = "-" if res["spike_rate"] is None else f"{res['spike_rate']:.4f}"
        print(f"{res['checkpoint']}: {res['model']} after epoch {res['epoch']} on {res['dataset']} test "
              f"({res['samples']} samples): accuracy {res['test_acc']:.4f}, loss {res['test_loss']:.4f}, "
              f"spike rate {rate}")
    return 0
