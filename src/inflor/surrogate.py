"""Surrogate gradients for the Heaviside step Θ (docs/design.md §4).

Every surrogate is an ``nn.Module`` with one contract, written for ``x = Ĥ - V_th``:

* ``forward(x)``   -> Θ(x) = 1[x >= 0] in the forward pass, ``g(x)`` times the incoming
  gradient in the backward pass (straight-through style);
* ``grad(x)``      -> g(x), the surrogate derivative, as a pure tensor expression;
* ``primitive(x)`` -> a smooth function whose derivative is g (used by tests and by
  ``spiking=False`` mode, which replaces Θ by the primitive so the whole network is smooth and
  ``torch.autograd.gradcheck`` can check the backward wiring).

Hyper-parameters (``k``, ``alpha`` ...) are registered buffers, so ``state_dict()`` saves them
and a resumed run restores them; ESG's changing K therefore survives checkpoint/resume.

Mapping to peers: SpikingJelly's ``surrogate.Sigmoid(alpha)`` / ``ATan(alpha)`` are
``Sigmoid(alpha)`` / ``ATan(alpha)`` here with the same g; snnTorch's ``fast_sigmoid`` and
``atan`` factories correspond likewise. ESG (IM-Loss) has no peer equivalent.
"""
from __future__ import annotations

import math

import torch
from torch import nn


class _SurrogateSpike(torch.autograd.Function):
    """O = Θ(x) forward (or the primitive when ``smooth``); dO/dx = g(x) backward."""

    @staticmethod
    def forward(ctx, x, surrogate, smooth):
        ctx.save_for_backward(x)
        ctx.surrogate = surrogate
        if smooth:
            return surrogate.primitive(x)
        return (x >= 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad_out):
        (x,) = ctx.saved_tensors
        return grad_out * ctx.surrogate.grad(x), None, None


#: every surrogate class that declares a fused form, by ``fused_key`` (see ``Surrogate``)
FUSED_FORMS: dict[str, type] = {}


class Surrogate(nn.Module):
    """Base class: subclasses implement ``grad`` and ``primitive``.

    ``spiking=False`` turns the forward into the smooth primitive (for gradient checking).

    **Fused form.** The fused kernels (``inflor.fused``, docs/design.md §10) evaluate g
    as one of a few families of formulas in z = Ĥ − V_th, with three numbers A, B, W::

        box            A·1[|z| < W]
        bell           A·e/(1+e)²,  e = exp(−B|z|)
        windowed_bell  A·e/(1+e)²·1[|z| < W]
        triangle       A·max(W − |z|, 0)
        atan           A/(1 + (B z)²)

    A class that has such a form declares it itself: ``fused_family``, ``fused_param`` (the name of
    the buffer holding its one runtime parameter, read per call, so it may change between calls,
    like ESG's K) and ``fused_values(v) -> (A, B, W)``. A subclass that does not declare its own
    (it may redefine ``grad``) runs on the reference implementation.
    """

    fused_family: str | None = None
    fused_param: str = ""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "fused_family" not in vars(cls):
            cls.fused_family = None      # inherited forms do not count
        elif cls.fused_family is not None:
            FUSED_FORMS[cls.fused_key()] = cls

    @classmethod
    def fused_key(cls) -> str:
        """The name the fused operator knows this class by."""
        return f"{cls.__module__}.{cls.__qualname__}"

    @staticmethod
    def fused_values(v: float) -> tuple[float, float, float]:  # pragma: no cover - abstract
        """(A, B, W) of the family formula for the parameter value ``v``."""
        raise NotImplementedError

    def __init__(self, spiking: bool = True):
        super().__init__()
        self.spiking = spiking

    def grad(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} must implement grad(x)")

    def primitive(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} must implement primitive(x)")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _SurrogateSpike.apply(x, self, not self.spiking)

    def _buffer(self, name: str, value: float) -> None:
        self.register_buffer(name, torch.tensor(float(value), dtype=torch.float64))

    def extra_repr(self) -> str:
        # a model built on the meta device (shape inference) has no values to show
        return ", ".join(f"{n}={float(b):.4g}" if b.device.type != "meta" else f"{n}=?"
                         for n, b in self.named_buffers(recurse=False))


