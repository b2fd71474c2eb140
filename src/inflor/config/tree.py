"""Nested-dict helpers of configs: dotted-key access and the deep merge of ``extends`` and stages."""
from __future__ import annotations

import copy

__all__ = ["get_key", "set_key", "merge"]


def get_key(cfg: dict, key: str, default=None):
    node = cfg
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node


def set_key(cfg: dict, key: str, value) -> None:
    parts = key.split(".")
    node = cfg
    for part in parts[:-1]:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[parts[-1]] = value


#: Sections whose values are component specs (``surrogate: {name: esg, k_min: 1, k_max: 10}``).
COMPONENT_SECTIONS = ("model.options", "data.options")


def _other_component(path: str, base: dict, over: dict) -> bool:
    """``over`` names another component than ``base`` (a spec under ``model.options`` or
    ``data.options`` with a different ``name``): its settings would not fit, so it replaces."""
    return (any(path.startswith(s + ".") for s in COMPONENT_SECTIONS)
            and "name" in over and str(over["name"]).lower() != str(base.get("name", "")).lower())


def merge(base: dict, over: dict, _path: str = "") -> dict:
    """Deep merge: dicts merge recursively, other values in ``over`` replace those of ``base``.
    A component spec naming another component replaces the base's whole spec: a recipe setting
    ``surrogate: {name: sigmoid, alpha: 4}`` over a base's ``{name: esg, k_min: 1, k_max: 10}``
    gets the sigmoid alone, not ``k_min`` and ``k_max`` with it."""
    out = copy.deepcopy(base)
    for k, v in over.items():
        path = f"{_path}.{k}" if _path else str(k)
        if isinstance(v, dict) and isinstance(out.get(k), dict) and not _other_component(path, out[k], v):
            out[k] = merge(out[k], v, path)
        else:
            out[k] = copy.deepcopy(v)
    return out
