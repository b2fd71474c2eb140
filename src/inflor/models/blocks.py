"""Building blocks shared by the networks, all on time-first tensors ``[T, B, ...]``.

Stateless layers (conv, pooling) run time-folded through ``inflor.layers.TimeFold`` (one batch of
T·B samples, no loop over T). ``nn.Linear`` and ``nn.Flatten(2)`` act on ``[T, B, F]`` directly —
that is the same computation with no reshape needed.

A conv or linear layer whose input is the spike output of a neuron (``spikes=True``, given by the
networks where that holds and ``model.spike_layers`` is on) is an ``inflor.layers.SpikeConv2d`` /
``SpikeLinear``: it keeps that input for backward as bits. Layers fed by the image, a pooling or a
dropout get real values and stay plain ``nn.Conv2d`` / ``nn.Linear``.
"""
from __future__ import annotations

import torch
from torch import nn

from ..layers import SpikeConv2d, SpikeLinear, TimeFold
from ..pairing import norm_neuron
from .base import SQRT1_2, SpikingModel


def conv(in_ch: int, out_ch: int, kernel: int = 3, stride: int = 1, padding: int | None = None,
         bias: bool = False, spikes: bool = False) -> TimeFold:
    """A time-folded ``nn.Conv2d`` (padding defaults to kernel // 2); a ``SpikeConv2d`` when its
    input is spikes."""
    pad = kernel // 2 if padding is None else padding
    cls = SpikeConv2d if spikes else nn.Conv2d
    return TimeFold(cls(in_ch, out_ch, kernel, stride=stride, padding=pad, bias=bias))


def linear(in_f: int, out_f: int, bias: bool = True, spikes: bool = False) -> nn.Linear:
    """``nn.Linear`` on ``[T, B, F]``; a ``SpikeLinear`` when its input is spikes."""
    return (SpikeLinear if spikes else nn.Linear)(in_f, out_f, bias=bias)


def avgpool(kernel: int = 2, stride: int | None = None, padding: int = 0, **kw) -> TimeFold:
    return TimeFold(nn.AvgPool2d(kernel, stride=kernel if stride is None else stride, padding=padding, **kw))


