"""Every shipped recipe resolved to what it trains: the model (registry name and the options it is
built with), the loss, the optimizer, the learning-rate schedule, the data and the training
settings that change what is computed, compared with ``tests/golden/recipes_effective.json``.

The golden file was written before the training layer was reorganised (issue 12); a change to
it is a change of what a recipe trains and must be reviewed line by line. Regenerate it with

    PYTHONPATH=src python tests/test_recipes_golden.py --update
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from inflor.train.config import RUNTIME_KEYS, effective_model_options, list_recipes, load_config

GOLDEN = Path(__file__).parent / "golden" / "recipes_effective.json"


def _computing(section: dict, prefix: str) -> dict:
    """``section`` without the keys that do not change what a run computes (RUNTIME_KEYS)."""
    return {k: v for k, v in section.items() if f"{prefix}.{k}" not in RUNTIME_KEYS}


def effective(cfg: dict) -> dict:
    """What a resolved config trains, in plain JSON types."""
    sched = dict(cfg["sched"])
    sched["epochs"] = sched["epochs"] or cfg["train"]["epochs"]     # the cosine period actually used
    out = {
        "model": {"name": cfg["model"]["name"], "options": effective_model_options(cfg)},
        "loss": cfg["loss"],
        "optim": cfg["optim"],
        "sched": sched,
        "data": _computing(cfg["data"], "data"),
        "train": _computing(cfg["train"], "train"),
    }
    if cfg.get("stages"):
        from inflor.train.stages import stage_configs
        out["stages"] = {name: effective(c) for name, c in stage_configs(cfg)}
    return out


def resolve_all() -> dict:
    return {name: effective(load_config(name)) for name in list_recipes()}


def _text(data: dict) -> str:
    return json.dumps(data, indent=1, sort_keys=True) + "\n"


def test_recipes_resolve_as_in_golden_file():
    assert GOLDEN.is_file(), f"{GOLDEN} is missing; write it with: PYTHONPATH=src python {__file__} --update"
    golden = json.loads(GOLDEN.read_text())
    now = json.loads(_text(resolve_all()))
    assert sorted(now) == sorted(golden), "the shipped recipes differ from the golden file's"
    changed = [name for name in golden if now[name] != golden[name]]
    assert not changed, f"recipes that resolve differently from {GOLDEN.name}: {changed}"


def test_golden_check_can_fail():
    """A change of one optimizer setting is seen."""
    golden = json.loads(GOLDEN.read_text())
    name = sorted(golden)[0]
    cfg = load_config(name, ["optim.lr=0.123456"])
    assert effective(cfg) != golden[name]


if __name__ == "__main__":
    if sys.argv[1:] != ["--update"]:
        sys.exit(f"usage: PYTHONPATH=src python {sys.argv[0]} --update   (rewrites {GOLDEN})")
    GOLDEN.parent.mkdir(parents=True, exist_ok=True)
    GOLDEN.write_text(_text(resolve_all()))
    print(f"wrote {GOLDEN}")
