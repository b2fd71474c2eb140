"""``cifar10_dvs`` — CIFAR10-DVS event streams as 10 frames of equal event count, 48×48.

Source files
------------
The original release (Li et al., "CIFAR10-DVS: An Event-Stream Dataset for Object
Classification", Front. Neurosci. 2017, https://doi.org/10.3389/fnins.2017.00309) is ten zip
files on figshare, one per class (``airplane.zip`` = https://ndownloader.figshare.com/files/7712788,
``automobile.zip``, ..., ``truck.zip``). Unzipped under ``root`` (default
``$INFLOR_DATA/cifar10_dvs`` or ``./data/cifar10_dvs``) they give::

    root/airplane/cifar10_airplane_0.aedat ... cifar10_airplane_999.aedat
    root/automobile/...  (airplane automobile bird cat deer dog frog horse ship truck)

File format (jAER AEDAT 2.0)
----------------------------
ASCII header lines that start with ``#`` (the first is ``#!AER-DAT2.0``), then records of a
big-endian unsigned 32-bit address followed by a big-endian 32-bit timestamp (µs). AEDAT 1.0
files (no version line or ``#!AER-DAT1.0``) have a 16-bit address instead; both are read.
The recordings come from a DVS128 (the dataset README says to view them in jAER with the
DVS128 filters). The address layout is that of jAER's DVS128 event extractor
(``SensorsINI/jaer: src/ch/unizh/ini/jaer/chip/retina/DVS128.java``, class ``Extractor``:
``XMASK = 0xfe, XSHIFT = 1, YMASK = 0x7f00, YSHIFT = 8``, type mask 1, ``flipx``, ``fliptype``)::

    bit 0       raw polarity; jAER flips it: p = 1 - bit0 (1 = ON, 0 = OFF)
    bits 1..7   raw x; jAER flips it: x = 127 - raw_x
    bits 8..14  y = raw_y (jAER's origin is the bottom-left corner)
    bit 15, 31  sync / special events (jAER skips them); any record with a bit above 14 set
                is dropped here

:func:`read_aedat` returns exactly jAER's ``(x, y, p)``. Where an event lands in the frame is
the ``orientation`` option: ``"spikingjelly"`` (default) puts it at row ``x``, column
``127 - y`` (the same pixels as SpikingJelly's ``CIFAR10DVS`` loader, which rotates jAER's
coordinates this way for this dataset), ``"jaer"`` at row ``y``, column ``x``.
The timestamps are read but unused: slicing follows the file order of the events.

Pipeline
--------
1. Decode the events (above).
2. Split them into ``timesteps`` (10) slices of equal event count: with N events and
   ``d = N // T``, slice ``j < T-1`` is events ``[j·d, (j+1)·d)`` and the last slice takes the
   rest ``[(T-1)·d, N)``. Count the events of each polarity per pixel:
   ``[T, 2, 128, 128]`` float32, channel 0 = OFF, channel 1 = ON.
3. Resize to ``size × size`` (48) for both splits with ``F.interpolate``, option
   ``interpolation``: ``"area"`` (default: the mean count over each output cell's footprint,
   i.e. adaptive average pooling, which keeps the average event density), ``"bilinear"``
   (no antialiasing) or ``"nearest"`` (what the Guo et al. reference loader uses).
4. Cache the result once per sample as ``.npy`` (float32 ``[T, 2, size, size]``) under
   ``<cache_dir>/<T>_<size>_<interpolation>_<orientation>/<class>/<file stem>.npy`` (default
   ``cache_dir = root/inflor_cache``); each file is written to a temporary name and renamed,
   so an interrupted or concurrent build never leaves a half-written cache. Later builds only
   decode files whose cache entry is missing. A tqdm bar shows progress (``progress``);
   ``workers`` (default 4) files are decoded at a time in threads, 0 = one by one.
5. Split per class: the files of each class are sorted by their index ``i``; with
   ``split_seed`` (default 0) a seeded permutation of that sorted list puts
   ``train_per_class`` (900) in train and the rest (100) in test; with ``split_seed=None`` the
   first ``train_per_class`` indices go to train (the TET/aa-samad convention, 0–899 / 900–999).
6. Spike format at load time, option ``binary``: ``False`` (default) keeps the real-valued
   resized counts; ``True`` gives 0/1 frames, 1 where at least one event of that polarity fell
   into the output pixel during the slice (InfLoR Sec. 4.1: "we used the 0/1 spike format
   directly"). With ``interpolation="area"`` the resized count is > 0 exactly when an event lies
   in the output pixel's footprint, so the 0/1 frame is the adaptive max pooling of the
   full-resolution 0/1 frame (no event is lost, none is invented); with ``"nearest"`` it is
   whether the one sampled sensor pixel had an event. ``"bilinear"`` mixes neighbours with
   weights and is refused with ``binary``. Then frame normalisation, option ``frame_norm``:
   ``"none"`` (default) or ``"max"`` (each time step's ``[2, H, W]`` frame divided by its own
   maximum, as in the TET preprocessing script; 0/1 frames stay 0/1). Neither is baked into
   the cache.
7. Training augmentation (option ``augment``, default on; ``max_shift`` default 5):
   :class:`~inflor.data.transforms.FlipRoll` — flip along width with p = 0.5, then a circular
   roll by ``(dh, dw)``, each uniform in ``[-max_shift, max_shift]``. Test samples are never
   augmented.

Samples are ``(x, y)`` with x float32 ``[T, 2, size, size]`` (the model moves batches
``[B, T, ...]`` to ``[T, B, ...]``) and y an int.

Pre-framed variant (``layout="pt"``)
------------------------------------
Some repositories (NDA, TET) distribute CIFAR10-DVS already framed as ``root/train/<i>.pt``
and ``root/test/<i>.pt``, each a ``torch.save``'d pair ``(frames, label)`` with frames
``[2, 128, 128, T]`` (time-last) or ``[T, 2, 128, 128]`` (time-first; told apart by whether
the last two axes are equal). These are read as they are (their own train/test split; no
cache, ``train_per_class``/``split_seed``/``orientation`` do not apply), made time-first,
resized to ``size`` with ``interpolation`` on load, then binarised/normalised/augmented as
above (``binary`` marks every pixel whose value is > 0).
Their provenance (and whether they were already normalised) is undocumented.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from ..atomic import atomic_write
from ..errors import ConfigError, DataError, DataNotFoundError
from ..safeload import load_weights_only
from .base import (DatasetInfo, check_bool, check_choice, check_int, resolve_root)
from .transforms import FlipRoll

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
           "truck")
SENSOR_SIZE = 128
SOURCE = ("the CIFAR10-DVS release on figshare (Li et al. 2017, "
          "https://doi.org/10.3389/fnins.2017.00309): one zip per class, e.g. "
          "https://ndownloader.figshare.com/files/7712788 (airplane.zip)")
INTERPOLATIONS = ("area", "bilinear", "nearest")
ORIENTATIONS = ("spikingjelly", "jaer")
FRAME_NORMS = ("none", "max")
LAYOUTS = ("aedat", "pt")

_ADDR_VALID_MASK = 0x7FFF   # DVS128 addresses use bits 0..14; anything above is sync/special


# ----------------------------------------------------------------------------- decoding
def read_aedat(path) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Decode a DVS128 jAER AEDAT 1.0/2.0 file into ``(t, x, y, p)`` int64 arrays.

    ``x``, ``y`` in ``0..127`` and ``p`` in ``{0 (OFF), 1 (ON)}`` follow jAER's DVS128
    extractor (see the module docstring); sync/special records are dropped. A file with another
    AEDAT version or without a single event raises ``DataError`` naming it.
    """
    with open(path, "rb") as f:
        version = None
        header_end = 0
        first = True
        while True:
            line = f.readline()
            if not line.startswith(b"#"):
                break
            if first and line.startswith(b"#!AER-DAT"):
                version = line[len(b"#!AER-DAT"):].strip().decode("ascii", "replace")
            first = False
            header_end = f.tell()
        f.seek(header_end)
        body = f.read()
    if version is None or version.startswith("1."):
        addr_dtype, rec = ">u2", 6
    elif version.startswith("2."):
        addr_dtype, rec = ">u4", 8
    else:
        raise DataError(f"{path}: AEDAT version {version} is not supported; expected a jAER AEDAT 1.x or 2.x "
                        f"file (first line '#!AER-DAT2.0'), the formats CIFAR10-DVS uses")
    n = len(body) // rec                      # a truncated last record is ignored
    if n == 0:
        raise DataError(f"{path} holds no events ({len(body)} bytes after the header): the file is truncated "
                        f"or empty; expected a jAER AEDAT file with {rec}-byte event records")
    records = np.frombuffer(body, dtype=np.dtype([("a", addr_dtype), ("t", ">u4")]), count=n)
    addr = records["a"].astype(np.int64)
    t = records["t"].astype(np.int64)
    keep = (addr & ~_ADDR_VALID_MASK) == 0
    addr, t = addr[keep], t[keep]
    p = 1 - (addr & 1)
    x = (SENSOR_SIZE - 1) - ((addr & 0xFE) >> 1)
    y = (addr & 0x7F00) >> 8
    return t, x, y, p


