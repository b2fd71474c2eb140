"""Training-time snapshots: the per-layer statistics of ``inflor analyze`` at chosen epochs, so
that IM-Loss Fig. 2 (layer-wise spike rates at epoch 0 / 1 / end) and RecDis Fig. 2 (a layer's
membrane distribution across training) come out of a normal run.

``inflor train ... train.snapshots=0,1,last`` (config keys ``train.snapshots`` and
``train.snapshot_batches``) does it: the trainer adds a ``SnapshotCallback``. By hand (on the main
process only, with the bare model, not a DDP wrapper)::

    from inflor.analysis.snapshot import snapshot, snapshot_epochs
    wanted = snapshot_epochs("0,1,last", num_epochs)          # {0, 1, num_epochs}
    if 0 in wanted:
        snapshot(model, test_loader, run_dir, epoch=0)          # before the first update
    for e in range(start_epoch, num_epochs):
        train_one_epoch(...)
        if e + 1 in wanted:
            snapshot(model, test_loader, run_dir, epoch=e + 1)  # epoch = epochs finished

Each call writes ``RUN_DIR/snapshots/epoch_0001.json`` (format ``inflor-snapshot-v2``: ``epoch``,
``samples``, ``accuracy``, ``layers`` with the numbers of analysis.json, ``histograms`` as binned
dicts; ``load_snapshots`` also reads v1 files, whose fixed-range histograms it converts). It
runs in eval mode under ``torch.no_grad``, restores the train/eval mode and leaves every
random-number generator (torch, CUDA, numpy, random) as it found them, so a run with snapshots
trains exactly like one without. ``inflor plot snapshots RUN_DIR`` draws them.
"""
from __future__ import annotations

import contextlib
import json
import random
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch
from torch import nn

from ..atomic import atomic_write
from ..epochspec import check_spec, snapshot_epochs  # noqa: F401  (the parser lives in a leaf module)

SNAPSHOT_DIR = "snapshots"
FORMAT = "inflor-snapshot-v2"
#: formats ``load_snapshots`` reads (v1: fixed-range histograms with a ``hist_spec``)
READABLE = ("inflor-snapshot-v1", FORMAT)


@contextlib.contextmanager
def preserved_rng():
    """Leave the torch (CPU and CUDA), numpy and python generators untouched by the block."""
    py, npy = random.getstate(), np.random.get_state()
    cpu = torch.get_rng_state()
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    try:
        yield
    finally:
        random.setstate(py)
        np.random.set_state(npy)
        torch.set_rng_state(cpu)
        if cuda is not None:
            torch.cuda.set_rng_state_all(cuda)


def snapshot_path(run_dir, epoch: int) -> Path:
    return Path(run_dir) / SNAPSHOT_DIR / f"epoch_{int(epoch):04d}.json"


def snapshot(model: nn.Module, loader: Iterable, run_dir, epoch: int, max_batches: int | None = 10,
             layers: Sequence[str] | None = None, device=None) -> Path:
    """Measure ``model``'s spiking layers on (the first ``max_batches`` batches of) ``loader`` and
    write ``RUN_DIR/snapshots/epoch_XXXX.json``; returns its path. ``epoch`` = epochs finished."""
    from .probe import run_probe

    if device is None:
        p = next(model.parameters(), None)
        device = p.device if p is not None else "cpu"
    with preserved_rng():
        res = run_probe(model, loader, layers=layers, max_batches=max_batches, device=device, count_ops=False)
    for name, info in res["layer_info"].items():
        if name in res["layers"]:
            res["layers"][name]["settings"] = info
    doc = {"format": FORMAT, "epoch": int(epoch), "samples": res["samples"], "batches": res["batches"],
           "accuracy": res["accuracy"], "layers": res["layers"], "histograms": res["histograms"]}
    return atomic_write(snapshot_path(run_dir, epoch), lambda f: f.write(json.dumps(doc).encode("utf-8")),
                        fsync=False)


#: keys every snapshot holds (v1 files also a ``hist_spec``)
SNAPSHOT_KEYS = ("epoch", "layers", "histograms")


