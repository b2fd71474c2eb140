"""``inflor analyze`` as a library call: measure a model, write ``analysis.json``, plots and an
HTML report.

    from inflor.analysis.report import analyze
    result = analyze(model, test_loader, "out/", max_batches=20)

``analysis.json`` (format ``inflor-analysis-v1``)::

    format, created, source{...}, data{...}, samples, batches, accuracy
    layers{name: {spike_rate, spike_rate_per_step, membrane_mean, membrane_std,
                  quantization_error_before, quantization_error_after, window_fraction,
                  unit_interval_fraction, mpd{D, S, M}, elements, channels, timesteps,
                  settings{v_threshold, decay, ..., mpr, surrogate, window, window_h}}}
    summary{mean over layers of the above; quantization_error_before/after pooled over elements}
    energy{constants_pj, layers{...}, total{...}}
    hist_spec{lo, hi, bins}, histograms{name: {before, after}}
    plots{kind: relative path or {layer: relative path}}
"""
from __future__ import annotations

import datetime as _dt
import html
import json
import math
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from torch import nn

from .. import plots
from ..energy import EnergyConstants
from .probe import run_probe

FORMAT = "inflor-analysis-v1"


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
            progress: bool = False, hist_range=None, hist_bins: int | None = None,
            mpd_options: Mapping | None = None) -> dict:
    """The numbers of ``analysis.json`` (without plots or source information). ``mpd_options``:
    ``k_d``, ``k_s``, ``k_m`` of the MPD terms (default: RecDis's 1, 0.25, 1.25)."""
    kw = {}
    if hist_range is not None:
        kw["hist_range"] = tuple(hist_range)
    if hist_bins is not None:
        kw["hist_bins"] = int(hist_bins)
    res = run_probe(model, loader, layers=layers, max_batches=max_batches, device=device,
                    progress=progress, mpd_options=mpd_options, **kw)
    layer_stats = res["layers"]
    for name, info in res["layer_info"].items():
        if name in layer_stats:
            layer_stats[name]["settings"] = info
    return {"format": FORMAT, "created": _dt.datetime.now().isoformat(timespec="seconds"),
            "samples": res["samples"], "batches": res["batches"], "accuracy": res["accuracy"],
            "layers": layer_stats, "summary": _summary(layer_stats),
            "energy": res["ops"].report(constants) if res["ops"] is not None and res["ops"].layers else None,
            "hist_spec": res["hist_spec"], "histograms": res["histograms"]}


def make_plots(result: dict, out_dir, hist_layers: Sequence[str] | None = None) -> dict:
    """Draw the analysis figures into ``out_dir``; returns ``{kind: relative path}``."""
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
            name, result["hist_spec"], result["histograms"][name],
            out / "histograms" / f"{plots.safe_name(name)}.png", v_threshold=st.get("v_threshold", 0.5),
            window=st.get("window"), window_h=st.get("window_h"),
            qe=(s["quantization_error_before"], s["quantization_error_after"]), has_mpr=st.get("mpr") is not None)
        hists[name] = str(p.relative_to(out))
    made["histograms"] = hists
    return made


def _fmt(v, digits=4) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if v != 0 and (abs(v) >= 1e5 or abs(v) < 1e-3):
            return f"{v:.3e}"
        return f"{v:.{digits}f}"
    return html.escape(str(v))


