"""Checkpoints: atomic writes, strict loads, clear errors.

A checkpoint is a ``torch.save``'d dict (loadable with ``weights_only=True``: only tensors and
plain Python values) holding

    format          "inflor-checkpoint-v1"
    model_name      registry name, model_options: the full create_model kwargs (num_classes too)
    model_state     state_dict of the bare model (never the DDP wrapper)
    optimizer, scheduler, scaler    their state_dicts (scaler None without AMP grad scaling)
    epoch           number of finished epochs (resume starts at this epoch index)
    best_acc, best_epoch
    config          the resolved run config
    rng             torch / numpy / python / cuda generator states
    metrics         the metrics.csv rows so far
    versions        inflor / torch / python

Writing goes to a temporary file in the same folder followed by ``os.replace``, so a kill or a
failed write while saving leaves the previous file intact. Loading uses
``torch.load(weights_only=True)`` only (``inflor.safeload``): a file that holds pickled objects
is refused, never unpickled; unreadable files are named in the error, and a model is only ever
loaded with ``strict=True``.
"""
from __future__ import annotations

import io
import os
import platform
from pathlib import Path
from typing import Any

import torch

from ..atomic import atomic_write
from .. import __version__
from ..errors import CheckpointError  # defined with the other user errors; re-exported here
from ..models import create_model
from ..safeload import load_weights_only
from .rng import get_rng_state, set_rng_state  # noqa: F401  (re-exported: the checkpoint's "rng" entry)

__all__ = ["FORMAT", "CheckpointError", "save_checkpoint", "checkpoint_bytes", "load_checkpoint", "build_model_from_checkpoint",
           "load_model_state", "get_rng_state", "set_rng_state", "versions"]

FORMAT = "inflor-checkpoint-v1"
REQUIRED = ("format", "model_name", "model_options", "model_state", "epoch", "config")


def versions() -> dict:
    return {"inflor": str(__version__), "torch": str(torch.__version__),
            "python": platform.python_version()}


# --------------------------------------------------------------------------- save / load
def save_checkpoint(state: dict | bytes, path: str | os.PathLike) -> Path:
    """``torch.save`` (or, for ``bytes``, those bytes: see ``checkpoint_bytes``) to a temporary file
    next to ``path``, fsync, then ``os.replace``. A failed write (a full disk, a lost mount)
    raises ``CheckpointError``; the file that was at ``path`` is left as it was."""
    write = (lambda f: f.write(state)) if isinstance(state, bytes) else (lambda f: torch.save(state, f))
    try:
        return atomic_write(path, write)
    except OSError as e:
        raise CheckpointError(f"cannot write checkpoint {path} ({e.strerror or e}); the previous "
                              f"{Path(path).name}, if any, is unchanged") from e


def checkpoint_bytes(state: dict) -> bytes:
    """``state`` serialised as ``save_checkpoint`` would write it (to write it later)."""
    buf = io.BytesIO()
    torch.save(state, buf)
    return buf.getvalue()


EXPECTED = f"expected a checkpoint written by inflor train (a dict with format {FORMAT!r})"


def load_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict:
    """Read an inflor checkpoint with ``torch.load(weights_only=True)``; a missing, corrupted,
    truncated or foreign file (a plain state_dict, another format version, pickled objects)
    raises ``CheckpointError`` naming the file and what was expected."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist" if not path.is_dir() else
                              f"checkpoint {path} is a directory; {EXPECTED}")
    ckpt = load_weights_only(path, "checkpoint", EXPECTED, CheckpointError, map_location)
    if not isinstance(ckpt, dict):
        raise CheckpointError(f"{path} holds a {type(ckpt).__name__}, not an inflor checkpoint; {EXPECTED}")
    fmt = ckpt.get("format")
    if fmt is None and ckpt and all(isinstance(v, torch.Tensor) for v in ckpt.values()):
        raise CheckpointError(f"{path} is a plain state_dict ({len(ckpt)} tensors such as {next(iter(ckpt))!r}), "
                              f"not an inflor checkpoint; {EXPECTED}")
    if isinstance(fmt, str) and fmt.startswith("inflor-checkpoint-") and fmt != FORMAT:
        raise CheckpointError(f"{path} is a checkpoint of format {fmt!r}, written by another inflor version; "
                              f"this inflor reads {FORMAT!r}")
    if fmt != FORMAT:
        keys = ", ".join(map(str, list(ckpt)[:5])) or "none"
        raise CheckpointError(f"{path} is not an inflor checkpoint (format {fmt!r}, keys {keys}); {EXPECTED}")
    missing = [k for k in REQUIRED if k not in ckpt]
    if missing:
        raise CheckpointError(f"checkpoint {path} lacks the entries {missing}; it is incomplete")
    ckpt["_path"] = str(path)
    return ckpt


def load_model_state(model: torch.nn.Module, ckpt: dict, where: str = "") -> None:
    """Strictly load ``ckpt['model_state']`` into ``model``; a checkpoint of another model (name,
    options or parameter shapes) raises ``CheckpointError`` and leaves ``model`` untouched."""
    where = where or ckpt.get("_path", "checkpoint")
    name = getattr(model, "model_name", None)
    if name is not None and name != ckpt["model_name"]:
        raise CheckpointError(f"{where} holds a {ckpt['model_name']!r} model, not {name!r}")
    own = model.state_dict()
    state = ckpt["model_state"]
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(v.shape)}" for k, v in own.items()
              if k in state and hasattr(state[k], "shape") and tuple(state[k].shape) != tuple(v.shape)]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} tensor(s) (e.g. {', '.join(missing[:3])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected tensor(s) (e.g. {', '.join(unexpected[:3])})")
        if shapes:
            parts.append(f"{len(shapes)} shape mismatch(es) (e.g. {'; '.join(shapes[:2])})")
        raise CheckpointError(f"{where} does not fit this {name or type(model).__name__} model: "
                              + "; ".join(parts) + ". It was saved from another model or options "
                              f"({ckpt['model_name']} with {_short(ckpt['model_options'])}).")
    model.load_state_dict(state, strict=True)


def _short(options: dict) -> str:
    keep = {k: v for k, v in options.items() if k in ("num_classes", "timesteps", "in_channels", "norm", "neuron")}
    return ", ".join(f"{k}={v}" for k, v in keep.items())


def build_model_from_checkpoint(path_or_dict, map_location: Any = "cpu") -> torch.nn.Module:
    """Rebuild the model a checkpoint was saved from (``create_model(model_name, **model_options)``),
    load its weights strictly and return it in eval mode."""
    ckpt = path_or_dict if isinstance(path_or_dict, dict) else load_checkpoint(path_or_dict, map_location)
    where = ckpt.get("_path", "checkpoint")
    try:
        model = create_model(ckpt["model_name"], **ckpt["model_options"])
    except (ValueError, TypeError) as e:
        raise CheckpointError(f"{where}: cannot rebuild model {ckpt['model_name']!r} with the saved "
                              f"options: {e}") from None
    load_model_state(model, ckpt, where)
    return model.eval()
