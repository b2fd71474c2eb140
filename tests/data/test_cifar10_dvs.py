"""Tests of CIFAR10-DVS on tiny ``.aedat`` files in the real jAER AEDAT 2.0 format."""
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from inflor.data import build_datasets
from inflor.data import cifar10_dvs as dvs

from tests.helpers.dvs_files import CLASSES, HEADER, encode, make_release, write_aedat


def test_decode_hand_constructed(tmp_path):
    # 0x0304: bit0 = 0 -> ON (p=1); raw x = 2 -> x = 125; y = 3.
    # 0x7F01: bit0 = 1 -> OFF; raw x = 0 -> x = 127; y = 127.
    # 0x00FE: raw x = 127 -> x = 0; y = 0; ON.
    # 0x8000 (sync) and 0x80000304 (special) are dropped.
    raw = (HEADER + bytes.fromhex("00000304 00000010  00007F01 00000020  00008000 00000030"
                                  "000000FE 00000040  80000304 00000050".replace(" ", ""))
           + b"\x00\x00")                                   # a truncated record is ignored
    path = tmp_path / "e.aedat"
    path.write_bytes(raw)
    t, x, y, p = dvs.read_aedat(path)
    assert t.tolist() == [16, 32, 64]
    assert x.tolist() == [125, 127, 0]
    assert y.tolist() == [3, 127, 0]
    assert p.tolist() == [1, 0, 1]


def test_decode_aedat1(tmp_path):
    rec = np.array([(0x0304, 5)], dtype=[("a", ">u2"), ("t", ">u4")])
    path = tmp_path / "old.aedat"
    path.write_bytes(b"#!AER-DAT1.0\r\n" + rec.tobytes())
    t, x, y, p = dvs.read_aedat(path)
    assert (t.tolist(), x.tolist(), y.tolist(), p.tolist()) == ([5], [125], [3], [1])


def test_equal_count_slicing():
    assert dvs.equal_count_bounds(23, 10).tolist() == [0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 23]
    n = 23
    p = np.array([1, 0] * 11 + [1])
    frames = dvs.events_to_frames(np.full(n, 4), np.full(n, 7), p, timesteps=10, height=8, width=8)
    assert frames.shape == (10, 2, 8, 8) and frames.dtype == np.float32
    assert frames.sum(axis=(1, 2, 3)).tolist() == [2] * 9 + [5]
    assert frames[0, :, 4, 7].tolist() == [1, 1]           # one OFF (ch 0), one ON (ch 1)
    assert frames[9, :, 4, 7].tolist() == [2, 3]           # last slice: events 18..22
    assert frames.sum() == n and frames[:, :, 4, 7].sum() == n


def test_orientation():
    x, y = np.array([10]), np.array([20])
    assert [v.tolist() for v in dvs.place_events(x, y, "jaer")] == [[20], [10]]
    assert [v.tolist() for v in dvs.place_events(x, y, "spikingjelly")] == [[10], [107]]


def test_build_shapes_split_and_dataloader(tmp_path):
    make_release(tmp_path, n_per_class=12)
    train, test, info = build_datasets("cifar10_dvs", root=tmp_path, classes=CLASSES,
                                       train_per_class=9, progress=False)
    assert (info.num_classes, info.input_shape, info.timesteps) == (2, (2, 48, 48), 10)
    assert info.class_names == tuple(CLASSES)
    assert len(train) == 18 and len(test) == 6
    x, y = test[0]
    assert x.shape == (10, 2, 48, 48) and x.dtype == torch.float32 and isinstance(y, int)
    assert x.sum() > 0
    xb, yb = next(iter(DataLoader(train, batch_size=4)))
    assert xb.shape == (4, 10, 2, 48, 48) and yb.dtype == torch.int64

    names = lambda ds: {p.name for p, _ in ds.items}
    assert not names(train) & names(test)
    assert len(names(train) | names(test)) == 24
    for label in (0, 1):                                   # 9 / 3 per class
        assert sum(1 for _, l in train.items if l == label) == 9
    again, _, _ = build_datasets("cifar10_dvs", root=tmp_path, classes=CLASSES,
                                 train_per_class=9, progress=False)
    assert again.items == train.items                      # deterministic
    splits = {frozenset(names(build_datasets("cifar10_dvs", root=tmp_path, classes=CLASSES,
                                             train_per_class=9, split_seed=s,
                                             progress=False)[1])) for s in range(4)}
    assert len(splits) > 1                                 # the seed matters
    _, by_index, _ = build_datasets("cifar10_dvs", root=tmp_path, classes=CLASSES,
                                    train_per_class=9, split_seed=None, progress=False)
    # index order is numeric (10, 11 after 9), and the last 3 indices are the test set
    assert names(by_index) == {f"cifar10_{c}_{i}.npy" for c in CLASSES for i in (9, 10, 11)}


