"""``summary.json``: a run's status and results (a run made of stages: the main stage's, plus one
entry per stage and ``main_stage``), and what follows from it about the directory."""
from __future__ import annotations

import json
import os
from pathlib import Path

from ..errors import AnalysisError, InflorError
from .files import read_json, write_json
from .layout import RunDir

__all__ = ["write_summary", "read_summary", "read_summary_or_empty", "final_run_dir", "has_checkpoint"]

WHAT = "the summary.json that inflor train writes"


def write_summary(run_dir: str | os.PathLike, summary: dict) -> Path:
    """``RUN/summary.json`` (indented JSON), atomically."""
    return write_json(RunDir(run_dir).summary, summary, indent=2)


def read_summary(run_dir: str | os.PathLike, error: type[InflorError] = AnalysisError) -> dict:
    """``summary.json`` of a run (``{}`` when there is none; a damaged one raises ``error``)."""
    p = RunDir(run_dir).summary
    if not p.is_file():
        return {}
    return read_json(p, WHAT, error)


def read_summary_or_empty(run_dir: str | os.PathLike) -> dict:
    """``summary.json`` of a run, or ``{}`` when it is missing or unreadable (to decide what to
    resume: a damaged summary counts as none)."""
    try:
        return json.loads(RunDir(run_dir).summary.read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def final_run_dir(path: str | os.PathLike) -> Path:
    """The run directory holding a run's final weights: ``path`` itself, or for a run made of
    stages its last stage's directory."""
    p = Path(path)
    main = read_summary_or_empty(p).get("main_stage")
    return p / main if main else p


def has_checkpoint(run_dir: str | os.PathLike) -> bool:
    """Whether ``run_dir`` holds something to resume (a checkpoint, in itself or in a stage)."""
    p = Path(run_dir)
    if RunDir(p).last.is_file():
        return True
    return any(RunDir(d).last.is_file() for d in p.iterdir() if d.is_dir()) if p.is_dir() else False
