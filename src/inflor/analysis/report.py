"""``inflor analyze`` as a library call: measure a model, write ``analysis.json``, plots and an
HTML report.

    from inflor.analysis.report import analyze
    result = analyze(model, test_loader, "out/", max_batches=20)

``analysis.json`` (format ``inflor-analysis-v2``)::

    format, created, source{...}, data{...}, samples, batches, accuracy
    layers{name: {spike_rate, spike_rate_per_step, membrane_mean, membrane_std,
                  quantization_error_before, quantization_error_after, window_fraction,
                  unit_interval_fraction, fraction_below_0, fraction_in_0_1, fraction_above_1,
                  mpd{D, S, M}, elements, channels, timesteps,
                  settings{v_threshold, decay, ..., mpr, surrogate, window, window_h}}}
    summary{mean over layers of the above; quantization_error_before/after pooled over elements}
    energy{constants_pj, layers{...}, total{...}}
    plots{kind: relative path or {layer: relative path}}
    hist_spec{coverage, bins, range}: how the histogram figures chose their range
    histograms{name: {before, after}}: binned dicts {lo, width, counts, below, above, nonfinite}
                                        holding every value (inflor.analysis.histogram)
"""
from __future__ import annotations

import datetime as _dt
import html
import json
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from torch import nn

from .. import plots
from ..energy import EnergyConstants
from . import histogram
from .htmlpage import fmt, page, table
from .probe import run_probe
from .snapshot import load_snapshots, plot_snapshots

FORMAT = "inflor-analysis-v2"
#: the keys of RecDis's split of H: below 0, inside [0, 1], above 1
SPLIT_KEYS = ("fraction_below_0", "fraction_in_0_1", "fraction_above_1")


def _summary(layers: Mapping[str, Mapping]) -> dict:
    if not layers:
        return {}
    n = sum(v["elements"] for v in layers.values())
    pooled = lambda key: sum(v[key] * v["elements"] for v in layers.values()) / n  # noqa: E731
    mean = lambda key: sum(v[key] for v in layers.values()) / len(layers)  # noqa: E731
    return {"layers": len(layers),
            "spike_rate": pooled("spike_rate"),
            "quantization_error_before": pooled("quantization_error_before"),
            "quantization_error_after": pooled("quantization_error_after"),
            "mean_layer_quantization_error_before": mean("quantization_error_before"),
            "mean_layer_quantization_error_after": mean("quantization_error_after"),
            "mpd": {k: sum(v["mpd"][k] for v in layers.values()) / len(layers) for k in "DSM"}}


def measure(model: nn.Module, loader: Iterable, layers: Sequence[str] | None = None,
            max_batches: int | None = None, device="cpu", constants: EnergyConstants | None = None,
            progress: bool = False, mpd_options: Mapping | None = None) -> dict:
    """The numbers of ``analysis.json`` (without plots or source information). ``mpd_options``:
    ``k_d``, ``k_s``, ``k_m`` of the MPD terms (default: RecDis's 1, 0.25, 1.25)."""
    res = run_probe(model, loader, layers=layers, max_batches=max_batches, device=device,
                    progress=progress, mpd_options=mpd_options)
    layer_stats = res["layers"]
    for name, info in res["layer_info"].items():
        if name in layer_stats:
            layer_stats[name]["settings"] = info
    return {"format": FORMAT, "created": _dt.datetime.now().isoformat(timespec="seconds"),
            "samples": res["samples"], "batches": res["batches"], "accuracy": res["accuracy"],
            "layers": layer_stats, "summary": _summary(layer_stats),
            "energy": res["ops"].report(constants) if res["ops"] is not None and res["ops"].layers else None,
            "histograms": res["histograms"]}


