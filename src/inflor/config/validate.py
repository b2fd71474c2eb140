"""A config checked and resolved: every key and value (``validate_config``), the cross-field
rules, every stage of a recipe made of stages (``stage_configs``), and the options the model is
built with (``effective_model_options``)."""
from __future__ import annotations

import copy
import re
from pathlib import Path

from inflor.errors import ConfigError

from .models import ESGRange
from .schema import check_tree
from .tree import merge

__all__ = ["validate_config", "effective_model_options", "stage_configs"]


def _check_esg_surrogate(surrogate) -> None:
    """``model.options.surrogate: {name: esg, k_min, k_max}`` needs 0 < k_min <= k_max (IM-Loss Eq. 15)."""
    if not isinstance(surrogate, dict) or str(surrogate.get("name", "")).lower() != "esg":
        return
    ks = check_tree(surrogate, ESGRange, ("model", "options", "surrogate"))
    if ks["k_min"] > ks["k_max"]:
        raise ConfigError(f"model.options.surrogate.k_min ({ks['k_min']}) must be <= "
                          f"model.options.surrogate.k_max ({ks['k_max']}) (ESG's K grows from k_min to k_max)")


def validate_config(cfg: dict) -> dict:
    """Check every key and value of ``cfg`` (unknown keys, types, choices, cross-field rules) and
    return a fully resolved copy (defaults filled in). Raises ``ConfigError`` naming the valid
    keys or choices. Model and dataset options are checked by their own modules later."""
    out = check_tree(cfg)
    # cross-field rules
    _check_esg_surrogate(out["model"]["options"].get("surrogate"))
    sched_epochs = out["sched"]["epochs"] or out["train"]["epochs"]
    if out["sched"]["name"] == "cosine" and out["sched"]["warmup"] >= sched_epochs:
        raise ConfigError(f"sched.warmup ({out['sched']['warmup']}) must be smaller than the cosine "
                          f"period ({sched_epochs} epochs)")
    if out["train"]["bptt"] == "online" and out["train"]["activation_checkpointing"]:
        raise ConfigError("train.bptt=online cannot be combined with train.activation_checkpointing: the recomputed "
                          "forward would move the carried membrane on a step (online training already keeps one "
                          "step's activations); set train.activation_checkpointing=null")
    dev = out["train"]["device"]
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", dev):
        raise ConfigError(f"invalid value {dev!r} for 'train.device'; valid choices: auto, cpu, cuda, cuda:N")
    if out["stages"]:
        stage_configs(out)          # every stage's own config is valid too
    return out


def effective_model_options(cfg: dict) -> dict:
    """The options the model is built with: a copy of ``model.options`` (ESG is among them, as the
    surrogate ``{name: esg, k_min, k_max}``; the trainer finds ESG modules in the built model)."""
    return copy.deepcopy(cfg["model"]["options"])


def stage_configs(cfg: dict, out: str | Path | None = None) -> list[tuple[str, dict]]:
    """``[(stage name, validated config), ...]`` in order; with ``out``, chained stages start from
    ``out/<previous>/checkpoints/last.pt``."""
    base = {k: v for k, v in cfg.items() if k != "stages"}
    stages = cfg.get("stages") or {}
    result = []
    prev = None
    for name, over in stages.items():
        over = over or {}
        if prev is not None and (over.get("train") or {}).get("init_from") is not None:
            raise ConfigError(f"'stages.{name}.train.init_from': only the first stage may set it; stage {name!r} "
                              f"starts from the weights stage {prev!r} leaves")
        merged = merge(base, over)
        merged["stages"] = None
        merged["name"] = f"{cfg.get('name') or 'run'}/{name}"
        if prev is not None:
            where = Path(out) / prev if out is not None else Path(prev)
            merged["train"]["init_from"] = str(where / "checkpoints" / "last.pt")
        try:
            result.append((name, validate_config(merged)))
        except ConfigError as e:
            raise ConfigError(f"stage {name!r}: {e}") from None
        prev = name
    return result
