"""torchvision's CIFAR readers (behind inflor's checks) on tiny files in the real Python 2 pickle
format: images and labels decoded independently here, split by split, in file order."""
import pickle

import numpy as np
import pytest

from inflor.data import cifar as cifar_mod
from inflor.data.cifar_torchvision import CIFAR10Files, CIFAR100Files
from inflor.errors import DataError

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


def test_a_file_torchvision_could_not_read_is_refused_by_name(tmp_path):
    """Python 3 bytes keys (not the release's format) and a meta file of the wrong dataset."""
    write_cifar10(tmp_path)
    folder = tmp_path / "cifar-10-batches-py"
    (folder / "data_batch_2").write_bytes(pickle.dumps({b"data": np.zeros((2, 3072), np.uint8),
                                                        b"labels": [0, 1]}, protocol=2))
    with pytest.raises(DataError, match=r"data_batch_2 lacks key 'data'"):
        CIFAR10Files(str(tmp_path), train=True)
    CIFAR10Files(str(tmp_path), train=False)                    # the test split does not read it
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": ["a", "b"]}, protocol=2))
    with pytest.raises(DataError, match=r"batches.meta names 2 classes in 'label_names', not 10"):
        CIFAR10Files(str(tmp_path), train=False)


def test_truncated_file_is_a_data_error_naming_it(tmp_path):
    write_cifar100(tmp_path)
    path = tmp_path / "cifar-100-python" / "test"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(DataError, match=r"cannot read .*cifar-100-python/test .*truncated"):
        CIFAR100Files(str(tmp_path), train=False)
