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


def merge(base: dict, over: dict) -> dict:
    """Deep merge: dicts merge recursively, other values in ``over`` replace those of ``base``."""
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out
