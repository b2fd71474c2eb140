"""What a dataset looks like without reading its files: moved to ``inflor.data.static_info``
(each builder reports its own static shape); this import path keeps working."""
from __future__ import annotations

from inflor.data import DatasetInfo, static_info

__all__ = ["static_dataset_info"]


def static_dataset_info(name: str, options: dict | None = None, root=None) -> DatasetInfo:
    """``inflor.data.static_info(name, root, **options)``."""
    return static_info(name, root=root, **dict(options or {}))
