"""Result tables of several runs: ``inflor repeat`` (one recipe, several seeds) and
``inflor compare`` (any runs). Accuracies are shown in percent, "mean ± std" as in the papers.
"""
from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Mapping, Sequence

from .runs import AnalysisError, accuracy_column, as_percent, read_metrics, read_summary


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (n − 1 in the denominator; 0 for a single value)."""
    vals = [float(v) for v in values]
    if not vals:
        raise ValueError("no values")
    return statistics.fmean(vals), (statistics.stdev(vals) if len(vals) > 1 else 0.0)


def pm(values: Sequence[float], digits: int = 2) -> str:
    """``"93.84 ± 0.12"``."""
    m, s = mean_std(values)
    return f"{m:.{digits}f} ± {s:.{digits}f}"


def _pct(v) -> float | None:
    """A trainer accuracy (a fraction) in percent; values above 1 are taken as percent already."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    v = float(v)
    return v * 100.0 if v <= 1.0 else v


def paper_label(paper: Mapping | None) -> str:
    if not paper or not paper.get("name"):
        return ""
    bits = [str(paper["name"])]
    if paper.get("table") is not None:
        bits.append(f"Table {paper['table']}")
    if paper.get("row"):
        bits.append(str(paper["row"]))
    label = ", ".join(bits)
    acc = _pct(paper.get("reported_acc"))
    if acc is not None:
        std = _pct(paper.get("reported_std"))
        label += f" ({acc:.2f}" + (f" ± {std:.2f}" if std is not None else "") + ")"
    return label


def _series(metrics: Mapping | None, column: str | None, percent: bool = False) -> dict:
    """``{"epoch": [...], "value": [...]}`` of one ``metrics.csv`` column, epochs without a value
    (NaN, e.g. between evaluations) left out; empty lists when the column is absent."""
    if not metrics or not column or column not in metrics:
        return {"epoch": [], "value": []}
    ys = as_percent(metrics[column]) if percent else metrics[column]
    xs = metrics.get("epoch") or list(range(1, len(ys) + 1))
    pairs = [(x, y) for x, y in zip(xs, ys) if isinstance(y, float) and not math.isnan(y)]
    return {"epoch": [p[0] for p in pairs], "value": [p[1] for p in pairs]}


def _loss_column(metrics: Mapping | None) -> str | None:
    """The training loss to compare runs by: the task loss (cross-entropy without the MPD / IM
    regularisers, so runs with and without them compare fairly), else the total."""
    for k in ("task_loss", "train_loss"):
        if metrics and k in metrics:
            return k
    return None


def run_record(run_dir, label: str | None = None) -> dict:
    """What ``compare`` knows about one run: from ``summary.json`` and ``metrics.csv``.
    ``curve`` holds the per-epoch series of test accuracy (%), training loss and test spike rate."""
    d = Path(run_dir)
    if not d.is_dir():
        raise AnalysisError(f"{d} is not a run directory (it does not exist or is a file)")
    summary = read_summary(d)
    metrics = read_metrics(d)
    if metrics is None and summary.get("main_stage"):   # a run made of stages: its main stage's curve
        metrics = read_metrics(d / summary["main_stage"])
    if not summary and not metrics and (d / "repeat.json").is_file():
        raise AnalysisError(f"{d} is an 'inflor repeat' folder (its table is {d / 'repeat.md'}); compare its "
                            f"runs with: inflor compare {d}/seed*")
    if not summary and not metrics:
        raise AnalysisError(f"{d} has neither summary.json nor metrics.csv: not a run directory made by "
                            f"'inflor train', or the run has not finished an epoch")
    loss_col = _loss_column(metrics)
    curves = {"test_acc": _series(metrics, accuracy_column(metrics) if metrics else None, percent=True),
              "train_loss": _series(metrics, loss_col), "spike_rate": _series(metrics, "spike_rate")}
    acc = curves["test_acc"]["value"]
    best = _pct(summary.get("best_test_acc")) if summary else None
    final = _pct(summary.get("final_test_acc")) if summary else None
    if best is None and acc:
        best = max(acc)
    if final is None and acc:
        final = acc[-1]
    cfg = summary.get("config") or {}
    name = label or summary.get("name") or cfg.get("name") or d.name
    wall = summary.get("wall_time")
    if wall is None and metrics and "epoch_time" in metrics:
        wall = sum(v for v in metrics["epoch_time"] if isinstance(v, float) and not math.isnan(v))
    return {"run_dir": str(d), "label": name, "recipe": summary.get("name") or cfg.get("name"),
            "paper": paper_label(summary.get("paper") or cfg.get("paper")),
            "status": summary.get("status"), "seed": (cfg.get("train") or {}).get("seed"),
            "best_acc": best, "best_epoch": summary.get("best_epoch"), "final_acc": final,
            "epochs_done": summary.get("epochs_done", len(acc) or None), "epochs": summary.get("epochs"),
            "wall_time": wall, "loss_column": loss_col, "curve": curves}