class Rectangle(Surrogate):
    """Rectangular window (RecDis Eq. 7): g(x) = (1/width) · 1[|x| < width/2].

    With ``width = 1`` and V_th = 0.5 the window is 0 < Ĥ < 1, as in the papers and the
    group code (``clamp(x, 0, 1)`` straight-through).
    """

    fused_family, fused_param = "box", "width"

    @staticmethod
    def fused_values(v):
        return 1.0 / v, 0.0, v / 2.0

    def __init__(self, width: float = 1.0, spiking: bool = True):
        super().__init__(spiking)
        if width <= 0:
            raise ValueError(f"Rectangle width must be > 0, got {width}")
        self._buffer("width", width)

    def grad(self, x):
        w = self.width.to(x.dtype)
        return (x.abs() < w / 2).to(x.dtype) / w

    def primitive(self, x):
        w = self.width.to(x.dtype)
        return (x / w + 0.5).clamp(0.0, 1.0)


class Tanh(Surrogate):
    """Asymptotic tanh (IM-Loss Eq. 13): primitive ½·tanh(k x) + ½, g(x) = (k/2)(1 - tanh²(k x))."""

    # (k/2)(1 − tanh²(kz)) = 2k·e/(1+e)² with e = exp(−2k|z|)
    fused_family, fused_param = "bell", "k_value"

    @staticmethod
    def fused_values(v):
        return 2.0 * v, 2.0 * v, math.inf

    def __init__(self, k: float = 3.0, spiking: bool = True):
        super().__init__(spiking)
        if k <= 0:
            raise ValueError(f"Tanh k must be > 0, got {k}")
        self._buffer("k_value", k)

    @property
    def k(self) -> float:
        """Current sharpness K as a Python float."""
        return float(self.k_value)

    @k.setter
    def k(self, value: float) -> None:
        self.k_value.fill_(float(value))

    def grad(self, x):
        k = self.k_value.to(x.dtype)
        t = torch.tanh(k * x)
        return 0.5 * k * (1.0 - t * t)

    def primitive(self, x):
        return 0.5 * torch.tanh(self.k_value.to(x.dtype) * x) + 0.5


def esg_k(epoch: float, num_epochs: int, k_min: float = 1.0, k_max: float = 10.0) -> float:
    """ESG schedule (IM-Loss Eq. 15): K(i) = ((10^(i/N) - 1)·K_max + (10 - 10^(i/N))·K_min) / 9."""
    if num_epochs <= 0:
        raise ValueError(f"num_epochs must be > 0, got {num_epochs}")
    p = 10.0 ** (epoch / num_epochs)
    return ((p - 1.0) * k_max + (10.0 - p) * k_min) / 9.0


class ESG(Tanh):
    """Evolutionary Surrogate Gradient (IM-Loss Eq. 14–15): the tanh surrogate whose K follows
    ``esg_k(epoch, num_epochs)``, from K_min (wide, flat) at epoch 0 towards K_max (sharp).

    Call ``set_epoch(epoch, num_epochs)`` at the start of each epoch (the trainer does it).
    ``k_min``, ``k_max`` and the current K are buffers and are saved in ``state_dict``.
    """

    fused_family, fused_param = "bell", "k_value"    # Tanh's g with the scheduled K

    def __init__(self, k_min: float = 1.0, k_max: float = 10.0, spiking: bool = True):
        if not 0 < k_min <= k_max:
            raise ValueError(f"ESG needs 0 < k_min <= k_max, got k_min={k_min}, k_max={k_max}")
        super().__init__(k=k_min, spiking=spiking)
        self._buffer("k_min", k_min)
        self._buffer("k_max", k_max)

    def set_epoch(self, epoch: float, num_epochs: int) -> float:
        self.k = esg_k(epoch, num_epochs, float(self.k_min), float(self.k_max))
        return self.k


class Sigmoid(Surrogate):
    """Sigmoid surrogate: primitive σ(αx), g(x) = α σ(αx)(1 - σ(αx)) (SpikingJelly's default form)."""

    # α σ(αz)(1 − σ(αz)) = α·e/(1+e)² with e = exp(−α|z|)
    fused_family, fused_param = "bell", "alpha"

    @staticmethod
    def fused_values(v):
        return v, v, math.inf

    def __init__(self, alpha: float = 4.0, spiking: bool = True):
        super().__init__(spiking)
        self._buffer("alpha", alpha)

    def grad(self, x):
        s = torch.sigmoid(self.alpha.to(x.dtype) * x)
        return self.alpha.to(x.dtype) * s * (1.0 - s)

    def primitive(self, x):
        return torch.sigmoid(self.alpha.to(x.dtype) * x)


