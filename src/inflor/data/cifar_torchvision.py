"""torchvision's ``CIFAR10`` / ``CIFAR100`` readers on files inflor checks first.

torchvision reads the release (``pickle.load`` of each batch, ``np.vstack``, reshape to
``[N, 3, 32, 32]``, transpose to HWC uint8, PIL images in ``__getitem__``, the class names from
the meta file). It would also check each file's MD5 sum, which refuses every file but the
official one (tiny test files in the real format included), and it unpickles without limits.
The two classes here replace those two steps and nothing else:

* ``_check_integrity``: each batch file of the split is unpickled with an allow-list (numpy
  arrays, lists, numbers, strings; anything else would run code and is refused) and must be a
  dict with ``data`` ``[N, 3072]`` uint8 and ``N`` integer labels in ``0 .. num_classes - 1``;
  a file that is not raises :class:`~inflor.errors.DataError` naming it. (No MD5: a file that
  passes is read as it is.)
* ``_load_meta``: the class names, read with the same allow-list; ``None`` when the meta file
  has none, and a ``DataError`` when it names another number of classes.

torchvision is imported with this module, so ``inflor.data`` imports it only when CIFAR is built.
"""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
from torchvision import datasets

from ..errors import DataError
from .cifar import SPECS

EXPECTED = ("expected a CIFAR 'python version' batch: a pickled dict with 'data' (N x 3072 uint8, "
            "channel-major rows) and a label list")

#: everything a CIFAR batch pickle refers to: numpy arrays (numpy 1 and 2 module names) and
#: Python 2 byte strings; anything else would run code on unpickling and is refused
_ALLOWED_GLOBALS = {("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
                    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar")}


class _BatchUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) in _ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"it refers to {module}.{name}, which a CIFAR batch never holds; "
                                     f"refused instead of unpickled")


def load_pickle(path: Path) -> dict:
    """One CIFAR pickle, unpickled with the allow-list (as torchvision does: ``encoding="latin1"``,
    so Python 2 strings come back as ``str``). A truncated, foreign or unsafe file raises
    ``DataError`` naming it."""
    try:
        with open(path, "rb") as f:
            obj = _BatchUnpickler(f, encoding="latin1").load()
    except pickle.UnpicklingError as e:
        raise DataError(f"cannot read {path}: {e}; {EXPECTED}") from None
    except (EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError, ImportError,
            UnicodeDecodeError) as e:
        first = (str(e).strip().splitlines() or [""])[0]
        raise DataError(f"cannot read {path} ({type(e).__name__}: {first}): the file is truncated or not a "
                        f"CIFAR batch; {EXPECTED}") from None
    if not isinstance(obj, dict):
        raise DataError(f"{path} is not a CIFAR batch: it holds a pickled {type(obj).__name__}; {EXPECTED}")
    return obj


def check_batch(path: Path, label_key: str, num_classes: int) -> None:
    """Raise ``DataError`` naming ``path`` unless it is a CIFAR batch torchvision can read:
    ``data`` ``[N, 3072]`` of values 0..255 and ``N`` integer labels in ``0 .. num_classes - 1``."""
    batch = load_pickle(path)
    for key in ("data", label_key):
        if key not in batch:
            raise DataError(f"{path} lacks key '{key}' (has {sorted(map(str, batch))}); {EXPECTED}")
    arr = np.asarray(batch["data"])
    in_range = arr.dtype == np.uint8 or (np.issubdtype(arr.dtype, np.integer) and arr.size
                                         and 0 <= arr.min() and arr.max() <= 255)
    if not in_range or arr.ndim != 2 or arr.shape[1] != 3 * 32 * 32:
        raise DataError(f"{path}: 'data' must be [N, 3072] uint8, got {list(arr.shape)} {arr.dtype}")
    try:
        labels = [int(v) for v in batch[label_key]]
    except (TypeError, ValueError):
        raise DataError(f"{path}: '{label_key}' must be a list of integers") from None
    if len(labels) != len(arr):
        raise DataError(f"{path}: {len(arr)} images but {len(labels)} labels")
    bad = [v for v in labels if not 0 <= v < num_classes]
    if bad:
        raise DataError(f"{path}: label {bad[0]} in '{label_key}' is outside 0..{num_classes - 1}")


class _Checked:
    """Mixin over a torchvision CIFAR class: the checks above instead of MD5 sums and plain
    unpickling of the meta file."""
    dataset, label_key = "cifar10", "labels"
    num_classes = SPECS[dataset]["num_classes"]

    def _check_integrity(self) -> bool:
        folder = Path(self.root) / self.base_folder
        for name, _md5 in (self.train_list if self.train else self.test_list):
            check_batch(folder / name, self.label_key, self.num_classes)
        return True

    def _load_meta(self) -> None:
        path = Path(self.root) / self.base_folder / self.meta["filename"]
        meta, key = load_pickle(path), self.meta["key"]
        self.classes = [str(n) for n in meta[key]] if key in meta else None
        if self.classes is not None and len(self.classes) != self.num_classes:
            raise DataError(f"{path} names {len(self.classes)} classes in '{key}', not {self.num_classes}: "
                            f"is it the meta file of {self.dataset}?")
        self.class_to_idx = {c: i for i, c in enumerate(self.classes or [])}


class CIFAR10Files(_Checked, datasets.CIFAR10):
    """``torchvision.datasets.CIFAR10`` over checked files (``download`` stays False here)."""


class CIFAR100Files(_Checked, datasets.CIFAR100):
    """``torchvision.datasets.CIFAR100`` (fine labels) over checked files."""
    dataset, label_key = "cifar100", "fine_labels"
    num_classes = SPECS[dataset]["num_classes"]
