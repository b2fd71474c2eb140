"""Normalisation for multi-step tensors (docs/design.md §5).

``TemporalBatchNorm`` normalises ``[T, B, C, ...]`` per channel with statistics over
(T, B, spatial) — time is folded into the batch — and, as threshold-dependent BN (tdBN, Zheng et
al.; InfLoR Eq. 1), scales the normalised value by α·V_th::

    y = γ_c · α·V_th · (x − μ_c) / sqrt(σ²_c + ε) + β_c

μ, σ² are the batch mean and biased variance in training; running statistics (momentum 0.1,
unbiased variance) are used in evaluation. ``threshold_dependent=False`` is plain BN over
(T, B, H, W) (α·V_th = 1). ``make_norm("none")`` gives an identity.
"""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from . import scratch

NORMS = ("tdbn", "bn", "none")


class TemporalBatchNorm(nn.Module):
    """BN / tdBN over (T, B, spatial) for ``[T, B, C]`` (``dims=1``) or ``[T, B, C, H, W]`` (``dims=2``)."""

    def __init__(self, num_features: int, dims: int = 2, alpha: float = 1.0, v_threshold: float = 0.5,
                 threshold_dependent: bool = True, eps: float = 1e-5, momentum: float | None = 0.1):
        super().__init__()
        if dims not in (1, 2):
            raise ValueError(f"dims must be 1 ([T, B, C]) or 2 ([T, B, C, H, W]), got {dims}")
        self.num_features, self.dims, self.eps, self.momentum = num_features, dims, eps, momentum
        self.alpha, self.v_threshold = float(alpha), float(v_threshold)
        self.threshold_dependent = threshold_dependent
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))

    @property
    def scale(self) -> float:
        """The fixed factor α·V_th of tdBN (1 for plain BN)."""
        return self.alpha * self.v_threshold if self.threshold_dependent else 1.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The normalised x. Outside ``torch.compile`` it also leaves ``self.last_settings``:
        ``renormalize(x, self.last_settings)`` gives the same output again, bit for bit, without
        touching the running statistics (``inflor.pairing`` uses it to recompute a neuron's input
        in backward instead of keeping it)."""
        want = self.dims + 3 if self.dims == 2 else 3
        if x.dim() != want or x.shape[2] != self.num_features:
            shape = "[T, B, C, H, W]" if self.dims == 2 else "[T, B, C]"
            raise ValueError(f"{type(self).__name__} expects {shape} with C={self.num_features}, "
                             f"got shape {tuple(x.shape)}")
        momentum = self.momentum
        if self.training:
            self.num_batches_tracked += 1
            if momentum is None:
                momentum = 1.0 / float(self.num_batches_tracked)
        T, B = x.shape[:2]
        weight = self.weight * self.scale
        x2 = x.reshape(T * B, *x.shape[2:])
        compiling = torch.compiler.is_compiling()
        batch = None
        if self.training and not compiling and _affine_replays_batch_norm(x2):
            # what F.batch_norm calls here (after its batch-size check), keeping the batch
            # statistics it returns for renormalize
            F._verify_batch_size(x2.size())
            y, mean, invstd = torch.native_batch_norm(x2, weight, self.bias, self.running_mean, self.running_var,
                                                      True, momentum or 0.0, self.eps)
            batch = (mean.detach(), invstd.detach())
        else:
            y = F.batch_norm(x2, self.running_mean, self.running_var, weight, self.bias, self.training,
                             momentum or 0.0, self.eps)
        if not compiling:
            frozen = None if self.training else (self.running_mean.clone(), self.running_var.clone())
            self.last_settings = (weight.detach(), self.bias.detach(), frozen, batch)
        return y.reshape(x.shape)

    def renormalize(self, x: torch.Tensor, settings: tuple) -> torch.Tensor:
        """The output ``forward`` gave for the same ``x`` when it left ``settings``:
        BN of x with x's own batch statistics (training) or the running statistics as they were
        (evaluation); the running statistics are not updated.

        In training, where ``forward`` kept the batch mean μ and 1/σ (``_affine_replays_batch_norm``),
        no statistics are computed again: the output is the per-channel affine map that ATen's
        CPU batch norm applies, with its roundings (two fused multiply-adds)::

            a_c = γ'_c · (1/σ_c),   b_c = fma(-μ_c, a_c, β_c),   out = fma(x, a_c, b_c)

        one pass over x instead of three (bit-identical: checked against ``F.batch_norm`` once per
        dtype, see ``_affine_replays_batch_norm``, and in the tests)."""
        weight, bias, frozen, batch = settings
        T, B = x.shape[:2]
        x2 = x.reshape(T * B, *x.shape[2:])
        if batch is not None:
            # contiguous, without autograd (the pairs' backward): into the backward pass's scratch
            # memory (inflor.scratch); out= would not be differentiable
            plain = x2.is_contiguous() and not (torch.is_grad_enabled() and x2.requires_grad)
            out = scratch.empty(x2.shape, x2.dtype, x2.device) if plain else None
            return _batch_norm_affine(x2, weight, bias, *batch, out=out).reshape(x.shape)
        mean, var = (None, None) if frozen is None else frozen
        y = F.batch_norm(x2, mean, var, weight, bias, frozen is None, 0.0, self.eps)
        return y.reshape(x.shape)

    def affine_coefficients(self, settings: tuple) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Per-channel (a, b) [C] with ``renormalize(x, settings)`` = ``addcmul(b_c, x, a_c)`` (one
        fused multiply-add per element, see ``renormalize``), where ``forward`` kept its batch
        statistics for an affine replay; else None (evaluation, a GPU, autocast). A consumer that
        applies the map itself (the fused neuron backward, ``inflor.pairing``) must round like
        ``addcmul`` and check that it does."""
        weight, bias, _, batch = settings
        return None if batch is None else _affine_coefficients(weight, bias, *batch)

    def extra_repr(self) -> str:
        kind = f"tdBN alpha={self.alpha:.4g}, v_threshold={self.v_threshold:g}" if self.threshold_dependent else "BN"
        return f"{self.num_features}, {kind}, eps={self.eps}, momentum={self.momentum}"