class ATan(Surrogate):
    """Arctan surrogate: primitive atan(π/2·αx)/π + ½, g(x) = (α/2) / (1 + (π/2·αx)²)."""

    fused_family, fused_param = "atan", "alpha"

    @staticmethod
    def fused_values(v):
        return v / 2.0, math.pi / 2.0 * v, 0.0

    def __init__(self, alpha: float = 2.0, spiking: bool = True):
        super().__init__(spiking)
        self._buffer("alpha", alpha)

    def grad(self, x):
        a = self.alpha.to(x.dtype)
        return (a / 2) / (1.0 + (math.pi / 2 * a * x) ** 2)

    def primitive(self, x):
        a = self.alpha.to(x.dtype)
        return torch.atan(math.pi / 2 * a * x) / math.pi + 0.5


class Triangle(Surrogate):
    """Triangle surrogate: g(x) = γ⁻² · max(γ - |x|, 0), area 1 (γ the half-width)."""

    fused_family, fused_param = "triangle", "gamma"

    @staticmethod
    def fused_values(v):
        return 1.0 / (v * v), 0.0, v

    def __init__(self, gamma: float = 0.5, spiking: bool = True):
        super().__init__(spiking)
        self._buffer("gamma", gamma)

    def grad(self, x):
        g = self.gamma.to(x.dtype)
        return (g - x.abs()).clamp(min=0.0) / (g * g)

    def primitive(self, x):
        g = self.gamma.to(x.dtype)
        y = x.clamp(-g, g) / g
        return 0.5 + y - 0.5 * y * y.abs()


class DSpike(Surrogate):
    """The official IM-Loss/MPBN code's surrogate (docs/design.md §4.1): a tanh bump inside the
    window |x| < ½, g(x) = k·sech²(k x) / (2 tanh(k/2)) there and 0 outside; k = 3 in that code."""

    # k·sech²(kz)/(2 tanh(k/2)) = (2k/tanh(k/2))·e/(1+e)², e = exp(−2k|z|), inside |z| < ½
    fused_family, fused_param = "windowed_bell", "k_value"

    @staticmethod
    def fused_values(v):
        return 2.0 * v / math.tanh(v / 2.0), 2.0 * v, 0.5

    def __init__(self, k: float = 3.0, spiking: bool = True):
        super().__init__(spiking)
        self._buffer("k_value", k)

    def grad(self, x):
        k = self.k_value.to(x.dtype)
        t = torch.tanh(k * x)
        inside = (x.abs() < 0.5).to(x.dtype)
        return inside * k * (1.0 - t * t) / (2.0 * torch.tanh(k / 2))

    def primitive(self, x):
        k = self.k_value.to(x.dtype)
        return torch.tanh(k * x.clamp(-0.5, 0.5)) / (2.0 * torch.tanh(k / 2)) + 0.5


SURROGATES = {
    "rectangle": Rectangle,
    "tanh": Tanh,
    "esg": ESG,
    "sigmoid": Sigmoid,
    "atan": ATan,
    "triangle": Triangle,
    "dspike": DSpike,
}


def make_surrogate(spec: "str | Surrogate | dict | None" = None, **kwargs) -> Surrogate:
    """Build a surrogate from a name (``"rectangle"``, ``"esg"`` ...), a ``{"name": ..., **kw}``
    dict, or return an existing ``Surrogate`` unchanged. ``None`` gives ``Rectangle()``."""
    if spec is None:
        return Rectangle(**kwargs)
    if isinstance(spec, Surrogate):
        return spec
    if isinstance(spec, dict):
        spec = dict(spec)
        name = spec.pop("name", None)
        return make_surrogate(name, **spec, **kwargs)
    if isinstance(spec, str):
        key = spec.lower()
        if key not in SURROGATES:
            raise ValueError(f"unknown surrogate {spec!r}; valid choices: {sorted(SURROGATES)}")
        return SURROGATES[key](**kwargs)
    raise TypeError(f"surrogate must be a name, a dict or a Surrogate module, got {type(spec).__name__}")
