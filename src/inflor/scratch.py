"""Memory of a backward pass: its large temporaries recycled within it (``empty``), and
gradients handed to autograd in a form it can accumulate into in place (``reshaped``).

The memory mechanisms (docs/performance.md, "Training memory") rebuild in backward what an ANN would
have kept: a spike layer unpacks its input spikes for the weight gradient (``inflor.bitpack``),
a norm → neuron pair replays the neuron's input (``inflor.pairing``). Each rebuilt tensor is
full-size and lives for one layer's backward. On the CPU, glibc serves an allocation above its
mmap threshold (which it raises up to 32 MiB) with a fresh mapping: every such tensor pays a page
fault per 4 KiB page on first write and an ``munmap`` when freed — on the benchmark's CPU
~10 ms for 32 MiB, several times the pass that fills it (``benchmarks/fresh_memory.py``).

``empty(shape, dtype, device)`` is ``torch.empty`` except inside a backward pass on the CPU for
requests of at least ``MIN_BYTES``: there it returns a view of the smallest buffer of this
thread's pool that no tensor uses any more (its storage's use count: only the pool holds it) and
is at least as large as the request but at most twice; or it hands the unused buffers back to
the allocator and allocates one of the request's size for the pool (at most ``MAX_BUFFERS``
buffers; beyond that, a plain ``torch.empty``). Since a backward pass moves through its layers'
sizes in turn, a buffer kept for a size no longer asked for would only add to its peak. The pool is emptied when the backward pass ends (a callback queued on
the autograd engine), so nothing is held between steps and the forward's memory is unchanged.
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
    """One thread's buffers (uint8, one storage each) during one backward pass (``task``)."""

    def __init__(self, task: int):
        self.task = task
        self.buffers: list[torch.Tensor] = []

    def release(self) -> None:
        self.buffers = []
        self.task = None


def _unused(buf: torch.Tensor) -> bool:
    """Whether ``buf`` (held by the pool) is the only tensor using its storage: the count is the
    pool's tensor plus the temporary storage object made to read it."""
    return _use_count(buf.untyped_storage()._cdata) == 2


def _pool() -> _Pool | None:
    """This thread's pool for the backward pass under way (None outside one)."""
    if _use_count is None or _task_id is None or torch.compiler.is_compiling():
        return None
    task = _task_id()
    if task == -1:
        return None
    pool = getattr(_LOCAL, "pool", None)
    if pool is None or pool.task != task:
        pool = _LOCAL.pool = _Pool(task)
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
