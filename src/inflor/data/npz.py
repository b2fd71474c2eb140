"""``npz`` — bring-your-own images in one NumPy ``.npz`` file.

The file (option ``path``; a relative path is resolved against ``root`` when ``root`` is
given) must hold four arrays:

=========== ======================================= =================================
key         shape                                   dtype
=========== ======================================= =================================
``x_train`` ``[N, H, W]`` (grey) or ``[N, H, W, C]`` uint8, values 0..255
``y_train`` ``[N]``                                 any integer type, values >= 0
``x_test``  same ``H, W, C`` as ``x_train``         uint8
``y_test``  ``[M]``                                 integer
=========== ======================================= =================================

Images are scaled to ``[0, 1]`` and made channel-first (``[C, H, W]``, C = 1 for grey).
``normalize=True`` (default off) standardises each channel with the training split's mean and
std. ``num_classes`` defaults to ``max(label) + 1`` over both splits.

Write one with ``numpy.savez(path, x_train=..., y_train=..., x_test=..., y_test=...)``.
"""
from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from ..errors import ConfigError, DataError, DataNotFoundError
from .base import DatasetInfo, TensorImageDataset, check_bool, check_int

REQUIRED_KEYS = ("x_train", "y_train", "x_test", "y_test")
EXPECTED = ("expected a numpy .npz archive (numpy.savez) holding arrays " + ", ".join(REQUIRED_KEYS)
            + ": uint8 images [N,H,W] or [N,H,W,C] and integer labels [N]")
#: what np.load and reading a member raise for a file that is not a (complete) .npz
_READ_ERRORS = (OSError, ValueError, EOFError, zipfile.BadZipFile, zipfile.LargeZipFile)


def _why(e: BaseException) -> str:
    first = (str(e).strip().splitlines() or [""])[0]
    return f"{type(e).__name__}: {first}" if first else type(e).__name__


def _read_arrays(file: Path) -> dict:
    """The four arrays of ``file``; a file that is not a complete .npz becomes a DataError."""
    with open(file, "rb") as f:
        magic = f.read(6)
    if magic.startswith(b"\x93NUMPY"):
        raise DataError(f"{file} holds a single array (a .npy file), not an .npz archive; {EXPECTED}")
    if not magic.startswith(b"PK"):
        what = "is empty" if not magic else "is not a zip archive, which every .npz is"
        raise DataError(f"cannot read {file}: the file {what}; {EXPECTED}")
    try:
        data = np.load(file, allow_pickle=False)
    except _READ_ERRORS as e:
        raise DataError(f"cannot read {file} ({_why(e)}); the file is truncated or damaged; {EXPECTED}") from None
    with data:
        missing = [k for k in REQUIRED_KEYS if k not in data.files]
        if missing:
            raise DataError(f"{file} lacks array(s) {', '.join(missing)}; it has "
                            f"{', '.join(data.files) or 'none'}; required: {', '.join(REQUIRED_KEYS)}")
        arrays = {}
        for k in REQUIRED_KEYS:
            try:
                arrays[k] = data[k]
            except _READ_ERRORS as e:
                raise DataError(f"cannot read array '{k}' of {file} ({_why(e)}); the file is truncated or "
                                f"holds object arrays; {EXPECTED}") from None
    return arrays


def _check_images(file: Path, name: str, x: np.ndarray) -> np.ndarray:
    if x.ndim not in (3, 4):
        raise DataError(f"{file}: '{name}' must have shape [N, H, W] or [N, H, W, C], got {list(x.shape)}")
    if len(x) == 0:
        raise DataError(f"{file}: '{name}' holds no images (shape {list(x.shape)})")
    if x.dtype != np.uint8:
        raise DataError(f"{file}: '{name}' must have dtype uint8 (pixel values 0..255), got {x.dtype}")
    if x.ndim == 3:
        x = x[..., None]
    if min(x.shape[1:]) < 1:
        raise DataError(f"{file}: '{name}' has an empty image dimension: shape {list(x.shape)}")
    return x


def _check_labels(file: Path, name: str, y: np.ndarray, n: int, xname: str) -> np.ndarray:
    if not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"{file}: '{name}' must hold integers, got dtype {y.dtype}")
    if y.ndim != 1:
        raise DataError(f"{file}: '{name}' must have shape [N], got {list(y.shape)}")
    if len(y) != n:
        raise DataError(f"{file}: '{name}' has {len(y)} labels but '{xname}' has {n} images")
    if len(y) and y.min() < 0:
        raise DataError(f"{file}: '{name}' holds negative labels (min {y.min()}); labels must be 0..K-1")
    return y.astype(np.int64)


def _to_tensor(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2))).float().div_(255.0)


def build_npz(root=None, *, path: Optional[str] = None, num_classes: Optional[int] = None,
              normalize: bool = False):
    """Build train/test datasets from an ``.npz`` file (see the module docstring)."""
    if path is None:
        raise ConfigError("dataset 'npz' needs option 'path': an .npz file with arrays "
                          + ", ".join(REQUIRED_KEYS))
    normalize = check_bool("normalize", normalize)
    if num_classes is not None:
        num_classes = check_int("num_classes", num_classes, minimum=1)
    file = Path(path).expanduser()
    if not file.is_absolute() and root is not None:
        file = Path(root).expanduser() / file
    if not file.is_file():
        raise DataNotFoundError(f"npz file not found: {file}. It must be a numpy .npz holding arrays "
                                + ", ".join(REQUIRED_KEYS) + " (uint8 images [N,H,W] or [N,H,W,C], integer "
                                "labels [N])")

    arrays = _read_arrays(file)
    x_train = _check_images(file, "x_train", arrays["x_train"])
    x_test = _check_images(file, "x_test", arrays["x_test"])
    if x_train.shape[1:] != x_test.shape[1:]:
        raise DataError(f"{file}: 'x_train' images are [H, W, C] = {list(x_train.shape[1:])} but 'x_test' "
                        f"images are {list(x_test.shape[1:])}; they must match")
    y_train = _check_labels(file, "y_train", arrays["y_train"], len(x_train), "x_train")
    y_test = _check_labels(file, "y_test", arrays["y_test"], len(x_test), "x_test")

    max_label = int(max(y_train.max(initial=0), y_test.max(initial=0)))
    if num_classes is None:
        num_classes = max_label + 1
    elif max_label >= num_classes:
        raise DataError(f"{file} holds label {max_label} but option num_classes={num_classes}: labels must "
                        f"be 0..{num_classes - 1}")

    xt, xs = _to_tensor(x_train), _to_tensor(x_test)
    if normalize:
        mean = xt.mean(dim=(0, 2, 3), keepdim=True)
        std = xt.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-6)
        xt, xs = (xt - mean) / std, (xs - mean) / std

    train = TensorImageDataset(xt, torch.from_numpy(y_train))
    test = TensorImageDataset(xs, torch.from_numpy(y_test))
    _, h, w, c = x_train.shape
    info = DatasetInfo(name="npz", num_classes=num_classes, input_shape=(c, h, w), timesteps=None)
    return train, test, info