class GlobalAvgPool(nn.Module):
    """``[T, B, C, H, W]`` -> ``[T, B, C]`` (AdaptiveAvgPool2d(1) + flatten)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(-2, -1))


class TemporalDropout(nn.Module):
    """Dropout with one mask per sample shared by all T steps (as Diet-SNN does: the mask is drawn
    once per batch and reused at every step). Identity in evaluation or with ``p = 0``."""

    def __init__(self, p: float = 0.2):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability must lie in [0, 1), got {p}")
        self.p = float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = torch.empty((1, *x.shape[1:]), dtype=x.dtype, device=x.device).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"p={self.p}"


class ConvUnit(nn.Module):
    """conv → norm → neuron (a stand-alone spiking layer); ``spikes``: its input is spikes."""

    def __init__(self, model: SpikingModel, in_ch: int, out_ch: int, kernel: int = 3,
                 stride: int = 1, padding: int | None = None, bias: bool = False, alpha: float = 1.0,
                 spikes: bool = False):
        super().__init__()
        self.conv = conv(in_ch, out_ch, kernel, stride, padding, bias, spikes and model.spike_layers)
        self.norm = model.norm(out_ch, dims=2, alpha=alpha)
        self.neuron = model.neuron("standalone")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return norm_neuron(self.norm, self.neuron, self.conv(x))


class LinearUnit(nn.Module):
    """linear → 1-d norm over (T, B) per feature → neuron (a stand-alone spiking FC layer);
    ``spikes``: its input is spikes."""

    def __init__(self, model: SpikingModel, in_f: int, out_f: int, bias: bool = False,
                 norm: bool = True, spikes: bool = False):
        super().__init__()
        self.fc = linear(in_f, out_f, bias, spikes and model.spike_layers)
        self.norm = model.norm(out_f, dims=1) if norm else nn.Identity()
        self.neuron = model.neuron("standalone")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return norm_neuron(self.norm, self.neuron, self.fc(x))


SHORTCUTS = ("conv", "avgdown")


class BasicBlock(nn.Module):
    """Spiking residual BasicBlock (neuron after the add)::

        out = neuron_out( bn2(conv2( dropout(neuron1(bn1(conv1(x)))) )) + shortcut(x) )

    ``neuron1`` has role ``block_inner`` (not IM-restricted unless ``restrict_inner``),
    ``neuron_out`` role ``block_output``. The shortcut is the identity when the shape is kept,
    otherwise a projection:

    * ``"conv"``    conv1×1 stride s → BN (group ResNet-19/18/34, SpikingJelly);
    * ``"avgdown"`` AvgPool(s, ceil_mode, count_include_pad=False) → conv1×1 → BN (group res20m).

    With ``norm="none"`` every BN is an identity (Diet-SNN's conv1×1-only shortcut).

    tdBN α (InfLoR Eq. 1 and the tdBN paper call it network-structure dependent), per the model's
    ``residual_alpha`` option: bn1 α = 1 and the shortcut BN α = 1/√2 always; bn2 α is

    * ``"inflor"`` (the InfLoR code): 1 for an identity block, 1/√2 with a projection shortcut;
    * ``"tdbn"`` (the tdBN paper, Zheng et al. AAAI 2021, its residual block): 1/√2 in every
      block, the value the RecDis and IM-Loss rows that compare with tdBN's numbers assume.

    ``spikes``: the block's input x is spikes (conv1 and a shortcut conv without pooling then keep
    it as bits; conv2 does when there is no dropout).
    """

    def __init__(self, model: SpikingModel, in_ch: int, out_ch: int, stride: int = 1,
                 shortcut: str = "conv", dropout: float = 0.0, spikes: bool = False):
        super().__init__()
        if shortcut not in SHORTCUTS:
            raise ValueError(f"unknown shortcut {shortcut!r}; valid choices: {list(SHORTCUTS)}")
        self.projection = stride != 1 or in_ch != out_ch
        spikes = spikes and model.spike_layers
        self.input_spikes = spikes
        self.conv1 = conv(in_ch, out_ch, 3, stride, spikes=spikes)
        self.bn1 = model.norm(out_ch, alpha=1.0)
        self.neuron1 = model.neuron("block_inner")
        self.dropout = TemporalDropout(dropout) if dropout > 0 else nn.Identity()
        self.conv2 = conv(out_ch, out_ch, 3, 1, spikes=model.spike_layers and dropout == 0)
        tdbn_paper = model.residual_alpha == "tdbn"
        self.bn2 = model.norm(out_ch, alpha=SQRT1_2 if self.projection or tdbn_paper else 1.0)
        if not self.projection:
            self.shortcut = nn.Identity()
        elif shortcut == "conv":
            self.shortcut = nn.Sequential(conv(in_ch, out_ch, 1, stride, 0, spikes=spikes),
                                          model.norm(out_ch, alpha=SQRT1_2))
        else:  # avgdown
            layers = []
            if stride != 1:
                layers.append(avgpool(stride, stride, ceil_mode=True, count_include_pad=False))
            layers += [conv(in_ch, out_ch, 1, 1, 0, spikes=spikes and stride == 1),
                       model.norm(out_ch, alpha=SQRT1_2)]
            self.shortcut = nn.Sequential(*layers)
        self.neuron_out = model.neuron("block_output")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # each norm → neuron pair keeps one tensor (inflor.pairing); the residual one recomputes
        # the shortcut's norm too, or keeps an identity shortcut's spikes as bits
        out = self.dropout(norm_neuron(self.bn1, self.neuron1, self.conv1(x)))
        if isinstance(self.shortcut, nn.Identity):
            r, spikes = x, self.input_spikes
        elif isinstance(self.shortcut, nn.Sequential) and len(self.shortcut) > 1:
            h = x
            for layer in list(self.shortcut)[:-1]:      # the installed modules (a slice would be a new one)
                h = layer(h)
            r, spikes = (self.shortcut[-1], h), False
        else:
            r, spikes = self.shortcut(x), False
        return norm_neuron(self.bn2, self.neuron_out, self.conv2(out), r, extra_spikes=spikes)


def make_stage(model: SpikingModel, in_ch: int, out_ch: int, blocks: int, stride: int,
               shortcut: str = "conv", dropout: float = 0.0, spikes: bool = False) -> nn.Sequential:
    """``blocks`` BasicBlocks, the first with ``stride`` (and the projection if needed);
    ``spikes``: the stage's input is spikes (every later block's input is)."""
    layers = [BasicBlock(model, in_ch, out_ch, stride, shortcut, dropout, spikes)]
    layers += [BasicBlock(model, out_ch, out_ch, 1, shortcut, dropout, True) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)