def _binned_histograms(doc: dict) -> dict:
    """``doc`` with every histogram as a binned dict (v1 files: converted with their hist_spec)."""
    from .histogram import as_binned

    spec = doc.pop("hist_spec", None)
    doc["histograms"] = {name: {k: as_binned(h, spec) for k, h in pair.items()}
                         for name, pair in doc.get("histograms", {}).items()}
    return doc


def load_snapshots(run_dir) -> list[dict]:
    """All snapshots of a run, sorted by epoch (``[]`` if there are none), histograms as binned
    dicts (``inflor.analysis.histogram``) whatever the file's format version. A damaged snapshot
    file raises ``AnalysisError`` naming it (none is skipped silently)."""
    from .runs import AnalysisError, read_json

    d = Path(run_dir) / SNAPSHOT_DIR
    docs = []
    expected = f"a snapshot written by inflor train (format {FORMAT!r} with {', '.join(SNAPSHOT_KEYS)})"
    for p in sorted(d.glob("epoch_*.json")) if d.is_dir() else []:
        doc = read_json(p, expected)
        missing = [k for k in SNAPSHOT_KEYS + (("hist_spec",) if doc.get("format") == READABLE[0] else ())
                   if k not in doc]
        if doc.get("format") not in READABLE or missing:
            raise AnalysisError(f"{p} is not a usable snapshot (format {doc.get('format')!r}"
                                + (f", missing {', '.join(missing)}" if missing else "") + f"); expected {expected}")
        docs.append(_binned_histograms(doc))
    return sorted(docs, key=lambda d: d["epoch"])


def plot_snapshots(run_dir, out_dir=None, layers: Sequence[str] | None = None, epochs: Sequence[int] | None = None,
                   max_layer_plots: int = 4) -> dict:
    """Draw a run's snapshots: spike rate per layer for each epoch (IM-Loss Fig. 2) and, for each
    chosen layer (default: up to ``max_layer_plots`` spread over the depth), its membrane
    distribution at each epoch (RecDis Fig. 2). Returns ``{"spike_rates": path, "distributions":
    {layer: path}}`` with paths relative to ``out_dir`` (default ``RUN_DIR/snapshots``)."""
    from .. import plots
    from .runs import AnalysisError

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


class SnapshotCallback:
    """Snapshots through the trainer's callback interface (``run_training(..., callbacks=[cb])``,
    called as ``cb(trainer, epoch_index, row)`` after each epoch). The epoch-0 snapshot needs a
    call before training: ``cb.before_training(trainer)`` after ``Trainer.setup()``
    (``train_with_snapshots`` does both)."""

    def __init__(self, epochs: "str | Sequence[int]" = "0,1,last", max_batches: int | None = 10,
                 layers: Sequence[str] | None = None):
        self.spec = epochs
        self.max_batches = max_batches
        self.layers = layers
        self.written: list[Path] = []

    def _wanted(self, trainer) -> set[int]:
        return snapshot_epochs(self.spec, trainer.cfg["train"]["epochs"], strict=False)

    def _take(self, trainer, epoch: int) -> None:
        if getattr(trainer, "dist", None) is not None and not trainer.dist.is_main:
            return
        self.written.append(snapshot(trainer.model, trainer.test_loader, trainer.out, epoch,
                                     max_batches=self.max_batches, layers=self.layers, device=trainer.device))

    def before_training(self, trainer) -> None:
        if trainer.start_epoch == 0 and 0 in self._wanted(trainer):
            self._take(trainer, 0)

    def __call__(self, trainer, epoch: int, row: dict) -> None:
        if epoch + 1 in self._wanted(trainer):
            self._take(trainer, epoch + 1)


def train_with_snapshots(cfg: dict, out_dir, epochs: "str | Sequence[int]" = "0,1,last",
                         max_batches: int | None = 10, resume: bool = False, log=None) -> dict:
    """``inflor.train.trainer.run_training`` with ``train.snapshots`` set; returns the summary."""
    import copy

    from ..train.trainer import run_training

    cfg = copy.deepcopy(cfg)
    cfg["train"]["snapshots"] = check_spec(",".join(map(str, epochs)) if not isinstance(epochs, str) else epochs)
    cfg["train"]["snapshot_batches"] = max_batches
    return run_training(cfg, out_dir, resume=resume, log=log)
