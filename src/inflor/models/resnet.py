"""Spiking ResNets: ResNet-19 (+ the tdBN-paper FC-256 head), ResNet-20 (group ``res20m`` and
Diet-SNN), ImageNet ResNet-18/34, and the CIFAR10-DVS variants.

All use ``blocks.BasicBlock`` (neuron after the residual add; the tdBN α of its last branch norm
per the ``residual_alpha`` option, see there) and the common options of ``inflor.models.base``.
Which paper uses which:

==================  =====================================================================
``resnet19``        group code ``resnet19_cifar`` (IM-Loss, InfLoR/Re-Loss): 18 weight layers
``resnet19_fc256``  tdBN paper's (RecDis Sec. 4.5: "consistent with" STBP-tdBN's; all RecDis
                    ResNet-19 rows): + FC 512→256 → neuron (19 weight layers)
``resnet20``        group code ``res20m`` (InfLoR Tables 1–4 "ResNet20", MPR ablations)
``resnet20_diet``   Diet-SNN's ResNet-20 (no BN, dropout, conv1×1 shortcut, flatten → FC)
``resnet18/34``     ImageNet (InfLoR Table 4, RecDis/IM-Loss ResNet-34), group code layout
``*_dvs``           CIFAR10-DVS: 2 input channels, T = 10, 48×48 frames
==================  =====================================================================

Normalisation choices: with ``norm="tdbn"`` (default) the BNs inside blocks follow the InfLoR code's
α convention or, with ``residual_alpha="tdbn"``, the tdBN paper's (``BasicBlock``); every BN outside a block (stem, pre-layers) is tdBN with α = 1,
i.e. scale α·V_th = 0.5. The InfLoR code uses a plain BN3d there and the IM-Loss/MPBN code plain BN3d
everywhere: that is ``norm="bn"`` (the learnable γ absorbs the fixed factor). Conv layers followed by
a norm have no bias, so ``norm="none"`` nets are bias-free (as IM-Loss's "w/o normalization" rows).
"""
from __future__ import annotations

import torch
from torch import nn

from .base import SpikingModel, _positive_int
from .blocks import ConvUnit, GlobalAvgPool, LinearUnit, TemporalDropout, avgpool, linear, make_stage
from .registry import register_model


