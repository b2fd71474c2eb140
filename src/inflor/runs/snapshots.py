"""``snapshots/epoch_XXXX.json``: per-layer statistics taken during training
(``inflor.analysis.snapshot`` measures them; this module writes and reads the files).

Format ``inflor-snapshot-v2``: ``epoch``, ``samples``, ``batches``, ``accuracy``, ``layers``
(the numbers of analysis.json), ``histograms`` (binned dicts). Version 1 files (fixed-range
histograms with a ``hist_spec``) are still read; converting their histograms is the reader's job.
"""
from __future__ import annotations

import os
from pathlib import Path

from ..epochspec import check_spec, snapshot_epochs  # noqa: F401  (the spec parser, re-exported)
from ..errors import AnalysisError
from .files import read_json, write_json
from .layout import RunDir, snapshot_path

__all__ = ["FORMAT", "READABLE", "SNAPSHOT_KEYS", "snapshot_epochs", "check_spec", "snapshot_path", "write_snapshot", "read_snapshots"]

FORMAT = "inflor-snapshot-v2"
#: formats ``read_snapshots`` reads (v1: fixed-range histograms with a ``hist_spec``)
READABLE = ("inflor-snapshot-v1", FORMAT)
#: keys every snapshot holds (v1 files also a ``hist_spec``)
SNAPSHOT_KEYS = ("epoch", "layers", "histograms")
EXPECTED = f"a snapshot written by inflor train (format {FORMAT!r} with {', '.join(SNAPSHOT_KEYS)})"


def write_snapshot(run_dir: str | os.PathLike, epoch: int, doc: dict) -> Path:
    """``doc`` (without its ``format``, which is added) into ``RUN/snapshots/epoch_XXXX.json``,
    atomically; returns the path."""
    return write_json(snapshot_path(run_dir, epoch), {"format": FORMAT, "epoch": int(epoch), **doc}, indent=None)


def read_snapshots(run_dir: str | os.PathLike) -> list[dict]:
    """Every snapshot file of a run as written, sorted by epoch (``[]`` if there are none). A
    damaged or foreign file raises ``AnalysisError`` naming it (none is skipped silently)."""
    d = RunDir(run_dir).snapshots
    docs = []
    for p in sorted(d.glob("epoch_*.json")) if d.is_dir() else []:
        doc = read_json(p, EXPECTED)
        missing = [k for k in SNAPSHOT_KEYS + (("hist_spec",) if doc.get("format") == READABLE[0] else ())
                   if k not in doc]
        if doc.get("format") not in READABLE or missing:
            raise AnalysisError(f"{p} is not a usable snapshot (format {doc.get('format')!r}"
                                + (f", missing {', '.join(missing)}" if missing else "") + f"); expected {EXPECTED}")
        docs.append(doc)
    return sorted(docs, key=lambda d: d["epoch"])
