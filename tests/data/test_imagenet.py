"""Tests of the ImageNet folder loader on a few tiny JPEGs."""
import pytest
import torch
from PIL import Image

from inflor.data import build_datasets


def write_imagenet(root, classes=("n01440764", "n01443537"), per_class=2):
    for split in ("train", "val"):
        for k, wnid in enumerate(classes):
            d = root / split / wnid
            d.mkdir(parents=True)
            for i in range(per_class):
                Image.new("RGB", (40 + 3 * i, 30), (60 * k, 100, 200)).save(d / f"{wnid}_{i}.JPEG")
    return root


def test_imagenet_folders(tmp_path):
    write_imagenet(tmp_path)
    train, val, info = build_datasets("imagenet", root=tmp_path, image_size=16)
    assert info.num_classes == 2 and info.input_shape == (3, 16, 16) and info.timesteps is None
    assert info.class_names == ("n01440764", "n01443537")
    assert len(train) == 4 and len(val) == 4
    x, y = train[3]
    assert x.shape == (3, 16, 16) and x.dtype == torch.float32 and y == 1
    xv, yv = val[0]
    assert xv.shape == (3, 16, 16) and yv == 0
    # val is deterministic: Resize + CenterCrop
    assert torch.equal(val[0][0], val[0][0])


def test_imagenet_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"train/<wnid>/\*\.JPEG"):
        build_datasets("imagenet", root=tmp_path)


def test_imagenet_class_mismatch(tmp_path):
    write_imagenet(tmp_path)
    (tmp_path / "val" / "n01443537").rename(tmp_path / "val" / "n09999999")
    with pytest.raises(ValueError, match="only in train"):
        build_datasets("imagenet", root=tmp_path, image_size=16)
