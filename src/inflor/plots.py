"""Figures: membrane histograms, layer-wise spike rates, the MPR / ESG / redistribution figures of
the papers, metric and accuracy curves. Every function writes one PNG and returns its path.

Plots take plain numbers (as stored in ``analysis.json``, snapshots and ``metrics.csv``), so they
can be redrawn without the model. matplotlib runs with the non-interactive Agg backend.
"""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

DPI = 110


def figure_texts(fig) -> dict:
    """The words on a figure: its title and, per axes, title, axis labels, tick and legend labels."""
    sup = fig._suptitle.get_text() if getattr(fig, "_suptitle", None) is not None else ""
    axes = []
    for ax in fig.axes:
        leg = ax.get_legend()
        axes.append({"title": ax.get_title(), "xlabel": ax.get_xlabel(), "ylabel": ax.get_ylabel(),
                     "xticklabels": [t.get_text() for t in ax.get_xticklabels() if t.get_text()],
                     "legend": [t.get_text() for t in leg.get_texts()] if leg is not None else []})
    return {"title": sup, "axes": axes}


def _save(fig, path) -> Path:
    """Save as PNG with the figure's words in the PNG text chunk ``inflor:texts`` (JSON), so a
    test or a script can check what a picture shows without looking at it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    texts = figure_texts(fig)
    fig.savefig(path, dpi=DPI, metadata={"Title": texts["title"] or (texts["axes"][0]["title"] if texts["axes"] else ""),
                                         "Software": "inflor", "inflor:texts": json.dumps(texts)})
    plt.close(fig)
    return path


def read_png_texts(path) -> dict:
    """The ``inflor:texts`` record written by ``_save`` (``{}`` if absent)."""
    from PIL import Image

    with Image.open(path) as im:
        raw = im.info.get("inflor:texts") or getattr(im, "text", {}).get("inflor:texts")
    return json.loads(raw) if raw else {}


def safe_name(layer: str) -> str:
    """A file-name friendly form of a module path (``layer2.0.sn1`` -> ``layer2.0.sn1``)."""
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in layer) or "layer"


# --------------------------------------------------------------------------- analysis figures

def _hist_bars(ax, spec: Mapping, hist: Mapping, color: str):
    lo, hi, bins = spec["lo"], spec["hi"], spec["bins"]
    counts = np.asarray(hist["counts"], dtype=float)
    total = counts.sum() + hist.get("below", 0) + hist.get("above", 0)
    width = (hi - lo) / bins
    density = counts / max(total, 1) / width
    ax.bar(lo + width * np.arange(bins), density, width=width, align="edge", color=color, alpha=0.85,
           linewidth=0)
    outside = (hist.get("below", 0) + hist.get("above", 0)) / max(total, 1)
    return outside


def _mark(ax, v_threshold: float, window):
    ax.axvline(v_threshold, color="crimson", linestyle="--", linewidth=1.2, label=f"V_th = {v_threshold:g}")
    if window is not None:
        ax.axvspan(window[0], window[1], color="gold", alpha=0.18, label="surrogate window")
    for s in (0.0, 1.0):
        ax.axvline(s, color="gray", linewidth=0.6, linestyle=":")


def plot_membrane_histogram(layer: str, spec: Mapping, hists: Mapping, path, v_threshold: float = 0.5,
                            window=None, window_h=None, qe: tuple[float, float] | None = None,
                            has_mpr: bool = True) -> Path:
    """Histogram of H (left) and of φ(H), what Θ sees (right), for one layer (InfLoR Fig. 5)."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    titles = ["before MPR: H", "after MPR: φ(H)" if has_mpr else "presented to Θ: H (no MPR)"]
    for i, (ax, key, color) in enumerate(zip(axes, ("before", "after"), ("steelblue", "darkorange"))):
        outside = _hist_bars(ax, spec, hists[key], color)
        _mark(ax, v_threshold, window_h if key == "before" else window)
        t = titles[i]
        if qe is not None:
            t += f"   (quant. error {qe[i]:.3f})"
        ax.set_title(t, fontsize=10)
        ax.set_xlabel("membrane potential")
        ax.set_xlim(spec["lo"], spec["hi"])
        if outside > 0:
            ax.text(0.99, 0.97, f"{100 * outside:.1f}% outside range", transform=ax.transAxes,
                    ha="right", va="top", fontsize=8, color="gray")
    axes[0].set_ylabel("density")
    axes[1].legend(loc="upper left", fontsize=8)
    fig.suptitle(f"Membrane potential distribution — {layer}", fontsize=11)
    return _save(fig, path)