def _batch_norm_affine(x: torch.Tensor, weight, bias, mean, invstd, out=None) -> torch.Tensor:
    """Training-mode batch norm of ``x`` [N, C, ...] from its batch ``mean`` and ``invstd``, in
    the order and roundings of ATen's CPU kernel (see ``TemporalBatchNorm.renormalize``):
    ``addcmul`` is one fused multiply-add per element on the CPU. Written into ``out`` (contiguous,
    x's shape) if given."""
    alpha, beta = _affine_coefficients(weight, bias, mean, invstd)
    shape = (1, x.shape[1]) + (1,) * (x.dim() - 2)
    return torch.addcmul(beta.view(shape), x, alpha.view(shape), out=out)


def _affine_coefficients(weight, bias, mean, invstd) -> tuple[torch.Tensor, torch.Tensor]:
    """(a, b) per channel of ``_batch_norm_affine``: a = γ'·(1/σ), b = fma(-μ, a, β)."""
    alpha = invstd * weight
    return alpha, torch.addcmul(bias, mean, alpha, value=-1)


#: CPU dtype -> whether ``_batch_norm_affine`` reproduces ``F.batch_norm`` bit for bit
_AFFINE_EXACT: dict[torch.dtype, bool] = {}


def _affine_replays_batch_norm(x: torch.Tensor) -> bool:
    """Whether ``renormalize`` may replay a training-mode BN of ``x`` as ``_batch_norm_affine``:
    on the CPU, in float32/float64 without autocast, for contiguous (or channels-last) input, and
    where that formula matched ``F.batch_norm`` bit for bit on a probe (once per dtype; the probe
    covers vectorised and scalar tails, 2-d, 4-d and channels-last input). The roundings are those of ATen's compiled CPU kernel, so
    a build that rounds differently fails the probe and keeps the full BN recomputation; a GPU
    (cuDNN's kernels) always keeps it."""
    if x.device.type != "cpu" or x.dtype not in (torch.float32, torch.float64) or torch.is_autocast_enabled("cpu"):
        return False
    if not (x.is_contiguous() or x.is_contiguous(memory_format=torch.channels_last)):
        return False        # ATen's strided fallback rounds differently
    ok = _AFFINE_EXACT.get(x.dtype)
    if ok is None:
        ok = _AFFINE_EXACT[x.dtype] = _probe_affine(x.dtype)
    return ok


def _probe_affine(dtype: torch.dtype) -> bool:
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for shape, layout in (((64, 5), None), ((8, 16, 7, 9), None), ((4, 3, 16, 16), None), ((33, 19), None),
                              ((6, 20, 5, 7), torch.channels_last)):
            C = shape[1]
            x = torch.randn(shape, generator=gen, dtype=dtype) * 3 + 1
            if layout is not None:
                x = x.contiguous(memory_format=layout)
            w = torch.rand(C, generator=gen, dtype=dtype) + 0.1
            b = torch.randn(C, generator=gen, dtype=dtype)
            ref, mean, invstd = torch.native_batch_norm(x, w, b, None, None, True, 0.0, 1e-5)
            if not (torch.equal(ref, F.batch_norm(x, None, None, w, b, True, 0.0, 1e-5))
                    and torch.equal(ref, _batch_norm_affine(x, w, b, mean, invstd))):
                return False
    return True


def make_norm(kind: str, num_features: int, dims: int = 2, alpha: float = 1.0,
              v_threshold: float = 0.5) -> nn.Module:
    """``"tdbn"`` (α·V_th scaled), ``"bn"`` (plain, over T·B) or ``"none"`` (identity)."""
    if kind == "tdbn":
        return TemporalBatchNorm(num_features, dims, alpha=alpha, v_threshold=v_threshold)
    if kind == "bn":
        return TemporalBatchNorm(num_features, dims, threshold_dependent=False)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown normalisation {kind!r}; valid choices: {list(NORMS)}")


@torch.no_grad()
def fold_batchnorm(layer: nn.Module, bn: TemporalBatchNorm) -> nn.Module:
    """Fold a trained (td)BN into the preceding ``nn.Conv2d`` / ``nn.Linear`` for deployment.

    With a = γ·α·V_th / sqrt(σ²_run + ε): W' = a·W (per output channel), b' = a·(b − μ_run) + β.
    Returns a new layer; the caller replaces the pair (layer, bn) by it.
    """
    if not isinstance(layer, (nn.Conv2d, nn.Linear)):
        raise TypeError(f"can fold only into nn.Conv2d or nn.Linear, got {type(layer).__name__}")
    if layer.weight.shape[0] != bn.num_features:
        raise ValueError(f"layer has {layer.weight.shape[0]} outputs but the BN normalises "
                         f"{bn.num_features} channels")
    a = bn.weight * bn.scale / torch.sqrt(bn.running_var + bn.eps)
    folded = copy.deepcopy(layer)
    folded.weight = nn.Parameter(layer.weight * a.reshape(-1, *([1] * (layer.weight.dim() - 1))))
    b = layer.bias if layer.bias is not None else torch.zeros_like(bn.running_mean)
    folded.bias = nn.Parameter(a * (b - bn.running_mean) + bn.bias)
    return folded
