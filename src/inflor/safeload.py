"""Reading ``.pt`` files safely: ``torch.load(weights_only=True)`` and one clear error.

Only tensors and plain Python values (numbers, strings, lists, tuples, dicts) are ever read. A
file that needs anything more (a pickled class or function, which full unpickling would import
and could run) is refused, as is a truncated or foreign file; either way the error names the
file and says what was expected. Checkpoints (``inflor.train.checkpoint``) and the pre-framed
CIFAR10-DVS files (``inflor.data.cifar10_dvs``) are read through here.
"""
from __future__ import annotations

import os
import pickle
import re
import warnings
import zipfile
from typing import Any

import torch

from .errors import InflorError

__all__ = ["load_weights_only"]

#: what torch.load raises for a file that is empty, truncated, corrupted or not a torch file
_READ_ERRORS = (EOFError, RuntimeError, zipfile.BadZipFile, ValueError, OSError, AttributeError, KeyError,
                IndexError, TypeError, UnicodeDecodeError)
#: torch's words for a pickled class or function that weights_only refuses to import
_GLOBAL = re.compile(r"(?:Unsupported global: |unsupported )GLOBAL ([\w.]+)")
#: the useful part of torch's weights_only message for a file that is no pickle it can read
_DETAIL = re.compile(r"(Unsupported operand \d+|WeightsUnpickler error: \S[^\n]*)")


def _detail(e: BaseException) -> str:
    """``Type: first sentence`` of an exception (torch's messages go on for lines)."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(e))
    found = _DETAIL.search(text)
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    first = found.group(1) if found else (lines[0].split(". ")[0].rstrip(".")[:200] if lines else "")
    return f"{type(e).__name__}: {first}" if first else type(e).__name__


def load_weights_only(path: str | os.PathLike, what: str, expected: str, error: type[InflorError],
                      map_location: Any = "cpu") -> Any:
    """``torch.load(path, weights_only=True)``; a refused or unreadable file raises ``error``
    naming ``what`` (e.g. "checkpoint") and ``path``, with ``expected`` (what the file should
    hold) appended."""
    try:
        with warnings.catch_warnings():   # e.g. "Detected pickle protocol 4": noise next to the error
            warnings.simplefilter("ignore")
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        found = _GLOBAL.search(str(e))
        if found is None:   # not a pickle torch can read at all (garbage, an unsupported opcode)
            raise error(f"cannot read {what} {path}: the file is corrupted or not a torch file "
                        f"({_detail(e)}); {expected}") from None
        raise error(f"refused to load {what} {path}: it holds a pickled {found.group(1)}, not only tensors and "
                    f"plain values; inflor reads .pt files with torch.load(weights_only=True) and never unpickles "
                    f"objects, which could run code; {expected}") from None
    except _READ_ERRORS as e:
        raise error(f"cannot read {what} {path}: the file is truncated, corrupted or not a torch file "
                    f"({_detail(e)}); {expected}") from None
