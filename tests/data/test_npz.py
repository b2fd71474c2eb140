"""Tests of the bring-your-own ``npz`` dataset."""
import numpy as np
import pytest
import torch

from inflor.data import build_datasets


def _write(path, **arrays):
    np.savez(path, **arrays)
    return path


def _good(shape=(4, 5, 6), n_test=2):
    rng = np.random.default_rng(0)
    return dict(x_train=rng.integers(0, 256, shape, dtype=np.uint8),
                y_train=np.array([0, 1, 2, 1][: shape[0]]),
                x_test=rng.integers(0, 256, (n_test,) + shape[1:], dtype=np.uint8),
                y_test=np.arange(n_test, dtype=np.int32))


def test_grey_images(tmp_path):
    arrays = _good()
    path = _write(tmp_path / "d.npz", **arrays)
    train, test, info = build_datasets("npz", path=str(path))
    assert info.input_shape == (1, 5, 6) and info.num_classes == 3 and info.timesteps is None
    x, y = train[2]
    assert x.shape == (1, 5, 6) and x.dtype == torch.float32 and y == 2
    assert torch.allclose(x[0], torch.from_numpy(arrays["x_train"][2]).float() / 255)
    assert len(test) == 2


def test_colour_images_channel_first_and_relative_path(tmp_path):
    arrays = _good(shape=(4, 5, 6, 3))
    _write(tmp_path / "c.npz", **arrays)
    train, _, info = build_datasets("npz", root=tmp_path, path="c.npz", num_classes=7)
    assert info.input_shape == (3, 5, 6) and info.num_classes == 7
    assert torch.allclose(train[1][0], torch.from_numpy(arrays["x_train"][1]).permute(2, 0, 1) / 255)


def test_normalize(tmp_path):
    path = _write(tmp_path / "d.npz", **_good(shape=(4, 5, 6, 2)))
    train, _, _ = build_datasets("npz", path=str(path), normalize=True)
    m = train.x.mean(dim=(0, 2, 3))
    assert torch.allclose(m, torch.zeros(2), atol=1e-5)


def test_missing_file_and_path(tmp_path):
    with pytest.raises(ValueError, match="needs option 'path'"):
        build_datasets("npz")
    with pytest.raises(FileNotFoundError, match="x_train"):
        build_datasets("npz", path=str(tmp_path / "none.npz"))


@pytest.mark.parametrize("change, message", [
    (lambda a: a.pop("y_test"), "lacks array.*y_test"),
    (lambda a: a.update(x_train=a["x_train"].astype(np.float32)), "x_train.*uint8"),
    (lambda a: a.update(x_train=a["x_train"][:, 0]), r"x_train.*\[N, H, W\]"),
    (lambda a: a.update(x_test=a["x_test"][:, :4]), "must match"),
    (lambda a: a.update(y_train=a["y_train"][:3]), "3 labels but 'x_train' has 4"),
    (lambda a: a.update(y_test=np.array([0.0, 1.0])), "y_test.*integers"),
    (lambda a: a.update(y_test=np.array([0, -1])), "negative"),
])
def test_validation_errors(tmp_path, change, message):
    arrays = _good()
    change(arrays)
    path = _write(tmp_path / "bad.npz", **arrays)
    with pytest.raises(ValueError, match=message):
        build_datasets("npz", path=str(path))


def test_num_classes_too_small(tmp_path):
    path = _write(tmp_path / "d.npz", **_good())
    with pytest.raises(ValueError, match="label 2"):
        build_datasets("npz", path=str(path), num_classes=2)
