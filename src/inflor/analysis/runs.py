"""Reading run directories and checkpoints for the analysis commands, with clear errors.

A run directory (docs/CONTRACTS.md) holds ``config.yaml``, ``metrics.csv``, ``summary.json``,
``checkpoints/{last,best}.pt`` and ``tb/``. Every problem a user can cause (a path that does not
exist, a run without a checkpoint, a checkpoint whose model cannot be rebuilt, a dataset that is
missing) raises ``AnalysisError`` with a message meant to be printed as is.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

from ..errors import AnalysisError  # noqa: F401  (defined with the other user errors; re-exported here)

CHECKPOINT_NAMES = ("best", "last")


def find_checkpoint(path, which: str = "best") -> tuple[Path, Path | None]:
    """``(checkpoint file, run directory or None)`` for a run directory or a checkpoint file.

    In a run directory ``which`` (``best`` or ``last``) is preferred and the other one used when
    it is missing; in the directory of a run made of stages, its main stage's."""
    p = Path(path)
    if which not in CHECKPOINT_NAMES:
        raise AnalysisError(f"--checkpoint must be one of {list(CHECKPOINT_NAMES)}, got {which!r}")
    if not p.exists():
        raise AnalysisError(f"{p} does not exist: give a run directory (made by 'inflor train') or a "
                            f"checkpoint file (.pt)")
    if p.is_file():
        run_dir = p.parent.parent if p.parent.name == "checkpoints" else None
        if run_dir is not None and not (run_dir / "config.yaml").exists():
            run_dir = None
        return p, run_dir
    from ..train.stages import final_run_dir
    p = final_run_dir(p)            # a run made of stages: its last (main) stage
    order = [which] + [n for n in CHECKPOINT_NAMES if n != which]
    for name in order:
        c = p / "checkpoints" / f"{name}.pt"
        if c.is_file():
            return c, p
    hint = ("it has no config.yaml either, so it is probably not a run directory"
            if not (p / "config.yaml").exists() else
            "the run may have stopped before its first epoch ended (checkpoints are written after each epoch)")
    raise AnalysisError(f"run directory {p} has no checkpoint: expected {p / 'checkpoints' / 'best.pt'} or "
                        f"{p / 'checkpoints' / 'last.pt'}; {hint}")


def load_model(ckpt_path) -> tuple[object, dict]:
    """``(model in eval mode, checkpoint dict)``; any failure becomes an ``AnalysisError``."""
    from ..train.checkpoint import CheckpointError, build_model_from_checkpoint, load_checkpoint

    try:
        ckpt = load_checkpoint(ckpt_path)
        model = build_model_from_checkpoint(ckpt)
    except CheckpointError as e:
        raise AnalysisError(str(e)) from None
    except (ValueError, TypeError, KeyError) as e:
        raise AnalysisError(f"cannot rebuild the model of {ckpt_path}: {e}") from None
    return model, ckpt


def build_test_loader(config: dict | None, data: str | None = None, root: str | None = None,
                      batch_size: int | None = None, split: str = "test", data_options: dict | None = None):
    """``(DataLoader over the test (or train) split, description)`` from a run config, with the
    dataset name, root, options and batch size overridable."""
    import torch
    from torch.utils.data import DataLoader

    from ..data import build_datasets

    dcfg = dict((config or {}).get("data") or {})
    name = data or dcfg.get("name")
    if not name:
        raise AnalysisError("no dataset known for this checkpoint: pass --data NAME (e.g. --data digits)")
    options = dict(dcfg.get("options") or {}) if (data is None or data == dcfg.get("name")) else {}
    options.update(data_options or {})
    root = root if root is not None else dcfg.get("root")
    bs = batch_size or dcfg.get("test_batch_size") or dcfg.get("batch_size") or 64
    try:
        train_ds, test_ds, info = build_datasets(name, root=root, **options)
    except (FileNotFoundError, ValueError, TypeError) as e:
        raise AnalysisError(f"cannot load dataset {name!r}: {e}") from None
    ds = test_ds if split == "test" else train_ds
    g = torch.Generator().manual_seed(0)
    loader = DataLoader(ds, batch_size=int(bs), shuffle=False, num_workers=0, generator=g)
    return loader, {"name": name, "split": split, "size": len(ds), "batch_size": int(bs),
                    **({"root": str(root)} if root else {}), **({"options": options} if options else {})}


def read_config_text(run_dir) -> str | None:
    if run_dir is None:
        return None
    p = Path(run_dir) / "config.yaml"
    return p.read_text(encoding="utf-8") if p.is_file() else None


def read_run_config(run_dir) -> dict:
    """A run's resolved config: ``summary.json``'s copy, else ``config.yaml``; ``{}`` if neither
    holds one (a config file that does not parse is an ``AnalysisError``)."""
    cfg = read_summary(run_dir).get("config")
    if isinstance(cfg, dict) and cfg:
        return cfg
    text = read_config_text(run_dir)
    if text is None:
        return {}
    import yaml
    try:
        cfg = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise AnalysisError(f"{Path(run_dir) / 'config.yaml'} is not valid YAML: {e}") from None
    return cfg if isinstance(cfg, dict) else {}


def read_json(path, what: str) -> dict:
    """The JSON object in ``path``; a damaged file raises ``AnalysisError`` naming it (``what``
    says which file it should be)."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise AnalysisError(f"{path} is not valid JSON ({e.msg}, line {e.lineno}, column {e.colno}): the file "
                            f"is damaged or half-written; expected {what}") from None
    except UnicodeDecodeError:
        raise AnalysisError(f"{path} is not a text file (not UTF-8); expected {what}") from None
    if not isinstance(doc, dict):
        raise AnalysisError(f"{path} holds a JSON {type(doc).__name__}, not an object; expected {what}")
    return doc


def read_summary(run_dir) -> dict:
    """``summary.json`` of a run (``{}`` when there is none; a damaged one raises AnalysisError)."""
    p = Path(run_dir) / "summary.json"
    if not p.is_file():
        return {}
    return read_json(p, "the summary.json that inflor train writes")


def as_percent(values) -> list:
    """Accuracies in percent (see ``inflor.plots.as_percent``)."""
    from ..plots import as_percent as _as_percent
    return _as_percent(values)


def read_metrics(run_dir) -> dict | None:
    from ..plots import read_metrics as _read

    p = Path(run_dir) / "metrics.csv"
    if not p.is_file():
        return None
    try:
        cols = _read(p)
    except (UnicodeDecodeError, csv.Error) as e:
        raise AnalysisError(f"cannot read {p} ({type(e).__name__}: {e}); expected the metrics.csv that inflor "
                            f"train writes (a header line, then one row per epoch)") from None
    return cols or None


def accuracy_column(metrics: dict, prefer=("test_acc", "test_acc1", "test_top1", "val_acc", "acc")) -> str | None:
    """The name of the test-accuracy column of ``metrics.csv``."""
    for k in prefer:
        if k in metrics:
            return k
    for k in metrics:
        low = k.lower()
        if ("test" in low or "val" in low) and "acc" in low and "best" not in low:
            return k
    return None


def report_errors(prog: str):
    """Decorator for a command's ``func(args)``: the same handling as the ``inflor`` command line
    gives every command (``inflor.errors.run_command``). Kept for code that imported it from here."""
    import functools

    from ..errors import run_command

    def deco(fn):
        @functools.wraps(fn)
        def wrapper(args):
            return run_command(prog, fn, args, debug=getattr(args, "debug", False))
        return wrapper
    return deco
