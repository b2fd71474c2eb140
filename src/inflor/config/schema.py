"""The config schema: the pydantic models of ``models.py`` seen as dotted keys (``SCHEMA``: every
key with its default, accepted values and meaning; ``SECTIONS``), and the check of a (partial)
config against them whose errors name the key, what was expected and what was given, and for an
unknown key the valid ones and the closest match."""
from __future__ import annotations

import copy
import difflib
import re
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from inflor.errors import ConfigError

from .checks import _fmt
from .models import Config, ESGRange

__all__ = ["SCHEMA", "SECTIONS", "DEFAULTS", "RUNTIME_KEYS", "OPEN_SECTIONS", "STAGE_SECTIONS",
           "RESERVED_STAGE_NAMES", "default_config", "check_tree", "check_stages", "unknown_key_error",
           "esg_moved"]


def esg_moved(where: str, value=None) -> ConfigError:
    """The error for the retired ``esg`` section (``esg: {enabled, k_min, k_max}``), saying what to
    write instead: ESG is the surrogate ``model.options.surrogate: {name: esg, k_min, k_max}``."""
    sec = value if isinstance(value, dict) else {}
    leaf = where.rsplit(".", 1)[-1]
    if leaf in ("enabled", "k_min", "k_max"):       # an override of one key: esg.enabled=true
        sec = {leaf: value}
    if sec.get("enabled") is True or leaf in ("k_min", "k_max"):
        ks = {k: sec.get(k, f.default) for k, f in ESGRange.model_fields.items()}
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
#: Sections whose content is free-form here and checked by the component that consumes it.
OPEN_SECTIONS = ("model.options", "data.options")


def check_stages(key, v):
    """``stages``: null, or an ordered mapping of stage name to the settings (sections of
    ``STAGE_SECTIONS``) that stage merges over the recipe, each checked against the schema."""
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
            check_tree(over)
        except ConfigError as e:
            raise ConfigError(f"'{key}.{name}': {e}") from None
        out[name] = copy.deepcopy(over)
    return out


# ------------------------------------------------------------------ the models as dotted keys
class _Values(str):
    """The accepted values of a key as the docs table shows them (``check.doc`` of old)."""

    @property
    def doc(self) -> str:
        return str(self)


def _plain(annotation):
    return get_args(annotation)[0] if get_origin(annotation) is Annotated else annotation


def _optional(annotation) -> tuple[Any, bool]:
    """(the type without ``None`` and without its validators, whether ``None`` is allowed)."""
    if get_origin(annotation) is Union and type(None) in get_args(annotation):
        return _plain(next(a for a in get_args(annotation) if a is not type(None))), True
    return _plain(annotation), False


def _bounds(field) -> dict:
    out = {}
    for m in field.metadata:
        for name in ("gt", "ge", "lt", "le"):
            if getattr(m, name, None) is not None:
                out[name] = getattr(m, name)
    return out


def _values(field) -> str:
    extra = field.json_schema_extra or {}
    if "values" in extra:
        return extra["values"]
    base, optional = _optional(field.annotation)
    if base is bool:
        return "true | false"
    if get_origin(base) is Literal:
        return " | ".join(get_args(base))
    b = _bounds(field)
    bound = f" > {b['gt']}" if "gt" in b else f" >= {b['ge']}" if "ge" in b else ""
    kind = {int: "integer", float: "number", str: "string"}[base]
    return kind + ("" if kind == "string" else bound) + (" or null" if optional else "")


def _leaves(model: type[BaseModel], prefix: str = ""):
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        sub = field.annotation
        if isinstance(sub, type) and issubclass(sub, BaseModel):
            yield from _leaves(sub, key + ".")
        else:
            yield key, field


#: Every leaf: dotted key -> (default, accepted values (``.doc``), meaning), in schema order.
SCHEMA: dict[str, tuple[Any, _Values, str]] = {
    key: (field.get_default(call_default_factory=True), _Values(_values(field)), field.description or "")
    for key, field in _leaves(Config)}
FIELDS = dict(_leaves(Config))

#: Keys that do not change what a run computes; on --resume they may differ from the saved run.
RUNTIME_KEYS = ("data.root", "data.workers", "data.test_batch_size", "train.device", "train.host_allocator",
                "train.log_every",
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
    """Every key at its default."""
    return Config().model_dump()


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


def _message(err: dict) -> ConfigError:
    """One pydantic error as the message a user sees."""
    loc = [p for p in err["loc"]]
    kind, v, ctx = err["type"], err.get("input"), err.get("ctx") or {}
    if any(not isinstance(p, str) for p in loc):
        bad = next(p for p in loc if not isinstance(p, str))
        path = ".".join(p for p in loc[:loc.index(bad)])
        return ConfigError(f"keys must be strings, got {bad!r} under '{path or 'top level'}'")
    key = ".".join(loc)
    if kind == "value_error" and isinstance(ctx.get("error"), ConfigError):
        return ctx["error"]
    if kind == "extra_forbidden":
        if key == "esg":
            return esg_moved("esg", v)
        return unknown_key_error(".".join(loc[:-1]), loc[-1])
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        where = f"'{key}'" if key else "a recipe"
        return ConfigError(f"{where} must be a mapping with keys {', '.join(SECTIONS.get(key, []))}; got {_fmt(v)}")
    field = FIELDS.get(key)
    optional = field is not None and _optional(field.annotation)[1]
    if kind == "bool_type":
        return ConfigError(f"'{key}' must be true or false, got {_fmt(v)}")
    if kind in ("int_type", "int_from_float", "int_parsing"):
        return ConfigError(f"'{key}' must be an integer{' or null' if optional else ''}, got {_fmt(v)}")
    if kind in ("float_type", "finite_number", "float_parsing"):
        return ConfigError(f"'{key}' must be a number, got {_fmt(v)}")
    if kind in ("string_type",):
        return ConfigError(f"'{key}' must be a string, got {_fmt(v)}")
    if kind == "literal_error":
        choices = get_args(_optional(field.annotation)[0])
        return ConfigError(f"invalid value {_fmt(v)} for '{key}'; valid choices: {', '.join(choices)}")
    for name, op in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")):
        if name in ctx:
            bound = ctx[name]       # pydantic gives a float field's bound as a float: 0.0 -> 0
            bound = int(bound) if isinstance(bound, float) and bound.is_integer() else bound
            return ConfigError(f"'{key}' must be {op} {bound}, got {v}")
    return ConfigError(f"'{key}': {err['msg']}, got {_fmt(v)}")   # pragma: no cover - a kind not listed above


def check_tree(node, model: type[BaseModel] = Config, where: tuple = ()) -> dict:
    """``node`` (a whole config or a part, such as a stage's settings) checked against the schema
    (or ``model`` at the dotted place ``where``) and resolved: every key given or at its default.
    Raises ``ConfigError`` for the first problem."""
    if not isinstance(node, dict):
        return _raise(_message({"loc": where, "type": "model_type", "input": node}))
    try:
        return model.model_validate(node).model_dump()
    except ValidationError as e:
        err = e.errors(include_url=False)[0]
        _raise(_message({**err, "loc": where + tuple(err["loc"])}))


def _raise(err: ConfigError):
    raise err from None
