"""Spiking CIFARNet (STBP, Wu et al. AAAI'19), used by IM-Loss (Table 1/2) and RecDis (Tables 5/6).

128C3(encoder)-256C3-AP2-512C3-AP2-1024C3-512C3-1024FC-512FC-K, in the group style: conv (no bias)
→ norm → neuron; **no neuron after pooling** (pooled spikes feed the next conv as real values);
FC 512·(input/4)² (32768 for 32×32) → 1024 → 512 with neurons; a K-way linear head whose logits
are averaged over T. With ``norm`` ≠ ``"none"`` the two hidden FCs get a 1-d tdBN/BN over (T, B)
per feature (none of the public versions has one; STBP-simple has none). Public
re-implementations put a neuron after each pool and read out spike counts; that is not done.

``cifarnet_voting`` replaces the head by FC 512→10·K and averages each group of 10 outputs into
one class score (the "Voting" of the STBP paper string, as in a public re-implementation).
"""
from __future__ import annotations

import torch
from torch import nn

from .base import SpikingModel, _positive_int
from .blocks import ConvUnit, LinearUnit, avgpool, linear
from .registry import register_model


class CIFARNet(SpikingModel):
    def __init__(self, num_classes: int, *, input_size: int = 32, voting: int = 1, **common):
        super().__init__(num_classes, **common)
        self.input_size = _positive_int("input_size", input_size)
        if input_size % 4:
            raise ValueError(f"CIFARNet needs an input_size divisible by 4, got {input_size}")
        c = self.in_channels
        self.features = nn.Sequential(
            ConvUnit(self, c, 128), ConvUnit(self, 128, 256, spikes=True), avgpool(2),
            ConvUnit(self, 256, 512), avgpool(2),
            ConvUnit(self, 512, 1024), ConvUnit(self, 1024, 512, spikes=True), nn.Flatten(2))
        f = 512 * (input_size // 4) ** 2
        self.classifier = nn.Sequential(LinearUnit(self, f, 1024, spikes=True),
                                        LinearUnit(self, 1024, 512, spikes=True))
        self.voting = int(voting)
        self.fc = linear(512, num_classes * self.voting, spikes=self.spike_layers)
        self.init_weights()

    def forward_multistep(self, x: torch.Tensor) -> torch.Tensor:
        out = self.fc(self.classifier(self.features(x)))
        if self.voting > 1:
            out = out.unflatten(-1, (self.num_classes, self.voting)).mean(-1)
        return out


@register_model
def cifarnet(num_classes: int = 10, *, input_size: int = 32, **options) -> CIFARNet:
    """CIFARNet (STBP; IM-Loss, RecDis): 5 conv + 2 hidden FC with neurons + K-way head."""
    return CIFARNet(num_classes, input_size=input_size, **options)


@register_model
def cifarnet_voting(num_classes: int = 10, *, input_size: int = 32, **options) -> CIFARNet:
    """CIFARNet with the voting head: FC 512→10·K, each group of 10 averaged into a class score."""
    return CIFARNet(num_classes, input_size=input_size, voting=10, **options)


register_model(cifarnet, name="cifarnet_dvs", in_channels=2, timesteps=10, input_size=48, doc=(
    "CIFARNet for CIFAR10-DVS (RecDis Table 6): 2 input channels, T = 10, 48×48 frames, so the "
    "first FC is 512·12·12 = 73728 → 1024."))
