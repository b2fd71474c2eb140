"""Spiking VGG-16: the group-code version and Diet-SNN's (CIFAR and ImageNet sizes).

=======================  ===============================================================
``vgg16``                group code ``vgg16_bn`` (InfLoR Tables 2/4, IM-Loss CIFAR "VGG-16"
                         rows, whose official code builds it): torchvision config D with
                         AvgPool2d(2) for MaxPool, conv3×3 bias=True → norm → neuron, five
                         pools (32→1), global avgpool → FC 512→K. 13 conv + 1 FC.
``vgg16_diet``           Diet-SNN (RecDis's "VGG-16 [37]"; compare at equal depth): 13 conv (no
                         bias) with four pools (map 2×2), dropout 0.2 after every conv not
                         followed by a pool, flatten 2048 → FC 4096 → neuron → dropout →
                         FC 4096 → neuron → dropout → FC K (no biases). No BN by default; with a
                         norm every conv and hidden FC gets one.
``vgg16_diet_imagenet``  Diet-SNN's ImageNet VGG-16 (IM-Loss's "modified VGG-16 [26]" on
                         ImageNet): as ``vgg16_diet`` with a fifth pool (224 → 7) and flatten
                         25088 → FC 4096 → FC 4096 → FC K.
=======================  ===============================================================
"""
from __future__ import annotations

import torch
from torch import nn

from .base import SpikingModel, _positive_int
from .blocks import ConvUnit, GlobalAvgPool, LinearUnit, TemporalDropout, avgpool, linear
from .registry import register_model

CFG_D = [64, 64, "A", 128, 128, "A", 256, 256, 256, "A", 512, 512, 512, "A", 512, 512, 512, "A"]


class SpikingVGG(SpikingModel):
    """A spiking VGG: ``cfg`` lists conv widths and ``"A"`` (AvgPool 2); see the module table."""

    def __init__(self, num_classes: int, *, cfg, conv_bias: bool, dropout: float = 0.0,
                 classifier: str = "avgpool", hidden: tuple = (), input_size: int | None = None,
                 fc_bias: bool = True, **common):
        super().__init__(num_classes, **common)
        layers, c, size = [], self.in_channels, input_size
        spikes = False    # whether the next layer's input is spikes (not the image, a pool or a dropout)
        for i, v in enumerate(cfg):
            if v == "A":
                layers.append(avgpool(2))
                size, spikes = None if size is None else size // 2, False
                continue
            layers.append(ConvUnit(self, c, v, 3, 1, bias=conv_bias, spikes=spikes))
            spikes = True
            if dropout > 0 and (i + 1 == len(cfg) or cfg[i + 1] != "A"):
                layers.append(TemporalDropout(dropout))
                spikes = False
            c = v
        self.features = nn.Sequential(*layers)
        if classifier == "avgpool":
            self.pool, f, spikes = GlobalAvgPool(), c, False
        else:
            self.input_size = input_size
            self.pool, f = nn.Flatten(2), c * size * size
        head = []
        for width in hidden:
            head.append(LinearUnit(self, f, width, bias=fc_bias, spikes=spikes))
            spikes = dropout == 0
            if dropout > 0:
                head.append(TemporalDropout(dropout))
            f = width
        self.classifier = nn.Sequential(*head)
        self.fc = linear(f, num_classes, fc_bias, spikes and self.spike_layers)
        self.init_weights()

    def forward_multistep(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.classifier(self.pool(self.features(x))))


@register_model
def vgg16(num_classes: int = 10, **options) -> SpikingVGG:
    """VGG-16 as in the group code (``vgg16_bn``): config D with AvgPool, conv bias=True, norm →
    neuron after every conv, global avgpool → FC 512→K (13 conv + 1 FC)."""
    return SpikingVGG(num_classes, cfg=CFG_D, conv_bias=True, **options)


@register_model(norm="none")
def vgg16_diet(num_classes: int = 10, *, input_size: int = 32, dropout: float = 0.2,
               **options) -> SpikingVGG:
    """VGG-16 of Diet-SNN (Rathi & Roy): 13 conv without bias and four AvgPools (32×32 → 2×2),
    dropout after each conv not followed by a pool, flatten 512·(input/16)² → FC 4096 → neuron →
    dropout → FC 4096 → neuron → dropout → FC K; no biases, no BN by default (``norm="none"``).
    Dropout masks are shared over the T steps, as in Diet-SNN. Learnable thresholds/leaks and the
    membrane-accumulating output of Diet-SNN are not reproduced (the output is the per-step logits)."""
    input_size = _positive_int("input_size", input_size)
    return SpikingVGG(num_classes, cfg=CFG_D[:-1], conv_bias=False, dropout=dropout,
                      classifier="flatten", hidden=(4096, 4096), input_size=input_size,
                      fc_bias=False, **options)


@register_model(norm="none")
def vgg16_diet_imagenet(num_classes: int = 10, *, input_size: int = 224, dropout: float = 0.2,
                        **options) -> SpikingVGG:
    """VGG-16 of Diet-SNN (Rathi & Roy) for ImageNet, the network IM-Loss cites as "modified
    VGG-16 [26]" for its ImageNet row (IM-Loss Sec. 5, Table 2; the official code has no ImageNet
    model): 13 conv without bias and five AvgPools (224 → 7; Diet-SNN's ImageNet model adds the
    fifth pool after the last conv), dropout after each conv not followed by a pool, flatten
    512·(input/32)² (25088 for 224) → FC 4096 → neuron → dropout → FC 4096 → neuron → dropout →
    FC K; no biases, no BN by default (``norm="none"``). Dropout ``dropout`` (0.2) everywhere,
    as Diet-SNN's ImageNet model. Same caveats as ``vgg16_diet`` (no learnable thresholds/leaks;
    per-step logits). Pass ``num_classes=1000`` for ImageNet."""
    input_size = _positive_int("input_size", input_size)
    return SpikingVGG(num_classes, cfg=CFG_D, conv_bias=False, dropout=dropout, classifier="flatten",
                      hidden=(4096, 4096), input_size=input_size, fc_bias=False, **options)
