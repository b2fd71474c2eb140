"""Tiny CIFAR-10/100 folders in the real "python version" format, as the release unpacks.

The official batch files were written by Python 2's ``cPickle`` (protocol 2): every key, label
name and file name is a Python 2 ``str`` (opcodes BINSTRING / SHORT_BINSTRING, which Python 3
reads back as ``str`` with ``encoding="latin1"``), and ``data`` is a numpy uint8 array
``[N, 3072]`` (rows: 1024 red, 1024 green, 1024 blue values, each row-major over 32 × 32) pickled
through ``numpy.core.multiarray._reconstruct``. :func:`dump_py2` writes that format.
"""
import io
import pickle
import struct

import numpy as np

C10_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
             "truck"]


class _Py2Pickler(pickle._Pickler):
    """Python 2's pickler at protocol 2: ``str`` and ``bytes`` are both a Python 2 ``str``;
    numpy's globals are named as numpy 1 named them."""
    dispatch = dict(pickle._Pickler.dispatch)

    def save_py2_str(self, obj):
        data = obj.encode("latin1") if isinstance(obj, str) else obj
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)
        self.memoize(obj)

    dispatch[str] = save_py2_str
    dispatch[bytes] = save_py2_str

    def save_global(self, obj, name=None):
        module = getattr(obj, "__module__", "")
        name = name or obj.__qualname__
        if module.startswith("numpy._core"):
            module = "numpy.core" + module[len("numpy._core"):]
        self.write(pickle.GLOBAL + f"{module}\n{name}\n".encode("ascii"))
        self.memoize(obj)


def dump_py2(path, obj):
    """Write ``obj`` to ``path`` as Python 2's cPickle.dump(obj, f, 2) would."""
    buf = io.BytesIO()
    _Py2Pickler(buf, protocol=2).dump(obj)
    path.write_bytes(buf.getvalue())


def write_cifar10(root, per_batch=2):
    """root/cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}; labels (i + j) % 10.
    Image 0 of test_batch is black but for R=255 at (0, 0), G=51 at (1, 1), B=102 at (31, 31)."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i, name in enumerate([f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]):
        data = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        if name == "test_batch":
            data[0] = 0
            data[0, 0] = 255              # R at (0, 0)
            data[0, 1024 + 33] = 51       # G at (1, 1)
            data[0, 2048 + 32 * 31 + 31] = 102  # B at (31, 31)
        labels = [(i + j) % 10 for j in range(per_batch)]
        dump_py2(folder / name, {"batch_label": f"{name} of 6", "labels": labels,
                                 "data": data, "filenames": ["x.png"] * per_batch})
    dump_py2(folder / "batches.meta", {"label_names": C10_NAMES, "num_cases_per_batch": per_batch,
                                       "num_vis": 3072})
    return root


def write_cifar100(root, n_train=3, n_test=2):
    """root/cifar-100-python/{train, test, meta}; fine labels 99, 98, ... in each split."""
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    for name, n in (("train", n_train), ("test", n_test)):
        dump_py2(folder / name, {"filenames": ["x.png"] * n, "batch_label": name,
                                 "fine_labels": [99 - k for k in range(n)],
                                 "coarse_labels": [k for k in range(n)],
                                 "data": rng.integers(0, 256, (n, 3072), dtype=np.uint8)})
    dump_py2(folder / "meta", {"fine_label_names": [f"class{k}" for k in range(100)],
                               "coarse_label_names": [f"super{k}" for k in range(20)]})
    return root
