"""Run configuration: a nested dict with defaults, loaded from YAML recipes and overridden with
``dotted.key=value`` arguments, validated before any work is done.

Sections (every key, its default and its check are in ``SCHEMA`` below; ``docs/training.md``
renders the same table)::

    name, description                      run name (default: the recipe's file name) and a note
    model:  name, options{...}              options go to inflor.models.create_model (it checks them)
    data:   name, root, batch_size, test_batch_size, workers, drop_last, options{...}
    optim:  name (sgd|adam|adamw), lr, momentum, nesterov, weight_decay, wd_on_bn_bias, betas
    sched:  name (cosine|none), epochs (cosine period, default train.epochs), warmup, min_lr
    loss:   task (ce_mean|ce_per_step), label_smoothing,
            mpd: {weight, terms, k_d, k_s, k_m},  im: {weight, form (paper|official), drop_first_last}
    esg:    enabled, k_min, k_max               (sets model.options.surrogate to ESG)
    train:  epochs, seed, deterministic, amp, amp_dtype, device, log_every, eval_every, save_every,
            grad_clip, max_steps_per_epoch, stop_after_epochs, progress, tensorboard, init_from
    paper:  name, table, row, reported_acc, reported_std, notes   (metadata only; notes may be a
            mapping {topic: where it comes from}, merged topic by topic through ``extends``)
    stages: null, or {stage name: settings} run in order, each from the previous one's weights
            (a warm-up, then the main training; ``inflor.train.stages``)

A recipe may start with ``extends: <recipe name or relative path>``: the named recipe is loaded
first and this one is merged over it (dicts merge key by key, everything else is replaced).
YAML values such as ``1e-4`` are read as numbers (plain PyYAML would read them as strings).
"""
from __future__ import annotations

import copy
import difflib
import math
import re
from importlib import resources
from pathlib import Path
from typing import Any, Callable

import yaml

from inflor.errors import ConfigError  # defined with the other user errors; re-exported here

__all__ = ["ConfigError", "DEFAULTS", "SCHEMA", "NOTE_TOPICS", "default_config", "load_config", "load_recipe",
           "parse_overrides", "apply_overrides", "validate_config", "recipe_path", "list_recipes",
           "recipes_dir", "dump_config", "merge", "get_key", "set_key", "RUNTIME_KEYS"]


# --------------------------------------------------------------------------- YAML reading
class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads ``1e-4`` / ``5E3`` (no dot) as floats, like YAML 1.2 does."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                    |\.[0-9_]+(?:[eE][-+][0-9]+)?
                    |[-+]?\.(?:inf|Inf|INF)
                    |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."))


def yaml_load(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)