def equal_count_bounds(n: int, timesteps: int) -> np.ndarray:
    """Start/end event index of each slice: ``bounds[j]..bounds[j+1]`` (length T + 1).

    Every slice has ``n // T`` events except the last, which also takes the remainder.
    """
    d = n // timesteps
    bounds = np.arange(timesteps + 1, dtype=np.int64) * d
    bounds[-1] = n
    return bounds


def events_to_frames(row: np.ndarray, col: np.ndarray, p: np.ndarray, timesteps: int,
                     height: int = SENSOR_SIZE, width: int = SENSOR_SIZE) -> np.ndarray:
    """Per-polarity event counts in ``timesteps`` equal-count slices: float32 ``[T, 2, H, W]``."""
    n = len(p)
    bounds = equal_count_bounds(n, timesteps)
    step = np.repeat(np.arange(timesteps, dtype=np.int64), np.diff(bounds))
    flat = ((step * 2 + p) * height + row) * width + col
    counts = np.bincount(flat, minlength=timesteps * 2 * height * width)
    return counts.astype(np.float32).reshape(timesteps, 2, height, width)


def place_events(x: np.ndarray, y: np.ndarray, orientation: str) -> Tuple[np.ndarray, np.ndarray]:
    """(row, col) of each event in the frame for the given ``orientation`` option."""
    if orientation == "jaer":
        return y, x
    return x, (SENSOR_SIZE - 1) - y            # "spikingjelly"


