"""A run's test data again (``inflor eval``, ``inflor analyze``): the one way to rebuild the
DataLoader of a saved run's dataset, in order (no shuffling), one process."""
from __future__ import annotations

import torch
from torch.utils.data import DataLoader

from ..data import build_datasets

__all__ = ["rebuild_loader"]


def rebuild_loader(name: str, root=None, options: dict | None = None, batch_size: int = 64, split: str = "test",
                   workers: int = 0, pin_memory: bool = False):
    """``(DataLoader over split "test" or "train" of dataset name, the dataset, its DatasetInfo)``.

    The loader visits the samples in order; errors of the dataset builder (FileNotFoundError,
    ValueError, TypeError) are the caller's to report."""
    train_ds, test_ds, info = build_datasets(name, root=root, **dict(options or {}))
    ds = test_ds if split == "test" else train_ds
    loader = DataLoader(ds, batch_size=int(batch_size), shuffle=False, num_workers=workers, pin_memory=pin_memory,
                        generator=torch.Generator().manual_seed(0))
    return loader, ds, info