def read_yaml(path: Path, what: str, error: type = ConfigError) -> Any:
    """The YAML document in ``path``; an unreadable file or bad YAML raises ``error`` naming
    ``what`` (e.g. "recipe") and the file."""
    try:
        return yaml_load(Path(path).read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise error(f"{what} {path} is not valid YAML: {problem}{where}; expected a YAML mapping of "
                    f"config sections (model, data, optim, train, ...)") from None
    except UnicodeDecodeError:
        raise error(f"{what} {path} is not a text file (not UTF-8); expected a YAML mapping of config "
                    f"sections (model, data, optim, train, ...)") from None
    except OSError as e:
        raise error(f"cannot read {what} {path}: {e.strerror or e}") from None


def dump_config(cfg: dict) -> str:
    """YAML text of a config (keys in schema order, readable)."""
    return yaml.safe_dump(cfg, sort_keys=False, default_flow_style=False, width=100)


# --------------------------------------------------------------------------- value checks
def _fmt(v) -> str:
    return repr(v)


def _number(minimum: float | None = None, maximum: float | None = None, strict_min: bool = False,
            optional: bool = False) -> Callable:
    def check(key, v):
        if v is None and optional:
            return None
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ConfigError(f"'{key}' must be a number, got {_fmt(v)}")
        if minimum is not None and (v <= minimum if strict_min else v < minimum):
            raise ConfigError(f"'{key}' must be {'>' if strict_min else '>='} {minimum}, got {v}")
        if maximum is not None and v > maximum:
            raise ConfigError(f"'{key}' must be <= {maximum}, got {v}")
        return float(v)
    check.doc = "number" + (f" >{'' if strict_min else '='} {minimum}" if minimum is not None else "") \
        + (" or null" if optional else "")
    return check


def _integer(minimum: int | None = None, optional: bool = False) -> Callable:
    def check(key, v):
        if v is None and optional:
            return None
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        if isinstance(v, bool) or not isinstance(v, int):
            raise ConfigError(f"'{key}' must be an integer{' or null' if optional else ''}, got {_fmt(v)}")
        if minimum is not None and v < minimum:
            raise ConfigError(f"'{key}' must be >= {minimum}, got {v}")
        return v
    check.doc = "integer" + (f" >= {minimum}" if minimum is not None else "") + (" or null" if optional else "")
    return check


def _boolean(key, v):
    if not isinstance(v, bool):
        raise ConfigError(f"'{key}' must be true or false, got {_fmt(v)}")
    return v


_boolean.doc = "true | false"


def _choice(*choices) -> Callable:
    def check(key, v):
        if isinstance(v, str) and v.lower() in [c for c in choices if isinstance(c, str)]:
            v = v.lower()
        if v not in choices:
            raise ConfigError(f"invalid value {_fmt(v)} for '{key}'; valid choices: "
                              + ", ".join("null" if c is None else str(c) for c in choices))
        return v
    check.doc = " | ".join("null" if c is None else str(c) for c in choices)
    check.choices = choices
    return check


def _string(optional: bool = True) -> Callable:
    def check(key, v):
        if v is None and optional:
            return None
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return str(v)
        if not isinstance(v, str):
            raise ConfigError(f"'{key}' must be a string, got {_fmt(v)}")
        return v
    check.doc = "string" + (" or null" if optional else "")
    return check


def _mpd_terms(key, v):
    if not isinstance(v, str) or not v or set(v.upper()) - set("DSM") or len(set(v.upper())) != len(v):
        raise ConfigError(f"'{key}' must be a non-empty combination of the letters D (degeneration), "
                          f"S (saturation), M (gradient mismatch), e.g. DSM or D; got {_fmt(v)}")
    return "".join(t for t in "DSM" if t in v.upper())


_mpd_terms.doc = "letters of DSM"


def _betas(key, v):
    if (not isinstance(v, (list, tuple)) or len(v) != 2
            or not all(isinstance(b, (int, float)) and not isinstance(b, bool) and 0 <= b < 1 for b in v)):
        raise ConfigError(f"'{key}' must be a list of two numbers in [0, 1), got {_fmt(v)}")
    return [float(b) for b in v]


_betas.doc = "[b1, b2]"


def _amp(key, v):
    if isinstance(v, bool):
        return v
    raise ConfigError(f"'{key}' must be true or false, got {_fmt(v)}")


_amp.doc = "true | false"


def _snapshots(key, v):
    from inflor.analysis.snapshot import check_spec
    if isinstance(v, (list, tuple)):
        v = ",".join(str(x) for x in v)
    try:
        return check_spec(v)
    except ValueError as e:
        raise ConfigError(f"'{key}': {e}") from None


_snapshots.doc = "epoch list such as '0,1,last', 'every:N', 'all' or null"


def _act_ckpt(key, v):
    if v is None or v is False:
        return None
    if v == "blocks" or (isinstance(v, list) and v and all(isinstance(x, str) and x for x in v)):
        return v
    raise ConfigError(f"'{key}' must be null, 'blocks' (every conv-norm-neuron unit and residual block) or a "
                      f"list of module paths such as [layer1, layer2]; got {_fmt(v)}")


_act_ckpt.doc = "null | blocks | [module paths]"


def _table(key, v):
    if v is None or isinstance(v, (int, str)) and not isinstance(v, bool):
        return v
    raise ConfigError(f"'{key}' must be a table number or name, got {_fmt(v)}")


_table.doc = "int | string"


def _open_dict(key, v):
    if v is None:
        return {}
    if not isinstance(v, dict):
        raise ConfigError(f"'{key}' must be a mapping of options, got {_fmt(v)}")
    return v


_open_dict.doc = "mapping (checked by the model / dataset)"

#: The topics ``paper.notes`` may name, each with where that hyper-parameter comes from (the
#: paper's statement, or the code followed where the paper is silent). Shipped paper recipes give
#: every topic (``precision`` only where they use AMP); tests/test_recipes_provenance.py checks it.
#: ``warm_start`` only where the recipe has ``stages`` (where its starting weights come from).
NOTE_TOPICS = ("network", "neuron", "surrogate", "norm", "loss", "timesteps", "optimizer", "schedule",
               "epochs", "batch", "augmentation", "data", "split", "seed", "warm_start", "precision")


def _notes(key, v):
    if v is None or isinstance(v, str):
        return v
    if not isinstance(v, dict):
        raise ConfigError(f"'{key}' must be a string or a mapping of topic: text, got {_fmt(v)}")
    for topic, text in v.items():
        if topic not in NOTE_TOPICS:
            hint = difflib.get_close_matches(str(topic), NOTE_TOPICS, n=1)
            raise ConfigError(f"unknown topic {topic!r} in '{key}'; valid topics: {', '.join(NOTE_TOPICS)}"
                              + (f" (did you mean {hint[0]!r}?)" if hint else ""))
        if not isinstance(text, str) or not text.strip():
            raise ConfigError(f"'{key}.{topic}' must be a non-empty string, got {_fmt(text)}")
    return dict(v)


_notes.doc = "string, mapping of topic: text, or null"

#: What a stage of ``stages`` may set: the sections of a run (not its name, paper or stages).
STAGE_SECTIONS = ("model", "data", "optim", "sched", "loss", "esg", "train")
#: Folders of a run directory that a stage (a sub-directory) may not be named after.
RESERVED_STAGE_NAMES = ("checkpoints", "tb", "snapshots", "analysis")


def _stages(key, v):
    if v is None:
        return None
    if not isinstance(v, dict) or not v:
        raise ConfigError(f"'{key}' must be null or a mapping of stage name: settings, in the order the stages "
                          f"run, e.g. {{warmup: {{train: {{epochs: 1}}, loss: {{im: {{weight: 2}}}}}}, main: {{}}}}; "
                          f"got {_fmt(v)}")
    out = {}
    for name, over in v.items():
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]*", name) \
                or name in RESERVED_STAGE_NAMES:
            raise ConfigError(f"stage name {name!r} in '{key}' must be letters, digits, '_' or '-' (it names the "
                              f"stage's sub-directory of the run) and not one of {', '.join(RESERVED_STAGE_NAMES)}")
        over = {} if over is None else over
        if not isinstance(over, dict):
            raise ConfigError(f"'{key}.{name}' must be a mapping of settings (sections {', '.join(STAGE_SECTIONS)}), "
                              f"got {_fmt(over)}")
        for section in over:
            if section not in STAGE_SECTIONS:
                raise ConfigError(f"'{key}.{name}.{section}': a stage may set {', '.join(STAGE_SECTIONS)}; "
                                  f"{section!r} belongs to the whole recipe")
        try:
            _check_tree(over, "", {})
        except ConfigError as e:
            raise ConfigError(f"'{key}.{name}': {e}") from None
        out[name] = copy.deepcopy(over)
    return out


