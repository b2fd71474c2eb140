"""``digits`` — the offline default dataset.

scikit-learn's bundled 8×8 handwritten digits (``sklearn.datasets.load_digits``: 1,797 images,
10 classes, pixel values 0..16; the UCI "Optical Recognition of Handwritten Digits" test set).
It ships inside scikit-learn, so it needs no download and loads in milliseconds.

Samples are float32 ``[1, 8, 8]`` tensors held in memory:

* pixels are divided by 16 into ``[0, 1]``;
* ``normalize=True`` (default) then standardises with the mean and standard deviation of the
  *training* split (one scalar each, since there is one channel), so no test statistic leaks;
* the train/test split is stratified and seeded (``test_size`` default 0.2, ``seed`` default 0);
* ``augment=True`` (default off) translates training images by up to one pixel, zero fill.
"""
from __future__ import annotations

from dataclasses import replace
from functools import lru_cache

import numpy as np
import torch

from .base import DatasetInfo, TensorImageDataset, check_bool, check_fraction, check_int
from .transforms import RandomShift


@lru_cache(maxsize=1)
def _load() -> tuple:
    """(images float32 [N, 8, 8] in [0, 1], labels int64 [N], class names), read once."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = bunch.images.astype(np.float32) / 16.0
    images.flags.writeable = False
    labels = bunch.target.astype(np.int64)
    labels.flags.writeable = False
    return images, labels, tuple(str(c) for c in bunch.target_names)


def static_info_digits(**options) -> DatasetInfo:
    """The digits' shape without loading them: 10 classes of [1, 8, 8] images."""
    return DatasetInfo(name="digits", num_classes=10, input_shape=(1, 8, 8), timesteps=None)


def build_digits(root=None, *, test_size: float = 0.2, seed: int = 0,
                 normalize: bool = True, augment: bool = False):
    """Build the digits train/test datasets. ``root`` is ignored (the data is bundled)."""
    from sklearn.model_selection import train_test_split

    test_size = check_fraction("test_size", test_size)
    seed = check_int("seed", seed)
    normalize = check_bool("normalize", normalize)
    augment = check_bool("augment", augment)

    images, labels, class_names = _load()
    idx_train, idx_test = train_test_split(
        np.arange(len(labels)), test_size=test_size, random_state=seed, stratify=labels)

    x = torch.tensor(images).unsqueeze(1)                   # [N, 1, 8, 8], a fresh copy
    y = torch.tensor(labels)
    x_train, x_test = x[idx_train], x[idx_test]
    if normalize:
        mean, std = x_train.mean(), x_train.std()
        x_train = (x_train - mean) / std
        x_test = (x_test - mean) / std

    train = TensorImageDataset(x_train.contiguous(), y[idx_train],
                               transform=RandomShift(1) if augment else None)
    test = TensorImageDataset(x_test.contiguous(), y[idx_test])
    info = replace(static_info_digits(), class_names=class_names)
    return train, test, info
