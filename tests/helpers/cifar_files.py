"""Tiny CIFAR-10/100 folders written in the real python pickle format (as the release unpacks)."""
import pickle

import numpy as np

C10_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
             "truck"]


def _dump(path, obj):
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)


def write_cifar10(root, per_batch=2):
    """cifar-10-batches-py with bytes keys, as Python 2 pickles load under Python 3."""
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
        _dump(folder / name, {b"batch_label": name.encode(), b"labels": labels,
                              b"data": data, b"filenames": [b"x.png"] * per_batch})
    _dump(folder / "batches.meta", {b"label_names": [n.encode() for n in C10_NAMES],
                                    b"num_cases_per_batch": per_batch, b"num_vis": 3072})
    return root


def write_cifar100(root, n_train=3, n_test=2):
    """cifar-100-python with str keys (the other way a pickle can come back)."""
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    for name, n in (("train", n_train), ("test", n_test)):
        _dump(folder / name, {"filenames": ["x.png"] * n, "batch_label": name,
                              "fine_labels": [99 - k for k in range(n)],
                              "coarse_labels": [k for k in range(n)],
                              "data": rng.integers(0, 256, (n, 3072), dtype=np.uint8)})
    _dump(folder / "meta", {"fine_label_names": [f"class{k}" for k in range(100)],
                            "coarse_label_names": [f"super{k}" for k in range(20)]})
    return root