_stages.doc = "null or {stage: settings, ...} (in order)"

#: Sections whose content is free-form here and checked by the component that consumes it.
OPEN_SECTIONS = ("model.options", "data.options")

# Every leaf: dotted key -> (default, check, help)
SCHEMA: dict[str, tuple[Any, Callable, str]] = {
    "name": (None, _string(), "run name; default: the recipe's file name"),
    "description": (None, _string(), "free text"),

    "model.name": ("tinyconv", _string(optional=False), "a name of inflor.models.list_models()"),
    "model.options": ({}, _open_dict, "create_model options: timesteps, neuron, neuron_options, mpr, "
                                      "mpr_k, surrogate, norm, restrict_inner, residual_alpha, in_channels, ..."),

    "data.name": ("digits", _string(optional=False), "a name of inflor.data.list_datasets()"),
    "data.root": (None, _string(), "folder of the dataset files (default $INFLOR_DATA or ./data)"),
    "data.batch_size": (64, _integer(1), "global training batch size, as the papers state it: torchrun's N "
                                         "processes load batch_size / N each (it must divide)"),
    "data.test_batch_size": (None, _integer(1, optional=True), "global evaluation batch size (default: "
                                                               "batch_size; divided among processes, rounded up)"),
    "data.workers": (0, _integer(0), "DataLoader worker processes"),
    "data.drop_last": (False, _boolean, "drop the last incomplete training batch"),
    "data.options": ({}, _open_dict, "dataset options (inflor.data.dataset_options(name))"),

    "optim.name": ("sgd", _choice("sgd", "adam", "adamw"), "optimizer"),
    "optim.lr": (0.1, _number(0, strict_min=True), "base learning rate"),
    "optim.momentum": (0.9, _number(0, 1), "SGD momentum"),
    "optim.nesterov": (False, _boolean, "SGD Nesterov momentum"),
    "optim.weight_decay": (1e-4, _number(0), "L2 weight decay"),
    "optim.wd_on_bn_bias": (True, _boolean, "true: decay every parameter (IM-Loss/InfLoR code); "
                                             "false: only conv/linear weights (MPBN, ImageNet code)"),
    "optim.betas": ([0.9, 0.999], _betas, "Adam betas"),

    "sched.name": ("cosine", _choice("cosine", "none"), "per-epoch learning-rate schedule"),
    "sched.epochs": (None, _integer(1, optional=True), "cosine period in epochs (default: train.epochs)"),
    "sched.warmup": (0, _integer(0), "epochs of linear warm-up before the cosine"),
    "sched.min_lr": (0.0, _number(0), "learning rate at the end of the cosine"),

    "loss.task": ("ce_mean", _choice("ce_mean", "ce_per_step"),
                  "ce_mean: CE of the T-mean logits; ce_per_step: (1/T) Σ_t CE (RecDis Alg. 1)"),
    "loss.label_smoothing": (0.0, _number(0, 1), "label smoothing of the task loss"),
    "loss.mpd.weight": (0.0, _number(0), "λ of MPD-Loss (RecDis: 2); 0 = off"),
    "loss.mpd.terms": ("DSM", _mpd_terms, "which MPD terms: D degeneration, S saturation, M mismatch"),
    "loss.mpd.k_d": (1.0, _number(0), "k_ε of L_D"),
    "loss.mpd.k_s": (0.25, _number(0), "k_ε of L_S"),
    "loss.mpd.k_m": (1.25, _number(0), "k_ε of L_M"),
    "loss.im.weight": (0.0, _number(0), "λ of IM-Loss (IM-Loss paper: 2; official code: 0.005); 0 = off"),
    "loss.im.form": ("paper", _choice("paper", "official"), "paper: Eq. 11; official: the released code's variant"),
    "loss.im.drop_first_last": (True, _boolean, "official form: drop the first and last restricted layer"),

    "esg.enabled": (False, _boolean, "use the ESG surrogate (IM-Loss Eq. 14-15); K set every epoch"),
    "esg.k_min": (1.0, _number(0, strict_min=True), "K at epoch 0"),
    "esg.k_max": (10.0, _number(0, strict_min=True), "K approached at the last epoch"),

    "train.epochs": (20, _integer(1), "number of epochs"),
    "train.seed": (0, _integer(0), "seed of weights, data order (per epoch) and augmentation"),
    "train.deterministic": (False, _boolean, "deterministic kernels (slower on GPU)"),
    "train.amp": (False, _boolean, "mixed precision (CUDA: float16 + grad scaling; CPU: bfloat16)"),
    "train.amp_dtype": ("auto", _choice("auto", "float16", "bfloat16"), "autocast dtype"),
    "train.device": ("auto", _string(optional=False), "auto (CUDA if present), cpu, cuda, cuda:N"),
    "train.log_every": (50, _integer(1), "TensorBoard step-loss interval (steps)"),
    "train.eval_every": (1, _integer(1), "test every N epochs (and always after the last)"),
    "train.save_every": (1, _integer(1), "write checkpoints/last.pt every N epochs (and after the last)"),
    "train.activation_checkpointing": (None, _act_ckpt, "recompute these modules in the backward pass to save "
                                                         "memory (long T, deep nets); same gradients"),
    "train.bptt": ("full", _choice("full", "online"), "full: backprop through time; online: one step at a "
                                                       "time, memory constant in T (inflor.train.online)"),
    "train.grad_clip": (None, _number(0, strict_min=True, optional=True), "clip the gradient norm; null = off"),
    "train.max_steps_per_epoch": (None, _integer(1, optional=True), "cut epochs short (quick checks)"),
    "train.stop_after_epochs": (None, _integer(1, optional=True),
                                "stop (as if killed) after this many epochs; --resume continues"),
    "train.progress": ("auto", _choice("auto", "bar", "plain", "none"),
                       "auto: a bar on a terminal, one line per epoch otherwise (or when CI=true)"),
    "train.tensorboard": (True, _boolean, "write TensorBoard events to OUT/tb"),
    "train.snapshots": (None, _snapshots, "record per-layer membrane statistics into OUT/snapshots at these "
                                          "epochs (0 = before training), e.g. '0,1,last'; docs/analysis.md"),
    "train.snapshot_batches": (10, _integer(1, optional=True), "test batches per snapshot (null: the whole test set)"),
    "train.init_from": (None, _string(), "a checkpoint file, or a run directory (its checkpoints/last.pt), whose "
                                         "model weights start this run: weights only, matched by name and shape; "
                                         "OUT/init.json holds their test evaluation before training"),

    "paper.name": (None, _string(), "paper the recipe reproduces"),
    "paper.table": (None, _table, "table number"),
    "paper.row": (None, _string(), "row of the table"),
    "paper.reported_acc": (None, _number(0, 1, optional=True), "reported top-1 accuracy (fraction)"),
    "paper.reported_std": (None, _number(0, 1, optional=True), "reported standard deviation (fraction)"),
    "paper.notes": (None, _notes, "where each hyper-parameter comes from: text, or {topic: text} over "
                                  "network, neuron, ..., seed (config.NOTE_TOPICS); recipes merge it by topic"),

    "stages": (None, _stages, "a protocol of several trainings run in order into OUT/<stage>, each a set of "
                              "overrides of this recipe, each after the first starting from the weights of the "
                              "one before (train.init_from); docs/training.md"),
}