def make_plots(result: dict, out_dir, hist_layers: Sequence[str] | None = None,
               hist_range: Sequence[float] | None = None, hist_bins: int | None = None) -> dict:
    """Draw the analysis figures into ``out_dir``; returns ``{kind: relative path}``. The
    histograms span ``hist_range`` or a range chosen from each layer's data, in ``hist_bins``
    bins (see ``inflor.plots.plot_membrane_histogram``)."""
    out = Path(out_dir)
    layers = result["layers"]
    made: dict = {}
    made["spike_rate"] = plots.plot_spike_rates({"": {n: v["spike_rate"] for n, v in layers.items()}},
                                                out / "spike_rate.png").name
    made["quantization_error"] = plots.plot_quantization_error(layers, out / "quantization_error.png").name
    if result.get("energy"):
        made["energy"] = plots.plot_energy(result["energy"], out / "energy.png").name
    chosen = list(layers) if not hist_layers else [n for n in layers if n in set(hist_layers)]
    hists = {}
    for name in chosen:
        s = layers[name]
        st = s.get("settings", {})
        p = plots.plot_membrane_histogram(
            name, result["histograms"][name], out / "histograms" / f"{plots.safe_name(name)}.png",
            v_threshold=st.get("v_threshold", 0.5), window=st.get("window"), window_h=st.get("window_h"),
            qe=(s["quantization_error_before"], s["quantization_error_after"]), has_mpr=st.get("mpr") is not None,
            hist_range=hist_range, bins=hist_bins or histogram.DISPLAY_BINS)
        hists[name] = str(p.relative_to(out))
    made["histograms"] = hists
    return made


def write_html_report(result: dict, out_dir, config_text: str | None = None) -> Path:
    """``report.html`` showing every plot of ``result["plots"]``, the layer and energy tables and
    the run's config; paths are relative so the folder can be moved as a whole."""
    out = Path(out_dir)
    src = result.get("source", {})
    p = result.get("plots", {})
    parts = []
    info_rows = [[html.escape(k), fmt(v)] for k, v in src.items() if not isinstance(v, (dict, list))]
    info_rows += [["samples", fmt(result["samples"])], ["batches", fmt(result["batches"])],
                  ["accuracy (%)", fmt(None if result.get("accuracy") is None else 100 * result["accuracy"], 2)]]
    if result.get("data"):
        info_rows += [[f"data.{k}", fmt(v)] for k, v in result["data"].items()]
    parts.append(table(["", "value"], info_rows))
    if p.get("metrics"):
        parts.append("<h2>Training curves</h2>")
        parts.append(f"<img src='{html.escape(p['metrics'])}' alt='training curves'>")
    parts.append("<h2>Spiking layers</h2>")
    rows = []
    for name, s in result["layers"].items():
        rows.append([html.escape(name), fmt(s["spike_rate"]), fmt(s["membrane_mean"]), fmt(s["membrane_std"]),
                     *(fmt(100 * s[k], 1) for k in SPLIT_KEYS),
                     fmt(s["quantization_error_before"]), fmt(s["quantization_error_after"]),
                     fmt(s["window_fraction"]), fmt(s["mpd"]["D"]), fmt(s["mpd"]["S"]), fmt(s["mpd"]["M"])])
    parts.append(table(["layer", "spike rate", "mean H", "std H", "H < 0 (%)", "0 ≤ H ≤ 1 (%)", "H > 1 (%)",
                        "QE before MPR", "QE after MPR", "in window", "L_D", "L_S", "L_M"], rows))
    parts.append("<p class='note'>H &lt; 0, 0 ≤ H ≤ 1, H &gt; 1: RecDis's split of the membrane potential. "
                 "Below 0 a neuron stays silent and gets no gradient from the rectangle surrogate; above 1 it "
                 "fires and gets none either (mass outside [0, 1] is RecDis's saturation; nearly all of it on one "
                 "side of V_th, its degeneration); inside [0, 1] is the rectangle's gradient window, where too "
                 "much mass means gradient mismatch. QE: quantization error "
                 "mean (u − Θ(u − V_th))² (InfLoR Eq. 9) of H and of φ(H); in window: fraction with "
                 "g(φ(H) − V_th) ≥ ½ g(0); L_D, L_S, L_M: channel means of the MPD-Loss terms (RecDis "
                 "Eq. 10, 13, 17). See docs/analysis.md.</p>")
    snaps = p.get("snapshots")
    if snaps:
        parts.append("<h2>During training (snapshots)</h2>")
        parts.append(f"<img src='{html.escape(snaps['spike_rates'])}' alt='spike rate per layer and epoch'>")
        for name, rel in snaps["distributions"].items():
            parts.append(f"<img src='{html.escape(rel)}' alt='membrane distribution of {html.escape(name)} by epoch'>")
    for key, title in (("spike_rate", "Spike rate per layer"), ("quantization_error", "Quantization error")):
        if p.get(key):
            parts.append(f"<h2>{title}</h2><img src='{html.escape(p[key])}' alt='{html.escape(title)}'>")
    if p.get("histograms"):
        parts.append("<h2>Membrane potential distributions</h2>")
        for name, rel in p["histograms"].items():
            parts.append(f"<h3>{html.escape(name)}</h3><img src='{html.escape(rel)}' "
                         f"alt='membrane histogram {html.escape(name)}'>")
    e = result.get("energy")
    if e:
        parts.append("<h2>Operations and energy (per sample)</h2>")
        rows = [[html.escape(n), html.escape(v["type"]), fmt(v["ann_macs"], 0), fmt(v["input_rate"]),
                 fmt(v["snn_macs"], 0), fmt(v["sops"], 0), fmt(v["snn_energy_pj"] / 1e6, 4),
                 fmt(v["ann_energy_pj"] / 1e6, 4)] for n, v in e["layers"].items()]
        t = e["total"]
        rows.append(["<b>total</b>", "", fmt(t["ann_macs"], 0), "", fmt(t["snn_macs"], 0), fmt(t["sops"], 0),
                     fmt(t["snn_energy_pj"] / 1e6, 4), fmt(t["ann_energy_pj"] / 1e6, 4)])
        parts.append(table(["layer", "type", "ANN MACs", "input rate", "SNN MACs", "SOPs", "SNN µJ", "ANN µJ"], rows))
        c = e["constants_pj"]
        ratio = t.get("energy_ratio_ann_over_snn")
        parts.append(f"<p class='note'>E_MAC = {c['e_mac']:g} pJ, E_AC = {c['e_ac']:g} pJ ({html.escape(e['source'])}). "
                     f"ANN / SNN energy: {fmt(ratio, 2)}×.</p>")
        if p.get("energy"):
            parts.append(f"<img src='{html.escape(p['energy'])}' alt='operations per layer'>")
    if config_text:
        parts.append(f"<h2>Run configuration</h2><pre>{html.escape(config_text)}</pre>")
    parts.append("<p class='note'>All numbers: <a href='analysis.json'>analysis.json</a>; their meaning: "
                 "docs/analysis.md.</p>")
    path = out / "report.html"
    path.write_text(page("inflor analysis", parts), encoding="utf-8")
    return path


