"""Mixed precision: the autocast context of a run (``train.amp``, ``train.amp_dtype``)."""
from __future__ import annotations

import torch

__all__ = ["autocast"]


def autocast(device: torch.device, cfg: dict):
    t = cfg["train"]
    if not t["amp"]:
        return torch.autocast(device.type, enabled=False)
    dtype = t["amp_dtype"]
    if dtype == "auto":
        dtype = "float16" if device.type == "cuda" else "bfloat16"
    return torch.autocast(device.type, dtype=getattr(torch, dtype))
