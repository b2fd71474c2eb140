"""Memory of a backward pass: its large temporaries recycled within it (``empty``), and
gradients handed to autograd in a form it can accumulate into in place (``reshaped``).

The memory mechanisms (docs/performance.md, "Training memory") rebuild in backward what an
ANN would have kept: a spike layer unpacks its input spikes for the weight gradient
(``inflor.bitpack``), a norm → neuron pair replays the neuron's input where the neuron's kernel
does not compute it (``inflor.pairing``). Each
rebuilt tensor is full-size and lives for one layer's backward. On the CPU, glibc serves an
allocation above its mmap threshold (which it raises up to 32 MiB) with a fresh mapping: every
such tensor pays a page fault per 4 KiB page on first write and an ``munmap`` when freed — on
the benchmark's CPU a pass into a fresh 32 MiB tensor took 4.4× the same pass into a reused one
(16.6 against 3.8 ms, ``benchmarks/fresh_memory.py``).

``empty(shape, dtype, device)`` is ``torch.empty`` except inside a backward pass on the CPU for
requests of at least ``MIN_BYTES``: there it returns a view of the smallest buffer of this
thread's pool that no tensor uses any more (its storage's use count: only the pool holds it) and
is at least as large as the request but at most twice; or it hands the unused buffers back to
the allocator and allocates one of the request's size for the pool (at most ``MAX_BUFFERS``
buffers; beyond that, a plain ``torch.empty``). Since a backward pass moves through its layers'
sizes in turn, a buffer kept for a size no longer asked for would only add to its peak. Each
backward pass (a nested one too) has its own pool, dropped when the pass ends (a callback queued
on the autograd engine, which also drops it when the pass fails), so nothing is held between
steps and the forward's memory is unchanged. "Uses no more" is read from the storage's use
count, checked once against a view (``_idle_count``); where that check fails, or torch lacks
the private functions it reads, ``empty`` is always ``torch.empty``.
Whoever takes a scratch tensor owns it until they drop every reference to it and its views.

``reshaped(t, shape)``: when two gradients reach one tensor (a residual block's input feeds its
first conv and its shortcut), autograd adds the second into the first in place only if the
first holds the only reference to its memory; else it allocates their sum — a fresh
full-size tensor, with the page faults above. A backward that returns ``t.view(shape)`` hands
over a view that keeps its base ``t`` (and so a second reference to the memory) alive;
``reshaped`` returns the same values in the same memory without that reference.
"""
from __future__ import annotations

import math
import threading
import weakref

import torch

__all__ = ["empty", "reshaped", "MIN_BYTES", "MAX_BUFFERS"]

#: smaller requests go to the allocator as usual (glibc's heap serves them without new mappings)
MIN_BYTES = 1 << 20
#: buffers one pool holds at most (a layer's backward needs two of one size at once)
MAX_BUFFERS = 4

_use_count = getattr(torch._C, "_storage_Use_Count", None)
_task_id = getattr(torch._C, "_current_graph_task_id", None)
_LOCAL = threading.local()


class _Pool:
    """One thread's buffers (uint8, one storage each) during one backward pass. The thread's
    table of pools holds it weakly; the callback queued on that backward pass holds it, so it
    goes when the pass ends — or when the pass fails and the engine drops its callbacks."""

    def __init__(self):
        self.buffers: list[torch.Tensor] = []

    def release(self) -> None:
        self.buffers = []


def _count(buf: torch.Tensor) -> int:
    return _use_count(buf.untyped_storage()._cdata)


#: what ``_count`` reads for a buffer that only the pool's tensor holds (torch versions differ in
#: how the storage's Python object counts); None until measured, 0 where the measurement fails
_IDLE: int | None = None


def _idle_count() -> int:
    """``_count`` of a buffer that only its own tensor holds, checked once: a view must raise it
    by one and dropping the view must restore it; if not, pooling stays off (0)."""
    global _IDLE
    if _IDLE is None:
        try:
            buf = torch.empty(64, dtype=torch.uint8)
            idle = _count(buf)
            view = buf[:8].view(torch.float32)
            held = _count(buf)
            del view
            _IDLE = idle if held == idle + 1 and _count(buf) == idle else 0
        except Exception:  # a private API changed: no pooling
            _IDLE = 0
    return _IDLE


def _unused(buf: torch.Tensor) -> bool:
    """Whether ``buf`` (held by the pool) is the only tensor using its storage. (A Python storage
    object of a scratch tensor, kept without any tensor of it, is not seen: keep the tensor.)"""
    return _count(buf) == _IDLE


def _pool() -> _Pool | None:
    """This thread's pool for the backward pass under way (None outside one, or where the use
    counts cannot be read)."""
    if _use_count is None or _task_id is None or torch.compiler.is_compiling() or not _idle_count():
        return None
    task = _task_id()
    if task == -1:
        return None
    pools = getattr(_LOCAL, "pools", None)
    if pools is None:
        pools = _LOCAL.pools = {}
    ref = pools.get(task)
    pool = None if ref is None else ref()
    if pool is None:
        pool = _Pool()
        for t in [t for t, r in pools.items() if r() is None]:
            del pools[t]
        pools[task] = weakref.ref(pool)
        torch.autograd.Variable._execution_engine.queue_callback(pool.release)
    return pool


def empty(shape, dtype: torch.dtype, device: torch.device | str) -> torch.Tensor:
    """An uninitialised contiguous tensor of ``shape``, from the backward pass's scratch where
    that applies (see the module), else from ``torch.empty``."""
    device = torch.device(device)
    nbytes = math.prod(shape) * dtype.itemsize
    pool = _pool() if device.type == "cpu" and nbytes >= MIN_BYTES else None
    if pool is None:
        return torch.empty(shape, dtype=dtype, device=device)
    free = [b for b in pool.buffers if nbytes <= b.numel() <= 2 * nbytes and _unused(b)]
    buf = min(free, key=lambda b: b.numel()) if free else None
    if buf is None:
        # unused buffers that cannot serve this size go back to the allocator (see the module)
        pool.buffers = [b for b in pool.buffers if not _unused(b)]
        if len(pool.buffers) >= MAX_BUFFERS:     # every buffer in use: this request is not pooled
            return torch.empty(shape, dtype=dtype, device=device)
        buf = torch.empty(nbytes, dtype=torch.uint8, device=device)
        pool.buffers.append(buf)
    return buf[:nbytes].view(dtype).view(shape)


def reshaped(t: torch.Tensor, shape) -> torch.Tensor:
    """``t.view(shape)`` without the view's reference to ``t``: the same memory, held by nothing
    else once ``t`` is dropped, so that autograd may accumulate another gradient into it in place
    (see the module). Where grad mode is on (a backward with ``create_graph``) the view is kept
    on the graph instead."""
    out = t.view(shape)
    return out if torch.is_grad_enabled() else out.detach()
