"""``inflor compare``: several runs in one table and one figure. Each run is named by what sets it
apart: the config keys whose values differ among the compared runs (``neuron=srif``,
``neuron=if, mpd.weight=2``), which are also columns of the table, next to the paper row, best
and final test accuracy, epochs and wall time. The figure shows test accuracy, training loss and
spike rate per epoch (IM-Loss Fig. 4 style). Writes compare.md, compare.json, compare.png and
compare.html."""
from __future__ import annotations

import argparse
import html
import json
import os
from pathlib import Path

PROG = "inflor compare"


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("compare", help="table and curves of several runs, named by what differs",
                              description=__doc__)
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run directories made by 'inflor train'")
    p.add_argument("--labels", nargs="+", default=None, metavar="LABEL",
                   help="names for the runs, in order (default: the config keys that differ among them)")
    p.add_argument("--title", default=None,
                   help="title of the figure and the page (default: 'N runs differing in KEYS')")
    p.add_argument("--out", default="compare", metavar="DIR", help="output folder (default: ./compare)")
    p.set_defaults(func=run)
    return p


def default_title(n: int, keys: list[str]) -> str:
    """``"4 runs differing in neuron, mpd.weight"`` (``"4 runs compared"`` when no key differs)."""
    if not keys:
        return f"{n} runs compared"
    shown = ", ".join(keys[:4]) + (f" and {len(keys) - 4} more keys" if len(keys) > 4 else "")
    return f"{n} runs differing in {shown}"


def _series(records) -> dict:
    """``{metric: {label: (epochs, values)}}`` for ``plots.plot_compare``, runs without a metric
    left out of its panel."""
    out: dict = {}
    for r in records:
        for key, s in r["curve"].items():
            if s["epoch"]:
                out.setdefault(key, {})[r["label"]] = (s["epoch"], s["value"])
    return out


def _analysis_link(run_dir: str, out: Path) -> str:
    """A link to the run's ``inflor analyze`` report, relative to ``out``, or ``–``."""
    report = Path(run_dir) / "analysis" / "report.html"
    if not report.is_file():
        return "–"
    rel = os.path.relpath(report, out)
    return f"<a href='{html.escape(rel)}'>report</a>"


def write_html(records, key_names: dict, figure: str | None, out: Path, title: str) -> Path:
    """``compare.html``: the table (with a link to each run's analysis report when it has one),
    the full names of the distinguishing keys, the figure and the run folders."""
    from ..analysis.htmlpage import fmt, page, table
    from ..analysis.tables import duration, epochs_text, key_columns

    keys = key_columns(records)
    with_paper = any(r.get("paper") for r in records)
    rows = [[html.escape(r["label"]), *(html.escape((r.get("differs") or {}).get(k, "–")) for k in keys),
             *([html.escape(r["paper"] or "–")] if with_paper else []), fmt(r["best_acc"], 2), fmt(r["final_acc"], 2),
             html.escape(epochs_text(r)), html.escape(duration(r["wall_time"])), _analysis_link(r["run_dir"], out),
             html.escape(r["run_dir"])]
            for r in records]
    parts = [table(["run", *keys, *(["paper row (reported %)"] if with_paper else []), "best acc (%)",
                    "final acc (%)", "epochs", "wall time", "analysis", "folder"], rows)]
    if key_names:
        parts.append("<p class='note'>Runs are named by the config keys whose values differ among them: "
                     + "; ".join(f"<code>{html.escape(short)}</code> = <code>{html.escape(full)}</code>"
                                 for full, short in key_names.items())
                     + ". Keys that switch something off (0, false, null) are left out of a name when other keys "
                       "say what the run is; the table shows every value.</p>")
    if figure:
        parts.append(f"<img src='{html.escape(figure)}' alt='test accuracy, training loss and spike rate per epoch'>")
        parts.append("<p class='note'>Training loss: the task loss (cross-entropy, without the MPD / IM "
                     "regularisers, so runs with and without them compare fairly). Spike rate: spikes per neuron "
                     "and time step on the test set. All numbers: <a href='compare.json'>compare.json</a>.</p>")
    path = out / "compare.html"
    path.write_text(page(title, parts), encoding="utf-8")
    return path


def _today(cfg: dict) -> dict:
    """A run's saved config in today's spelling and with today's defaults, so that a run saved by an
    earlier inflor differs from a new one only where their settings do (as-saved when it does not
    validate: it is still compared key by key)."""
    from ..config import ConfigError, upgrade_saved_config, validate_config

    if not cfg:
        return cfg
    try:
        return validate_config(upgrade_saved_config(cfg))
    except ConfigError:
        return cfg


def run(args) -> int:
    from .. import plots
    from ..analysis.ablation import describe_runs
    from ..analysis.runs import AnalysisError, read_run_config
    from ..analysis.tables import compare_table, run_record

    if args.labels is not None and len(args.labels) != len(args.runs):
        raise AnalysisError(f"--labels gives {len(args.labels)} names for {len(args.runs)} runs")
    records = [run_record(d) for d in args.runs]
    configs = [_today(read_run_config(d)) for d in args.runs]
    labels, key_names, values = describe_runs(configs, [Path(d).name for d in args.runs], args.labels)
    for r, label, differs in zip(records, labels, values):
        r["label"], r["differs"] = label, differs
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    title = args.title or default_title(len(records), list(key_names.values()))
    table = compare_table(records)
    (out / "compare.md").write_text(table + "\n", encoding="utf-8")
    (out / "compare.json").write_text(json.dumps({"keys": key_names, "runs": records}, indent=1), encoding="utf-8")
    print(table)
    series = _series(records)
    figure = None
    if series:
        figure = plots.plot_compare(series, out / "compare.png", title=title).name
        print(f"wrote {out / figure}")
    else:
        print(f"{PROG}: no run has a curve in metrics.csv; no figure drawn")
    page = write_html(records, key_names, figure, out, title)
    print(f"wrote {out / 'compare.md'}, {out / 'compare.json'} and {page}")
    return 0