def plot_spike_rates(series: Mapping[str, Mapping[str, float]], path, title: str = "Layer-wise spike rate") -> Path:
    """Grouped bars of spike rate per layer, one colour per series (e.g. epochs; IM-Loss Fig. 2)."""
    labels = list(series)
    layers: list[str] = []
    for s in series.values():
        layers += [n for n in s if n not in layers]
    n, k = len(layers), max(len(labels), 1)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.45 * n * max(1, k / 2) + 2), 4.2))
    width = 0.8 / k
    x = np.arange(n)
    for i, label in enumerate(labels):
        vals = [series[label].get(name, np.nan) for name in layers]
        ax.bar(x + (i - (k - 1) / 2) * width, vals, width=width, label=label)
    ax.set_xticks(x)
    ax.set_xticklabels(layers, rotation=60 if n > 4 else 0, ha="right" if n > 4 else "center", fontsize=8)
    ax.set_xlabel("spiking layer")
    ax.set_ylabel("spike rate (spikes / neuron / step)")
    ax.set_ylim(0, max(0.05, min(1.0, 1.15 * np.nanmax([v for s in series.values() for v in s.values()] or [0]))))
    ax.set_title(title)
    if len(labels) > 1 or (labels and labels[0]):
        ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def plot_quantization_error(layers: Mapping[str, Mapping], path) -> Path:
    """Quantization error before and after MPR per layer (InfLoR Table 3, per layer)."""
    names = list(layers)
    before = [layers[n]["quantization_error_before"] for n in names]
    after = [layers[n]["quantization_error_after"] for n in names]
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(max(6.0, 0.5 * len(names) + 2), 4.0))
    ax.bar(x - 0.2, before, width=0.4, label="before MPR (H)", color="steelblue")
    ax.bar(x + 0.2, after, width=0.4, label="after MPR (φ(H))", color="darkorange")
    ax.set_xticks(x)
    ax.set_xticklabels(names, rotation=60 if len(names) > 4 else 0,
                       ha="right" if len(names) > 4 else "center", fontsize=8)
    ax.set_xlabel("spiking layer")
    ax.set_ylabel("quantization error  mean (u − o)²")
    ax.set_title("Quantization error per layer (InfLoR Eq. 9)")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def plot_energy(energy: Mapping, path) -> Path:
    """Per-layer ANN MACs against SNN operations (MACs of the analog layer + SOPs), log scale."""
    names = list(energy["layers"])
    ann = [energy["layers"][n]["ann_macs"] for n in names]
    snn = [energy["layers"][n]["sops"] + energy["layers"][n]["snn_macs"] for n in names]
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(max(6.0, 0.5 * len(names) + 2), 4.0))
    ax.bar(x - 0.2, ann, width=0.4, label="ANN MACs", color="gray")
    ax.bar(x + 0.2, snn, width=0.4, label="SNN ops (SOPs; MACs·T for analog input)", color="seagreen")
    ax.set_yscale("log")
    ax.set_xticks(x)
    ax.set_xticklabels(names, rotation=60 if len(names) > 4 else 0,
                       ha="right" if len(names) > 4 else "center", fontsize=8)
    ax.set_xlabel("conv / linear layer")
    ax.set_ylabel("operations per sample")
    tot = energy["total"]
    ax.set_title(f"Operations per layer — energy SNN {tot['snn_energy_pj'] / 1e6:.3g} µJ vs "
                 f"ANN {tot['ann_energy_pj'] / 1e6:.3g} µJ", fontsize=10)
    ax.legend(fontsize=8, loc="best")
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def plot_distribution_evolution(layer: str, spec: Mapping, hists: Mapping[str, Mapping], path,
                                v_threshold: float = 0.5, key: str = "before") -> Path:
    """One layer's membrane distribution at several epochs (RecDis Fig. 2): one panel per epoch."""
    labels = list(hists)
    fig, axes = plt.subplots(1, len(labels), figsize=(3.4 * len(labels) + 0.6, 3.4), sharey=True, squeeze=False)
    for ax, label in zip(axes[0], labels):
        _hist_bars(ax, spec, hists[label][key], "steelblue")
        _mark(ax, v_threshold, None)
        ax.set_title(label, fontsize=10)
        ax.set_xlabel("membrane potential H")
        ax.set_xlim(spec["lo"], spec["hi"])
    axes[0][0].set_ylabel("density")
    fig.suptitle(f"Membrane potential distribution during training — {layer}", fontsize=11)
    return _save(fig, path)