def _f(v, digits=2) -> str:
    return "–" if v is None else f"{v:.{digits}f}"


def duration(seconds) -> str:
    """``12.5 s``, ``3.4 min`` or ``1.25 h``; ``–`` when unknown."""
    if seconds is None:
        return "–"
    s = float(seconds)
    if s < 120:
        return f"{s:.1f} s"
    if s < 7200:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.2f} h"


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    esc = lambda c: str(c).replace("|", "\\|")  # noqa: E731
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(esc(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


#: at most this many distinguishing config keys become columns of the compare table
MAX_KEY_COLUMNS = 8


def epochs_text(r: Mapping) -> str:
    """``3`` or, for a run that stopped early, ``3/10`` (epochs done / planned)."""
    if r["epochs_done"] is None:
        return "–"
    total = r.get("epochs")
    return f"{r['epochs_done']}" + (f"/{total}" if total and total != r["epochs_done"] else "")


def key_columns(records: Sequence[Mapping]) -> list[str]:
    """The distinguishing config keys (short names) of ``records[i]["differs"]``, in order."""
    keys: list[str] = []
    for r in records:
        keys += [k for k in r.get("differs") or {} if k not in keys]
    return keys


def compare_table(records: Sequence[Mapping]) -> str:
    """The markdown table of ``inflor compare``: run label, the config keys that differ among the
    runs (up to ``MAX_KEY_COLUMNS``), the paper row when a run has one, best and final test
    accuracy (%), epochs and wall time; a line below names the keys left out."""
    keys = key_columns(records)
    shown = keys[:MAX_KEY_COLUMNS]
    with_paper = any(r.get("paper") for r in records)
    headers = ["run", *shown, *(["paper row (reported %)"] if with_paper else []),
               "best acc (%)", "final acc (%)", "epochs", "wall time"]
    rows = []
    for r in records:
        differs = r.get("differs") or {}
        rows.append([r["label"], *(differs.get(k, "–") for k in shown),
                     *([r["paper"] or "–"] if with_paper else []),
                     _f(r["best_acc"]), _f(r["final_acc"]), epochs_text(r), duration(r["wall_time"])])
    table = markdown_table(headers, rows)
    if len(keys) > len(shown):
        table += f"\n\n{len(keys) - len(shown)} more keys differ: {', '.join(keys[len(shown):])} (see compare.json)"
    return table


def repeat_summary(records: Sequence[Mapping]) -> dict:
    """Aggregate of several seeds of one recipe: mean ± std of best and final accuracy."""
    ok = [r for r in records if r.get("best_acc") is not None]
    if not ok:
        raise AnalysisError("no run produced a test accuracy")
    best = [r["best_acc"] for r in ok]
    final = [r["final_acc"] for r in ok if r.get("final_acc") is not None]
    out = {"runs": len(ok), "seeds": [r.get("seed") for r in ok],
           "best_acc_mean": mean_std(best)[0], "best_acc_std": mean_std(best)[1], "best_acc": pm(best),
           "final_acc_mean": mean_std(final)[0] if final else None,
           "final_acc_std": mean_std(final)[1] if final else None,
           "final_acc": pm(final) if final else None,
           "wall_time_mean": statistics.fmean([r["wall_time"] for r in ok if r.get("wall_time") is not None] or [0.0])}
    return out


def repeat_markdown(recipe: str, agg: Mapping, records: Sequence[Mapping], paper: str = "") -> str:
    lines = [f"# {recipe}: {agg['runs']} seed(s)", ""]
    if paper:
        lines += [f"Paper: {paper}", ""]
    lines.append(markdown_table(["recipe", "seeds", "best acc (%)", "final acc (%)"],
                                [[recipe, ", ".join(str(s) for s in agg["seeds"]), agg["best_acc"],
                                  agg["final_acc"] or "–"]]))
    lines += ["", "Mean ± sample standard deviation (n − 1) over the seeds.", "", "Per seed:", ""]
    lines.append(markdown_table(["seed", "run", "best acc (%)", "best epoch", "final acc (%)", "epochs", "wall time",
                                 "status"],
                                [[str(r.get("seed")), r["run_dir"], _f(r["best_acc"]), str(r.get("best_epoch") or "–"),
                                  _f(r["final_acc"]), str(r.get("epochs_done") or "–"), duration(r.get("wall_time")),
                                  str(r.get("status") or "–")] for r in records]))
    return "\n".join(lines) + "\n"