#: Keys that do not change what a run computes; on --resume they may differ from the saved run.
RUNTIME_KEYS = ("data.root", "data.workers", "data.test_batch_size", "train.device", "train.log_every",
                "train.progress", "train.tensorboard", "train.stop_after_epochs", "train.eval_every",
                "train.save_every", "train.snapshots", "train.snapshot_batches", "paper.notes", "description")


def _sections() -> dict[str, list[str]]:
    """Section path -> child names ('' is the top level)."""
    out: dict[str, list[str]] = {}
    for key in SCHEMA:
        parts = key.split(".")
        for i in range(len(parts)):
            parent = ".".join(parts[:i])
            out.setdefault(parent, [])
            if parts[i] not in out[parent]:
                out[parent].append(parts[i])
    return out


SECTIONS = _sections()


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


def default_config() -> dict:
    cfg: dict = {}
    for key, (default, _, _) in SCHEMA.items():
        set_key(cfg, key, copy.deepcopy(default))
    return cfg


DEFAULTS = default_config()


def merge(base: dict, over: dict) -> dict:
    """Deep merge: dicts merge recursively, other values in ``over`` replace those of ``base``."""
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


# --------------------------------------------------------------------------- checking
def _unknown_key_error(path: str, name: str) -> ConfigError:
    full = f"{path}.{name}" if path else name
    valid = SECTIONS.get(path, [])
    hint = difflib.get_close_matches(name, valid, n=1)
    where = f"under '{path}'" if path else "at the top level"
    msg = f"unknown key '{full}'; valid keys {where}: {', '.join(valid)}"
    if hint:
        msg += f" (did you mean '{(path + '.') if path else ''}{hint[0]}'?)"
    return ConfigError(msg)


