"""What a dataset looks like without reading its files: classes, input shape, event timesteps.

``inflor train --smoke`` builds a random batch of the right shape from this, so a recipe can be
checked on a machine that does not hold the dataset. If ``inflor.data`` offers its own static
description (``inflor.data.static_info(name, **options)``) that one wins; this table is the
fallback and must agree with the builders in ``inflor.data``.
"""
from __future__ import annotations

from inflor.data.base import DatasetInfo

# name -> (num_classes, (C, H, W), timesteps, {option that changes the shape: how})
_TABLE = {
    "digits": (10, (1, 8, 8), None),
    "cifar10": (10, (3, 32, 32), None),
    "cifar100": (100, (3, 32, 32), None),
    "imagenet": (1000, (3, 224, 224), None),
    "cifar10_dvs": (10, (2, 48, 48), 10),
}


def static_dataset_info(name: str, options: dict | None = None, root=None) -> DatasetInfo:
    """The ``DatasetInfo`` of dataset ``name`` with ``options``, without touching its files
    (except for ``npz``, whose shape is only known from its file)."""
    options = dict(options or {})
    try:
        from inflor import data as _data
        hook = getattr(_data, "static_info", None)
    except ImportError:  # pragma: no cover
        hook = None
    if hook is not None:
        return hook(name, **options)
    if name not in _TABLE:
        from inflor.data import build_datasets
        _, _, info = build_datasets(name, root=root, **options)
        return info
    num_classes, (c, h, w), timesteps = _TABLE[name]
    if name == "imagenet":
        h = w = int(options.get("image_size", h))
    if name == "cifar10_dvs":
        h = w = int(options.get("size", h))
        timesteps = int(options.get("timesteps", timesteps))
        if options.get("classes"):
            num_classes = len(options["classes"])
    return DatasetInfo(name=name, num_classes=num_classes, input_shape=(c, h, w), timesteps=timesteps)
