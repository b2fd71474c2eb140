"""Training-time snapshots: the per-layer statistics of ``inflor analyze`` at chosen epochs, so
that IM-Loss Fig. 2 (layer-wise spike rates at epoch 0 / 1 / end) and RecDis Fig. 2 (a layer's
membrane distribution across training) come out of a normal run.

``inflor train ... train.snapshots=0,1,last`` (config keys ``train.snapshots`` and
``train.snapshot_batches``) does it: the trainer adds a ``SnapshotCallback``
(``inflor.train.callbacks``). By hand (on the main
process only, with the bare model, not a DDP wrapper)::

    from inflor.analysis.snapshot import snapshot, snapshot_epochs
    wanted = snapshot_epochs("0,1,last", num_epochs)          # {0, 1, num_epochs}
    if 0 in wanted:
        snapshot(model, test_loader, run_dir, epoch=0)          # before the first update
    for e in range(start_epoch, num_epochs):
        train_one_epoch(...)
        if e + 1 in wanted:
            snapshot(model, test_loader, run_dir, epoch=e + 1)  # epoch = epochs finished

Each call writes ``RUN_DIR/snapshots/epoch_0001.json`` (``inflor.runs.snapshots``: format
``inflor-snapshot-v2``, ``epoch``, ``samples``, ``accuracy``, ``layers`` with the numbers of
analysis.json, ``histograms`` as binned dicts; ``load_snapshots`` also reads v1 files, whose
fixed-range histograms it converts). It
runs in eval mode under ``torch.no_grad``, restores the train/eval mode and leaves every
random-number generator (torch, CUDA, numpy, random) as it found them, so a run with snapshots
trains exactly like one without. ``inflor plot snapshots RUN_DIR`` draws them.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

from torch import nn

from ..errors import AnalysisError
from ..runs.layout import SNAPSHOTS as SNAPSHOT_DIR
from ..runs.rng import preserved_rng  # noqa: F401  (re-exported)
from ..runs.snapshots import (FORMAT, READABLE, SNAPSHOT_KEYS, check_spec, read_snapshots,  # noqa: F401
                              snapshot_epochs, snapshot_path, write_snapshot)
from .histogram import as_binned
from .probe import run_probe


def snapshot(model: nn.Module, loader: Iterable, run_dir, epoch: int, max_batches: int | None = 10,
             layers: Sequence[str] | None = None, device=None) -> Path:
    """Measure ``model``'s spiking layers on (the first ``max_batches`` batches of) ``loader`` and
    write ``RUN_DIR/snapshots/epoch_XXXX.json``; returns its path. ``epoch`` = epochs finished."""
    if device is None:
        p = next(model.parameters(), None)
        device = p.device if p is not None else "cpu"
    with preserved_rng():
        res = run_probe(model, loader, layers=layers, max_batches=max_batches, device=device, count_ops=False)
    for name, info in res["layer_info"].items():
        if name in res["layers"]:
            res["layers"][name]["settings"] = info
    return write_snapshot(run_dir, epoch, {"samples": res["samples"], "batches": res["batches"],
                                           "accuracy": res["accuracy"], "layers": res["layers"],
                                           "histograms": res["histograms"]})


def _binned_histograms(doc: dict) -> dict:
    """``doc`` with every histogram as a binned dict (v1 files: converted with their hist_spec)."""
    spec = doc.pop("hist_spec", None)
    doc["histograms"] = {name: {k: as_binned(h, spec) for k, h in pair.items()}
                         for name, pair in doc.get("histograms", {}).items()}
    return doc


def load_snapshots(run_dir) -> list[dict]:
    """All snapshots of a run, sorted by epoch (``[]`` if there are none), histograms as binned
    dicts (``inflor.analysis.histogram``) whatever the file's format version. A damaged snapshot
    file raises ``AnalysisError`` naming it (none is skipped silently)."""
    out = []
    for doc in read_snapshots(run_dir):
        try:
            out.append(_binned_histograms(doc))
        except (AttributeError, KeyError, TypeError, ValueError) as e:
            raise AnalysisError(f"{snapshot_path(run_dir, doc['epoch'])} holds histograms inflor cannot read "
                                f"({type(e).__name__}: {e}); expected a snapshot written by inflor train "
                                f"(per layer, histograms of H and of the rectified H)") from None
    return out


def plot_snapshots(run_dir, out_dir=None, layers: Sequence[str] | None = None, epochs: Sequence[int] | None = None,
                   max_layer_plots: int = 4) -> dict:
    """Draw a run's snapshots: spike rate per layer for each epoch (IM-Loss Fig. 2) and, for each
    chosen layer (default: up to ``max_layer_plots`` spread over the depth), its membrane
    distribution at each epoch (RecDis Fig. 2). Returns ``{"spike_rates": path, "distributions":
    {layer: path}}`` with paths relative to ``out_dir`` (default ``RUN_DIR/snapshots``)."""
    from .. import plots   # matplotlib: loaded only to draw

    docs = load_snapshots(run_dir)
    if not docs:
        raise AnalysisError(f"{run_dir} has no snapshots ({Path(run_dir) / SNAPSHOT_DIR}/epoch_*.json); "
                            "a run writes them when its trainer calls inflor.analysis.snapshot.snapshot")
    if epochs:
        docs = [d for d in docs if d["epoch"] in set(epochs)]
        if not docs:
            raise AnalysisError(f"no snapshot for epochs {list(epochs)} in {run_dir}")
    out = Path(out_dir) if out_dir else Path(run_dir) / SNAPSHOT_DIR
    series = {f"epoch {d['epoch']}": {n: v["spike_rate"] for n, v in d["layers"].items()} for d in docs}
    made = {"spike_rates": plots.plot_spike_rates(series, out / "spike_rates.png",
                                                  title="Layer-wise spike rate during training").name}
    names = list(docs[-1]["layers"])
    if layers:
        unknown = [n for n in layers if n not in names]
        if unknown:
            raise AnalysisError(f"no spiking layer {unknown} in the snapshots; layers: {', '.join(names)}")
        chosen = list(layers)
    elif len(names) <= max_layer_plots:
        chosen = names
    else:
        idx = sorted({round(i * (len(names) - 1) / (max_layer_plots - 1)) for i in range(max_layer_plots)})
        chosen = [names[i] for i in idx]
    dists = {}
    for name in chosen:
        hists = {f"epoch {d['epoch']}": d["histograms"][name] for d in docs if name in d["histograms"]}
        vth = docs[-1]["layers"][name].get("settings", {}).get("v_threshold", 0.5)
        p = plots.plot_distribution_evolution(name, hists, out / f"distribution_{plots.safe_name(name)}.png",
                                              v_threshold=vth)
        dists[name] = p.name
    made["distributions"] = dists
    return made
