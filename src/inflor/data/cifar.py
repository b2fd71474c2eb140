"""``cifar10`` / ``cifar100`` — CIFAR from the official "python version" pickle files.

Design. The files are read by torchvision's ``CIFAR10``/``CIFAR100`` classes, behind inflor's own
checks instead of their MD5 sums (:mod:`inflor.data.cifar_torchvision`: every batch is first
unpickled with an allow-list and checked, so a truncated, foreign or unsafe file raises
``DataError`` naming it). ``download=True`` calls torchvision's downloader, which fetches the
official archive, checks its MD5 and extracts it. Files that are present are read without an MD5
check. Missing files raise ``DataNotFoundError`` listing the files expected and where to get them.

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

from dataclasses import replace
from pathlib import Path
from typing import Optional

from .base import DatasetInfo, check_bool, check_int, missing_files_error, resolve_root
from .transforms import Cutout

SPECS = {
    "cifar10": dict(
        folder="cifar-10-batches-py",
        train_files=[f"data_batch_{i}" for i in range(1, 6)],
        test_files=["test_batch"],
        meta_file="batches.meta",
        num_classes=10,
        mean=(0.4914, 0.4822, 0.4465), std=(0.2023, 0.1994, 0.2010),
        url="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        paper_aug=True,
    ),
    "cifar100": dict(
        folder="cifar-100-python",
        train_files=["train"],
        test_files=["test"],
        meta_file="meta",
        num_classes=100,
        mean=(0.5071, 0.4867, 0.4408), std=(0.2675, 0.2565, 0.2761),
        url="https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
        paper_aug=False,
    ),
}


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

    from .cifar_torchvision import CIFAR10Files, CIFAR100Files

    cls = CIFAR10Files if name == "cifar10" else CIFAR100Files
    train = cls(str(root), train=True,
                transform=_transforms(spec, True, augment, autoaugment, cutout, cutout_size, normalize))
    test = cls(str(root), train=False,
               transform=_transforms(spec, False, augment, autoaugment, cutout, cutout_size, normalize))
    class_names = tuple(train.classes) if train.classes is not None else None
    info = replace(static_info_cifar(name), class_names=class_names)
    return train, test, info


def static_info_cifar(name: str, **options) -> DatasetInfo:
    """CIFAR-10/100's shape without reading files: [3, 32, 32] images of 10 or 100 classes."""
    return DatasetInfo(name=name, num_classes=SPECS[name]["num_classes"], input_shape=(3, 32, 32), timesteps=None)


def build_cifar10(root=None, **options):
    return build_cifar("cifar10", root, **options)


def build_cifar100(root=None, **options):
    return build_cifar("cifar100", root, **options)
