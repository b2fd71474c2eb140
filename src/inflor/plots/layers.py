"""Analysis figures of a model's layers: membrane histograms (and their evolution during
training), layer-wise spike rates, quantization error and energy."""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from ..analysis import histogram as hg
from .figure import _save


#: a histogram whose main panel leaves out more than this fraction of the values gets a second
#: panel with the whole range on a log density scale
TAIL_PANEL_MIN = 0.001
H_UNIT = "(spike value = 1)"
COLORS = {"before": "steelblue", "after": "darkorange"}


def _pct(f: float) -> str:
    """A fraction in percent with the digits it needs (0.04 % rather than 0.0 %)."""
    p = 100.0 * f
    return "0 %" if p == 0 else f"{p:.2g} %" if p < 1 else f"{p:.1f} %"


def _outside_text(view: Mapping, qe_share: float | None = None, short: bool = False) -> str:
    """"outside the view: 0.6 % below, 0.3 % above (31 % of the QE)" (``short``: "outside: ...")."""
    if view["outside"] == 0:
        return "all values in view"
    text = (f"outside{'' if short else ' the view'}: {_pct(view['outside_below'])} below, "
            f"{_pct(view['outside_above'])} above")
    return text + (f" ({_pct(qe_share)} of the QE)" if qe_share is not None and qe_share >= 0.005 else "")


def _hidden(d: Mapping, rng: Sequence[float], bins: int) -> float:
    """The fraction of ``d``'s values a main panel over ``rng`` (on its display grid) leaves out."""
    lo, hi, n = hg.display_grid(d, rng[0], rng[1], bins)
    return hg.rebin(d, lo, hi, n)["outside"]


def _density_panel(ax, d: Mapping, lo: float, hi: float, bins: int, color: str) -> dict:
    """Linear density of the binned dict ``d`` over about ``[lo, hi]`` (widened to whole stored
    bins, ``hg.display_grid``); returns ``hg.rebin``'s view, with the range drawn as ``range``."""
    lo, hi, n = hg.display_grid(d, lo, hi, bins)
    view = hg.rebin(d, lo, hi, n)
    ax.stairs(view["density"], view["edges"], fill=True, color=color, alpha=0.9, linewidth=0, zorder=2)
    ax.set_xlim(lo, hi)
    ax.set_ylim(bottom=0)
    ax.set_ylabel("density (fraction / unit)")
    return dict(view, range=(lo, hi))


def _tails_panel(ax, d: Mapping, view_lo: float, view_hi: float, color: str, v_threshold: float,
                 span: tuple[float, float] | None = None, bins: int = 200) -> None:
    """The whole range of ``d`` (or ``span``) on a log density scale, the main panel's range
    shaded, so values the main panel leaves out are seen."""
    lo, hi = span or hg.occupied_range(d) or (view_lo, view_hi)
    lo, hi, n = hg.display_grid(d, min(lo, view_lo), max(hi, view_hi), bins)
    whole = hg.rebin(d, lo, hi, n)
    dens = whole["density"]
    floor = dens[dens > 0].min() / 3 if (dens > 0).any() else 1e-6
    ax.stairs(np.maximum(dens, floor), whole["edges"], baseline=floor, fill=True, color=color, alpha=0.9,
              linewidth=0, zorder=2)
    ax.set_yscale("log")
    ax.set_xlim(lo, hi)
    ax.axvspan(view_lo, view_hi, color="0.5", alpha=0.18, linewidth=0, zorder=0)
    ax.axvline(v_threshold, color="crimson", linestyle="--", linewidth=1.0, zorder=3)
    ax.set_ylabel("density (log scale)")
    beyond = (d.get("below", 0) + d.get("above", 0)) / max(hg.total(d), 1)
    note = f"; {_pct(beyond)} beyond the recorded bins" if beyond else ""
    ax.set_title(f"whole range [{lo:.3g}, {hi:.3g}], log density{note}", fontsize=9)


def _mark(ax, v_threshold: float, window):
    """V_th, the surrogate window and the spike values 0 and 1 on a histogram panel."""
    ax.axvline(v_threshold, color="crimson", linestyle="--", linewidth=1.2, zorder=3)
    if window is not None:
        ax.axvspan(window[0], window[1], color="gold", alpha=0.3, linewidth=0, zorder=0)
    for s in (0.0, 1.0):
        ax.axvline(s, color="0.3", linewidth=0.9, linestyle=":", zorder=3)


def _hist_legend(fig, v_threshold: float, with_window: bool, with_tails: bool, kinds=("before", "after"),
                 names=("H", "φ(H)")) -> None:
    """One legend below the panels naming the bars, V_th, the window, the spike values and the
    shaded main range."""
    handles = [Patch(color=COLORS[k], alpha=0.9, label=f"{n} histogram") for k, n in zip(kinds, names)]
    handles.append(Line2D([], [], color="crimson", linestyle="--", label=f"threshold V_th = {v_threshold:g}"))
    if with_window:
        handles.append(Patch(color="gold", alpha=0.4, label="surrogate gradient window"))
    handles.append(Line2D([], [], color="0.3", linestyle=":", label="spike values 0 and 1"))
    if with_tails:
        handles.append(Patch(color="0.5", alpha=0.3, label="range of the panel above"))
    ncol = len(handles) if len(kinds) > 1 else (len(handles) + 1) // 2
    fig.legend(handles=handles, loc="outside lower center", ncol=ncol, fontsize=8, frameon=False)


