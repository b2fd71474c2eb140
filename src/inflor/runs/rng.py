"""The state of every random generator (torch CPU and CUDA, numpy, python): saved into a
checkpoint as plain values (``torch.load(weights_only=True)`` reads them), restored on resume,
and preserved around work that must not disturb training (snapshots)."""
from __future__ import annotations

import contextlib
import random

import numpy as np
import torch

__all__ = ["get_rng_state", "set_rng_state", "preserved_rng"]


def get_rng_state() -> dict:
    """``{"torch", "numpy", "python", "cuda"}``: the generators' states as tensors and plain values."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(gauss)},
        "python": {"version": version, "internal": list(internal), "gauss_next": gauss_next},
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state: dict) -> None:
    """Restore what ``get_rng_state`` returned (CUDA only on as many devices as were saved)."""
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["internal"]), p["gauss_next"]))
    if state.get("cuda") and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


@contextlib.contextmanager
def preserved_rng():
    """Leave the torch (CPU and CUDA), numpy and python generators as the block found them."""
    state = get_rng_state()
    try:
        yield
    finally:
        set_rng_state(state)
