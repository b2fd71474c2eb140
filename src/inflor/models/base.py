"""The base of every inflor network: option handling, input layout, layer factories, init.

Input layout (docs/design.md §1)
---------------------------
``SpikingModel.forward(x)`` accepts

* a static batch ``[B, C, H, W]`` -> repeated T = ``model.timesteps`` times (direct encoding:
  the first conv → norm → neuron is the encoder) -> ``[T, B, C, H, W]``;
* event frames ``[B, T, C, H, W]`` from the data pipeline -> ``to_time_first`` -> ``[T, B, C, H, W]``.
  The number of frames T comes from the data; ``model.timesteps`` only applies to static input.

``to_time_first`` below is the one place in inflor that permutes batch-first event frames to
time-first. Code that already holds a time-first tensor calls ``model.forward_multistep(x)``.

Every model returns the final linear layer's logits per step, ``[T, B, K]`` (no neuron on the
output layer); the prediction is ``logits.mean(0)``.

Common options (every registered model; see ``COMMON_OPTIONS``)
---------------------------------------------------------------
``in_channels``, ``timesteps``, ``neuron`` (a preset of ``inflor.neuron.PRESETS``),
``neuron_options`` (BaseNode keyword arguments, e.g. ``v_threshold``, ``decay``, ``detach_reset``,
``backend``), ``mpr`` (``None`` = the preset's own choice, i.e. MPR only for ``neuron="inflor"``;
``"inflor"`` / ``"tanh"`` switch it on; ``"none"`` switches it off), ``mpr_k``, ``surrogate`` (a
name or ``{"name": ..., **kwargs}``; ``None`` = rectangle), ``norm`` (``"tdbn"`` | ``"bn"`` |
``"none"``), ``restrict_inner`` (also let IM-Loss restrict the inner neuron of each residual
block; IM-Loss does not, hence default ``False``) and ``residual_alpha``, the tdBN α of the last
norm of each residual branch (``blocks.BasicBlock``): ``"inflor"`` (default; the InfLoR code's
choice: α = 1 in a block with an identity shortcut, 1/√2 with a projection) or ``"tdbn"`` (the
tdBN paper's, Zheng et al. AAAI 2021: α = 1/√2 in every block, so branch + shortcut have the
variance of one α = 1 norm). Like ``restrict_inner`` it only acts on residual blocks, and only
with ``norm="tdbn"`` (plain BN has no α).

Initialisation (all models): conv weights Kaiming-normal with fan_out and the ReLU gain, i.e.
N(0, 2/(k²·C_out)) — exactly the group code's (Guo et al.) conv init and SpikingJelly's; conv
biases 0; linear layers keep PyTorch's default (U(±1/√fan_in)); norm γ = 1, β = 0.
"""
from __future__ import annotations

import copy
import inspect
import math

import torch
from torch import nn

from ..layers import repeat_time
from ..neuron import PRESETS, BaseNode, make_neuron
from ..norm import NORMS, make_norm
from ..surrogate import make_surrogate

#: Options every registered model accepts, with their library defaults.
COMMON_OPTIONS: dict[str, object] = {
    "in_channels": 3,
    "timesteps": 4,
    "neuron": "if",
    "neuron_options": None,
    "mpr": None,
    "mpr_k": None,
    "surrogate": None,
    "norm": "tdbn",
    "restrict_inner": False,
    "residual_alpha": "inflor",
}

MPR_CHOICES = (None, "none", "inflor", "tanh")

#: ``residual_alpha`` choices: whose convention sets the tdBN α of a residual branch's last norm.
RESIDUAL_ALPHAS = ("inflor", "tdbn")

#: BaseNode keyword arguments a model sets itself (so ``neuron_options`` must not carry them).
_MODEL_CONTROLLED = {"mpr": "mpr", "mpr_k": "mpr_k", "surrogate_function": "surrogate",
                     "role": "(set per layer)", "im_restrict": "restrict_inner"}

SQRT1_2 = 1.0 / math.sqrt(2.0)


def neuron_option_names() -> list[str]:
    """The keys ``neuron_options`` may hold: BaseNode's arguments minus the model-controlled ones."""
    params = inspect.signature(BaseNode.__init__).parameters
    return [p for p in params if p != "self" and p not in _MODEL_CONTROLLED]


