"""Where each file of a run directory lives (the one place that spells the names)."""
from __future__ import annotations

import os
from pathlib import Path

__all__ = ["CONFIG", "METRICS", "SUMMARY", "INIT", "CHECKPOINTS", "SNAPSHOTS", "TB", "CHECKPOINT_NAMES",
           "RESERVED", "RunDir", "snapshot_path"]

CONFIG = "config.yaml"
METRICS = "metrics.csv"
SUMMARY = "summary.json"
INIT = "init.json"
CHECKPOINTS = "checkpoints"
SNAPSHOTS = "snapshots"
TB = "tb"
#: the checkpoints a run keeps: ``best`` (highest test accuracy) and ``last`` (the latest epoch)
CHECKPOINT_NAMES = ("best", "last")
#: folder names of a run directory that a stage may not take
RESERVED = (CHECKPOINTS, TB, SNAPSHOTS, "analysis")


def snapshot_path(run_dir: str | os.PathLike, epoch: int) -> Path:
    """``RUN/snapshots/epoch_XXXX.json``; ``epoch`` = epochs finished (0 = before training)."""
    return Path(run_dir) / SNAPSHOTS / f"epoch_{int(epoch):04d}.json"


class RunDir:
    """The paths of one run directory (nothing is read or created by building one)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def __fspath__(self) -> str:
        return str(self.path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    config = property(lambda self: self.path / CONFIG)
    metrics = property(lambda self: self.path / METRICS)
    summary = property(lambda self: self.path / SUMMARY)
    init = property(lambda self: self.path / INIT)
    checkpoints = property(lambda self: self.path / CHECKPOINTS)
    snapshots = property(lambda self: self.path / SNAPSHOTS)
    tb = property(lambda self: self.path / TB)
    last = property(lambda self: self.checkpoint("last"))
    best = property(lambda self: self.checkpoint("best"))

    def checkpoint(self, name: str) -> Path:
        """``checkpoints/<name>.pt`` (``name``: best or last)."""
        return self.path / CHECKPOINTS / f"{name}.pt"

    def snapshot(self, epoch: int) -> Path:
        return snapshot_path(self.path, epoch)

    def stage(self, name: str) -> "RunDir":
        """The run directory of stage ``name`` of a recipe with stages."""
        return RunDir(self.path / name)

    @staticmethod
    def of_checkpoint(path: str | os.PathLike) -> "RunDir | None":
        """The run directory a checkpoint file sits in (``RUN/checkpoints/x.pt``), else None."""
        p = Path(path)
        return RunDir(p.parent.parent) if p.parent.name == CHECKPOINTS else None
