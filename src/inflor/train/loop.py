"""One training epoch: forward, the objective, the NaN check, backward and step on each batch,
with the loss parts and the accuracy summed over the epoch (and over processes)."""
from __future__ import annotations

import sys
from dataclasses import dataclass

import torch
from torch import nn

from inflor.errors import NonFiniteLossError

from .precision import autocast
from .distributed import all_reduce_sum
from .objective import compute_loss, first_nonfinite, part_names
from .online import online_backward

__all__ = ["EpochResult", "train_epoch"]


@dataclass
class EpochResult:
    """An epoch's sample-weighted mean of each loss part (``objective.part_names()``), accuracy, samples."""
    losses: dict
    acc: float
    samples: int

    @property
    def loss(self) -> float:
        return self.losses["total"]


def _nonfinite_error(trainer, parts: dict, bad: str | None, epoch: int, step: int) -> NonFiniteLossError:
    vals = ", ".join(f"{k} {float(v.detach()):.4g}" for k, v in parts.items())
    who = f"the {bad} loss" if bad else "a loss on another rank"
    last = trainer.run.last
    return NonFiniteLossError(
        f"{who} is not finite at epoch {epoch + 1}, step {step + 1} ({vals}); stopping. "
        f"The last good checkpoint is kept in {last}" + (" (none yet: no epoch finished)" if not last.exists() else "")
        + ". Try a lower optim.lr, or train.amp=false.")


def _backward(trainer, loss: torch.Tensor) -> None:
    (loss if trainer.scaler is None else trainer.scaler.scale(loss)).backward()


def _step(trainer, total: torch.Tensor | None) -> None:
    """Backward (unless ``total`` is None: the online rule did it step by step) and optimizer step
    (with gradient scaling and clipping when configured)."""
    clip, opt, scaler = trainer.cfg["train"]["grad_clip"], trainer.optimizer, trainer.scaler
    if total is not None:
        opt.zero_grad(set_to_none=True)
        _backward(trainer, total)
    if scaler is not None:
        if clip:
            scaler.unscale_(opt)
            nn.utils.clip_grad_norm_(trainer.model.parameters(), clip)
        scaler.step(opt)
        scaler.update()
    else:
        if clip:
            nn.utils.clip_grad_norm_(trainer.model.parameters(), clip)
        opt.step()


def train_epoch(trainer, epoch: int) -> EpochResult:
    """Train ``trainer``'s model for one epoch (at most ``train.max_steps_per_epoch`` steps)."""
    cfg, t, dev = trainer.cfg, trainer.cfg["train"], trainer.device
    trainer.ddp.train()
    names = part_names()
    sums = torch.zeros(len(names) + 2, dtype=torch.float64)  # each loss part, correct, n
    steps = trainer.steps_per_epoch()
    bar = None
    if trainer.dist.is_main and trainer.progress == "bar":
        from tqdm import tqdm
        bar = tqdm(total=steps, desc=f"epoch {epoch + 1}/{t['epochs']}", leave=False, dynamic_ncols=True,
                   file=sys.stderr)
    gstep = epoch * steps
    for step, (x, y) in enumerate(trainer.train_loader):
        if step >= steps:
            break
        x = x.to(dev, non_blocking=True)
        y = y.to(dev, non_blocking=True)
        online = t["bptt"] == "online"    # inflor.train.online: backward inside, step by step
        if online:
            trainer.optimizer.zero_grad(set_to_none=True)
            logits, parts = online_backward(trainer.ddp, x, lambda lg: compute_loss(trainer.ddp, lg, y, cfg),
                                            lambda: autocast(dev, cfg), lambda loss: _backward(trainer, loss))
        else:
            with autocast(dev, cfg):
                logits = trainer.ddp(x)
            parts = compute_loss(trainer.ddp, logits, y, cfg)
        bad = first_nonfinite(parts)
        flag = torch.tensor([0.0 if bad is None else 1.0])
        if trainer.dist.enabled:
            all_reduce_sum(flag, trainer.dist)
        if flag.item() > 0:
            raise _nonfinite_error(trainer, parts, bad, epoch, step)
        _step(trainer, None if online else parts["total"])
        with torch.no_grad():
            b = y.shape[0]
            correct = (logits.detach().float().mean(0).argmax(1) == y).sum().item()
            vals = [float(parts[k].detach()) for k in names]
            sums += torch.tensor([v * b for v in vals] + [correct, b], dtype=torch.float64)
        gstep += 1
        if trainer.tb_steps is not None and gstep % t["log_every"] == 0:
            trainer.tb_steps.add_scalar("step/train_loss", vals[0], gstep)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{vals[0]:.3f}", acc=f"{sums[-2] / max(sums[-1], 1):.3f}")
    if bar is not None:
        bar.close()
    all_reduce_sum(sums, trainer.dist)
    n = max(float(sums[-1]), 1.0)
    return EpochResult({k: float(sums[i] / n) for i, k in enumerate(names)}, float(sums[-2] / n), int(sums[-1]))
