"""Command-line overrides ``dotted.key=value`` (the value read as YAML), each key checked against
the schema before it is applied; ``stages.NAME.KEY=VALUE`` changes one stage of a recipe."""
from __future__ import annotations

import copy
import difflib
import re
from typing import Any

import yaml

from inflor.errors import ConfigError

from .schema import OPEN_SECTIONS, SCHEMA, SECTIONS, STAGE_SECTIONS, esg_moved, unknown_key_error
from .tree import set_key
from .yamlio import yaml_load

__all__ = ["parse_overrides", "apply_overrides"]


def parse_overrides(items: list[str]) -> list[tuple[str, Any]]:
    """``["optim.lr=0.01", "model.options.mpr=null"]`` -> ``[(key, yaml value), ...]``."""
    out = []
    for item in items:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form dotted.key=value "
                              "(e.g. optim.lr=0.01 or model.options.timesteps=2)")
        key, text = item.split("=", 1)
        key = key.strip()
        if not key or not re.fullmatch(r"[A-Za-z_][\w-]*(\.[A-Za-z_][\w-]*)*", key):
            raise ConfigError(f"override {item!r}: {key!r} is not a dotted key like optim.lr")
        try:
            value = yaml_load(text) if text.strip() else None
        except yaml.YAMLError as e:
            raise ConfigError(f"override {item!r}: the value is not valid YAML ({e.problem})") from None
        out.append((key, value))
    return out


def _check_override_key(key: str) -> None:
    if key in SCHEMA or any(key.startswith(sec + ".") for sec in OPEN_SECTIONS):
        return
    if key in SECTIONS:
        return  # a whole section given as a YAML mapping; checked by validate_config
    parts = key.split(".")
    for i in range(1, len(parts) + 1):
        prefix = ".".join(parts[:i])
        if prefix in SCHEMA:
            raise ConfigError(f"unknown key '{key}': '{prefix}' is a value and takes no sub-keys")
        if prefix not in SECTIONS:
            raise unknown_key_error(".".join(parts[:i - 1]), parts[i - 1])
    raise ConfigError(f"unknown key '{key}'")  # pragma: no cover


def _check_stage_override(cfg: dict, key: str) -> None:
    """``stages.NAME.section.key``: NAME must be a stage of the recipe, the rest a stage setting."""
    parts = key.split(".")
    stages = cfg.get("stages") if isinstance(cfg.get("stages"), dict) else {}
    if not stages:
        raise ConfigError(f"override '{key}': this recipe has no stages")
    if parts[1] not in stages:
        hint = difflib.get_close_matches(parts[1], list(stages), n=1)
        raise ConfigError(f"override '{key}': no stage {parts[1]!r}; the recipe's stages are "
                          f"{', '.join(stages)}" + (f" (did you mean {hint[0]!r}?)" if hint else ""))
    if len(parts) > 2:
        if parts[2] not in STAGE_SECTIONS:
            raise ConfigError(f"override '{key}': a stage may set {', '.join(STAGE_SECTIONS)}, not {parts[2]!r}")
        _check_override_key(".".join(parts[2:]))


def apply_overrides(cfg: dict, overrides: list[tuple[str, Any]]) -> dict:
    out = copy.deepcopy(cfg)
    for key, value in overrides:
        if re.fullmatch(r"(stages\.[^.]+\.)?esg(\..*)?", key):
            raise esg_moved(key, value)
        if key.startswith("stages."):
            _check_stage_override(out, key)
        else:
            _check_override_key(key)
        set_key(out, key, value)
    return out
