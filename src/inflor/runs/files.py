"""JSON and text files of a run directory: written atomically, read with one clear error."""
from __future__ import annotations

import json
import os
from pathlib import Path

from ..atomic import atomic_write
from ..errors import AnalysisError, InflorError

__all__ = ["atomic_write", "write_text", "write_json", "read_json"]


def write_text(path: str | os.PathLike, text: str, fsync: bool = False) -> Path:
    """``text`` (UTF-8) into ``path``, atomically (a reader sees the old file or the new one)."""
    data = text.encode("utf-8")
    return atomic_write(path, lambda f: f.write(data), fsync=fsync)


def write_json(path: str | os.PathLike, doc, indent: int | None = 2, fsync: bool = False) -> Path:
    """``json.dumps(doc, indent=indent)`` into ``path``, atomically."""
    return write_text(path, json.dumps(doc, indent=indent), fsync=fsync)


def read_json(path: str | os.PathLike, what: str, error: type[InflorError] = AnalysisError) -> dict:
    """The JSON object in ``path``; a damaged file raises ``error`` naming it (``what`` says
    which file it should be)."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise error(f"{path} is not valid JSON ({e.msg}, line {e.lineno}, column {e.colno}): the file "
                    f"is damaged or half-written; expected {what}") from None
    except UnicodeDecodeError:
        raise error(f"{path} is not a text file (not UTF-8); expected {what}") from None
    if not isinstance(doc, dict):
        raise error(f"{path} holds a JSON {type(doc).__name__}, not an object; expected {what}")
    return doc