def _check_tree(node: dict, path: str, out: dict) -> None:
    if not isinstance(node, dict):
        where = f"'{path}'" if path else "a recipe"
        raise ConfigError(f"{where} must be a mapping with keys {', '.join(SECTIONS.get(path, []))}; "
                          f"got {_fmt(node)}")
    for name, value in node.items():
        if not isinstance(name, str):
            raise ConfigError(f"keys must be strings, got {name!r} under '{path or 'top level'}'")
        full = f"{path}.{name}" if path else name
        if full in SCHEMA:
            _, check, _ = SCHEMA[full]
            out[full] = check(full, value)
        elif full in SECTIONS:
            _check_tree(value, full, out)
        else:
            raise _unknown_key_error(path, name)


def validate_config(cfg: dict) -> dict:
    """Check every key and value of ``cfg`` (unknown keys, types, choices, cross-field rules) and
    return a fully resolved copy (defaults filled in). Raises ``ConfigError`` naming the valid
    keys or choices. Model and dataset options are checked by their own modules later."""
    flat: dict[str, Any] = {}
    _check_tree(cfg, "", flat)
    out = default_config()
    for key, value in flat.items():
        set_key(out, key, value)
    # cross-field rules
    surrogate = out["model"]["options"].get("surrogate")
    if out["esg"]["enabled"]:
        sname = surrogate.get("name") if isinstance(surrogate, dict) else surrogate
        if sname not in (None, "esg"):
            raise ConfigError(f"esg.enabled is true but model.options.surrogate is {surrogate!r}; "
                              "drop one of them (ESG is a surrogate)")
        if out["esg"]["k_min"] > out["esg"]["k_max"]:
            raise ConfigError(f"esg.k_min ({out['esg']['k_min']}) must be <= esg.k_max ({out['esg']['k_max']})")
    sched_epochs = out["sched"]["epochs"] or out["train"]["epochs"]
    if out["sched"]["name"] == "cosine" and out["sched"]["warmup"] >= sched_epochs:
        raise ConfigError(f"sched.warmup ({out['sched']['warmup']}) must be smaller than the cosine "
                          f"period ({sched_epochs} epochs)")
    dev = out["train"]["device"]
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", dev):
        raise ConfigError(f"invalid value {dev!r} for 'train.device'; valid choices: auto, cpu, cuda, cuda:N")
    if out["stages"]:
        from .stages import stage_configs
        stage_configs(out)          # every stage's own config is valid too
    return out


