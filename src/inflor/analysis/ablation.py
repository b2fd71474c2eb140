"""What distinguishes runs in an ablation: the config keys whose values differ among them.

``inflor compare`` names each run by those keys (``neuron=srif``, ``neuron=if, mpd.weight=2``)
instead of by its recipe name, which is the same for every run of an ablation made with
overrides, and shows them as columns of its table.

    configs = [read_config(d) for d in run_dirs]
    keys = differing_keys(configs)            # ["model.options.neuron", "loss.mpd.weight"]
    names = short_names(keys, configs)        # {"model.options.neuron": "neuron", ...}
    run_label(configs[3], keys, names)        # "neuron=if, mpd.weight=2"
"""
from __future__ import annotations

import fnmatch
from typing import Mapping, Sequence

#: config keys that do not change what a run learns or measures (logging, progress output,
#: checkpoint cadence, data location, debugging stops, the free-text description and the paper
#: reference, which ``compare`` shows in a column of its own): never used to tell runs apart
IGNORED_KEYS = ("description", "paper", "paper.*", "data.root", "data.workers", "train.progress",
                "train.tensorboard", "train.log_every", "train.save_every", "train.snapshots",
                "train.snapshot_batches", "train.stop_after_epochs")

#: leaf names that say nothing without their parent (``im.weight``, ``mpd.weight``, ``data.name``):
#: their short name keeps it even where the leaf alone would be unique
CONTEXT_LEAVES = ("enabled", "weight", "name", "form", "terms")

#: at most this many keys are named in a run's label (the table shows them all)
MAX_LABEL_KEYS = 4

MISSING = object()


def flatten_config(cfg: Mapping, prefix: str = "") -> dict[str, object]:
    """``{"a.b.c": value}`` for every leaf of a nested config, in the config's order; an empty
    mapping is a leaf (its value ``{}``), a list is a leaf (as a tuple, so it can be compared)."""
    flat: dict[str, object] = {}
    for k, v in cfg.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping) and v:
            flat.update(flatten_config(v, key + "."))
        elif isinstance(v, list):
            flat[key] = tuple(v)
        else:
            flat[key] = v
    return flat


def _ignored(key: str) -> bool:
    return any(key == p or fnmatch.fnmatchcase(key, p) for p in IGNORED_KEYS)


def differing_keys(configs: Sequence[Mapping]) -> list[str]:
    """The dotted keys whose value is not the same in every config (a key missing from some
    config counts as a value of its own), in order of first appearance, without ``IGNORED_KEYS``."""
    flats = [flatten_config(c or {}) for c in configs]
    order: list[str] = []
    for f in flats:
        order += [k for k in f if k not in order]
    out = []
    for key in order:
        values = [f.get(key, MISSING) for f in flats]
        if not _ignored(key) and any(v != values[0] for v in values):
            out.append(key)
    return out


def short_names(keys: Sequence[str], configs: Sequence[Mapping]) -> dict[str, str]:
    """For each key its shortest dotted suffix that ends no other key of any config
    (``model.options.neuron`` -> ``neuron``, ``train.epochs`` -> ``train.epochs`` because
    ``sched.epochs`` exists too), with the parent kept for ``CONTEXT_LEAVES`` (``im.weight``,
    ``mpd.weight``)."""
    every: set[str] = set()
    for c in configs:
        every.update(flatten_config(c or {}))
    names = {}
    for key in keys:
        parts = key.split(".")
        for n in range(2 if parts[-1] in CONTEXT_LEAVES and len(parts) > 1 else 1, len(parts) + 1):
            suffix = ".".join(parts[-n:])
            if not any(other != key and (other == suffix or other.endswith("." + suffix)) for other in every):
                break
        names[key] = suffix
    return names


def format_value(v) -> str:
    """A config value as a user would type it in an override: ``2`` for 2.0, ``true``,
    ``null``, ``[0.9, 0.999]``, ``–`` for a key the run does not have."""
    if v is MISSING:
        return "–"
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return str(int(v)) if v.is_integer() and abs(v) < 1e15 else f"{v:g}"
    if isinstance(v, (tuple, list)):
        return "[" + ", ".join(format_value(x) for x in v) + "]"
    if isinstance(v, Mapping):
        return "{}" if not v else str(dict(v))
    return str(v)


def is_off(v) -> bool:
    """A value that switches something off (``0``, ``false``, ``null``, ``none``, ``off``): such
    keys are left out of a label when other keys say what the run is."""
    if v is MISSING or v is None or v is False:
        return True
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return v == 0
    return isinstance(v, str) and v.strip().lower() in ("none", "off", "false", "0")


def config_values(cfg: Mapping, keys: Sequence[str]) -> dict[str, object]:
    """``{key: value}`` of ``cfg`` for the dotted ``keys`` (``MISSING`` where it has none)."""
    flat = flatten_config(cfg or {})
    return {k: flat.get(k, MISSING) for k in keys}


def run_label(cfg: Mapping, keys: Sequence[str], names: Mapping[str, str]) -> str:
    """``"neuron=if, mpd.weight=2"``: the run's values of the distinguishing ``keys``, leaving
    out those that switch something off unless nothing else is left, at most ``MAX_LABEL_KEYS``
    of them (``…`` when more); ``""`` when no key distinguishes the run."""
    values = config_values(cfg, keys)
    shown = [k for k in keys if not is_off(values[k])] or list(keys)
    parts = [f"{names[k]}={format_value(values[k])}" for k in shown[:MAX_LABEL_KEYS]]
    return ", ".join(parts) + (", …" if len(shown) > MAX_LABEL_KEYS else "")


def unique_labels(labels: Sequence[str], fallbacks: Sequence[str]) -> list[str]:
    """Labels made distinct: an empty label becomes its fallback (the run folder's name), a label
    shared by several runs gets its fallback in brackets, and what is still shared a number."""
    out = [lab or fb for lab, fb in zip(labels, fallbacks)]
    shared = {lab for lab in out if out.count(lab) > 1}
    out = [f"{lab} ({fb})" if lab in shared and lab != fb else lab for lab, fb in zip(out, fallbacks)]
    seen: dict[str, int] = {}
    result = []
    for lab in out:
        n = seen.get(lab, 0)
        seen[lab] = n + 1
        result.append(f"{lab} ({n + 1})" if n else lab)
    return result


def describe_runs(configs: Sequence[Mapping], folders: Sequence[str],
                  labels: Sequence[str] | None = None) -> tuple[list[str], dict[str, str], list[dict[str, str]]]:
    """``(labels, {key: short name}, [{short name: formatted value} per run])`` for runs with
    these configs and folder names; ``labels`` given by the user replace the derived ones."""
    keys = differing_keys(configs)
    names = short_names(keys, configs)
    derived = [run_label(c, keys, names) for c in configs]
    chosen = list(labels) if labels is not None else derived
    values = [{names[k]: format_value(v) for k, v in config_values(c, keys).items()} for c in configs]
    return unique_labels(chosen, folders), names, values
