"""What a checkpoint holds of a trainer (``inflor.runs.checkpoint`` writes and reads the file),
and restoring a trainer from one on ``--resume``."""
from __future__ import annotations

from inflor.runs import checkpoint as ckpt_mod
from inflor.runs.rng import get_rng_state, set_rng_state

from .outputs import fmt

__all__ = ["checkpoint_state", "restore"]


def checkpoint_state(tr, epochs_done: int, elapsed: float) -> dict:
    """The checkpoint of trainer ``tr`` after ``epochs_done`` epochs (format ``inflor-checkpoint-v1``)."""
    return {
        "format": ckpt_mod.FORMAT,
        "model_name": tr.model_name,
        "model_options": tr.model_options,
        "model_state": tr.model.state_dict(),
        "optimizer": tr.optimizer.state_dict(),
        "scheduler": tr.schedule.state_dict(),
        "scaler": tr.scaler.state_dict() if tr.scaler is not None else None,
        "epoch": epochs_done,
        "best_acc": tr.best_acc,
        "best_epoch": tr.best_epoch,
        "config": tr.cfg,
        "rng": get_rng_state(),
        "metrics": list(tr.metrics),
        "elapsed": elapsed,
        "versions": ckpt_mod.versions(),
    }


def restore(tr) -> None:
    """Load ``RUN/checkpoints/last.pt`` into trainer ``tr`` (model, optimizer, schedule, scaler,
    progress, metrics, random generators); a checkpoint of another model raises CheckpointError."""
    path = tr.run.last
    ck = ckpt_mod.load_checkpoint(path, map_location="cpu")
    if ck["model_name"] != tr.model_name or ck["model_options"] != tr.model_options:
        saved, built = ck["model_options"], tr.model_options
        keys = [k for k in dict.fromkeys([*saved, *built]) if saved.get(k) != built.get(k)]

        def options(o: dict) -> str:   # only the options that differ
            return ", ".join(f"{k}={o.get(k)!r}" for k in keys) or "the same options"
        raise ckpt_mod.CheckpointError(
            f"{path} was saved from model {ck['model_name']!r} with {options(saved)}, but this run builds "
            f"{tr.model_name!r} with {options(built)}")
    ckpt_mod.load_model_state(tr.model, ck, str(path))
    tr.optimizer.load_state_dict(ck["optimizer"])
    tr.schedule.load_state_dict(ck["scheduler"])
    if tr.scaler is not None and ck.get("scaler"):
        tr.scaler.load_state_dict(ck["scaler"])
    tr.start_epoch = int(ck["epoch"])
    tr.best_acc, tr.best_epoch = ck.get("best_acc"), ck.get("best_epoch")
    tr.metrics = list(ck.get("metrics", []))
    tr.elapsed_before = float(ck.get("elapsed", 0.0))
    if "rng" in ck:
        set_rng_state(ck["rng"])
    tr.log(f"resuming {tr.out} after epoch {tr.start_epoch} (best test acc so far {fmt(tr.best_acc)}; "
           f"host allocator {tr.host_allocator})")
