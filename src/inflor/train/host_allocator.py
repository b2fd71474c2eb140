"""The host (CPU) memory allocator setting of a training run: ``train.host_allocator``.

PyTorch's CPU tensors come from the C library's ``malloc``. glibc serves a block above its *mmap
threshold* (dynamic, between 128 KiB and 32 MiB on 64-bit Linux) from a fresh ``mmap`` and
unmaps it on ``free``, and it hands the top of its heap back to the system once more than a
*trim threshold* is free there. A training step allocates and frees the same large activations
and gradients every step, so under these defaults each of them is a new mapping whose pages the
kernel zero-fills on first touch: on the project's 2-core CPU a quarter or more of a CIFAR-size
step's CPU time was spent in page faults, and how much varied by ±10-20 % between processes of
the same code (docs/design.md §9.1; docs/performance.md, "Why one row's step time moves").

``keep_freed_memory`` raises both thresholds with ``mallopt`` (``M_MMAP_THRESHOLD`` = 1 GiB, or
32 MiB where glibc is older than 2.35 and refuses more; ``M_TRIM_THRESHOLD`` = 2 GiB - 1):
blocks up to that size come from the heap and go back to it when freed, so the next step reuses
pages that are already resident. That is what the jemalloc or tcmalloc of PyTorch's CPU
performance guide buy, without preloading a library. The price is resident memory: the process
keeps its high-water mark, and glibc's free blocks, instead of shrinking between steps.

Settings (``HOST_ALLOCATORS``): ``heap`` (the above), ``system`` (the C library's defaults,
untouched) and ``auto`` (``heap`` when the run trains on the CPU, ``system`` otherwise, where
host memory only feeds the data loader). The setting is process-wide and lasts for the rest of
the process (glibc cannot return to its dynamic threshold); forked data-loader workers inherit
it. Where the C library is not glibc (macOS, Windows, musl) ``heap`` does nothing (and says so
when it was asked for by name rather than by ``auto``).
"""
from __future__ import annotations

import ctypes
import os
import sys
from typing import Callable, get_args

import torch

from inflor.config.models import HostAllocator
from inflor.logs import warning

__all__ = ["HOST_ALLOCATORS", "MMAP_THRESHOLD", "OLD_GLIBC_MMAP_THRESHOLD", "TRIM_THRESHOLD", "keep_freed_memory",
           "resolve_host_allocator", "use_host_allocator"]

#: the values of ``train.host_allocator`` (as the config schema declares them)
HOST_ALLOCATORS: tuple[str, ...] = get_args(get_args(HostAllocator)[0])

#: ``mallopt`` parameters (glibc's <malloc.h>)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3

#: blocks up to this size come from glibc's heap under ``heap`` (a larger one, rare in training,
#: is still its own mapping, so it does not stay resident after it is freed)
MMAP_THRESHOLD = 1 << 30
#: the largest mmap threshold glibc before 2.35 accepts (half its per-thread heap size, 32 MiB on
#: 64-bit): ``heap`` falls back to it there
OLD_GLIBC_MMAP_THRESHOLD = 4 * 1024 * 1024 * ctypes.sizeof(ctypes.c_long)
#: free memory at the top of the heap is handed back to the system above this (``mallopt`` takes an int)
TRIM_THRESHOLD = (1 << 31) - 1

#: the mmap threshold ``keep_freed_memory`` set in this process (None: not called, or refused):
#: glibc cannot go back to its dynamic threshold, so a later ``system`` run still has it
_applied: int | None = None


def _glibc():
    """glibc, loaded through ctypes, or None where the C library is another (or not loadable)."""
    if not sys.platform.startswith("linux") or not os.confstr_names.get("CS_GNU_LIBC_VERSION"):
        return None
    try:
        if not os.confstr("CS_GNU_LIBC_VERSION"):
            return None
        return ctypes.CDLL("libc.so.6")
    except (OSError, ValueError):
        return None


def keep_freed_memory() -> int | None:
    """Make glibc keep freed blocks in its heap for reuse: ``mallopt(M_MMAP_THRESHOLD,
    MMAP_THRESHOLD)`` (``OLD_GLIBC_MMAP_THRESHOLD`` where glibc < 2.35 refuses that), then
    ``mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)`` (which glibc always accepts). Returns the mmap
    threshold now in effect, in bytes, or None where nothing was changed (the C library is not
    glibc, or it refused both thresholds). Process-wide and for the rest of the process."""
    global _applied
    libc = _glibc()
    if libc is None:
        return None
    for threshold in (MMAP_THRESHOLD, OLD_GLIBC_MMAP_THRESHOLD):
        if libc.mallopt(ctypes.c_int(_M_MMAP_THRESHOLD), ctypes.c_int(threshold)) == 1:
            break
    else:
        return None
    _applied = threshold          # from here on glibc's dynamic threshold is gone for this process
    libc.mallopt(ctypes.c_int(_M_TRIM_THRESHOLD), ctypes.c_int(TRIM_THRESHOLD))
    return threshold


def resolve_host_allocator(setting: str, device: torch.device | str) -> str:
    """``heap`` or ``system``: what ``setting`` (one of ``HOST_ALLOCATORS``) means for a run on
    ``device`` (``auto`` is ``heap`` on the CPU, ``system`` elsewhere)."""
    if setting not in HOST_ALLOCATORS:
        raise ValueError(f"invalid host allocator {setting!r}; valid choices: {', '.join(HOST_ALLOCATORS)}")
    if setting == "auto":
        return "heap" if torch.device(device).type == "cpu" else "system"
    return setting


def use_host_allocator(setting: str, device: torch.device | str,
                       warn: Callable[[str], None] = warning) -> str:
    """Apply ``train.host_allocator`` for a run on ``device``; returns what is in effect, ``heap``
    or ``system``. ``warn`` (default: the ``inflor`` logger's warning) is told when that is not
    what was asked: ``heap`` set explicitly where glibc is missing or refuses (``auto`` falls back
    to ``system`` silently), or ``system`` asked for after an earlier ``heap`` in this process."""
    chosen = resolve_host_allocator(setting, device)
    if chosen == "system":
        if _applied is not None:
            warn(f"train.host_allocator={setting}: an earlier run in this process set heap, and glibc cannot "
                 "undo it; this run keeps it")
            return "heap"
        return "system"
    if keep_freed_memory() is None:
        if setting == "heap":
            warn("train.host_allocator=heap: glibc's mallopt is missing here or refused the thresholds; "
                 "the C library's defaults stay")
        return "system"
    return "heap"
