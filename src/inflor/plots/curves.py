"""Curves of one run's ``metrics.csv`` and of several runs compared."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Mapping, Sequence

import matplotlib.pyplot as plt
from matplotlib.lines import Line2D

from .figure import _save, whole_epochs


def as_percent(values) -> list:
    """Accuracies in percent: a column whose values all lie in [0, 1] is multiplied by 100."""
    vals = [v for v in values if isinstance(v, float) and not math.isnan(v)]
    scale = 100.0 if vals and max(vals) <= 1.0 else 1.0
    return [v * scale if isinstance(v, float) else v for v in values]


def _numeric(col) -> bool:
    return all(isinstance(v, float) for v in col) and any(not math.isnan(v) for v in col)


#: what ``plot_metrics`` puts on each panel's y axis
METRIC_UNITS = {"loss": "loss (CE in nats; MPD, IM unitless)", "acc": "accuracy (%)"}
#: legend names of the trainer's ``metrics.csv`` columns (others keep their column name)
METRIC_NAMES = {"train_loss": "train loss (total)", "task_loss": "train loss (task only)", "mpd_loss": "MPD-Loss",
                "im_loss": "IM-Loss", "test_loss": "test loss", "train_acc": "train accuracy",
                "test_acc": "test accuracy", "spike_rate": "test spike rate"}


def plot_metrics(metrics: Mapping[str, list], path, title: str = "Training curves") -> Path:
    """Loss-like columns (left) and accuracy-like columns (right) against the epoch."""
    xs_key = next((k for k in ("epoch", "step") if k in metrics), None)
    n = len(next(iter(metrics.values()), []))
    xs = metrics[xs_key] if xs_key else list(range(1, n + 1))
    numeric = [k for k, v in metrics.items() if k != xs_key and _numeric(v)
               and any(not math.isnan(x) and x != 0 for x in v)]      # all-zero columns (losses off) left out
    acc = [k for k in numeric if "acc" in k.lower()]
    loss = [k for k in numeric if "loss" in k.lower()]
    other = [k for k in numeric if k not in acc and k not in loss and "time" not in k.lower()
             and k.lower() not in ("lr", "k", "esg_k")]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    panels = ((axes[0], loss or other, METRIC_UNITS["loss"] if loss else "value"),
              (axes[1], acc, METRIC_UNITS["acc"]))
    for ax, keys, ylabel in panels:
        for k in keys:
            ys = as_percent(metrics[k]) if k in acc else metrics[k]
            ax.plot(xs, ys, marker="o" if n < 30 else None, markersize=3, label=METRIC_NAMES.get(k, k))
        ax.set_xlabel(xs_key or "epoch")
        ax.set_ylabel(ylabel)
        whole_epochs(ax)
        ax.grid(alpha=0.3)
        if keys:
            ax.legend(fontsize=8)
        else:
            ax.text(0.5, 0.5, "no such column", ha="center", va="center", transform=ax.transAxes, color="gray")
    fig.suptitle(title, fontsize=11)
    return _save(fig, path)


#: the panels of ``plot_compare``: (series key, panel title, y-axis label)
COMPARE_PANELS = (("test_acc", "test accuracy", "test accuracy (%)"),
                  ("train_loss", "training loss (task only, no regularisers)", "train loss (cross-entropy, nats)"),
                  ("spike_rate", "spike rate on the test set", "spike rate (spikes / neuron / step)"))


def plot_compare(series: Mapping[str, Mapping[str, tuple[Sequence[float], Sequence[float]]]], path,
                 title: str = "") -> Path:
    """Several runs side by side (IM-Loss Fig. 4 style): test accuracy, training loss and spike
    rate against the epoch, one colour per run in every panel and one legend below.

    ``series``: ``{key of COMPARE_PANELS: {run label: (epochs, values)}}``; the runs are the
    labels of all panels, in order of first appearance."""
    labels: list[str] = []
    for panel in series.values():
        labels += [lab for lab in panel if lab not in labels]
    style = {lab: {"color": f"C{i % 10}", "linestyle": ("-", "--", ":", "-.")[(i // 10) % 4]}
             for i, lab in enumerate(labels)}
    fig, axes = plt.subplots(1, len(COMPARE_PANELS), figsize=(14, 4.6), layout="constrained")
    for ax, (key, panel_title, ylabel) in zip(axes, COMPARE_PANELS):
        curves = series.get(key) or {}
        for lab, (xs, ys) in curves.items():
            ax.plot(xs, ys, marker="o" if len(xs) < 30 else None, markersize=3.5, linewidth=1.4, **style[lab])
        if not curves:
            ax.text(0.5, 0.5, "no run has this column in metrics.csv", ha="center", va="center",
                    transform=ax.transAxes, color="gray", fontsize=9)
        ax.set_title(panel_title, fontsize=10)
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        whole_epochs(ax)
        ax.grid(alpha=0.3)
    handles = [Line2D([], [], marker="o", markersize=3.5, linewidth=1.4, label=lab, **style[lab]) for lab in labels]
    fig.legend(handles=handles, loc="outside lower center", ncol=min(len(labels), 4), fontsize=9, frameon=False)
    fig.suptitle(title or f"{len(labels)} runs compared", fontsize=11)
    return _save(fig, path)
