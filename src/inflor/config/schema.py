"""The config schema: every key with its default, check and meaning (``SCHEMA``), the sections
it makes, and the walk that checks a (partial) config against it, naming unknown keys with the
valid ones and the closest match."""
from __future__ import annotations

import copy
import difflib
import re
from typing import Any, Callable

from inflor.errors import ConfigError

from .checks import (_act_ckpt, _betas, _boolean, _choice, _fmt, _integer, _mpd_terms, _notes, _number,
                     _open_dict, _snapshots, _string, _table)
from .tree import set_key

__all__ = ["SCHEMA", "SECTIONS", "DEFAULTS", "RUNTIME_KEYS", "OPEN_SECTIONS", "STAGE_SECTIONS",
           "RESERVED_STAGE_NAMES", "default_config", "check_tree", "unknown_key_error", "esg_moved"]

#: ESG's K range when the old ``esg`` section did not give it (IM-Loss Sec. 4.3: 1 to 10).
_ESG_K = {"k_min": 1.0, "k_max": 10.0}


def esg_moved(where: str, value=None) -> ConfigError:
    """The error for the retired ``esg`` section (``esg: {enabled, k_min, k_max}``), saying what to
    write instead: ESG is the surrogate ``model.options.surrogate: {name: esg, k_min, k_max}``."""
    sec = value if isinstance(value, dict) else {}
    leaf = where.rsplit(".", 1)[-1]
    if leaf in ("enabled", "k_min", "k_max"):       # an override of one key: esg.enabled=true
        sec = {leaf: value}
    if sec.get("enabled") is True or leaf in ("k_min", "k_max"):
        ks = {k: sec.get(k, d) for k, d in _ESG_K.items()}
        spec = f"{{name: esg, k_min: {ks['k_min']}, k_max: {ks['k_max']}}}"
        todo = (f"write model: {{options: {{surrogate: {spec}}}}} (on the command line: "
                f"'model.options.surrogate={spec}')")
    else:
        todo = ("delete it (ESG was off) and set model.options.surrogate to the surrogate you use, "
                "e.g. model: {options: {surrogate: rectangle}}")
    return ConfigError(f"'{where}': the esg section is gone, ESG is a surrogate setting "
                       f"(model.options.surrogate: {{name: esg, k_min, k_max}}); {todo}")



#: What a stage of ``stages`` may set: the sections of a run (not its name, paper or stages).
STAGE_SECTIONS = ("model", "data", "optim", "sched", "loss", "train")
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
            if section == "esg":
                raise esg_moved(f"{key}.{name}.esg", over["esg"])
            if section not in STAGE_SECTIONS:
                raise ConfigError(f"'{key}.{name}.{section}': a stage may set {', '.join(STAGE_SECTIONS)}; "
                                  f"{section!r} belongs to the whole recipe")
        try:
            check_tree(over, "", {})
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
                                      "mpr_k, surrogate (a name, or {name: esg, k_min, k_max} for ESG), norm, "
                                      "restrict_inner, residual_alpha, in_channels, ..."),

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


def default_config() -> dict:
    cfg: dict = {}
    for key, (default, _, _) in SCHEMA.items():
        set_key(cfg, key, copy.deepcopy(default))
    return cfg


DEFAULTS = default_config()


# ------------------------------------------------------------------ checking a tree
def unknown_key_error(path: str, name: str) -> ConfigError:
    full = f"{path}.{name}" if path else name
    valid = SECTIONS.get(path, [])
    hint = difflib.get_close_matches(name, valid, n=1)
    where = f"under '{path}'" if path else "at the top level"
    msg = f"unknown key '{full}'; valid keys {where}: {', '.join(valid)}"
    if hint:
        msg += f" (did you mean '{(path + '.') if path else ''}{hint[0]}'?)"
    return ConfigError(msg)


def check_tree(node: dict, path: str, out: dict) -> None:
    if not isinstance(node, dict):
        where = f"'{path}'" if path else "a recipe"
        raise ConfigError(f"{where} must be a mapping with keys {', '.join(SECTIONS.get(path, []))}; "
                          f"got {_fmt(node)}")
    for name, value in node.items():
        if not isinstance(name, str):
            raise ConfigError(f"keys must be strings, got {name!r} under '{path or 'top level'}'")
        full = f"{path}.{name}" if path else name
        if full == "esg":
            raise esg_moved("esg", value)
        if full in SCHEMA:
            _, check, _ = SCHEMA[full]
            out[full] = check(full, value)
        elif full in SECTIONS:
            check_tree(value, full, out)
        else:
            raise unknown_key_error(path, name)
