"""Figures: membrane histograms, layer-wise spike rates, the MPR / ESG / redistribution figures of
the papers, metric and accuracy curves. Every function writes one PNG and returns its path.

Plots take plain numbers (as stored in ``analysis.json``, snapshots and ``metrics.csv``), so they
can be redrawn without the model. matplotlib runs with the non-interactive Agg backend.

One module per kind of figure: ``figure`` (what every figure shares: the Agg backend, saving, the
words on a PNG), ``layers`` (analysis figures of a model's layers), ``curves`` (metrics.csv and
runs compared) and ``paper`` (the papers' figures); every public name is importable from here.
"""
from __future__ import annotations

from ..runs.metrics import read_metrics  # noqa: F401  (metrics.csv as columns; re-exported)
from .figure import DPI, _save, figure_texts, read_png_texts, safe_name, whole_epochs  # noqa: F401
from .layers import (COLORS, H_UNIT, TAIL_PANEL_MIN, _density_panel, _hidden, _hist_legend,  # noqa: F401
                     _mark, _outside_text, _pct, _tails_panel, plot_distribution_evolution, plot_energy,
                     plot_membrane_histogram, plot_quantization_error, plot_spike_rates)
from .curves import (COMPARE_PANELS, METRIC_NAMES, METRIC_UNITS, _numeric, as_percent,  # noqa: F401
                     plot_compare, plot_metrics)
from .paper import plot_esg, plot_mpr_curves, plot_redistribution  # noqa: F401
