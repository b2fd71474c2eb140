"""``config.yaml``: the resolved config of a run, as text (the config package dumps and parses
configs; this module only puts the text in its place and reads it back)."""
from __future__ import annotations

import os
from pathlib import Path

from ..errors import AnalysisError, InflorError
from .files import write_text
from .layout import RunDir
from .summary import read_summary

__all__ = ["write_config_text", "read_config_text", "read_run_config"]


def write_config_text(run_dir: str | os.PathLike, text: str) -> Path:
    """``RUN/config.yaml`` holding ``text``, atomically."""
    return write_text(RunDir(run_dir).config, text)


def read_config_text(run_dir: str | os.PathLike | None) -> str | None:
    """The text of ``RUN/config.yaml``, or None without a run directory or that file."""
    if run_dir is None:
        return None
    p = RunDir(run_dir).config
    return p.read_text(encoding="utf-8") if p.is_file() else None


def read_run_config(run_dir: str | os.PathLike, error: type[InflorError] = AnalysisError) -> dict:
    """A run's resolved config: ``summary.json``'s copy, else ``config.yaml``; ``{}`` if neither
    holds one (a config file that does not parse raises ``error``)."""
    cfg = read_summary(run_dir, error).get("config")
    if isinstance(cfg, dict) and cfg:
        return cfg
    text = read_config_text(run_dir)
    if text is None:
        return {}
    import yaml
    try:
        cfg = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise error(f"{RunDir(run_dir).config} is not valid YAML: {e}") from None
    return cfg if isinstance(cfg, dict) else {}
