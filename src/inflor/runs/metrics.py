"""``metrics.csv``: one row per epoch, the columns the trainer's objective declares.

Written whole (atomically) after every epoch: a header line, then each row with floats as
``repr`` (so the file keeps every bit) and missing values (``None``) as empty cells. Read back as
columns: numbers where they parse, else strings; empty cells -> NaN.
"""
from __future__ import annotations

import csv
import io
import math
import os
from pathlib import Path
from typing import Sequence

from .files import write_text

__all__ = ["format_metrics", "write_metrics", "read_metrics"]


def format_metrics(rows: Sequence[dict], fields: Sequence[str]) -> str:
    """The text of ``metrics.csv`` for ``rows`` with columns ``fields`` (in that order)."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(fields), lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if r.get(k) is None else (repr(r[k]) if isinstance(r[k], float) else r[k]))
                    for k in fields})
    return buf.getvalue()


def write_metrics(path: str | os.PathLike, rows: Sequence[dict], fields: Sequence[str]) -> Path:
    """Write ``metrics.csv`` (``path``: the file) atomically."""
    return write_text(path, format_metrics(rows, fields))


def read_metrics(path: str | os.PathLike) -> dict[str, list]:
    """``metrics.csv`` as columns: numbers where they parse, else strings; empty cells -> NaN."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    cols: dict[str, list] = {}
    for row in rows:
        for k, v in row.items():
            if k is None:
                continue
            try:
                val = float(v) if v not in ("", None) else math.nan
            except ValueError:
                val = v
            cols.setdefault(k, []).append(val)
    return cols