def effective_model_options(cfg: dict) -> dict:
    """``model.options`` with the ESG section folded in (the surrogate option)."""
    opts = copy.deepcopy(cfg["model"]["options"])
    if cfg["esg"]["enabled"]:
        opts["surrogate"] = {"name": "esg", "k_min": cfg["esg"]["k_min"], "k_max": cfg["esg"]["k_max"]}
    return opts


# --------------------------------------------------------------------------- overrides
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
            raise _unknown_key_error(".".join(parts[:i - 1]), parts[i - 1])
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
        if key.startswith("stages."):
            _check_stage_override(out, key)
        else:
            _check_override_key(key)
        set_key(out, key, value)
    return out


# --------------------------------------------------------------------------- recipes
def recipes_dir() -> Path:
    """The folder of the recipes shipped with inflor."""
    return Path(str(resources.files("inflor") / "recipes"))


def list_recipes(include_bases: bool = False) -> list[str]:
    """Names of the shipped recipes (bases, whose names start with ``_``, left out)."""
    names = sorted(p.stem for p in recipes_dir().glob("*.yaml"))
    return names if include_bases else [n for n in names if not n.startswith("_")]


def recipe_path(spec: str, relative_to: Path | None = None) -> Path:
    """A recipe file from a path or a shipped recipe name (``resnet19_c10_inflor_t4``)."""
    cand = []
    p = Path(spec).expanduser()
    if relative_to is not None and not p.is_absolute():
        cand += [relative_to / p, relative_to / f"{spec}.yaml"]
    cand += [p, recipes_dir() / spec, recipes_dir() / f"{spec}.yaml"]
    for c in cand:
        if c.is_file():
            return c
    names = list_recipes(include_bases=True)
    close = difflib.get_close_matches(Path(spec).stem, names, n=3, cutoff=0.5)
    msg = f"recipe {spec!r} not found: no such file and no shipped recipe of that name"
    if close:
        msg += f"; did you mean: {', '.join(close)}?"
    msg += " (list them with: inflor train --list-recipes)"
    raise ConfigError(msg)


def load_recipe(spec: str, _seen: tuple = (), relative_to: Path | None = None) -> dict:
    """Read a recipe (following ``extends``) into a raw, unvalidated dict."""
    path = recipe_path(spec, relative_to).resolve()
    if path in _seen:
        raise ConfigError(f"recipe {path} extends itself (cycle: {' -> '.join(map(str, _seen + (path,)))})")
    raw = read_yaml(path, "recipe")
    raw = {} if raw is None else raw
    if not isinstance(raw, dict):
        raise ConfigError(f"recipe {path} must be a YAML mapping of sections, got {type(raw).__name__}")
    base = raw.pop("extends", None)
    if base is not None:
        parent = load_recipe(str(base), _seen + (path,), relative_to=path.parent)
        parent.pop("name", None)
        raw = merge(parent, raw)
    return raw


def load_config(recipe: str | None = None, overrides: list[str] | None = None) -> dict:
    """Recipe (default: the shipped ``default``) + overrides -> validated, resolved config."""
    spec = recipe or "default"
    recipe_raw = load_recipe(spec)
    recipe_raw.setdefault("name", recipe_path(spec).stem)
    pairs = parse_overrides(overrides or [])
    try:
        return validate_config(apply_overrides(recipe_raw, pairs))
    except ConfigError as e:
        if pairs:   # name the recipe only when the error is the recipe's own, not an override's
            try:
                validate_config(recipe_raw)
            except ConfigError as own:
                if str(own) != str(e):
                    raise
            else:
                raise
        raise ConfigError(f"recipe {recipe_path(spec)}: {e}") from None


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
