"""Shared pieces of :mod:`inflor.data`: the :class:`DatasetInfo` record, an in-memory
tensor dataset, the default data root and small option-validation helpers.

Nothing here knows about a particular dataset; the per-dataset modules build on it.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Optional, Sequence, Tuple

import torch
from torch.utils.data import Dataset

from ..errors import ConfigError, DataNotFoundError

#: Environment variable naming the folder that holds all datasets (default ``./data``).
DATA_ROOT_ENV = "INFLOR_DATA"


@dataclass(frozen=True)
class DatasetInfo:
    """What the model and trainer need to know about a dataset.

    Attributes:
        name: registry name of the dataset (``"cifar10"``, ...).
        num_classes: number of classes K; labels are ``0 .. K-1``.
        input_shape: ``(C, H, W)`` of one frame/image as the model sees it.
        timesteps: ``T`` for event data, whose samples are ``[T, C, H, W]``; ``None`` for
            static images, whose samples are ``[C, H, W]`` (the model repeats them T times).
        class_names: optional human-readable class names, index = label.
    """

    name: str
    num_classes: int
    input_shape: Tuple[int, int, int]
    timesteps: Optional[int] = None
    class_names: Optional[Tuple[str, ...]] = field(default=None)


def default_root(subdir: Optional[str] = None) -> Path:
    """``$INFLOR_DATA`` (or ``./data``), optionally joined with ``subdir``."""
    base = Path(os.environ.get(DATA_ROOT_ENV, "data"))
    return base / subdir if subdir else base


def resolve_root(root, subdir: Optional[str] = None) -> Path:
    """The user's ``root`` if given, else :func:`default_root` (``subdir`` only applies then)."""
    if root is None:
        return default_root(subdir)
    return Path(root).expanduser()


class TensorImageDataset(Dataset):
    """Samples ``(x[i], int(y[i]))`` from in-memory tensors, with an optional transform on x."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor,
                 transform: Optional[Callable[[torch.Tensor], torch.Tensor]] = None):
        if len(x) != len(y):
            raise ValueError(f"x has {len(x)} samples but y has {len(y)}")
        self.x = x
        self.y = y.long()
        self.transform = transform

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index: int):
        x = self.x[index]
        if self.transform is not None:
            x = self.transform(x)
        return x, int(self.y[index])


def check_choice(option: str, value, choices: Sequence) -> None:
    """Raise ConfigError (a ValueError) naming the valid choices if ``value`` is not one of them."""
    if value not in choices:
        valid = ", ".join(repr(c) for c in choices)
        raise ConfigError(f"invalid value {value!r} for option '{option}'; valid choices: {valid}")


def check_bool(option: str, value) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"option '{option}' must be true or false, got {value!r}")
    return value


def check_int(option: str, value, minimum: Optional[int] = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"option '{option}' must be an integer, got {value!r}")
    if minimum is not None and value < minimum:
        raise ConfigError(f"option '{option}' must be >= {minimum}, got {value}")
    return value


def check_fraction(option: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 < value < 1.0:
        raise ConfigError(f"option '{option}' must be a number strictly between 0 and 1, got {value!r}")
    return float(value)


def missing_files_error(folder: Path, expected: Iterable[str], source: str,
                        extra: str = "") -> DataNotFoundError:
    """A DataNotFoundError (a FileNotFoundError) that says which folder and files are expected and
    where to get them."""
    names = "\n".join(f"  {folder / name}" for name in expected)
    msg = (f"dataset files not found. Expected in folder {folder}:\n{names}\n"
           f"Get them from: {source}")
    if extra:
        msg += "\n" + extra
    return DataNotFoundError(msg)
