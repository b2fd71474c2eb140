"""Model registry (timm style): ``@register_model``, ``create_model``, ``list_models``.

A registered builder is a function ``fn(num_classes=10, *, <model options>, **common)`` returning a
``SpikingModel``; its keyword-only parameters are the model's own options (with defaults), and
``**common`` receives the options every model takes (``base.COMMON_OPTIONS``). Variants
(``resnet19_dvs`` ...) are the same builder registered under another name with other defaults::

    register_model(resnet19, name="resnet19_dvs", in_channels=2, timesteps=10)

``create_model`` resolves the options (library defaults < the entry's defaults < the caller's),
builds the model and stores ``model.model_name`` and ``model.model_options`` — every resolved
option including ``num_classes`` — so ``create_model(m.model_name, **m.model_options)`` rebuilds
the same network even if library defaults change later.
"""
from __future__ import annotations

import copy
import fnmatch
import functools
import inspect
from dataclasses import dataclass, field
from typing import Callable

from .base import COMMON_OPTIONS, SpikingModel


@dataclass
class ModelEntry:
    name: str
    builder: Callable[..., SpikingModel]
    defaults: dict = field(default_factory=dict)   # overrides of common / model-option defaults
    doc: str = ""

    def own_options(self) -> dict:
        """The builder's keyword-only options and their default values."""
        return {p.name: p.default for p in inspect.signature(self.builder).parameters.values()
                if p.kind is inspect.Parameter.KEYWORD_ONLY}

    def options(self) -> dict:
        """Every option this model accepts with its effective default."""
        return {**copy.deepcopy(COMMON_OPTIONS), **self.own_options(), **copy.deepcopy(self.defaults)}


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(fn: Callable | None = None, *, name: str | None = None, doc: str | None = None,
                   **defaults):
    """Register a model builder (usable bare, ``@register_model``, or with a name and defaults).

    Returns a function with the builder's name and docstring that calls ``create_model``, so
    calling it directly also gives a model with ``model_name`` / ``model_options`` set.
    """
    if fn is None:
        return functools.partial(register_model, name=name, doc=doc, **defaults)
    builder = getattr(fn, "__inflor_builder__", fn)
    key = name or builder.__name__
    if key in _REGISTRY:
        raise ValueError(f"model {key!r} is already registered")
    entry = ModelEntry(key, builder, dict(defaults), doc or (builder.__doc__ or ""))
    valid = entry.options()
    for k in defaults:
        if k not in valid:
            raise ValueError(f"{key}: unknown default option {k!r}; valid options: {sorted(valid)}")
    _REGISTRY[key] = entry

    @functools.wraps(builder)
    def create(num_classes: int = 10, **options) -> SpikingModel:
        return create_model(key, num_classes=num_classes, **options)

    create.__inflor_builder__ = builder
    if doc:
        create.__doc__ = doc
    return create


def list_models(pattern: str | None = None) -> list[str]:
    """Registered model names, sorted; ``pattern`` filters them with ``fnmatch`` (e.g. ``"*dvs"``)."""
    names = sorted(_REGISTRY)
    return names if pattern is None else [n for n in names if fnmatch.fnmatchcase(n, pattern)]


def get_model_entry(name: str) -> ModelEntry:
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; valid choices: {', '.join(list_models())}")
    return _REGISTRY[name]


def model_options(name: str) -> dict:
    """The options model ``name`` accepts (besides ``num_classes``) with their defaults."""
    return get_model_entry(name).options()


def create_model(name: str, num_classes: int = 10, **options) -> SpikingModel:
    """Build the registered model ``name`` with ``num_classes`` outputs and the given options.

    Unknown names or options raise ``ValueError`` naming the valid choices.
    """
    entry = get_model_entry(name)
    resolved = entry.options()
    unknown = [k for k in options if k not in resolved]
    if unknown:
        raise ValueError(f"unknown option(s) {unknown} for model {name!r}; valid options: "
                         f"{sorted(resolved)} (plus num_classes)")
    resolved.update(copy.deepcopy(options))
    model = entry.builder(num_classes=num_classes, **copy.deepcopy(resolved))
    model.model_name = name
    model.model_options = {"num_classes": num_classes, **resolved}
    return model
