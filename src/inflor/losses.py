"""Task losses and the two membrane-distribution losses (docs/design.md §6).

Each distribution loss takes a list of per-layer ``MembraneStats`` (what the neurons report
during their forward, see ``inflor.neuron.collect_stats``) or raw membrane tensors
``[T, B, C, ...]`` (converted with ``membrane_stats``).
"""
from __future__ import annotations

from typing import Iterable, Sequence

import torch
import torch.nn.functional as F

from .stats import MembraneStats, membrane_stats

__all__ = ["membrane_stats", "MembraneStats", "mpd_terms", "mpd_loss", "im_loss", "im_loss_official",
           "ce_of_mean", "ce_per_step", "TASK_LOSSES"]

MPD_TERMS = "DSM"


def _as_stats(items: Iterable) -> list[MembraneStats]:
    out = [s if isinstance(s, MembraneStats) else membrane_stats(s) for s in items]
    if not out:
        raise ValueError("no membrane statistics given: enable them with "
                         "inflor.neuron.set_record_stats(model) before the forward pass")
    return out


def mpd_terms(stats: MembraneStats, v_threshold: float = 0.5, k_d: float = 1.0, k_s: float = 0.25,
              k_m: float = 1.25) -> dict[str, torch.Tensor]:
    """Per-channel MPD terms of one layer (RecDis Eq. 10, 13, 17), μ, σ over (T, B, H, W)::

        L_D = ((μ − k_D σ − V_th)₊)² + ((V_th − μ − k_D σ)₊)²     degeneration
        L_S = ((μ − k_S σ − 1)₊)² + ((−μ − k_S σ)₊)²              saturation
        L_M = (max(μ − k_M σ, 1 − μ − k_M σ)₊)²                   gradient mismatch

    Returns ``{"D": [C], "S": [C], "M": [C]}``.
    """
    mu, sigma = stats.mean(), stats.std()
    relu = F.relu
    return {
        "D": relu(mu - k_d * sigma - v_threshold) ** 2 + relu(v_threshold - mu - k_d * sigma) ** 2,
        "S": relu(mu - k_s * sigma - 1.0) ** 2 + relu(-mu - k_s * sigma) ** 2,
        "M": relu(torch.maximum(mu - k_m * sigma, 1.0 - mu - k_m * sigma)) ** 2,
    }


def mpd_loss(stats_list: Sequence, v_threshold: float = 0.5, k_d: float = 1.0, k_s: float = 0.25,
             k_m: float = 1.25, terms: str = "DSM") -> torch.Tensor:
    """MPD-Loss (RecDis Eq. 18–19): mean over layers of the channel mean of the chosen terms.

    ``terms`` is any subset of ``"DSM"`` (RecDis Table 1 ablates them one by one).
    """
    bad = set(terms.upper()) - set(MPD_TERMS)
    if bad or not terms:
        raise ValueError(f"terms must be a non-empty combination of 'D', 'S', 'M', got {terms!r}")
    per_layer = []
    for s in _as_stats(stats_list):
        parts = mpd_terms(s, v_threshold, k_d, k_s, k_m)
        per_layer.append(sum(parts[t] for t in terms.upper()).mean())
    return torch.stack(per_layer).mean()


def im_loss(stats_list: Sequence, v_threshold: float = 0.5) -> torch.Tensor:
    """IM-Loss, paper form (IM-Loss Eq. 11): mean over layers of (mean(H_l) − V_th)², the mean
    over all T·B·C·H·W membrane values of layer l. Pass only the restricted layers
    (``collect_stats(model, im_restricted_only=True)``)."""
    terms = [(s.overall_mean() - v_threshold) ** 2 for s in _as_stats(stats_list)]
    return torch.stack(terms).mean()


def im_loss_official(stats_list: Sequence[MembraneStats], v_threshold: float = 0.5,
                     drop_first_last: bool = True) -> torch.Tensor:
    """IM-Loss as the official simplified code computes it (docs/design.md §6.3): per restricted
    layer Z, (mean(Z) − V_th/T)² where Z is the input current of a residual block's output neuron
    (role ``block_output``) and the spike output of a stand-alone neuron; the first and the last
    entries are dropped (when more than two remain) and the rest averaged."""
    stats = _as_stats(stats_list)
    terms = []
    for s in stats:
        z = s.input_mean() if s.role == "block_output" else s.spike_rate()
        terms.append((z - v_threshold / s.timesteps) ** 2)
    if drop_first_last and len(terms) > 2:
        terms = terms[1:-1]
    return torch.stack(terms).mean()


def _check_logits(logits: torch.Tensor, target: torch.Tensor) -> None:
    if logits.dim() != 3:
        raise ValueError(f"expected per-step logits [T, B, K], got shape {tuple(logits.shape)}")
    if target.shape[0] != logits.shape[1]:
        raise ValueError(f"batch of logits {tuple(logits.shape)} and targets {tuple(target.shape)} differ")


def ce_of_mean(logits: torch.Tensor, target: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    """CE(mean_t O_t, y): cross-entropy of the T-mean logits (all the group code)."""
    _check_logits(logits, target)
    return F.cross_entropy(logits.mean(0), target, label_smoothing=label_smoothing)


def ce_per_step(logits: torch.Tensor, target: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    """(1/T) Σ_t CE(O_t, y): per-step cross-entropy (RecDis Algorithm 1, TET form)."""
    _check_logits(logits, target)
    T, B, K = logits.shape
    return F.cross_entropy(logits.reshape(T * B, K), target.repeat(T), label_smoothing=label_smoothing)


TASK_LOSSES = {"ce_mean": ce_of_mean, "ce_per_step": ce_per_step}
