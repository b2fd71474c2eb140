"""``imagenet`` — ILSVRC-2012 (or any image classification set) in the standard folder layout.

Layout under ``root`` (default ``$INFLOR_DATA/imagenet`` or ``./data/imagenet``)::

    root/train/<wnid>/*.JPEG      e.g. root/train/n01440764/n01440764_10026.JPEG
    root/val/<wnid>/*.JPEG        the 50,000 validation images sorted into class folders

read with torchvision's ``ImageFolder`` (classes = sorted folder names, identical in both
splits). The official validation archive is flat; sort it into ``<wnid>`` folders with the
ground truth of the ILSVRC-2012 devkit first (torchvision's ``ImageNet`` class or the common
``valprep.sh`` script do this).

Transforms (the Ternary-Spike / torchvision reference recipe, ``docs/design.md`` §8.1):
train ``RandomResizedCrop(image_size)`` + ``RandomHorizontalFlip``; val
``Resize(round(image_size · 256/224))`` + ``CenterCrop(image_size)``; both ``ToTensor`` and
``Normalize(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))``. ``image_size`` (default
224) exists mainly so tests can use tiny images.
"""
from __future__ import annotations

from pathlib import Path

from ..errors import DataError, DataNotFoundError
from .base import DatasetInfo, check_bool, check_int, resolve_root

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
SOURCE = "https://image-net.org/download.php (ILSVRC2012_img_train.tar, ILSVRC2012_img_val.tar)"


def _missing(root: Path, why: str) -> DataNotFoundError:
    return DataNotFoundError(
        f"ImageNet not found: {why}. Expected the folder layout\n"
        f"  {root / 'train'}/<wnid>/*.JPEG\n  {root / 'val'}/<wnid>/*.JPEG\n"
        f"with the same class folders (e.g. n01440764) in both. Get the images from {SOURCE} "
        f"and sort the validation images into class folders with the devkit ground truth.")


def load_image(path: str):
    """An RGB PIL image; a file PIL cannot read (truncated, not an image) raises ``DataError``
    naming it (torchvision's default loader would raise PIL's own error from inside a batch)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with open(path, "rb") as f, Image.open(f) as img:
            return img.convert("RGB")
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        first = (str(e).strip().splitlines() or [""])[0]
        why = "PIL cannot identify it as an image" if isinstance(e, UnidentifiedImageError) else \
            f"{type(e).__name__}: {first}"
        raise DataError(f"cannot read image {path} ({why}); expected an image file PIL can open (JPEG, "
                        f"PNG, ...): replace or remove it") from None


def static_info_imagenet(*, image_size: int = 224, **options) -> DatasetInfo:
    """ImageNet's shape without reading files: [3, image_size, image_size] images of the 1000
    ILSVRC-2012 classes (the built dataset has as many classes as its folders)."""
    size = check_int("image_size", image_size, minimum=1)
    return DatasetInfo(name="imagenet", num_classes=1000, input_shape=(3, size, size), timesteps=None)


def build_imagenet(root=None, *, image_size: int = 224, augment: bool = True,
                   normalize: bool = True):
    """Build ImageNet train/val datasets (see the module docstring)."""
    from torchvision import datasets
    from torchvision import transforms as T

    image_size = check_int("image_size", image_size, minimum=1)
    augment = check_bool("augment", augment)
    normalize = check_bool("normalize", normalize)
    root = resolve_root(root, "imagenet")
    for split in ("train", "val"):
        d = root / split
        if not d.is_dir() or not any(p.is_dir() for p in d.iterdir()):
            raise _missing(root, f"{d} is missing or has no class folders")

    tail = [T.ToTensor()] + ([T.Normalize(MEAN, STD)] if normalize else [])
    if augment:
        train_tf = T.Compose([T.RandomResizedCrop(image_size), T.RandomHorizontalFlip()] + tail)
    else:
        train_tf = T.Compose([T.Resize(round(image_size * 256 / 224)), T.CenterCrop(image_size)] + tail)
    val_tf = T.Compose([T.Resize(round(image_size * 256 / 224)), T.CenterCrop(image_size)] + tail)

    splits = {}
    for split, tf in (("train", train_tf), ("val", val_tf)):
        try:
            splits[split] = datasets.ImageFolder(str(root / split), transform=tf, loader=load_image)
        except FileNotFoundError as exc:  # a class folder without any image file
            raise DataError(f"{root / split}: {str(exc).rstrip('.')}; every class folder needs at least one "
                            f"image: add its images or remove the folder") from None
    train, val = splits["train"], splits["val"]
    if train.classes != val.classes:
        only_train = sorted(set(train.classes) - set(val.classes))[:5]
        only_val = sorted(set(val.classes) - set(train.classes))[:5]
        raise DataError(f"train and val class folders differ under {root}: only in train "
                         f"{only_train}, only in val {only_val}")
    info = DatasetInfo(name="imagenet", num_classes=len(train.classes),
                       input_shape=(3, image_size, image_size), timesteps=None,
                       class_names=tuple(train.classes))
    return train, val, info
