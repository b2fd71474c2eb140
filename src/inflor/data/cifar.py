"""``cifar10`` / ``cifar100`` — CIFAR from the official "python version" pickle files.

Design. torchvision's ``CIFAR10``/``CIFAR100`` classes check the MD5 sum of every batch file
before they read anything, so they refuse any file that is not the real one, including small
files written in the real format by tests. inflor therefore reads the pickle format itself with
:class:`CIFARPickle` (a few lines: each batch is a pickled dict with a ``data`` array of
``N × 3072`` uint8, channel-major rows, and a ``labels``/``fine_labels`` list), and uses
torchvision only for what it is good at: the download (``download=True`` calls torchvision's
downloader, which fetches the official archive, checks its MD5 and extracts it) and the image
transforms. Files that are present are read without an MD5 check.

Layout under ``root`` (default ``$INFLOR_DATA`` or ``./data``), as the official archives unpack:

* CIFAR-10: ``root/cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}``
  (from https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz)
* CIFAR-100: ``root/cifar-100-python/{train, test, meta}``
  (from https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz; fine labels, 100 classes)

Transforms (``docs/design.md`` §8.1; the InfLoR/MPBN training scripts):

* train: ``RandomCrop(32, padding=4)`` + ``RandomHorizontalFlip`` (option ``augment``), then
  torchvision ``AutoAugment(CIFAR10 policy)`` (option ``autoaugment``), ``ToTensor``,
  :class:`~inflor.data.transforms.Cutout` (1 hole, ``cutout_size`` = 16 px, centre anywhere,
  clipped; option ``cutout``), ``Normalize``.
  ``autoaugment`` and ``cutout`` default to on for CIFAR-10 and off for CIFAR-100.
* test: ``ToTensor`` + ``Normalize``.
* Normalisation constants: CIFAR-10 mean (0.4914, 0.4822, 0.4465), std (0.2023, 0.1994, 0.2010);
  CIFAR-100 mean (0.5071, 0.4867, 0.4408), std (0.2675, 0.2565, 0.2761). ``normalize=False``
  leaves pixels in ``[0, 1]``.
"""
from __future__ import annotations

import pickle
from dataclasses import replace
from pathlib import Path
from typing import Callable, List, Optional, Sequence

import numpy as np
from torch.utils.data import Dataset

from ..errors import DataError
from .base import DatasetInfo, check_bool, check_int, missing_files_error, resolve_root
from .transforms import Cutout

SPECS = {
    "cifar10": dict(
        folder="cifar-10-batches-py",
        train_files=[f"data_batch_{i}" for i in range(1, 6)],
        test_files=["test_batch"],
        meta_file="batches.meta", label_key="labels", names_key="label_names",
        num_classes=10,
        mean=(0.4914, 0.4822, 0.4465), std=(0.2023, 0.1994, 0.2010),
        url="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        paper_aug=True,
    ),
    "cifar100": dict(
        folder="cifar-100-python",
        train_files=["train"],
        test_files=["test"],
        meta_file="meta", label_key="fine_labels", names_key="fine_label_names",
        num_classes=100,
        mean=(0.5071, 0.4867, 0.4408), std=(0.2675, 0.2565, 0.2761),
        url="https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
        paper_aug=False,
    ),
}


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


def _load_pickle(path: Path) -> dict:
    """Load one CIFAR pickle; keys come back as ``str`` whether stored as bytes or str. Only
    numpy arrays, lists, numbers and strings are unpickled; a truncated, foreign or unsafe file
    raises ``DataError`` naming it."""
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
    return {(k.decode() if isinstance(k, bytes) else k): v for k, v in obj.items()}


def _decode_names(names: Sequence) -> List[str]:
    return [n.decode() if isinstance(n, bytes) else str(n) for n in names]


class CIFARPickle(Dataset):
    """Images and labels read from CIFAR python-format batch files (no MD5 check).

    ``files`` are read in order and concatenated; labels outside ``0 .. num_classes-1`` (when
    given) raise ``DataError``. Images are kept as uint8 ``[N, 32, 32, 3]``;
    ``__getitem__`` hands a PIL image to ``transform`` and returns ``(x, int label)``.
    """

    def __init__(self, files: Sequence[Path], label_key: str,
                 transform: Optional[Callable] = None, num_classes: Optional[int] = None):
        data, labels = [], []
        for path in files:
            batch = _load_pickle(path)
            for key in ("data", label_key):
                if key not in batch:
                    raise DataError(f"{path} lacks key '{key}' (has {sorted(map(str, batch))}); {EXPECTED}")
            arr = np.asarray(batch["data"])
            in_range = arr.dtype == np.uint8 or (np.issubdtype(arr.dtype, np.integer) and arr.size
                                                 and 0 <= arr.min() and arr.max() <= 255)
            if not in_range or arr.ndim != 2 or arr.shape[1] != 3 * 32 * 32:
                raise DataError(f"{path}: 'data' must be [N, 3072] uint8, got {list(arr.shape)} {arr.dtype}")
            arr = arr.astype(np.uint8, copy=False)
            try:
                batch_labels = [int(v) for v in batch[label_key]]
            except (TypeError, ValueError):
                raise DataError(f"{path}: '{label_key}' must be a list of integers") from None
            if len(batch_labels) != len(arr):
                raise DataError(f"{path}: {len(arr)} images but {len(batch_labels)} labels")
            if num_classes is not None and any(not 0 <= v < num_classes for v in batch_labels):
                bad = next(v for v in batch_labels if not 0 <= v < num_classes)
                raise DataError(f"{path}: label {bad} in '{label_key}' is outside 0..{num_classes - 1}")
            data.append(arr)
            labels.extend(batch_labels)
        self.data = np.concatenate(data).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).copy()
        self.targets = labels
        self.transform = transform

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int):
        from PIL import Image

        img = Image.fromarray(self.data[index])
        x = self.transform(img) if self.transform is not None else img
        return x, self.targets[index]


