"""``snapshots/epoch_XXXX.json``: per-layer statistics taken during training
(``inflor.analysis.snapshot`` measures them; this module writes and reads the files).

Format ``inflor-snapshot-v2``: ``epoch``, ``samples``, ``batches``, ``accuracy``, ``layers``
(the numbers of analysis.json), ``histograms`` (binned dicts). Version 1 files (fixed-range
histograms with a ``hist_spec``) are still read; converting their histograms is the reader's job.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

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


def snapshot_epochs(spec: "str | Sequence[int] | None", num_epochs: int, strict: bool = True) -> set[int]:
    """Parse ``"0,1,last"`` (also ``"all"``, ``"none"``, ``"every:10"``) into epoch counts in
    ``0 .. num_epochs`` (0 = before training, e = after e finished epochs). An epoch outside that
    range raises ``ValueError``, or is left out when ``strict`` is False."""
    if spec is None:
        return set()
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    out: set[int] = set()
    for item in items:
        s = str(item).strip().lower()
        if s in ("", "none"):
            continue
        if s == "last":
            out.add(num_epochs)
        elif s == "all":
            out.update(range(num_epochs + 1))
        elif s.startswith("every:"):
            step = int(s.split(":", 1)[1])
            if step < 1:
                raise ValueError(f"snapshot step must be >= 1, got {step}")
            out.update(range(0, num_epochs + 1, step))
            out.add(num_epochs)
        else:
            try:
                e = int(s)
            except ValueError:
                raise ValueError(f"bad snapshot epoch {item!r}: use integers, 'last', 'all', 'none' "
                                 f"or 'every:N', comma separated") from None
            if not 0 <= e <= num_epochs:
                if not strict:
                    continue
                raise ValueError(f"snapshot epoch {e} is outside 0..{num_epochs}")
            out.add(e)
    return out


def check_spec(spec) -> str | None:
    """Validate the format of an epoch spec (for config checks); returns it as a string."""
    if spec is None:
        return None
    spec = str(spec)
    snapshot_epochs(spec, 10 ** 9)
    return spec
