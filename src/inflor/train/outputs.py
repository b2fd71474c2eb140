"""What a run reports: the epoch's row of ``metrics.csv``, its log line, TensorBoard scalars and
``summary.json`` (the files themselves are written by ``inflor.runs``)."""
from __future__ import annotations

import os
import sys

from inflor.runs.checkpoint import versions

from .objective import loss_columns, metric_fields, term_names

__all__ = ["fmt", "progress_mode", "epoch_row", "epoch_line", "summary_doc", "TensorBoard"]


def fmt(v, spec=".4f"):
    return "-" if v is None or v == "" else format(v, spec)


def progress_mode(cfg: dict) -> str:
    """``train.progress``, with ``auto`` = a bar on a terminal (not under CI), else plain lines."""
    mode = cfg["train"]["progress"]
    if mode != "auto":
        return mode
    ci = os.environ.get("CI", "").lower() in ("1", "true", "yes")
    return "bar" if sys.stderr.isatty() and not ci else "plain"


def epoch_row(epoch: int, res, test: dict | None, lr: float, k: float | None, seconds: float) -> dict:
    """The ``metrics.csv`` row of epoch index ``epoch`` (its columns: ``objective.metric_fields()``)."""
    return {"epoch": epoch + 1, **loss_columns(res.losses), "train_acc": res.acc,
            "test_loss": test["loss"] if test else None, "test_acc": test["acc"] if test else None,
            "lr": lr, "spike_rate": test["spike_rate"] if test else None, "esg_k": k, "epoch_time": seconds}


def epoch_line(row: dict, epochs: int, best_acc: float | None) -> str:
    """``epoch 3/8  loss … (task …, mpd …, im …)  train_acc …  test_acc … (best …)  lr …  spike_rate …``."""
    parts = ", ".join(f"{n} {row[f'{n}_loss']:.4f}" for n in term_names())
    return (f"epoch {row['epoch']}/{epochs}  loss {row['train_loss']:.4f} ({parts})  "
            f"train_acc {row['train_acc']:.4f}  test_acc {fmt(row['test_acc'])} "
            f"(best {fmt(best_acc)})  lr {row['lr']:.4g}  spike_rate {fmt(row['spike_rate'])}"
            + (f"  K {row['esg_k']:.3f}" if row["esg_k"] is not None else "")
            + f"  {row['epoch_time']:.1f}s")


def summary_doc(tr, wall_time: float, error: str | None = None) -> dict:
    """``summary.json`` of trainer ``tr`` (status, results, what ran where, the config)."""
    cfg, metrics = tr.cfg, tr.metrics
    last_test = next((r["test_acc"] for r in reversed(metrics) if r["test_acc"] is not None), None)
    summary = {
        "name": cfg.get("name"),
        "status": tr.status,
        "best_test_acc": tr.best_acc,
        "best_epoch": tr.best_epoch,
        "final_test_acc": last_test,
        "final_train_acc": metrics[-1]["train_acc"] if metrics else None,
        "epochs_done": len(metrics),
        "epochs": cfg["train"]["epochs"],
        "wall_time": wall_time,
        "model": tr.model_name,
        "params": tr.n_params,
        "dataset": tr.info.name,
        "device": str(tr.device),
        "world_size": tr.dist.world_size,
        "paper": cfg.get("paper"),
        "reported_acc": (cfg.get("paper") or {}).get("reported_acc"),
        "versions": versions(),
        "config": cfg,
    }
    if error:
        summary["error"] = error
    return summary


class TensorBoard:
    """TensorBoard events of a run: ``tb/`` per epoch, ``tb/steps`` per ``train.log_every`` steps."""

    def __init__(self, tb_dir, start_epoch: int, steps_per_epoch: int):
        from torch.utils.tensorboard import SummaryWriter   # tensorboard is loaded only when asked for
        self.epochs = SummaryWriter(str(tb_dir), purge_step=start_epoch + 1)
        self.steps = SummaryWriter(str(tb_dir / "steps"), purge_step=start_epoch * steps_per_epoch + 1)

    def epoch(self, row: dict, epoch: int) -> None:
        for key in metric_fields()[1:]:
            if row[key] is not None:
                self.epochs.add_scalar(f"epoch/{key}", row[key], epoch + 1)
        self.epochs.flush()
        self.steps.flush()

    def close(self) -> None:
        self.epochs.close()
        self.steps.close()
