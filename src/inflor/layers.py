"""Stateless layers on multi-step tensors: fold time into the batch and run the layer once.

``TimeFold(m)(x)`` with ``x`` of shape ``[T, B, ...]`` computes ``m(x.reshape(T·B, ...))`` and
restores ``[T, B, ...]``: conv, pooling, flatten, linear and dropout see one big batch instead of
a Python loop over T.
"""
from __future__ import annotations

import torch
from torch import nn

from .functional import check_multistep


class TimeFold(nn.Module):
    """Apply a stateless module to ``[T, B, ...]`` as one batch of T·B samples."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_multistep(x, f"TimeFold({type(self.module).__name__})")
        T, B = x.shape[:2]
        y = self.module(x.reshape(T * B, *x.shape[2:]))
        return y.reshape(T, B, *y.shape[1:])


def repeat_time(x: torch.Tensor, timesteps: int) -> torch.Tensor:
    """Direct encoding: a static batch ``[B, ...]`` repeated T times -> ``[T, B, ...]`` (a view)."""
    if timesteps < 1:
        raise ValueError(f"timesteps must be >= 1, got {timesteps}")
    return x.unsqueeze(0).expand(timesteps, *x.shape)