def _download(name: str, root: Path) -> None:
    from torchvision import datasets

    cls = datasets.CIFAR10 if name == "cifar10" else datasets.CIFAR100
    cls(str(root), train=True, download=True)


def _transforms(spec: dict, train: bool, augment: bool, autoaugment: bool, cutout: bool,
                cutout_size: int, normalize: bool):
    from torchvision import transforms as T

    ops: list = []
    if train and augment:
        ops += [T.RandomCrop(32, padding=4), T.RandomHorizontalFlip()]
    if train and autoaugment:
        ops.append(T.AutoAugment(T.AutoAugmentPolicy.CIFAR10))
    ops.append(T.ToTensor())
    if train and cutout:
        ops.append(Cutout(cutout_size, holes=1))
    if normalize:
        ops.append(T.Normalize(spec["mean"], spec["std"]))
    return T.Compose(ops)


def build_cifar(name: str, root=None, *, download: bool = False, augment: bool = True,
                autoaugment: Optional[bool] = None, cutout: Optional[bool] = None,
                cutout_size: int = 16, normalize: bool = True):
    """Build CIFAR-10 or CIFAR-100 train/test datasets (see the module docstring)."""
    spec = SPECS[name]
    download = check_bool("download", download)
    augment = check_bool("augment", augment)
    autoaugment = spec["paper_aug"] if autoaugment is None else check_bool("autoaugment", autoaugment)
    cutout = spec["paper_aug"] if cutout is None else check_bool("cutout", cutout)
    cutout_size = check_int("cutout_size", cutout_size, minimum=1)
    normalize = check_bool("normalize", normalize)

    root = resolve_root(root)
    folder = root / spec["folder"]
    expected = spec["train_files"] + spec["test_files"] + [spec["meta_file"]]
    missing = [f for f in expected if not (folder / f).is_file()]
    if missing and download:
        try:
            _download(name, root)
        except Exception as exc:  # network, disk, checksum: all mean "files still missing"
            raise missing_files_error(
                folder, expected, spec["url"],
                extra=f"Download failed ({type(exc).__name__}: {exc}); put the unpacked archive "
                      f"there by hand.") from exc
        missing = [f for f in expected if not (folder / f).is_file()]
    if missing:
        raise missing_files_error(
            folder, expected, spec["url"],
            extra=f"Missing: {', '.join(missing)}. Unpack the archive into {root} "
                  f"(it creates {spec['folder']}/), or pass download=True.")

    meta = _load_pickle(folder / spec["meta_file"])
    class_names = tuple(_decode_names(meta[spec["names_key"]])) if spec["names_key"] in meta else None
    if class_names is not None and len(class_names) != spec["num_classes"]:
        raise DataError(f"{folder / spec['meta_file']} names {len(class_names)} classes in "
                        f"'{spec['names_key']}', not {spec['num_classes']}: is it the meta file of {name}?")

    train = CIFARPickle([folder / f for f in spec["train_files"]], spec["label_key"],
                        _transforms(spec, True, augment, autoaugment, cutout, cutout_size, normalize),
                        num_classes=spec["num_classes"])
    test = CIFARPickle([folder / f for f in spec["test_files"]], spec["label_key"],
                       _transforms(spec, False, augment, autoaugment, cutout, cutout_size, normalize),
                       num_classes=spec["num_classes"])
    info = replace(static_info_cifar(name), class_names=class_names)
    return train, test, info


def static_info_cifar(name: str, **options) -> DatasetInfo:
    """CIFAR-10/100's shape without reading files: [3, 32, 32] images of 10 or 100 classes."""
    return DatasetInfo(name=name, num_classes=SPECS[name]["num_classes"], input_shape=(3, 32, 32), timesteps=None)


def build_cifar10(root=None, **options):
    return build_cifar("cifar10", root, **options)


def build_cifar100(root=None, **options):
    return build_cifar("cifar100", root, **options)