def resize_frames(frames: torch.Tensor, size: int, interpolation: str) -> torch.Tensor:
    """Resize ``[T, C, H, W]`` to ``[T, C, size, size]``."""
    if frames.shape[-2:] == (size, size):
        return frames
    if interpolation == "bilinear":
        return F.interpolate(frames, size=(size, size), mode="bilinear", align_corners=False)
    return F.interpolate(frames, size=(size, size), mode=interpolation)


def aedat_to_frames(path, timesteps: int = 10, size: int = 48, interpolation: str = "area",
                    orientation: str = "spikingjelly") -> np.ndarray:
    """The whole per-file pipeline: decode, slice, count, resize. float32 ``[T, 2, size, size]``."""
    _, x, y, p = read_aedat(path)
    row, col = place_events(x, y, orientation)
    frames = torch.from_numpy(events_to_frames(row, col, p, timesteps))
    return resize_frames(frames, size, interpolation).numpy()


# ----------------------------------------------------------------------------- caching
def _save_atomic(array: np.ndarray, target: Path) -> None:
    atomic_write(target, lambda f: np.save(f, array), fsync=False)


def build_cache(pairs: Sequence[Tuple[Path, Path]], progress: bool = True, workers: int = 0,
                **frame_options) -> int:
    """Write the frames of every ``(aedat, cache)`` pair whose cache file is missing.

    ``workers > 0`` decodes that many files at a time in threads (numpy and torch release the
    GIL for the heavy parts). Returns the number of files decoded (0 when the cache is complete).
    """
    todo = [(src, dst) for src, dst in pairs if not dst.is_file()]
    if not todo:
        return 0
    from tqdm.auto import tqdm

    def one(pair):
        src, dst = pair
        _save_atomic(aedat_to_frames(src, **frame_options), dst)

    bar = tqdm(total=len(todo), desc="CIFAR10-DVS: events -> frames (one-time cache)",
               unit="file", disable=not progress)
    with bar:
        if workers > 0:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(max_workers=workers) as pool:
                for _ in pool.map(one, todo):
                    bar.update()
        else:
            for pair in todo:
                one(pair)
                bar.update()
    return len(todo)


# ----------------------------------------------------------------------------- datasets
def _normalise(frames: torch.Tensor, frame_norm: str, binary: bool = False) -> torch.Tensor:
    """Step 6 of the pipeline: 0/1 spike format (``binary``), then ``frame_norm``."""
    if binary:
        frames = (frames > 0).to(frames.dtype)
    if frame_norm == "max":
        peak = frames.amax(dim=(-3, -2, -1), keepdim=True)
        frames = frames / torch.where(peak > 0, peak, torch.ones_like(peak))
    return frames


