"""The loss objective of a run, its terms declared once (docs/design.md §6)::

    total = task(logits, y) + Σ_term  weight_term(cfg) · term(model)
          = task + loss.mpd.weight · mpd_loss(all spiking layers)
                 + loss.im.weight  · im_loss(IM-restricted layers)

``TERMS`` lists the regularisers in order; everything else follows from it: the parts
``compute_loss`` returns (``task``, the terms, ``total``), the NaN check (``first_nonfinite``),
the training epoch's running sums, the ``metrics.csv`` columns (``train_loss``, ``task_loss``,
``<term>_loss``), the epoch log line and the ``--smoke`` line (``format_losses``). Adding a loss
term is one ``register_term(LossTerm(...))`` call (and its config keys).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping

import torch
from torch import nn

from inflor.losses import TASK_LOSSES, im_loss, im_loss_official, mpd_loss
from inflor.neuron import collect_stats

from .distributed import bare_model

__all__ = ["LossTerm", "TERMS", "register_term", "unregister_term", "term_names", "part_names", "compute_loss",
           "first_nonfinite", "needs_stats", "metric_fields", "METRIC_FIELDS", "loss_columns", "format_losses"]


@dataclass(frozen=True)
class LossTerm:
    """One regulariser of the objective.

    name: the part's name (``parts[name]``, column ``<name>_loss``, ``<name> 0.1234`` in logs).
    weight: its λ from the config (``weight(cfg)``); 0 switches the term off (it reads 0).
    compute: ``compute(model, cfg, v_threshold)``, a 0-dim tensor, called after the forward pass.
    needs_stats: whether it reads the membrane statistics the neurons record in the forward pass.
    """
    name: str
    weight: Callable[[Mapping], float]
    compute: Callable[[nn.Module, Mapping, float], torch.Tensor]
    needs_stats: bool = True


#: the regularisers, in the order of their columns and log entries
TERMS: dict[str, LossTerm] = {}


def register_term(term: LossTerm) -> LossTerm:
    if term.name in TERMS or term.name in ("task", "total"):
        raise ValueError(f"loss term {term.name!r} is already declared")
    TERMS[term.name] = term
    return term


def unregister_term(name: str) -> None:
    del TERMS[name]


def _mpd(model: nn.Module, cfg: Mapping, vth: float) -> torch.Tensor:
    mp = cfg["loss"]["mpd"]
    return mpd_loss(collect_stats(model), v_threshold=vth, k_d=mp["k_d"], k_s=mp["k_s"], k_m=mp["k_m"],
                    terms=mp["terms"])


def _im(model: nn.Module, cfg: Mapping, vth: float) -> torch.Tensor:
    im = cfg["loss"]["im"]
    stats = collect_stats(model, im_restricted_only=True)
    if im["form"] == "paper":
        return im_loss(stats, v_threshold=vth)
    return im_loss_official(stats, v_threshold=vth, drop_first_last=im["drop_first_last"])


register_term(LossTerm("mpd", lambda cfg: cfg["loss"]["mpd"]["weight"], _mpd))   # RecDis-SNN MPD-Loss
register_term(LossTerm("im", lambda cfg: cfg["loss"]["im"]["weight"], _im))      # IM-Loss


def term_names() -> list[str]:
    """``task`` and the regularisers: the parts in the log line's parentheses."""
    return ["task", *TERMS]


def part_names() -> list[str]:
    """Every part ``compute_loss`` returns, total first (the order of the running sums)."""
    return ["total", *term_names()]


def needs_stats(cfg: Mapping) -> bool:
    """Whether the neurons must record membrane statistics (a term that reads them is on)."""
    return any(t.needs_stats and t.weight(cfg) > 0 for t in TERMS.values())


def compute_loss(model: nn.Module, logits: torch.Tensor, target: torch.Tensor, cfg: Mapping) -> dict:
    """The loss parts of one batch: ``{"task", <each term>, "total"}`` (0-dim tensors)."""
    lc = cfg["loss"]
    task = TASK_LOSSES[lc["task"]](logits.float(), target, label_smoothing=lc["label_smoothing"])
    zero = task.new_zeros(())
    parts = {"task": task, **{name: zero for name in TERMS}}
    total = task
    m = bare_model(model)
    vth = float(getattr(m, "v_threshold", 0.5))
    for name, term in TERMS.items():
        w = term.weight(cfg)
        if w > 0:
            parts[name] = term.compute(m, cfg, vth)
            total = total + w * parts[name]
    parts["total"] = total
    return parts


def first_nonfinite(parts: Mapping[str, torch.Tensor]) -> str | None:
    """The first part (task, the terms, total) that is NaN or infinite, or None."""
    for name in (*term_names(), "total"):
        if not torch.isfinite(parts[name]).all():
            return name
    return None


def column(part: str) -> str:
    """The ``metrics.csv`` column of a loss part: ``train_loss`` for the total, ``<part>_loss``."""
    return "train_loss" if part == "total" else f"{part}_loss"


def metric_fields() -> list[str]:
    """The ``metrics.csv`` columns, in order."""
    return ["epoch", *(column(p) for p in part_names()), "train_acc", "test_loss", "test_acc", "lr", "spike_rate",
            "esg_k", "epoch_time"]


#: the columns with the built-in terms (``metric_fields()`` also has terms registered later)
METRIC_FIELDS = metric_fields()


def loss_columns(losses: Mapping[str, float]) -> dict:
    """``{column: value}`` of an epoch's mean loss parts."""
    return {column(p): losses[p] for p in part_names()}


def format_losses(losses: Mapping[str, float]) -> str:
    """``loss 0.1234 (task 0.1200, mpd 0.0034, im 0.0000)`` (``losses``: part -> value)."""
    return f"loss {losses['total']:.4f} (" + ", ".join(f"{n} {losses[n]:.4f}" for n in term_names()) + ")"
