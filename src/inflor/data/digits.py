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

import torch

from .base import DatasetInfo, TensorImageDataset, check_bool, check_fraction, check_int
from .transforms import RandomShift


def build_digits(root=None, *, test_size: float = 0.2, seed: int = 0,
                 normalize: bool = True, augment: bool = False):
    """Build the digits train/test datasets. ``root`` is ignored (the data is bundled)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    test_size = check_fraction("test_size", test_size)
    seed = check_int("seed", seed)
    normalize = check_bool("normalize", normalize)
    augment = check_bool("augment", augment)

    bunch = load_digits()
    images = bunch.images.astype("float32") / 16.0          # [N, 8, 8] in [0, 1]
    labels = bunch.target.astype("int64")
    idx_train, idx_test = train_test_split(
        torch.arange(len(labels)).numpy(), test_size=test_size, random_state=seed,
        stratify=labels)

    x = torch.from_numpy(images).unsqueeze(1)               # [N, 1, 8, 8]
    y = torch.from_numpy(labels)
    x_train, x_test = x[idx_train], x[idx_test]
    if normalize:
        mean, std = x_train.mean(), x_train.std()
        x_train = (x_train - mean) / std
        x_test = (x_test - mean) / std

    train = TensorImageDataset(x_train.contiguous(), y[idx_train],
                               transform=RandomShift(1) if augment else None)
    test = TensorImageDataset(x_test.contiguous(), y[idx_test])
    info = DatasetInfo(name="digits", num_classes=10, input_shape=(1, 8, 8), timesteps=None,
                       class_names=tuple(str(c) for c in bunch.target_names))
    return train, test, info