class FrameFileDataset(Dataset):
    """Samples ``(frames, label)`` from cached ``.npy`` frame files ``[T, C, H, W]``."""

    def __init__(self, items: Sequence[Tuple[Path, int]], frame_norm: str = "none",
                 transform: Optional[Callable] = None, binary: bool = False):
        self.items = list(items)
        self.frame_norm = frame_norm
        self.transform = transform
        self.binary = binary

    @property
    def targets(self) -> List[int]:
        return [label for _, label in self.items]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int):
        path, label = self.items[index]
        frames = _normalise(torch.from_numpy(np.load(path)), self.frame_norm, self.binary)
        if self.transform is not None:
            frames = self.transform(frames)
        return frames, label


def load_pt_frames(path) -> Tuple[torch.Tensor, int]:
    """Read one pre-framed ``(frames, label)`` ``.pt`` file; frames come back ``[T, 2, H, W]``."""
    obj = load_weights_only(path, "frames file", "expected a torch.save'd (frames, label) pair of tensors",
                            DataError)
    if not isinstance(obj, (tuple, list)) or len(obj) != 2:
        raise DataError(f"{path}: expected a (frames, label) pair, got {type(obj).__name__}")
    frames, label = obj
    frames = torch.as_tensor(frames).float()
    if frames.ndim != 4:
        raise DataError(f"{path}: frames must be 4-D, got shape {list(frames.shape)}")
    if frames.shape[-1] == frames.shape[-2] and frames.shape[1] == 2:
        pass                                            # [T, 2, H, W]
    elif frames.shape[0] == 2:
        frames = frames.permute(3, 0, 1, 2)             # [2, H, W, T] -> [T, 2, H, W]
    else:
        raise DataError(f"{path}: frames shape {list(frames.shape)} is neither [2, H, W, T] "
                        f"nor [T, 2, H, W]")
    return frames.contiguous(), int(torch.as_tensor(label).reshape(-1)[0])


class PtFramesDataset(Dataset):
    """Samples from pre-framed ``.pt`` files (see "Pre-framed variant" in the module docstring)."""

    def __init__(self, files: Sequence[Path], size: int, interpolation: str,
                 frame_norm: str = "none", transform: Optional[Callable] = None, binary: bool = False):
        self.files = list(files)
        self.size = size
        self.interpolation = interpolation
        self.frame_norm = frame_norm
        self.transform = transform
        self.binary = binary

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int):
        frames, label = load_pt_frames(self.files[index])
        frames = resize_frames(frames, self.size, self.interpolation)
        frames = _normalise(frames, self.frame_norm, self.binary)
        if self.transform is not None:
            frames = self.transform(frames)
        return frames, label


# ----------------------------------------------------------------------------- builder
def _index_of(path: Path) -> Tuple[int, str]:
    m = re.search(r"(\d+)$", path.stem)
    return (int(m.group(1)) if m else -1, path.name)


def _missing_aedat(root: Path, classes: Sequence[str], why: str) -> DataNotFoundError:
    example = classes[0]
    return DataNotFoundError(
        f"CIFAR10-DVS not found: {why}. Expected one folder per class under {root}:\n"
        f"  {root}/<class>/cifar10_<class>_<i>.aedat   for <class> in {', '.join(classes)}\n"
        f"  (e.g. {root / example / f'cifar10_{example}_0.aedat'}, 1000 files per class, i = 0..999)\n"
        f"Get them from {SOURCE}; unzip each class zip into {root}.")


def _split(files: List[Path], train_per_class: int, rng: Optional[np.random.Generator]):
    order = np.arange(len(files)) if rng is None else rng.permutation(len(files))
    train = sorted(order[:train_per_class].tolist())
    test = sorted(order[train_per_class:].tolist())
    return [files[i] for i in train], [files[i] for i in test]


def _check_classes(classes) -> tuple:
    if classes is None:
        return CLASSES
    if isinstance(classes, str) or not classes:
        raise ConfigError(f"option 'classes' must be a non-empty list of class names from "
                          f"{', '.join(CLASSES)}, got {classes!r}")
    for c in classes:
        check_choice("classes", c, CLASSES)
    return tuple(classes)


def static_info_cifar10_dvs(*, timesteps: int = 10, size: int = 48, classes=None, **options) -> DatasetInfo:
    """CIFAR10-DVS's shape without reading files: ``timesteps`` frames of [2, size, size], one
    class per entry of ``classes`` (default all 10)."""
    timesteps = check_int("timesteps", timesteps, minimum=1)
    size = check_int("size", size, minimum=1)
    classes = _check_classes(classes)
    return DatasetInfo(name="cifar10_dvs", num_classes=len(classes), input_shape=(2, size, size),
                       timesteps=timesteps, class_names=classes)