def plot_membrane_histogram(layer: str, hists: Mapping, path, v_threshold: float = 0.5, window=None,
                            window_h=None, qe: tuple[float, float] | None = None, has_mpr: bool = True,
                            hist_range: Sequence[float] | None = None, bins: int = hg.DISPLAY_BINS,
                            coverage: float = hg.COVERAGE) -> Path:
    """Histograms of H (left) and, with MPR, of φ(H), what Θ sees (right), for one layer (InfLoR
    Fig. 5); without MPR Θ sees H itself and one column is drawn.

    ``hists``: ``{"before": binned dict of H, "after": binned dict of φ(H)}`` (see
    ``inflor.analysis.histogram``). Each main panel spans ``hist_range`` or, by default, the
    central ``coverage`` of its values with 0, 1, V_th and the surrogate window, and its title
    gives the shares of values below and above it (and of the quantization error they carry);
    when more than ``TAIL_PANEL_MIN`` of them lie outside, a panel below shows the whole range
    on a log scale."""
    if has_mpr:
        cols = (("before", "H", "before MPR", window_h, 0), ("after", "φ(H)", "after MPR, what Θ sees", window, 1))
    else:
        cols = (("before", "H", "no MPR, Θ sees H", window, 0),)
    ranges = [tuple(hist_range) if hist_range else
              hg.display_range(hists[key], [0.0, 1.0, v_threshold, *(win or [])], coverage)
              for key, _, _, win, _ in cols]
    wanted = [_hidden(hists[c[0]], rng, bins) > TAIL_PANEL_MIN for c, rng in zip(cols, ranges)]
    rows = 2 if any(wanted) else 1
    fig, axes = plt.subplots(rows, len(cols), figsize=(5.6 * len(cols) + 1.4, 4.4 + 2.4 * (rows - 1)),
                             squeeze=False, layout="constrained", gridspec_kw={"height_ratios": [1.0, 0.62][:rows]})
    for j, (key, name, what, win, qi) in enumerate(cols):
        ax = axes[0][j]
        view = _density_panel(ax, hists[key], *ranges[j], bins, COLORS[key])
        _mark(ax, v_threshold, win)
        share = hg.qe_share_outside(hists[key], *view["range"], v_threshold)
        head = f"{name} ({what})" + (f" — quant. error {qe[qi]:.3f}" if qe is not None else "")
        ax.set_title(f"{head}\n{_outside_text(view, share)}", fontsize=9)
        ax.set_xlabel(f"membrane potential {name} {H_UNIT}")
        if rows == 2 and wanted[j]:
            _tails_panel(axes[1][j], hists[key], *view["range"], COLORS[key], v_threshold)
            axes[1][j].set_xlabel(f"membrane potential {name} {H_UNIT}")
        elif rows == 2:
            fig.delaxes(axes[1][j])
    _hist_legend(fig, v_threshold, any(c[3] is not None for c in cols), any(wanted),
                 kinds=[c[0] for c in cols], names=[c[1] for c in cols])
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
    ax.set_ylabel("operations per sample (log scale)")
    tot = energy["total"]
    ax.set_title(f"Operations per layer — energy SNN {tot['snn_energy_pj'] / 1e6:.3g} µJ vs "
                 f"ANN {tot['ann_energy_pj'] / 1e6:.3g} µJ", fontsize=10)
    lo, hi = ax.get_ylim()
    ax.set_ylim(lo, hi * (hi / lo) ** 0.25)             # head room on the log scale for the legend
    ax.legend(fontsize=8, loc="upper left")
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def plot_distribution_evolution(layer: str, hists: Mapping[str, Mapping], path, v_threshold: float = 0.5,
                                key: str = "before", bins: int = hg.DISPLAY_BINS,
                                coverage: float = hg.COVERAGE) -> Path:
    """One layer's membrane distribution at several epochs (RecDis Fig. 2): one panel per epoch
    on one shared range (the union of each epoch's central ``coverage`` with 0, 1 and V_th);
    when a panel leaves out more than ``TAIL_PANEL_MIN`` of its values, a row below shows every
    epoch's whole range on a log scale. ``hists``: ``{label: {key: binned dict}}``."""
    labels = list(hists)
    ranges = [hg.display_range(hists[lab][key], (0.0, 1.0, v_threshold), coverage) for lab in labels]
    widest = max((hists[lab][key] for lab in labels), key=lambda d: d["width"])
    lo, hi, bins = hg.display_grid(widest, min(r[0] for r in ranges), max(r[1] for r in ranges), bins)
    outside = [_hidden(hists[lab][key], (lo, hi), bins) for lab in labels]
    rows = 2 if max(outside) > TAIL_PANEL_MIN else 1
    fig, axes = plt.subplots(rows, len(labels), figsize=(3.4 * len(labels) + 0.8, 3.6 + 2.2 * (rows - 1)),
                             squeeze=False, layout="constrained", gridspec_kw={"height_ratios": [1.0, 0.62][:rows]})
    occupied = [hg.occupied_range(hists[lab][key]) for lab in labels]
    span = (min(o[0] for o in occupied if o), max(o[1] for o in occupied if o)) if any(occupied) else None
    for j, lab in enumerate(labels):
        ax = axes[0][j]
        view = _density_panel(ax, hists[lab][key], lo, hi, bins, COLORS["before"])
        _mark(ax, v_threshold, None)
        ax.set_title(f"{lab}\n{_outside_text(view, short=True)}", fontsize=9)
        ax.set_xlabel(f"membrane potential H {H_UNIT}", fontsize=9)
        if rows == 2:
            _tails_panel(axes[1][j], hists[lab][key], lo, hi, COLORS["before"], v_threshold, span=span)
            axes[1][j].set_xlabel(f"membrane potential H {H_UNIT}", fontsize=9)
            axes[1][j].set_title(f"{lab}: whole range, log density", fontsize=9)
    _hist_legend(fig, v_threshold, False, rows == 2, kinds=("before",), names=("H",))
    fig.suptitle(f"Membrane potential distribution during training — {layer}", fontsize=11)
    return _save(fig, path)