def analyze(model: nn.Module, loader: Iterable, out_dir, layers: Sequence[str] | None = None,
            max_batches: int | None = None, hist_layers: Sequence[str] | None = None, device="cpu",
            constants: EnergyConstants | None = None, source: Mapping | None = None,
            data: Mapping | None = None, config_text: str | None = None, metrics: Mapping | None = None,
            progress: bool = False, hist_range=None, hist_bins: int | None = None, run_dir=None,
            mpd_options: Mapping | None = None) -> dict:
    """Measure, plot and report; returns the analysis dict (also written to ``analysis.json``).
    ``hist_range`` / ``hist_bins`` fix the range and bins of the histogram figures (default: a
    range chosen from each layer's values, 160 bins). With ``run_dir``, the run's training-time
    snapshots (if any) are drawn into the report too."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    result = measure(model, loader, layers, max_batches, device, constants, progress, mpd_options)
    result["source"] = dict(source or {})
    result["data"] = dict(data or {})
    result["hist_spec"] = {"coverage": histogram.COVERAGE, "bins": int(hist_bins or histogram.DISPLAY_BINS),
                           "range": [float(v) for v in hist_range] if hist_range is not None else None}
    result["plots"] = make_plots(result, out, hist_layers, hist_range, hist_bins)
    if metrics:
        result["plots"]["metrics"] = plots.plot_metrics(metrics, out / "metrics.png").name
    if run_dir is not None:
        if load_snapshots(run_dir):
            made = plot_snapshots(run_dir, out / "snapshots")
            result["plots"]["snapshots"] = {
                "spike_rates": f"snapshots/{made['spike_rates']}",
                "distributions": {k: f"snapshots/{v}" for k, v in made["distributions"].items()}}
    # the key order of the JSON: small things first, histograms last
    ordered = {k: result[k] for k in ("format", "created", "source", "data", "samples", "batches", "accuracy",
                                      "summary", "layers", "energy", "plots", "hist_spec", "histograms")}
    (out / "analysis.json").write_text(json.dumps(ordered, indent=1), encoding="utf-8")
    write_html_report(ordered, out, config_text)
    return ordered
