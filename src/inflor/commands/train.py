"""``inflor train``: train a spiking network from a YAML recipe with ``dotted.key=value`` overrides.

Examples:

    inflor train                                    # tinyconv on the bundled digits (~30 s on 2 CPU cores)
    inflor train -c inflor_tab4_c10_resnet19_t4 data.root=~/data --out runs/r19
    inflor train -c inflor_tab4_c10_resnet19_t4 --smoke  # build everything, one step on a random batch
    inflor train --out runs/r19 --resume            # continue a killed run
    torchrun --nproc_per_node 2 -m inflor train -c ...   # distributed data parallel
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "train", help="train a spiking network from a recipe",
        description=__doc__.replace("``", ""),
        epilog="Overrides are YAML values: optim.lr=0.01  model.options.neuron=srif  "
               "loss.mpd.weight=2  data.options='{autoaugment: false}'. "
               "See docs/training.md for every key and docs/recipes.md for the recipes.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides (dotted keys)")
    p.add_argument("-c", "--config", metavar="RECIPE",
                   help="recipe file or shipped recipe name (default: 'default', tinyconv on digits)")
    p.add_argument("--out", metavar="DIR", help="run directory (default: runs/<recipe>-<timestamp>)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its checkpoints/last.pt")
    p.add_argument("--smoke", action="store_true",
                   help="build everything and run one training step on a random batch; no data files needed")
    p.add_argument("--smoke-batch", type=int, default=2, metavar="N", help="batch size of --smoke (default 2)")
    p.add_argument("--smoke-size", type=int, default=None, metavar="PX",
                   help="image size of the --smoke batch (e.g. 64 for the ImageNet nets on a CPU); "
                        "fixed-size models are built for it")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    p.add_argument("--list-recipes", action="store_true", help="list the shipped recipes and exit")
    p.set_defaults(func=run)
    return p


def list_recipes_text() -> str:
    from inflor.train.config import list_recipes, load_config

    lines = []
    for name in list_recipes():
        cfg = load_config(name)
        p = cfg["paper"]
        acc = f"{100 * p['reported_acc']:.2f}%" if p["reported_acc"] is not None else "-"
        where = f"{p['name']} T{p['table']}: {p['row']}" if p["name"] else (cfg.get("description") or "")
        lines.append(f"{name:44s} {acc:>8s}  {where}")
    return "\n".join(lines)


def resolve_config(args):
    """The validated config of this command line (and, on --resume, of the saved run)."""
    from inflor.errors import RunError
    from inflor.runs.layout import RunDir
    from inflor.config import upgrade_saved_config
    from inflor.train.config import (ConfigError, RUNTIME_KEYS, apply_overrides, config_diff, parse_overrides,
                                     read_yaml, set_key, validate_config, load_config)

    if args.resume:
        if not args.out:
            raise ConfigError("--resume needs --out DIR (the run to continue)")
        saved_path = RunDir(args.out).config
        if not saved_path.is_file():
            raise RunError(f"nothing to resume: {saved_path} does not exist (is {args.out} a run directory "
                           f"made by inflor train?)")
        try:
            saved = validate_config(upgrade_saved_config(read_yaml(saved_path, "the saved config", RunError)))
        except ConfigError as e:
            raise RunError(f"the saved config {saved_path} is damaged or from another inflor version: {e}") from None
        set_key(saved, "train.stop_after_epochs", None)   # a one-shot stop, not part of the run
        if args.config:
            fresh = load_config(args.config, args.overrides)
            diff = config_diff(saved, fresh)
            if diff:
                raise ConfigError(f"--resume: recipe {args.config!r} with these overrides differs from the "
                                  f"run saved in {saved_path}: " + "; ".join(diff[:6])
                                  + ". Resume without -c (the saved config is used) or start a new run.")
            return fresh
        cfg = validate_config(apply_overrides(saved, parse_overrides(args.overrides)))
        diff = config_diff(saved, cfg, ignore=RUNTIME_KEYS + ("train.epochs",))
        if diff:
            raise ConfigError(f"--resume may only change run-time settings ({', '.join(RUNTIME_KEYS)}) and "
                              f"train.epochs; these overrides change the run: " + "; ".join(diff[:6]))
        return cfg
    return load_config(args.config, args.overrides)


def default_out(cfg: dict) -> Path:
    return Path("runs") / f"{cfg.get('name') or 'run'}-{time.strftime('%Y%m%d-%H%M%S')}"


def run(args) -> int:
    """Errors reach the one handler of ``inflor.cli`` (``inflor.errors.run_command``); an interrupt
    is reported by the trainer itself, with the command that continues the run."""
    from inflor.train.config import dump_config
    from inflor.train.trainer import run_training, smoke_test

    if args.list_recipes:
        print(list_recipes_text())
        return 0
    cfg = resolve_config(args)
    if args.print_config:
        print(dump_config(cfg), end="")
        return 0
    if args.smoke:
        smoke_test(cfg, batch_size=args.smoke_batch, image_size=args.smoke_size)
        return 0

    from inflor.train.distributed import broadcast_object, env_world_size, init_distributed
    from inflor.train.trainer import resolve_device

    out = Path(args.out) if args.out else default_out(cfg)
    if not args.out and env_world_size() > 1:
        # every rank must agree on the directory: rank 0's timestamp wins
        info = init_distributed(resolve_device(cfg["train"]["device"]).type)
        out = Path(broadcast_object(str(out), info))
    run_training(cfg, out, resume=args.resume)
    return 0