def to_time_first(x: torch.Tensor) -> torch.Tensor:
    """Event frames ``[B, T, ...]`` -> ``[T, B, ...]``: the ONE place inflor permutes batch-first
    event tensors to the time-first layout (a view; the first time-folded layer copies it)."""
    if x.dim() < 2:
        raise ValueError(f"to_time_first expects [B, T, ...], got shape {tuple(x.shape)}")
    return x.transpose(0, 1)


class SpikingModel(nn.Module):
    """Base class of inflor's networks (see the module docstring for the options and layout).

    Subclasses build their layers with ``self.neuron(role)`` and ``self.norm(C, dims, alpha)``,
    implement ``forward_multistep(x)`` on ``[T, B, C, H, W]`` returning logits ``[T, B, K]``, and
    call ``self.init_weights()`` at the end of ``__init__``. A model whose layer sizes depend on
    the input size (it flattens a feature map) sets ``self.input_size`` so a wrong input is
    reported clearly instead of as a matrix-shape error.
    """

    def __init__(self, num_classes: int = 10, *, in_channels: int = 3, timesteps: int = 4,
                 neuron: str = "if", neuron_options: dict | None = None, mpr=None, mpr_k=None,
                 surrogate=None, norm: str = "tdbn", restrict_inner: bool = False,
                 residual_alpha: str = "inflor"):
        super().__init__()
        self.num_classes = _positive_int("num_classes", num_classes)
        self.in_channels = _positive_int("in_channels", in_channels)
        self.timesteps = _positive_int("timesteps", timesteps)
        if neuron not in PRESETS:
            raise ValueError(f"unknown neuron kind {neuron!r}; valid choices: {sorted(PRESETS)}")
        self.neuron_kind = neuron
        self.neuron_options = _check_neuron_options(neuron_options)
        if isinstance(mpr, str):
            mpr = mpr.lower()
        if mpr not in MPR_CHOICES:
            raise ValueError(f"unknown mpr {mpr!r}; valid choices: {list(MPR_CHOICES)} "
                             "(None keeps the neuron preset's choice, 'none' switches MPR off)")
        if mpr_k is not None:
            if isinstance(mpr_k, bool) or not isinstance(mpr_k, (int, float)) or not mpr_k > 0:
                raise ValueError(f"mpr_k must be a positive number or None, got {mpr_k!r}")
            effective = PRESETS[neuron].get("mpr") if mpr is None else mpr
            if effective in (None, "none"):
                raise ValueError(f"mpr_k={mpr_k} is given but MPR is off (neuron={neuron!r}, "
                                 f"mpr={mpr!r}); set mpr='inflor' or 'tanh', or use neuron='inflor'")
        self.mpr, self.mpr_k = mpr, mpr_k
        if surrogate is not None and not isinstance(surrogate, (str, dict)):
            raise ValueError("surrogate must be a name or a dict {'name': ..., **kwargs} (so the "
                             f"model options stay serialisable), got {type(surrogate).__name__}")
        make_surrogate(copy.deepcopy(surrogate))  # validate now: unknown names name the choices
        self.surrogate = copy.deepcopy(surrogate)
        if norm not in NORMS:
            raise ValueError(f"unknown norm {norm!r}; valid choices: {list(NORMS)}")
        self.norm_kind = norm
        if not isinstance(restrict_inner, bool):
            raise ValueError(f"restrict_inner must be True or False, got {restrict_inner!r}")
        self.restrict_inner = restrict_inner
        if residual_alpha not in RESIDUAL_ALPHAS:
            raise ValueError(f"unknown residual_alpha {residual_alpha!r}; valid choices: {list(RESIDUAL_ALPHAS)} "
                             "('inflor': the InfLoR code's tdBN alpha, 'tdbn': the tdBN paper's)")
        self.residual_alpha = residual_alpha
        self.input_size: int | None = None
        # set by create_model; kept as plain attributes (not in the state_dict)
        self.model_name: str = type(self).__name__
        self.model_options: dict = {}

    # ------------------------------------------------------------------ layer factories
    @property
    def v_threshold(self) -> float:
        return float(self.neuron_options.get("v_threshold", 0.5))

    def neuron(self, role: str = "standalone") -> BaseNode:
        """A fresh spiking neuron with the model's settings at a given residual-block ``role``."""
        kw = dict(self.neuron_options)
        if self.mpr is not None:
            kw["mpr"] = None if self.mpr == "none" else self.mpr
        if self.mpr_k is not None:
            kw["mpr_k"] = self.mpr_k
        kw["surrogate_function"] = make_surrogate(copy.deepcopy(self.surrogate))
        if self.restrict_inner:
            kw["im_restrict"] = True
        return make_neuron(self.neuron_kind, role=role, **kw)

    def norm(self, num_features: int, dims: int = 2, alpha: float = 1.0) -> nn.Module:
        """tdBN / BN / identity (per the ``norm`` option) over ``[T, B, C, ...]``."""
        return make_norm(self.norm_kind, num_features, dims=dims, alpha=alpha,
                         v_threshold=self.v_threshold)

    @property
    def spike_layers(self) -> bool:
        """Whether conv/linear layers fed by a neuron keep that input as bits
        (``inflor.layers.SpikeConv2d`` / ``SpikeLinear``): whenever the neurons emit binary spikes,
        i.e. unless the surrogate runs in ``spiking=False`` mode (its smooth primitive forward)."""
        return bool(getattr(make_surrogate(copy.deepcopy(self.surrogate)), "spiking", True))

    @property
    def has_norm(self) -> bool:
        return self.norm_kind != "none"

    def init_weights(self) -> None:
        """Conv: Kaiming-normal (fan_out, ReLU gain), bias 0. Linear: PyTorch default."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    # ------------------------------------------------------------------ forward
    def _shape_help(self) -> str:
        C = self.in_channels
        hw = f" with H = W = {self.input_size}" if self.input_size else ""
        return (f"{self.model_name} expects a static batch [B, {C}, H, W] (repeated T={self.timesteps} "
                f"times) or event frames [B, T, {C}, H, W]{hw}")

    def to_multistep(self, x: torch.Tensor) -> torch.Tensor:
        """Static ``[B, C, H, W]`` or event ``[B, T, C, H, W]`` -> time-first ``[T, B, C, H, W]``."""
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{self._shape_help()}; got {type(x).__name__}")
        if x.dim() == 4 and x.shape[1] == self.in_channels:
            x = repeat_time(x, self.timesteps)
        elif x.dim() == 5 and x.shape[2] == self.in_channels:
            x = to_time_first(x)
        else:
            raise ValueError(f"{self._shape_help()}; got shape {tuple(x.shape)}")
        if self.input_size is not None and tuple(x.shape[-2:]) != (self.input_size, self.input_size):
            raise ValueError(f"{self._shape_help()} (its flatten layer is sized for that; build it "
                             f"with input_size={x.shape[-1]} for other inputs); got shape {tuple(x.shape)}")
        if not x.is_floating_point():
            x = x.float()
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``[T, B, K]`` for a static ``[B, C, H, W]`` or event ``[B, T, C, H, W]`` batch."""
        return self.forward_multistep(self.to_multistep(x))

    def forward_multistep(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def extra_repr(self) -> str:
        return (f"num_classes={self.num_classes}, in_channels={self.in_channels}, "
                f"timesteps={self.timesteps}, neuron={self.neuron_kind!r}, norm={self.norm_kind!r}")


def _positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def _check_neuron_options(options) -> dict:
    if options is None:
        return {}
    if not isinstance(options, dict):
        raise ValueError(f"neuron_options must be a dict of BaseNode arguments, got {type(options).__name__}")
    valid = neuron_option_names()
    for key in options:
        if key in _MODEL_CONTROLLED:
            raise ValueError(f"neuron_options may not set {key!r}: the model sets it "
                             f"(use the model option {_MODEL_CONTROLLED[key]!r}); valid keys: {valid}")
        if key not in valid:
            raise ValueError(f"unknown neuron option {key!r}; valid keys: {valid}")
    return copy.deepcopy(dict(options))