def build_cifar10_dvs(root=None, *, timesteps: int = 10, size: int = 48,
                      interpolation: str = "area", orientation: str = "spikingjelly",
                      frame_norm: str = "none", binary: bool = False, train_per_class: int = 900,
                      split_seed: Optional[int] = 0, augment: bool = True, max_shift: int = 5,
                      classes: Optional[Sequence[str]] = None, cache_dir=None,
                      layout: str = "aedat", progress: bool = True, workers: int = 4):
    """Build CIFAR10-DVS train/test datasets (see the module docstring for every option)."""
    timesteps = check_int("timesteps", timesteps, minimum=1)
    size = check_int("size", size, minimum=1)
    check_choice("interpolation", interpolation, INTERPOLATIONS)
    check_choice("orientation", orientation, ORIENTATIONS)
    check_choice("frame_norm", frame_norm, FRAME_NORMS)
    binary = check_bool("binary", binary)
    if binary and interpolation == "bilinear":
        raise ValueError("option 'binary' needs interpolation 'area' (an event anywhere in the output "
                         "pixel: max pooling) or 'nearest'; 'bilinear' weights neighbours")
    check_choice("layout", layout, LAYOUTS)
    train_per_class = check_int("train_per_class", train_per_class, minimum=1)
    if split_seed is not None:
        split_seed = check_int("split_seed", split_seed)
    augment = check_bool("augment", augment)
    max_shift = check_int("max_shift", max_shift, minimum=0)
    progress = check_bool("progress", progress)
    workers = check_int("workers", workers, minimum=0)
    info = static_info_cifar10_dvs(timesteps=timesteps, size=size, classes=classes)
    classes = info.class_names
    root = resolve_root(root, "cifar10_dvs")
    train_tf = FlipRoll(max_shift=max_shift) if augment else None

    if layout == "pt":
        return _build_pt(root, timesteps, size, interpolation, frame_norm, train_tf, info, binary)

    per_class = []
    for c in classes:
        folder = root / c
        files = sorted(folder.glob("*.aedat"), key=_index_of) if folder.is_dir() else []
        if not files:
            raise _missing_aedat(root, classes, f"no .aedat files in {folder}")
        if len(files) <= train_per_class:
            raise DataError(f"class '{c}' has {len(files)} files in {folder}, not more than "
                            f"train_per_class={train_per_class}; lower train_per_class")
        per_class.append(files)

    tag = f"T{timesteps}_{size}px_{interpolation}_{orientation}"
    cache_root = (Path(cache_dir).expanduser() if cache_dir is not None
                  else root / "inflor_cache") / tag
    pairs = [(f, cache_root / c / (f.stem + ".npy"))
             for c, files in zip(classes, per_class) for f in files]
    build_cache(pairs, progress=progress, workers=workers, timesteps=timesteps, size=size,
                interpolation=interpolation, orientation=orientation)

    rng = None if split_seed is None else np.random.default_rng(split_seed)
    train_items, test_items = [], []
    for label, (c, files) in enumerate(zip(classes, per_class)):
        tr, te = _split(files, train_per_class, rng)
        train_items += [(cache_root / c / (f.stem + ".npy"), label) for f in tr]
        test_items += [(cache_root / c / (f.stem + ".npy"), label) for f in te]
    train = FrameFileDataset(train_items, frame_norm, train_tf, binary)
    test = FrameFileDataset(test_items, frame_norm, None, binary)
    return train, test, info


def _build_pt(root: Path, timesteps: int, size: int, interpolation: str, frame_norm: str,
              train_tf, info: DatasetInfo, binary: bool = False):
    splits = {}
    for split in ("train", "test"):
        folder = root / split
        files = sorted(folder.glob("*.pt"), key=_index_of) if folder.is_dir() else []
        if not files:
            raise DataNotFoundError(
                f"pre-framed CIFAR10-DVS (layout='pt') not found: no .pt files in {folder}. "
                f"Expected {root}/train/<i>.pt and {root}/test/<i>.pt, each a torch.save'd "
                f"(frames [2, 128, 128, T] or [T, 2, 128, 128], label) pair. Or use "
                f"layout='aedat' with the original release from {SOURCE}.")
        splits[split] = files
    frames, _ = load_pt_frames(splits["train"][0])
    if frames.shape[0] != timesteps:
        raise DataError(f"{splits['train'][0]} holds T = {frames.shape[0]} frames but option "
                        f"timesteps = {timesteps}; set timesteps={frames.shape[0]}")
    train = PtFramesDataset(splits["train"], size, interpolation, frame_norm, train_tf, binary)
    test = PtFramesDataset(splits["test"], size, interpolation, frame_norm, None, binary)
    return train, test, info
