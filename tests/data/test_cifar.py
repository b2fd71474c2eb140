"""Tests of the CIFAR loaders on tiny files written in the real python pickle format."""
import pytest
import torch
from torchvision import transforms as T

from inflor.data import build_datasets
from inflor.data import cifar as cifar_mod
from inflor.data.transforms import Cutout

from tests.helpers.cifar_files import C10_NAMES, write_cifar10, write_cifar100


def test_cifar10_reads_pickles(tmp_path):
    write_cifar10(tmp_path)
    train, test, info = build_datasets("cifar10", root=tmp_path, normalize=False)
    assert (info.num_classes, info.input_shape, info.timesteps) == (10, (3, 32, 32), None)
    assert info.class_names == tuple(C10_NAMES)
    assert len(train) == 10 and len(test) == 2
    assert train.targets == [0, 1, 1, 2, 2, 3, 3, 4, 4, 5]
    x, y = test[0]
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32 and y == 5
    assert x[0, 0, 0] == 1.0 and x[1, 1, 1] == pytest.approx(51 / 255)
    assert x[2, 31, 31] == pytest.approx(102 / 255) and x.sum() == pytest.approx((255 + 51 + 102) / 255)


def test_cifar10_normalisation_constants(tmp_path):
    write_cifar10(tmp_path)
    _, test, _ = build_datasets("cifar10", root=tmp_path)
    x, _ = test[0]
    assert x[0, 0, 0] == pytest.approx((1.0 - 0.4914) / 0.2023, rel=1e-5)
    assert x[1, 0, 0] == pytest.approx((0.0 - 0.4822) / 0.1994, rel=1e-5)


def test_cifar10_train_pipeline_order_and_defaults(tmp_path):
    write_cifar10(tmp_path)
    train, test, _ = build_datasets("cifar10", root=tmp_path)
    kinds = [type(t) for t in train.transform.transforms]
    assert kinds == [T.RandomCrop, T.RandomHorizontalFlip, T.AutoAugment, T.ToTensor, Cutout,
                     T.Normalize]
    assert train.transform.transforms[4].size == 16
    assert [type(t) for t in test.transform.transforms] == [T.ToTensor, T.Normalize]
    torch.manual_seed(0)
    x, _ = train[3]
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32
    off, _, _ = build_datasets("cifar10", root=tmp_path, autoaugment=False, cutout=False,
                               augment=False)
    assert [type(t) for t in off.transform.transforms] == [T.ToTensor, T.Normalize]


def test_cifar100(tmp_path):
    write_cifar100(tmp_path)
    train, test, info = build_datasets("cifar100", root=tmp_path)
    assert info.num_classes == 100 and info.class_names[99] == "class99"
    assert train.targets == [99, 98, 97] and len(test) == 2
    assert [type(t) for t in train.transform.transforms] == [
        T.RandomCrop, T.RandomHorizontalFlip, T.ToTensor, T.Normalize]   # no AA/Cutout default
    x, y = train[0]
    assert x.shape == (3, 32, 32) and y == 99
    _, test_n, _ = build_datasets("cifar100", root=tmp_path, cutout=True)


def test_missing_files_message(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        build_datasets("cifar10", root=tmp_path)
    msg = str(err.value)
    assert str(tmp_path / "cifar-10-batches-py") in msg and "data_batch_5" in msg
    assert "batches.meta" in msg and "cifar-10-python.tar.gz" in msg
    with pytest.raises(FileNotFoundError, match="cifar-100-python.*\n.*train"):
        build_datasets("cifar100", root=tmp_path)


def test_failed_download_is_file_not_found(tmp_path, monkeypatch):
    def offline(name, root):
        raise OSError("network unreachable")

    monkeypatch.setattr(cifar_mod, "_download", offline)
    with pytest.raises(FileNotFoundError, match="Download failed.*network unreachable"):
        build_datasets("cifar10", root=tmp_path, download=True)


def test_download_then_read(tmp_path, monkeypatch):
    monkeypatch.setattr(cifar_mod, "_download", lambda name, root: write_cifar100(root))
    train, _, _ = build_datasets("cifar100", root=tmp_path, download=True)
    assert len(train) == 3