def test_cache_reuse_and_exact_counts(tmp_path, monkeypatch):
    make_release(tmp_path, n_per_class=3)
    calls = []
    real = dvs.read_aedat
    monkeypatch.setattr(dvs, "read_aedat", lambda path: calls.append(path) or real(path))
    opts = dict(root=tmp_path, classes=CLASSES, train_per_class=2, size=128, augment=False,
                progress=False)
    train, test, _ = build_datasets("cifar10_dvs", **opts)
    assert len(calls) == 6
    cache = tmp_path / "inflor_cache" / "T10_128px_area_spikingjelly"
    assert sorted(p.name for p in cache.rglob("*") if p.is_file()) == sorted(
        f"cifar10_{c}_{i}.npy" for c in CLASSES for i in range(3))       # no temp files left
    build_datasets("cifar10_dvs", **opts)
    assert len(calls) == 6                                  # second build: nothing re-decoded
    build_datasets("cifar10_dvs", **dict(opts, size=32))
    assert len(calls) == 12                                 # other frame settings: own cache

    # at 128 px the cached frames are the exact per-polarity counts of the events
    path, label = test.items[0]
    _, x, y, p = real(tmp_path / CLASSES[label] / (path.stem + ".aedat"))
    expected = np.zeros((10, 2, 128, 128), np.float32)
    for k, (xi, yi, pi) in enumerate(zip(x, y, p)):
        expected[min(k // (57 // 10), 9), pi, xi, 127 - yi] += 1
    assert np.array_equal(test[0][0].numpy(), expected)


def test_frame_norm_max(tmp_path):
    make_release(tmp_path, n_per_class=2)
    _, test, _ = build_datasets("cifar10_dvs", root=tmp_path, classes=CLASSES, train_per_class=1,
                                frame_norm="max", progress=False, workers=0)
    x, _ = test[0]
    assert torch.allclose(x.amax(dim=(1, 2, 3)), torch.ones(10))


def _frame_events(root, events):
    """Two identical files of one class holding ``events`` = [(row, col, p), ...] in frame
    coordinates (orientation 'spikingjelly': row = jAER x, col = 127 - jAER y)."""
    rows, cols, ps = (np.array(v) for v in zip(*events))
    for i in range(2):
        write_aedat(root / "airplane" / f"cifar10_airplane_{i}.aedat", encode(rows, 127 - cols, ps))


def test_binary_frames_are_event_presence(tmp_path):
    # 4 events, T = 2 (two per slice): slice 0 two ON events at pixel (0, 0), slice 1 two OFF
    # events at (2, 2). 128 -> 48 'area' footprints: output 0 covers input rows/cols 0..2,
    # output 1 covers 2..5, so (0, 0) lands in output (0, 0) only and (2, 2) in outputs
    # (0..1, 0..1).
    _frame_events(tmp_path, [(0, 0, 1), (0, 0, 1), (2, 2, 0), (2, 2, 0)])
    opts = dict(root=tmp_path, classes=["airplane"], train_per_class=1, timesteps=2, augment=False,
                progress=False, workers=0)
    counts = build_datasets("cifar10_dvs", **opts)[1][0][0]
    assert counts[0, 1, 0, 0] == pytest.approx(2 / 9)         # the area mean: real-valued, not 0/1
    x = build_datasets("cifar10_dvs", binary=True, **opts)[1][0][0]
    expected = torch.zeros(2, 2, 48, 48)
    expected[0, 1, 0, 0] = 1                                  # ON, slice 0
    expected[1, 0, :2, :2] = 1                                # OFF, slice 1
    assert torch.equal(x, expected)
    # at sensor size: event presence of each polarity (two events still give 1)
    full = build_datasets("cifar10_dvs", binary=True, size=128, **opts)[1][0][0]
    assert full.sum() == 2 and full[0, 1, 0, 0] == 1 and full[1, 0, 2, 2] == 1
    # 'area' + binary is the adaptive max pooling of the full-resolution 0/1 frames
    assert torch.equal(x, torch.nn.functional.adaptive_max_pool2d(full, 48))
    near = build_datasets("cifar10_dvs", binary=True, interpolation="nearest", **opts)[1][0][0]
    assert set(near.unique().tolist()) <= {0.0, 1.0}
    with pytest.raises(ValueError, match="binary.*bilinear"):
        build_datasets("cifar10_dvs", binary=True, interpolation="bilinear", **opts)


def test_binary_applies_to_pre_framed_files(tmp_path):
    for split in ("train", "test"):
        (tmp_path / split).mkdir()
        frames = torch.zeros(10, 2, 16, 16)
        frames[3, 1, 5, 6] = 0.25                            # a normalised count, not 0/1
        torch.save((frames, torch.tensor(0)), tmp_path / split / "0.pt")
    _, test, _ = build_datasets("cifar10_dvs", root=tmp_path, layout="pt", size=16, binary=True)
    x, _ = test[0]
    assert x.sum() == 1 and x[3, 1, 5, 6] == 1


def test_train_augmentation_within_bounds(tmp_path):
    make_release(tmp_path, n_per_class=2)
    train, _, _ = build_datasets("cifar10_dvs", root=tmp_path, classes=CLASSES,
                                 train_per_class=1, size=16, progress=False)
    plain = torch.from_numpy(np.load(train.items[0][0]))
    torch.manual_seed(0)
    for _ in range(10):
        x, _ = train[0]
        assert any(torch.equal(x, torch.roll(plain.flip(-1) if f else plain, (dh, dw), (-2, -1)))
                   for f in (False, True) for dh in range(-5, 6) for dw in range(-5, 6))


def test_missing_release_message(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        build_datasets("cifar10_dvs", root=tmp_path)
    msg = str(err.value)
    assert str(tmp_path / "airplane" / "cifar10_airplane_0.aedat") in msg
    assert "truck" in msg and "figshare" in msg
    make_release(tmp_path, n_per_class=2)
    with pytest.raises(ValueError, match="train_per_class"):
        build_datasets("cifar10_dvs", root=tmp_path, classes=CLASSES, progress=False)
    with pytest.raises(ValueError, match="'classes'"):
        build_datasets("cifar10_dvs", root=tmp_path, classes=["plane"], progress=False)


def test_pre_framed_pt_layout(tmp_path):
    for split, n in (("train", 3), ("test", 2)):
        (tmp_path / split).mkdir()
        for i in range(n):
            frames = torch.rand(2, 32, 32, 10)                 # time-last, as distributed
            torch.save((frames, torch.tensor(i % 2)), tmp_path / split / f"{i}.pt")
    train, test, info = build_datasets("cifar10_dvs", root=tmp_path, layout="pt", size=16,
                                       augment=False)
    assert len(train) == 3 and len(test) == 2 and info.timesteps == 10
    x, y = train[1]
    assert x.shape == (10, 2, 16, 16) and y == 1
    src, _ = torch.load(tmp_path / "train" / "1.pt")
    assert torch.allclose(x[3], torch.nn.functional.interpolate(
        src.permute(3, 0, 1, 2), size=(16, 16), mode="area")[3])
    with pytest.raises(ValueError, match="timesteps"):
        build_datasets("cifar10_dvs", root=tmp_path, layout="pt", timesteps=4)
    with pytest.raises(FileNotFoundError, match="layout='pt'"):
        build_datasets("cifar10_dvs", root=tmp_path / "nothing", layout="pt")