def _table(headers: Sequence[str], rows: Sequence[Sequence]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


CSS = """body{font-family:system-ui,sans-serif;max-width:1150px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;font-size:13px;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:3px 7px;text-align:right}
th{background:#f3f3f3}td:first-child{text-align:left;font-family:monospace}img{max-width:100%;border:1px solid #eee;margin:.3em 0}
pre{background:#f7f7f7;padding:.8em;overflow:auto;font-size:12px}h2{border-bottom:1px solid #ddd;padding-bottom:.2em}
.note{color:#666;font-size:13px}"""


def write_html_report(result: dict, out_dir, config_text: str | None = None) -> Path:
    """``report.html`` showing every plot of ``result["plots"]``, the layer and energy tables and
    the run's config; paths are relative so the folder can be moved as a whole."""
    out = Path(out_dir)
    src = result.get("source", {})
    p = result.get("plots", {})
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>inflor analysis</title>"
             f"<style>{CSS}</style></head><body>",
             "<h1>inflor analysis</h1>"]
    info_rows = [[html.escape(k), _fmt(v)] for k, v in src.items() if not isinstance(v, (dict, list))]
    info_rows += [["samples", _fmt(result["samples"])], ["batches", _fmt(result["batches"])],
                  ["accuracy (%)", _fmt(None if result.get("accuracy") is None else 100 * result["accuracy"], 2)]]
    if result.get("data"):
        info_rows += [[f"data.{k}", _fmt(v)] for k, v in result["data"].items()]
    parts.append(_table(["", "value"], info_rows))
    if p.get("metrics"):
        parts.append("<h2>Training curves</h2>")
        parts.append(f"<img src='{html.escape(p['metrics'])}' alt='training curves'>")
    parts.append("<h2>Spiking layers</h2>")
    rows = []
    for name, s in result["layers"].items():
        rows.append([html.escape(name), _fmt(s["spike_rate"]), _fmt(s["membrane_mean"]), _fmt(s["membrane_std"]),
                     _fmt(s["quantization_error_before"]), _fmt(s["quantization_error_after"]),
                     _fmt(s["window_fraction"]), _fmt(s["mpd"]["D"]), _fmt(s["mpd"]["S"]), _fmt(s["mpd"]["M"])])
    parts.append(_table(["layer", "spike rate", "mean H", "std H", "QE before MPR", "QE after MPR",
                         "in window", "L_D", "L_S", "L_M"], rows))
    parts.append("<p class='note'>QE: quantization error mean (u − Θ(u − V_th))² (InfLoR Eq. 9) of H and "
                 "of φ(H); in window: fraction with g(φ(H) − V_th) ≥ ½ g(0); L_D, L_S, L_M: channel means "
                 "of the MPD-Loss terms (RecDis Eq. 10, 13, 17). See docs/analysis.md.</p>")
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
        rows = [[html.escape(n), html.escape(v["type"]), _fmt(v["ann_macs"], 0), _fmt(v["input_rate"]),
                 _fmt(v["snn_macs"], 0), _fmt(v["sops"], 0), _fmt(v["snn_energy_pj"] / 1e6, 4),
                 _fmt(v["ann_energy_pj"] / 1e6, 4)] for n, v in e["layers"].items()]
        t = e["total"]
        rows.append(["<b>total</b>", "", _fmt(t["ann_macs"], 0), "", _fmt(t["snn_macs"], 0), _fmt(t["sops"], 0),
                     _fmt(t["snn_energy_pj"] / 1e6, 4), _fmt(t["ann_energy_pj"] / 1e6, 4)])
        parts.append(_table(["layer", "type", "ANN MACs", "input rate", "SNN MACs", "SOPs", "SNN µJ", "ANN µJ"], rows))
        c = e["constants_pj"]
        ratio = t.get("energy_ratio_ann_over_snn")
        parts.append(f"<p class='note'>E_MAC = {c['e_mac']:g} pJ, E_AC = {c['e_ac']:g} pJ ({html.escape(e['source'])}). "
                     f"ANN / SNN energy: {_fmt(ratio, 2)}×.</p>")
        if p.get("energy"):
            parts.append(f"<img src='{html.escape(p['energy'])}' alt='operations per layer'>")
    if config_text:
        parts.append(f"<h2>Run configuration</h2><pre>{html.escape(config_text)}</pre>")
    parts.append("<p class='note'>All numbers: <a href='analysis.json'>analysis.json</a>; their meaning: "
                 "docs/analysis.md.</p></body></html>")
    path = out / "report.html"
    path.write_text("\n".join(parts), encoding="utf-8")
    return path


def analyze(model: nn.Module, loader: Iterable, out_dir, layers: Sequence[str] | None = None,
            max_batches: int | None = None, hist_layers: Sequence[str] | None = None, device="cpu",
            constants: EnergyConstants | None = None, source: Mapping | None = None,
            data: Mapping | None = None, config_text: str | None = None, metrics: Mapping | None = None,
            progress: bool = False, hist_range=None, hist_bins: int | None = None, run_dir=None,
            mpd_options: Mapping | None = None) -> dict:
    """Measure, plot and report; returns the analysis dict (also written to ``analysis.json``).
    With ``run_dir``, the run's training-time snapshots (if any) are drawn into the report too."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    result = measure(model, loader, layers, max_batches, device, constants, progress, hist_range, hist_bins,
                     mpd_options)
    result["source"] = dict(source or {})
    result["data"] = dict(data or {})
    result["plots"] = make_plots(result, out, hist_layers)
    if metrics:
        result["plots"]["metrics"] = plots.plot_metrics(metrics, out / "metrics.png").name
    if run_dir is not None:
        from .snapshot import load_snapshots, plot_snapshots
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
