"""Recipes: the YAML files shipped in ``inflor/recipes`` (or any path), read with ``extends``
followed (the named recipe first, this one merged over it), then overridden and validated."""
from __future__ import annotations

import difflib
from importlib import resources
from pathlib import Path

from inflor.errors import ConfigError

from .overrides import apply_overrides, parse_overrides
from .tree import merge
from .validate import validate_config
from .yamlio import read_yaml

__all__ = ["recipes_dir", "list_recipes", "recipe_path", "load_recipe", "load_config"]


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
