"""Each dataset builder reports its static shape (inflor.data.static_info) without reading files,
and that shape is the one the built dataset has."""
import numpy as np
import pytest

from inflor.data import build_datasets, static_info
from tests.helpers.cifar_files import write_cifar10, write_cifar100
from tests.helpers.dvs_files import make_release
from inflor.errors import ConfigError


def shape(info):
    return info.name, info.num_classes, tuple(info.input_shape), info.timesteps


def test_digits_static_equals_built():
    assert shape(static_info("digits", seed=3)) == shape(build_datasets("digits", seed=3)[2]) == \
        ("digits", 10, (1, 8, 8), None)


@pytest.mark.parametrize("name, write, classes", [("cifar10", write_cifar10, 10), ("cifar100", write_cifar100, 100)])
def test_cifar_static_equals_built(tmp_path, name, write, classes):
    write(tmp_path)
    assert static_info(name, root=tmp_path / "none") == static_info(name)     # no file is read
    assert shape(static_info(name)) == shape(build_datasets(name, root=tmp_path)[2]) == (name, classes, (3, 32, 32), None)


def test_cifar10_dvs_static_follows_its_options(tmp_path):
    make_release(tmp_path, n_per_class=2)
    opts = dict(classes=["airplane", "automobile"], timesteps=4, size=16)
    built = build_datasets("cifar10_dvs", root=tmp_path, train_per_class=1, progress=False, **opts)[2]
    assert shape(static_info("cifar10_dvs", **opts)) == shape(built) == ("cifar10_dvs", 2, (2, 16, 16), 4)
    assert shape(static_info("cifar10_dvs")) == ("cifar10_dvs", 10, (2, 48, 48), 10)


def test_imagenet_static_follows_image_size():
    assert shape(static_info("imagenet", image_size=64)) == ("imagenet", 1000, (3, 64, 64), None)


def test_npz_has_no_static_shape_and_is_read(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x_train=rng.integers(0, 255, (4, 5, 6), dtype=np.uint8), y_train=np.arange(4) % 2,
             x_test=rng.integers(0, 255, (2, 5, 6), dtype=np.uint8), y_test=np.arange(2))
    assert shape(static_info("npz", path=str(tmp_path / "d.npz"))) == ("npz", 2, (1, 5, 6), None)


def test_unknown_options_are_refused():
    with pytest.raises(ConfigError, match="unknown option"):
        static_info("digits", sizes=3)
