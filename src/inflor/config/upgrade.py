"""Configs saved by an earlier inflor (a run's ``config.yaml``, a checkpoint's ``config``) brought to
today's spelling, so that ``--resume`` and ``inflor eval`` keep working on old runs.

One change so far: the retired ``esg: {enabled, k_min, k_max}`` section. A saved config with ESG on
becomes ``model.options.surrogate: {name: esg, k_min, k_max}`` (what the model was built with:
the old validator allowed no other surrogate beside it); with ESG off the section is dropped.
Recipes and overrides are *not* upgraded silently: they get an error saying what to write
(``inflor.config.schema.esg_moved``)."""
from __future__ import annotations

import copy

__all__ = ["upgrade_saved_config"]


def _upgrade_esg(section: dict) -> None:
    esg = section.pop("esg", None)
    if isinstance(esg, dict) and esg.get("enabled") is True:
        opts = section.setdefault("model", {}).setdefault("options", {})
        opts["surrogate"] = {"name": "esg", "k_min": esg.get("k_min", 1.0), "k_max": esg.get("k_max", 10.0)}


def upgrade_saved_config(cfg: dict) -> dict:
    """A copy of the saved, once-validated ``cfg`` in today's spelling (``cfg`` is not changed)."""
    if not isinstance(cfg, dict):
        return cfg
    out = copy.deepcopy(cfg)
    _upgrade_esg(out)
    stages = out.get("stages")
    for over in (stages.values() if isinstance(stages, dict) else ()):   # anything else: validation says so
        if isinstance(over, dict):
            _upgrade_esg(over)
    return out
