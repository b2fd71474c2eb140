"""Which settings differ between two resolved configs (``--resume`` refuses a changed run)."""
from __future__ import annotations

import re

from .schema import RUNTIME_KEYS

__all__ = ["config_diff"]


def _ignored(path: str, ignore: tuple) -> bool:
    """``path`` is one of ``ignore`` (or under one), also as a stage's setting (``stages.NAME.<key>``)."""
    plain = re.sub(r"^stages\.[^.]+\.", "", path)
    return any(p == i or p.startswith(i + ".") for p in {path, plain} for i in ignore)


def config_diff(a: dict, b: dict, ignore: tuple = RUNTIME_KEYS) -> list[str]:
    """Dotted keys whose values differ between two resolved configs (``ignore`` left out)."""
    out = []

    def walk(x, y, path):
        if isinstance(x, dict) and y is None or x is None and isinstance(y, dict):
            x, y = x or {}, y or {}      # a section one side leaves out (a stage's): its keys compared one by one
        if isinstance(x, dict) and isinstance(y, dict):
            for k in list(dict.fromkeys([*x, *y])):
                walk(x.get(k), y.get(k), f"{path}.{k}" if path else k)
        elif x != y and not _ignored(path, ignore):
            out.append(f"{path}: {x!r} -> {y!r}")
    walk(a, b, "")
    return out