# --------------------------------------------------------------------------- curves

def read_metrics(path) -> dict[str, list]:
    """``metrics.csv`` as columns: numbers where they parse, else strings; empty cells -> NaN."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    cols: dict[str, list] = {}
    for row in rows:
        for k, v in row.items():
            if k is None:
                continue
            try:
                val = float(v) if v not in ("", None) else math.nan
            except ValueError:
                val = v
            cols.setdefault(k, []).append(val)
    return cols


def as_percent(values) -> list:
    """Accuracies in percent: a column whose values all lie in [0, 1] is multiplied by 100."""
    vals = [v for v in values if isinstance(v, float) and not math.isnan(v)]
    scale = 100.0 if vals and max(vals) <= 1.0 else 1.0
    return [v * scale if isinstance(v, float) else v for v in values]


def _numeric(col) -> bool:
    return all(isinstance(v, float) for v in col) and any(not math.isnan(v) for v in col)


def plot_metrics(metrics: Mapping[str, list], path, title: str = "Training curves") -> Path:
    """Loss-like columns (left) and accuracy-like columns (right) against the epoch."""
    xs_key = next((k for k in ("epoch", "step") if k in metrics), None)
    n = len(next(iter(metrics.values()), []))
    xs = metrics[xs_key] if xs_key else list(range(n))
    numeric = [k for k, v in metrics.items() if k != xs_key and _numeric(v)
               and any(not math.isnan(x) and x != 0 for x in v)]      # all-zero columns (losses off) left out
    acc = [k for k in numeric if "acc" in k.lower()]
    loss = [k for k in numeric if "loss" in k.lower()]
    other = [k for k in numeric if k not in acc and k not in loss and "time" not in k.lower()
             and k.lower() not in ("lr", "k", "esg_k")]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, keys, ylabel in ((axes[0], loss or other, "loss"), (axes[1], acc, "accuracy (%)")):
        for k in keys:
            ys = as_percent(metrics[k]) if k in acc else metrics[k]
            ax.plot(xs, ys, marker="o" if n < 30 else None, markersize=3, label=k)
        ax.set_xlabel(xs_key or "row")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        if keys:
            ax.legend(fontsize=8)
        else:
            ax.text(0.5, 0.5, "no such column", ha="center", va="center", transform=ax.transAxes, color="gray")
    fig.suptitle(title, fontsize=11)
    return _save(fig, path)


def plot_accuracy_curves(curves: Mapping[str, tuple[Sequence[float], Sequence[float]]], path,
                         title: str = "Test accuracy", ylabel: str = "test accuracy (%)") -> Path:
    """Test-accuracy curves of several runs on one axis (IM-Loss Fig. 4 style)."""
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for label, (xs, ys) in curves.items():
        ax.plot(xs, ys, label=label, linewidth=1.4)
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


# --------------------------------------------------------------------------- paper figures

def plot_mpr_curves(path, ks: Sequence[float] = (1, 3, 5, 7), v_threshold: float = 0.5) -> Path:
    """MPR response curves: InfLoR φ (Eq. 10, k = 3) and the AAAI φ for several k (AAAI Fig. 2,
    InfLoR Fig. 3), with the step function Θ(u − V_th) and the identity."""
    from .mpr import phi_inflor, phi_tanh

    u = torch.linspace(-1.0, 2.0, 1201, dtype=torch.float64)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.0))
    ax = axes[0]
    ax.plot(u, phi_inflor(u, 3.0), color="darkorange", linewidth=2, label="φ InfLoR (Eq. 10, k = 3)")
    ax.set_title("InfLoR-SNN MPR (Fig. 3)")
    ax2 = axes[1]
    for k in ks:
        ax2.plot(u, phi_tanh(u, float(k)), linewidth=1.4, label=f"k = {k:g}")
    ax2.set_title("AAAI'22 MPR for several k (Fig. 2)")
    for a in axes:
        a.plot(u, (u >= v_threshold).double(), color="royalblue", linewidth=1.2, label="spike Θ(u − V_th)")
        a.plot(u, u, color="gray", linestyle=":", linewidth=1, label="identity")
        a.axvline(v_threshold, color="crimson", linestyle="--", linewidth=0.8)
        a.set_xlabel("membrane potential u")
        a.set_ylabel("φ(u)")
        a.set_ylim(-1.0, 2.0)
        a.grid(alpha=0.3)
        a.legend(fontsize=8, loc="upper left")
    return _save(fig, path)


def plot_esg(path, k_min: float = 1.0, k_max: float = 10.0, num_epochs: int = 1000,
             ks: Sequence[float] = (1, 3, 10)) -> Path:
    """ESG (IM-Loss Fig. 3): the asymptotic tanh function and its gradient for several k, and the
    schedule K(i) of Eq. 15 over the epochs."""
    from .surrogate import Tanh, esg_k

    x = torch.linspace(-1.5, 1.5, 1201, dtype=torch.float64)
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.0))
    for k in ks:
        s = Tanh(float(k))
        axes[0].plot(x, s.primitive(x), label=f"k = {k:g}")
        axes[1].plot(x, s.grad(x), label=f"k = {k:g}")
    axes[0].plot(x, (x >= 0).double(), color="royalblue", linewidth=1.2, label="spike Θ(x)")
    axes[0].set_title("asymptotic function ½tanh(kx) + ½")
    axes[0].set_ylabel("φ_k(x)")
    axes[1].set_title("its gradient (k/2)(1 − tanh²(kx))")
    axes[1].set_ylabel("g(x)")
    for a in axes[:2]:
        a.set_xlabel("x = Ĥ − V_th")
        a.grid(alpha=0.3)
        a.legend(fontsize=8)
    i = np.arange(num_epochs)
    axes[2].plot(i, [esg_k(e, num_epochs, k_min, k_max) for e in i], color="seagreen")
    axes[2].set_title(f"ESG schedule K(i), K ∈ [{k_min:g}, {k_max:g}], N = {num_epochs}")
    axes[2].set_xlabel("epoch i")
    axes[2].set_ylabel("K(i)")
    axes[2].grid(alpha=0.3)
    return _save(fig, path)


def plot_redistribution(path, samples: int = 100_000, seed: int = 0, mean: float = 0.5, std: float = 1.0,
                        k: float = 3.0, v_threshold: float = 0.5) -> tuple[Path, dict]:
    """InfLoR Fig. 4: ``samples`` draws of N(mean, std) before and after the InfLoR MPR; returns
    the path and the two quantization errors (≈ 0.45 and 0.05 for N(½, 1))."""
    from .analysis import quantization_error
    from .mpr import phi_inflor

    g = torch.Generator().manual_seed(seed)
    u = torch.randn(samples, generator=g, dtype=torch.float64) * std + mean
    phi = phi_inflor(u, k)
    qe = (float(quantization_error(u, v_threshold)), float(quantization_error(phi, v_threshold)))
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    for ax, data, color, title, q in ((axes[0], u, "steelblue", f"N({mean:g}, {std:g}) before MPR", qe[0]),
                                      (axes[1], phi, "darkorange", "after MPR φ(u)", qe[1])):
        ax.hist(data.numpy(), bins=160, range=(-2.5, 3.5), density=True, color=color, alpha=0.85)
        ax.axvline(v_threshold, color="crimson", linestyle="--", linewidth=1.2, label=f"V_th = {v_threshold:g}")
        ax.set_title(f"{title}  (quant. error {q:.3f})", fontsize=10)
        ax.set_xlabel("membrane potential")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("density")
    axes[0].legend(fontsize=8)
    return _save(fig, path), {"samples": samples, "seed": seed, "quantization_error_before": qe[0],
                              "quantization_error_after": qe[1]}
