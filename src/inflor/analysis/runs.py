"""Reading run directories and checkpoints for the analysis commands, with clear errors.

A run directory (docs/CONTRACTS.md) holds ``config.yaml``, ``metrics.csv``, ``summary.json``,
``checkpoints/{last,best}.pt`` and ``tb/``. Every problem a user can cause (a path that does not
exist, a run without a checkpoint, a checkpoint whose model cannot be rebuilt, a dataset that is
missing) raises ``AnalysisError`` with a message meant to be printed as is.
"""
from __future__ import annotations

import csv
from pathlib import Path

from ..errors import AnalysisError, CheckpointError  # noqa: F401  (AnalysisError re-exported here)
from ..runs.checkpoint import build_model_from_checkpoint, load_checkpoint
from ..runs.config_file import read_config_text  # noqa: F401  (re-exported)
from ..runs.config_file import read_run_config as _read_run_config
from ..runs.files import read_json  # noqa: F401  (re-exported)
from ..runs.layout import CHECKPOINT_NAMES, RunDir
from ..runs.loader import rebuild_loader
from ..runs.metrics import read_metrics as _read_metrics
from ..runs.summary import final_run_dir
from ..runs.summary import read_summary as _read_summary


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
        run = RunDir.of_checkpoint(p)
        if run is not None and not run.config.exists():
            run = None
        return p, (run.path if run is not None else None)
    p = final_run_dir(p)            # a run made of stages: its last (main) stage
    run = RunDir(p)
    order = [which] + [n for n in CHECKPOINT_NAMES if n != which]
    for name in order:
        c = run.checkpoint(name)
        if c.is_file():
            return c, p
    hint = ("it has no config.yaml either, so it is probably not a run directory"
            if not run.config.exists() else
            "the run may have stopped before its first epoch ended (checkpoints are written after each epoch)")
    raise AnalysisError(f"run directory {p} has no checkpoint: expected {run.best} or {run.last}; {hint}")


def load_model(ckpt_path) -> tuple[object, dict]:
    """``(model in eval mode, checkpoint dict)``; any failure becomes an ``AnalysisError``."""
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
    dcfg = dict((config or {}).get("data") or {})
    name = data or dcfg.get("name")
    if not name:
        raise AnalysisError("no dataset known for this checkpoint: pass --data NAME (e.g. --data digits)")
    options = dict(dcfg.get("options") or {}) if (data is None or data == dcfg.get("name")) else {}
    options.update(data_options or {})
    root = root if root is not None else dcfg.get("root")
    bs = batch_size or dcfg.get("test_batch_size") or dcfg.get("batch_size") or 64
    try:
        loader, ds, _ = rebuild_loader(name, root=root, options=options, batch_size=int(bs), split=split)
    except (FileNotFoundError, ValueError, TypeError) as e:
        raise AnalysisError(f"cannot load dataset {name!r}: {e}") from None
    return loader, {"name": name, "split": split, "size": len(ds), "batch_size": int(bs),
                    **({"root": str(root)} if root else {}), **({"options": options} if options else {})}


def read_run_config(run_dir) -> dict:
    """A run's resolved config: ``summary.json``'s copy, else ``config.yaml``; ``{}`` if neither
    holds one (a config file that does not parse is an ``AnalysisError``)."""
    return _read_run_config(run_dir, AnalysisError)


def read_summary(run_dir) -> dict:
    """``summary.json`` of a run (``{}`` when there is none; a damaged one raises AnalysisError)."""
    return _read_summary(run_dir, AnalysisError)


def as_percent(values) -> list:
    """Accuracies in percent (see ``inflor.plots.as_percent``)."""
    from ..plots import as_percent as _as_percent
    return _as_percent(values)


def read_metrics(run_dir) -> dict | None:
    p = RunDir(run_dir).metrics
    if not p.is_file():
        return None
    try:
        cols = _read_metrics(p)
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
