"""Datasets for inflor: one entry point, :func:`build_datasets`, over a registry of builders.

    from inflor.data import build_datasets, list_datasets, DatasetInfo
    train_ds, test_ds, info = build_datasets("digits")                  # offline default
    train_ds, test_ds, info = build_datasets("cifar10", root="data", cutout=False)

Every dataset yields ``(x, y)``: x float32 ``[C, H, W]`` for static images (the model repeats
them T times) or ``[T, C, H, W]`` for event frames (batched ``[B, T, C, H, W]``; the model
moves them to ``[T, B, ...]``), y an int label. ``info`` is a :class:`DatasetInfo`.

Registered datasets (options are keyword arguments; see each module's docstring):

* ``digits`` (:mod:`.digits`) — scikit-learn's bundled 8×8 digits; no download.
* ``npz`` (:mod:`.npz`) — your own uint8 images in an ``.npz`` file.
* ``cifar10``, ``cifar100`` (:mod:`.cifar`) — official python pickle batches.
* ``imagenet`` (:mod:`.imagenet`) — ``train/<wnid>/`` and ``val/<wnid>/`` folders.
* ``cifar10_dvs`` (:mod:`.cifar10_dvs`) — the original ``.aedat`` release, framed and cached.

``root`` defaults to ``$INFLOR_DATA`` (or ``./data``); ImageNet and CIFAR10-DVS then look in
its ``imagenet/`` and ``cifar10_dvs/`` sub-folders. Unknown names or options raise ValueError
naming the valid choices (``inflor.errors.ConfigError``, a ValueError); missing files raise
``DataNotFoundError`` (a FileNotFoundError) saying what to put where, and files that cannot be
read or hold the wrong thing raise ``DataError`` (a ValueError) naming the file and what was
expected.
"""
from __future__ import annotations

import inspect
from typing import Callable, Dict, List, Tuple

from torch.utils.data import Dataset

from ..errors import ConfigError
from .base import DatasetInfo
from .cifar import build_cifar, build_cifar10, build_cifar100, static_info_cifar
from .cifar10_dvs import build_cifar10_dvs, static_info_cifar10_dvs
from .digits import build_digits, static_info_digits
from .imagenet import build_imagenet, static_info_imagenet
from .npz import build_npz

__all__ = ["build_datasets", "list_datasets", "dataset_options", "static_info", "DatasetInfo", "DATASETS",
           "STATIC_INFO"]

#: name -> builder(root=None, **options) -> (train_dataset, test_dataset, DatasetInfo)
DATASETS: Dict[str, Callable[..., Tuple[Dataset, Dataset, DatasetInfo]]] = {
    "digits": build_digits,
    "npz": build_npz,
    "cifar10": build_cifar10,
    "cifar100": build_cifar100,
    "imagenet": build_imagenet,
    "cifar10_dvs": build_cifar10_dvs,
}

#: name -> static_info(**options) -> DatasetInfo: the shape a builder's datasets will have,
#: without reading files (``npz`` has none: its shape is only known from its file)
STATIC_INFO: Dict[str, Callable[..., DatasetInfo]] = {
    "digits": static_info_digits,
    "cifar10": lambda **options: static_info_cifar("cifar10", **options),
    "cifar100": lambda **options: static_info_cifar("cifar100", **options),
    "imagenet": static_info_imagenet,
    "cifar10_dvs": static_info_cifar10_dvs,
}

# Builders that forward **options to a shared implementation declare their options here.
_FORWARDED = {"cifar10": build_cifar, "cifar100": build_cifar}


def list_datasets() -> List[str]:
    """Names accepted by :func:`build_datasets`, sorted."""
    return sorted(DATASETS)


def _check_name(name: str) -> None:
    if name not in DATASETS:
        raise ConfigError(f"unknown dataset {name!r}; valid choices: {', '.join(list_datasets())}")


def dataset_options(name: str) -> Dict[str, object]:
    """The options of dataset ``name`` and their defaults (for CLIs and config validation)."""
    _check_name(name)
    builder = _FORWARDED.get(name, DATASETS[name])
    return {p.name: p.default for p in inspect.signature(builder).parameters.values()
            if p.kind is inspect.Parameter.KEYWORD_ONLY}


def _check_options(name: str, options: dict) -> None:
    _check_name(name)
    valid = dataset_options(name)
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ConfigError(f"unknown option(s) {', '.join(map(repr, unknown))} for dataset "
                          f"{name!r}; valid options: {', '.join(sorted(valid)) or 'none'}")


def build_datasets(name: str, root=None, **options) -> Tuple[Dataset, Dataset, DatasetInfo]:
    """Build ``(train_dataset, test_dataset, info)`` for the registered dataset ``name``.

    ``root`` is the folder holding the dataset files (see the dataset's module docstring);
    ``options`` are the dataset's keyword options, checked against :func:`dataset_options`.
    """
    _check_options(name, options)
    return DATASETS[name](root, **options)


def static_info(name: str, root=None, **options) -> DatasetInfo:
    """The :class:`DatasetInfo` (classes, input shape, event timesteps) that
    ``build_datasets(name, root, **options)`` gives, without reading the dataset's files, so a
    recipe can be checked (``inflor train --smoke``) where the data is not. A dataset without a
    static description (``npz``) is built. ``class_names`` are left out."""
    _check_options(name, options)
    if name not in STATIC_INFO:
        return build_datasets(name, root, **options)[2]
    return STATIC_INFO[name](**options)