class SpikingResNet(SpikingModel):
    """A configurable spiking ResNet (the registered builders fix the configuration).

    Args:
        stem: list of ``(out_channels, kernel, stride)`` conv → norm → neuron layers.
        stem_pool: ``None`` or ``(kernel, stride, padding)`` of an AvgPool after the stem
            (no neuron after pooling; the pooled values feed the next conv).
        stages: list of ``(width, blocks, stride)``; named ``layer1``, ``layer2`` ...
        shortcut: ``"conv"`` or ``"avgdown"`` projection (see ``BasicBlock``).
        dropout: Diet-SNN dropout after the stem layers (but the last) and inside each branch.
        head: ``"avgpool"`` (global average pool → FC) or ``"flatten"`` (flatten the final map).
        hidden_fc: ``None`` or the width of an FC → neuron layer before the classifier.
        fc_bias: bias of the classifier (and of the hidden FC).
        input_size: the square input size, required by ``head="flatten"``.
    """

    def __init__(self, num_classes: int, *, stem, stem_pool=None, stages, shortcut: str = "conv",
                 dropout: float = 0.0, head: str = "avgpool", hidden_fc: int | None = None,
                 fc_bias: bool = True, input_size: int | None = None, **common):
        super().__init__(num_classes, **common)
        layers, c = [], self.in_channels
        for i, (out_ch, k, s) in enumerate(stem):   # the first sees the image, the others spikes
            layers.append(ConvUnit(self, c, out_ch, k, s, spikes=i > 0 and dropout == 0))
            if dropout > 0 and i < len(stem) - 1:
                layers.append(TemporalDropout(dropout))
            c = out_ch
        size = None if input_size is None else _conv_out(input_size, stem)
        if stem_pool is not None:
            k, s, p = stem_pool
            layers.append(avgpool(k, s, p))
            size = None if size is None else (size + 2 * p - k) // s + 1
        self.stem = nn.Sequential(*layers)
        self.stage_names = []
        for i, (width, blocks, stride) in enumerate(stages, 1):
            self.add_module(f"layer{i}", make_stage(self, c, width, blocks, stride, shortcut, dropout,
                                                    spikes=i > 1 or stem_pool is None))
            self.stage_names.append(f"layer{i}")
            c = width
            size = None if size is None else -(-size // stride)
        if head == "avgpool":
            self.pool, features = GlobalAvgPool(), c
        elif head == "flatten":
            if input_size is None:
                raise ValueError("head='flatten' needs input_size")
            self.input_size = input_size
            self.pool, features = nn.Flatten(2), c * size * size
        else:
            raise ValueError(f"unknown head {head!r}; valid choices: ['avgpool', 'flatten']")
        spikes = head == "flatten"    # the last block's spikes, flattened (not averaged)
        if hidden_fc:
            self.hidden = LinearUnit(self, features, hidden_fc, bias=fc_bias, norm=False, spikes=spikes)
            features, spikes = hidden_fc, True
        else:
            self.hidden = nn.Identity()
        self.fc = linear(features, num_classes, fc_bias, spikes and self.spike_layers)
        self.init_weights()

    def forward_multistep(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for name in self.stage_names:
            x = getattr(self, name)(x)
        return self.fc(self.hidden(self.pool(x)))


def _conv_out(size: int, stem) -> int:
    for _, k, s in stem:
        size = (size + 2 * (k // 2) - k) // s + 1
    return size


# ---------------------------------------------------------------------------- ResNet-19
@register_model
def resnet19(num_classes: int = 10, **options) -> SpikingResNet:
    """ResNet-19 as in the group code (``resnet19_cifar``; IM-Loss, InfLoR, RecDis): stem conv3×3
    128 → norm → neuron; [3, 3, 2] BasicBlocks of widths 128/256/512 (strides 1/2/2; conv1×1 → BN
    projection on the first block of stages 2 and 3); global avgpool → FC 512→K.
    18 weight layers (the group code has no 256-d FC; see ``resnet19_fc256``)."""
    return SpikingResNet(num_classes, stem=[(128, 3, 1)],
                         stages=[(128, 3, 1), (256, 3, 2), (512, 2, 2)], **options)


@register_model
def resnet19_fc256(num_classes: int = 10, **options) -> SpikingResNet:
    """ResNet-19 of the tdBN paper (STBP-tdBN; also STBP-simple/TET heads): as ``resnet19`` but the
    head is avgpool → FC 512→256 → neuron → FC 256→K, i.e. 19 weight layers. The stem is 128 wide
    (tdBN paper; STBP-simple/TET use 64 and a 64→128 projection — not followed here)."""
    return SpikingResNet(num_classes, stem=[(128, 3, 1)],
                         stages=[(128, 3, 1), (256, 3, 2), (512, 2, 2)], hidden_fc=256, **options)


# ---------------------------------------------------------------------------- ResNet-20
@register_model
def resnet20(num_classes: int = 10, **options) -> SpikingResNet:
    """ResNet-20 as in the group code (``resnet20_cifar_modified``, ``--arch res20m``; InfLoR's
    "ResNet20"): 3 × conv3×3 64 → norm → neuron, AvgPool 2, [2, 2, 2, 2] BasicBlocks of widths
    64/128/256/512 (strides 1/2/2/2) with the "avg-down" projection (AvgPool(s) → conv1×1 → BN),
    global avgpool → FC 512→K. 3 + 16 + 1 = 20 weight layers."""
    return SpikingResNet(num_classes, stem=[(64, 3, 1)] * 3, stem_pool=(2, 2, 0),
                         stages=[(64, 2, 1), (128, 2, 2), (256, 2, 2), (512, 2, 2)],
                         shortcut="avgdown", **options)


@register_model(norm="none")
def resnet20_diet(num_classes: int = 10, *, input_size: int = 32, dropout: float = 0.2,
                  **options) -> SpikingResNet:
    """ResNet-20 of Diet-SNN (Rathi & Roy): the same 3-conv 64 stem and AvgPool 2, dropout 0.2 after
    stem convs 1–2 and inside every residual branch, conv1×1 stride-s projection shortcut, no
    global pool: the 512×(input/16)² map (2048 for 32×32) is flattened → FC → K without bias.
    No BN by default (``norm="none"``); with a norm every conv — shortcut included — gets one.
    Diet-SNN's learnable thresholds/leaks are not reproduced (use ``neuron_options``)."""
    return SpikingResNet(num_classes, stem=[(64, 3, 1)] * 3, stem_pool=(2, 2, 0),
                         stages=[(64, 2, 1), (128, 2, 2), (256, 2, 2), (512, 2, 2)],
                         shortcut="conv", dropout=dropout, head="flatten", fc_bias=False,
                         input_size=_positive_int("input_size", input_size), **options)


# ---------------------------------------------------------------------------- ImageNet
def _imagenet_resnet(num_classes, blocks, **options) -> SpikingResNet:
    return SpikingResNet(num_classes, stem=[(64, 7, 2)], stem_pool=(3, 2, 1),
                         stages=[(64, blocks[0], 1), (128, blocks[1], 2), (256, blocks[2], 2),
                                 (512, blocks[3], 2)], **options)


@register_model
def resnet18(num_classes: int = 10, **options) -> SpikingResNet:
    """Spiking ResNet-18 for ImageNet (group code ``ResNet18``; InfLoR Table 4): conv7×7/2 64 →
    norm → neuron, AvgPool(3, 2, 1) (group code; SpikingJelly uses MaxPool), [2, 2, 2, 2]
    BasicBlocks 64/128/256/512 with conv1×1 → BN projections, global avgpool → FC 512→K.
    Pass ``num_classes=1000`` for ImageNet."""
    return _imagenet_resnet(num_classes, (2, 2, 2, 2), **options)


@register_model
def resnet34(num_classes: int = 10, **options) -> SpikingResNet:
    """Spiking ResNet-34 for ImageNet (group code ``ResNet34``; RecDis, IM-Loss, InfLoR): as
    ``resnet18`` with [3, 4, 6, 3] blocks. Pass ``num_classes=1000`` for ImageNet."""
    return _imagenet_resnet(num_classes, (3, 4, 6, 3), **options)


# ---------------------------------------------------------------------------- CIFAR10-DVS
register_model(resnet19, name="resnet19_dvs", in_channels=2, timesteps=10, doc=(
    "ResNet-19 (group layout, as ``resnet19``) for CIFAR10-DVS: 2 input channels, T = 10, 48×48 "
    "frames (InfLoR Table 5, IM-Loss Table 2, RecDis Table 6)."))
register_model(resnet19_fc256, name="resnet19_fc256_dvs", in_channels=2, timesteps=10, doc=(
    "ResNet-19 of the tdBN paper (as ``resnet19_fc256``, with the FC 256 layer) for CIFAR10-DVS: "
    "2 input channels, T = 10, 48×48 frames (RecDis Table 6, whose ResNet-19 is the tdBN paper's, "
    "RecDis Sec. 4.5)."))
register_model(resnet20, name="resnet20_dvs", in_channels=2, timesteps=10, doc=(
    "ResNet-20 (group ``res20m``, as ``resnet20``) for CIFAR10-DVS: 2 input channels, T = 10, "
    "48×48 frames (InfLoR Table 5; its prose says ResNet18, its table ResNet20)."))
