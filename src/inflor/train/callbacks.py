"""What the trainer does around its epochs besides training: the ESG schedule of the surrogate
gradients and training-time snapshots. A callback is any ``fn(trainer, epoch_index, row)``
called after each epoch's checkpoint; raising ``StopRun`` there ends the run (as if killed)."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from torch import nn

from inflor.analysis.snapshot import snapshot, snapshot_epochs
from inflor.surrogate import ESG

from .distributed import bare_model

__all__ = ["StopRun", "esg_modules", "EsgSchedule", "SnapshotCallback"]


class StopRun(Exception):
    """Raised by a callback to end the run after the current epoch's checkpoint (as if killed)."""


def esg_modules(model: nn.Module) -> list[ESG]:
    return [m for m in bare_model(model).modules() if isinstance(m, ESG)]


class EsgSchedule:
    """The ESG surrogates of a model, stepped at the start of each epoch (IM-Loss: the surrogate
    sharpens from K_min to K_max over the run, ``inflor.surrogate.esg_k``)."""

    def __init__(self, model: nn.Module, epochs: int):
        self.modules, self.epochs = esg_modules(model), epochs

    def set_epoch(self, epoch: int) -> float | None:
        """Set every ESG's K for ``epoch``; returns K (None when the model has no ESG)."""
        k = None
        for m in self.modules:
            k = m.set_epoch(epoch, self.epochs)
        return k


class SnapshotCallback:
    """Snapshots (``inflor.analysis.snapshot``) through the trainer's callback interface
    (``run_training(..., callbacks=[cb])``, called as ``cb(trainer, epoch_index, row)`` after each
    epoch). The epoch-0 snapshot needs a call before training: ``cb.before_training(trainer)``
    after ``Trainer.setup()`` (the trainer does both when ``train.snapshots`` is set)."""

    def __init__(self, epochs: "str | Sequence[int]" = "0,1,last", max_batches: int | None = 10,
                 layers: Sequence[str] | None = None):
        self.spec = epochs
        self.max_batches = max_batches
        self.layers = layers
        self.written: list[Path] = []

    def _wanted(self, trainer) -> set[int]:
        return snapshot_epochs(self.spec, trainer.cfg["train"]["epochs"], strict=False)

    def _take(self, trainer, epoch: int) -> None:
        if getattr(trainer, "dist", None) is not None and not trainer.dist.is_main:
            return
        self.written.append(snapshot(trainer.model, trainer.test_loader, trainer.out, epoch,
                                     max_batches=self.max_batches, layers=self.layers, device=trainer.device))

    def before_training(self, trainer) -> None:
        if trainer.start_epoch == 0 and 0 in self._wanted(trainer):
            self._take(trainer, 0)

    def __call__(self, trainer, epoch: int, row: dict) -> None:
        if epoch + 1 in self._wanted(trainer):
            self._take(trainer, epoch + 1)
