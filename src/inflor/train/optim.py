"""The optimizer and the per-epoch learning-rate schedule of a run (config sections ``optim`` and
``sched``), and the AMP gradient scaler."""
from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["build_optimizer", "EpochSchedule", "build_schedule", "make_scaler"]


def build_optimizer(model: nn.Module, cfg: dict) -> torch.optim.Optimizer:
    o = cfg["optim"]
    wd = o["weight_decay"]
    if o["wd_on_bn_bias"] or wd == 0:
        groups = [{"params": [p for p in model.parameters() if p.requires_grad], "weight_decay": wd}]
    else:  # decay only conv / linear weights (dim > 1); norm γ, β and biases are not decayed
        decay = [p for p in model.parameters() if p.requires_grad and p.dim() > 1]
        no_decay = [p for p in model.parameters() if p.requires_grad and p.dim() <= 1]
        groups = [{"params": decay, "weight_decay": wd}, {"params": no_decay, "weight_decay": 0.0}]
    if o["name"] == "sgd":
        return torch.optim.SGD(groups, lr=o["lr"], momentum=o["momentum"], nesterov=o["nesterov"])
    if o["name"] == "adam":
        return torch.optim.Adam(groups, lr=o["lr"], betas=tuple(o["betas"]))
    return torch.optim.AdamW(groups, lr=o["lr"], betas=tuple(o["betas"]))


class EpochSchedule:
    """Learning rate per epoch: linear warm-up over ``warmup`` epochs, then a cosine from the base
    lr to ``min_lr`` over the rest of the ``period`` (PyTorch's CosineAnnealingLR stepped once per
    epoch, as the papers' code does), or constant (``none``). Stateless apart from the epoch."""

    def __init__(self, optimizer: torch.optim.Optimizer, name: str, period: int, warmup: int = 0,
                 min_lr: float = 0.0):
        self.optimizer, self.name, self.period, self.warmup, self.min_lr = optimizer, name, period, warmup, min_lr
        self.base_lrs = [g.get("initial_lr", g["lr"]) for g in optimizer.param_groups]
        for g, lr in zip(optimizer.param_groups, self.base_lrs):
            g["initial_lr"] = lr
        self.epoch = 0

    def lr_at(self, epoch: int, base: float) -> float:
        if self.name == "none":
            return base
        if epoch < self.warmup:
            return base * (epoch + 1) / (self.warmup + 1)
        span = max(1, self.period - self.warmup)
        t = min(epoch - self.warmup, span)
        return self.min_lr + (base - self.min_lr) * 0.5 * (1.0 + math.cos(math.pi * t / span))

    def set_epoch(self, epoch: int) -> float:
        self.epoch = epoch
        for g, base in zip(self.optimizer.param_groups, self.base_lrs):
            g["lr"] = self.lr_at(epoch, base)
        return self.optimizer.param_groups[0]["lr"]

    def state_dict(self) -> dict:
        return {"name": self.name, "period": self.period, "warmup": self.warmup, "min_lr": self.min_lr,
                "epoch": self.epoch, "base_lrs": list(self.base_lrs)}

    def load_state_dict(self, state: dict) -> None:
        self.epoch = state["epoch"]
        self.base_lrs = list(state["base_lrs"])


def build_schedule(optimizer: torch.optim.Optimizer, cfg: dict) -> EpochSchedule:
    """The ``sched`` section's schedule; its period defaults to ``train.epochs``."""
    sc = cfg["sched"]
    return EpochSchedule(optimizer, sc["name"], sc["epochs"] or cfg["train"]["epochs"], sc["warmup"], sc["min_lr"])


def make_scaler(cfg: dict, device: torch.device) -> "torch.amp.GradScaler | None":
    """Gradient scaling for float16 autocast on CUDA (None otherwise)."""
    t = cfg["train"]
    use = t["amp"] and device.type == "cuda" and t["amp_dtype"] in ("auto", "float16")
    return torch.amp.GradScaler("cuda") if use else None
