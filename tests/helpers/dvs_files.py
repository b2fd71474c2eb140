"""Tiny CIFAR10-DVS releases written in the real jAER AEDAT 2.0 format."""
import numpy as np

HEADER = (b"#!AER-DAT2.0\r\n"
          b"# This is a raw AE data file - do not edit\r\n"
          b"# Data format is int32 address, int32 timestamp (8 bytes total), repeated for each event\r\n"
          b"# Timestamps tick is 1 us\r\n")


def write_aedat(path, addresses, timestamps=None, header=HEADER):
    addresses = np.asarray(addresses, dtype=np.uint32)
    if timestamps is None:
        timestamps = np.arange(len(addresses), dtype=np.uint32) * 10
    rec = np.empty(len(addresses), dtype=[("a", ">u4"), ("t", ">u4")])
    rec["a"], rec["t"] = addresses, timestamps
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(header + rec.tobytes())
    return path


def encode(x, y, p):
    """jAER DVS128 address of an event at jAER coordinates (x, y), polarity p (1 = ON)."""
    x, y, p = (np.asarray(v, dtype=np.uint32) for v in (x, y, p))
    return (y << 8) | ((127 - x) << 1) | (1 - p)


CLASSES = ["airplane", "automobile"]


def make_release(root, n_per_class=6, n_events=57):
    rng = np.random.default_rng(0)
    for c in CLASSES:
        for i in range(n_per_class):
            xs, ys = rng.integers(0, 128, n_events), rng.integers(0, 128, n_events)
            ps = rng.integers(0, 2, n_events)
            write_aedat(root / c / f"cifar10_{c}_{i}.aedat", encode(xs, ys, ps))
    return root
