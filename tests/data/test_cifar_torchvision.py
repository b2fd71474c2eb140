"""torchvision's CIFAR readers (behind inflor's checks) on tiny files in the real Python 2 pickle
format: images and labels decoded independently here, split by split, in file order."""
import pickle

import numpy as np
import pytest
import torch

from inflor.data import cifar as cifar_mod
from inflor.data.cifar_torchvision import CIFAR10Files, CIFAR100Files

from tests.helpers.cifar_files import write_cifar10, write_cifar100

CASES = [("cifar10", write_cifar10, CIFAR10Files, "cifar-10-batches-py", "labels"),
         ("cifar100", write_cifar100, CIFAR100Files, "cifar-100-python", "fine_labels")]


def _plain_decode(folder, files, label_key):
    """Pixel (y, x, c) of image n is byte c * 1024 + 32 * y + x of row n (the release's layout)."""
    images, labels = [], []
    for name in files:
        with open(folder / name, "rb") as f:
            batch = pickle.load(f, encoding="latin1")
        for row, label in zip(batch["data"], batch[label_key]):
            img = np.zeros((32, 32, 3), np.uint8)
            for c in range(3):
                for y in range(32):
                    for x in range(32):
                        img[y, x, c] = row[c * 1024 + 32 * y + x]
            images.append(img)
            labels.append(label)
    return np.stack(images), labels


@pytest.mark.parametrize("name, write, cls, folder, label_key", CASES)
def test_images_labels_and_order(tmp_path, name, write, cls, folder, label_key):
    write(tmp_path)
    spec = cifar_mod.SPECS[name]
    for train, files in ((True, spec["train_files"]), (False, spec["test_files"])):
        ds = cls(str(tmp_path), train=train)
        images, labels = _plain_decode(tmp_path / folder, files, label_key)
        assert ds.data.dtype == np.uint8 and np.array_equal(ds.data, images)
        assert list(ds.targets) == labels
    assert len(ds.classes) == spec["num_classes"]


@pytest.mark.parametrize("name, write, cls, folder, label_key", CASES)
def test_old_reader_equals_torchvision(tmp_path, name, write, cls, folder, label_key):
    write(tmp_path)
    spec = cifar_mod.SPECS[name]
    for train, files in ((True, spec["train_files"]), (False, spec["test_files"])):
        tf = cifar_mod._transforms(spec, train, True, True, True, 16, True)
        old = cifar_mod.CIFARPickle([tmp_path / folder / f for f in files], label_key, tf,
                                    num_classes=spec["num_classes"])
        new = cls(str(tmp_path), train=train, transform=tf)
        assert np.array_equal(old.data, new.data) and list(old.targets) == list(new.targets)
        assert len(old) == len(new)
        for i in range(len(old)):
            torch.manual_seed(i)
            x_old, y_old = old[i]
            torch.manual_seed(i)
            x_new, y_new = new[i]
            assert y_old == y_new and torch.equal(x_old, x_new)
