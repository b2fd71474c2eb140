"""``tinyconv``: a small conv SNN for the offline 8×8 digits default (and quick experiments).

conv3×3 1→32 (encoder) → norm → neuron → conv3×3 32→64 → norm → neuron → AvgPool 2 →
flatten 64·(input/2)² (1024 for 8×8) → FC → K.
"""
from __future__ import annotations

import torch
from torch import nn

from .base import SpikingModel, _positive_int
from .blocks import ConvUnit, avgpool
from .registry import register_model


class TinyConv(SpikingModel):
    def __init__(self, num_classes: int, *, input_size: int = 8, width: int = 32, **common):
        super().__init__(num_classes, **common)
        self.input_size = _positive_int("input_size", input_size)
        if input_size % 2:
            raise ValueError(f"tinyconv needs an even input_size, got {input_size}")
        w = int(width)
        self.features = nn.Sequential(ConvUnit(self, self.in_channels, w), ConvUnit(self, w, 2 * w, spikes=True),
                                      avgpool(2), nn.Flatten(2))
        self.fc = nn.Linear(2 * w * (input_size // 2) ** 2, num_classes)
        self.init_weights()

    def forward_multistep(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))


@register_model(in_channels=1)
def tinyconv(num_classes: int = 10, *, input_size: int = 8, width: int = 32, **options) -> TinyConv:
    """Small conv SNN for 1×8×8 digits: conv 1→w → norm → neuron → conv w→2w → norm → neuron →
    AvgPool 2 → FC 2w·(input/2)² → K (w = ``width`` = 32)."""
    return TinyConv(num_classes, input_size=input_size, width=width, **options)
