"""Spikes stored as bits: 8 binary values per byte, lossless for tensors of exact 0s and 1s.

``pack_spikes(x)`` flattens ``x`` (C order) into Q = ⌈numel/8⌉ bytes, seen as 8 planes of Q
elements (zero-padded at the end): element ``i·Q + k`` is bit ``i`` of byte ``k``::

    packed[k] = Σ_{i=0..7} 1[x[i·Q + k] ≠ 0] · 2^i          (uint8, Q bytes)

``unpack_spikes(packed, shape, dtype)`` inverts it: ``x[i·Q + k] = (packed[k] >> i) & 1``, for
any Q ≥ ⌈numel/8⌉ (it reads Q from the bytes: ⌈numel/Q⌉ planes). For a
binary float32 ``x`` that is 1/32 of its bytes (1/64 for float64, 1/16 for float16). Planes
rather than runs of 8 neighbours: byte k reads element k of each plane, so both directions are
plain elementwise loops over k, vectorised along contiguous memory; with 8 neighbours per byte
each byte gathered a stride-8 group, and packing took ~4× as long (a 32 MiB float32 tensor,
cache-resident: 3.2–4.6 ms against 0.8 ms on the benchmark's CPU). (For a [T = 8, ...] tensor a
plane is one time step: byte k holds element k's spikes at every step.)

``pack_spikes`` refuses input that is not binary (``ValueError``): the check is a flag computed
in the packing pass (reading it is one host synchronisation on a GPU). It is a ``torch.library``
operator (opaque to ``torch.compile``, with a fake implementation), so the check also runs
inside compiled graphs; ``unpack_spikes`` is plain tensor code that compiles into the backward.
Spikes need not be read again to be packed: for spikes [T, N] with T a multiple of 8 each
plane is T/8 whole steps of one element, so the fused neuron's forward kernel writes these very
bytes beside its float spikes and hands them over with ``remember_packed``; ``pack_kept_spikes``
returns them to the spike layer that keeps those spikes. (Only then: with bytes of another Q a
layer would keep different sizes depending on whether it found them, and activation
checkpointing compares a recomputed forward's saved shapes with the first one's.)
Both directions are one compiled loop each (``inflor.fused.compilation.compiled_or_eager``):
packing reads the floats once and writes the bytes and the binary check's flag in the same pass;
unpacking reads the bytes and writes the floats (``benchmarks/run.py --only memory`` measures
the step).
"""
from __future__ import annotations

import weakref

import torch

from . import scratch
from .fused.compilation import compiled_or_eager

Tensor = torch.Tensor


def packed_numel(numel: int) -> int:
    """Bytes that ``numel`` spikes take packed: ⌈numel / 8⌉."""
    return (numel + 7) // 8


#: fewer elements than this are packed and unpacked by the uncompiled code (a compiled call's
#: fixed cost is larger than the work; and the first one would pay a compile)
COMPILE_MIN_NUMEL = 1 << 12


def _run(fn, name: str, numel: int, *args):
    return compiled_or_eager(fn, name, *args) if numel >= COMPILE_MIN_NUMEL else fn(*args)


def _pack_planes(planes: Tensor) -> tuple[Tensor, Tensor]:
    """``planes`` [8, Q] -> (bytes [Q] uint8 with bit i = 1[planes[i, k] ≠ 0], whether any
    element is neither 0 nor 1). Plain tensor code, compiled into one loop over k by
    ``compiled_or_eager``; the byte is summed in float32 (exact: at most 255) because 8-bit
    vector shifts have no CPU instruction and inductor emulates them lane by lane."""
    v = bad = None
    for i in range(8):
        nonzero = planes[i] != 0
        b = nonzero.to(torch.float32) * float(1 << i)
        v = b if v is None else v + b
        odd = nonzero & (planes[i] != 1)
        bad = odd if bad is None else bad | odd
    return v.to(torch.uint8), bad.any()


def _unpack_planes(packed: Tensor, out: Tensor, planes: int) -> None:
    """bytes [Q] uint8 -> ``out`` [planes, Q] (written) with element [i, k] = (packed[k] >> i) & 1."""
    shifts = torch.arange(planes, dtype=torch.uint8, device=packed.device).view(planes, 1)
    out.copy_((packed.unsqueeze(0) >> shifts) & 1)      # copy_ converts: no float temporary


@torch.library.custom_op("inflor::pack_spikes", mutates_args=())
def pack_spikes(x: Tensor) -> Tensor:
    """``x`` of exact 0s and 1s (any float dtype, any shape) -> uint8 ``[⌈numel/8⌉]`` (see module).
    Anything else raises ``ValueError`` naming the first offending value."""
    flat = x.detach().contiguous().view(-1)
    n = flat.numel()
    if n % 8:      # the last byte's missing elements are zeros
        flat = torch.cat([flat, flat.new_zeros(8 - n % 8)])
    if flat.numel() == 0:
        return flat.new_empty((0,), dtype=torch.uint8)
    packed, bad = _run(_pack_planes, "pack_spikes", flat.numel(), flat.view(8, -1))
    if bool(bad):
        value = flat[(flat != 0) & (flat != 1)][0].item()
        raise ValueError(f"spike layer expects binary input (exact 0s and 1s), got the value {value!r} "
                         f"in a tensor of shape {tuple(x.shape)}; use nn.Conv2d / nn.Linear for "
                         "real-valued input (e.g. after pooling or dropout)")
    return packed


@pack_spikes.register_fake
def _pack_spikes_fake(x: Tensor) -> Tensor:
    return x.new_empty((packed_numel(x.numel()),), dtype=torch.uint8)


#: the spikes packed last (by ``pack_kept_spikes``, or handed over by their maker with
#: ``remember_packed``), newest first: (weak reference to the tensor's root — the tensor a view
#: was taken of, or itself —, the memory it read, the bytes)
_RECENT: list = []
#: how many of them are remembered: a residual block keeps its input for its first conv (and a
#: 1×1 shortcut conv), its inner spikes for its second conv, and its input again for an identity
#: shortcut, while each of its neurons hands over its own spikes' bytes in between (three
#: neurons in a bottleneck); entries whose activation has died are dropped first
RECENT = 8


def _memory(x: Tensor) -> tuple:
    """Which elements, in which order, ``pack_spikes(x)`` reads: for a contiguous tensor, its
    first element's address, count, dtype, and the version counter (shared with its views)."""
    return (x.data_ptr(), x.numel(), x.dtype, x.device, x._version)


def pack_kept_spikes(x: Tensor) -> Tensor:
    """``pack_spikes(x)``, or the bytes of one of the last ``RECENT`` calls if that packed the same
    memory of the same live activation (``x`` or a contiguous view of it, e.g. a ``TimeFold``
    reshape), unchanged since (same version counter): a residual block's input spikes are kept
    by its first conv and by its shortcut (an identity's spikes, or a 1×1 spike conv), and are
    packed once, into one storage kept by both. Only activations (tensors with a ``grad_fn``)
    are remembered — writes through ``.data`` or NumPy, which a reused input buffer might get,
    skip the version counter. Holds weak references only (and the small packed bytes)."""
    if (torch.compiler.is_compiling() or x.grad_fn is None or not x.is_contiguous() or x.is_inference()
            or x.device.type == "meta"):
        return pack_spikes(x)
    root = x if x._base is None else x._base
    key = _memory(x)
    for ref, memory, packed in _RECENT:
        if ref() is root and memory == key:
            return packed
    packed = pack_spikes(x)
    _remember(x, packed)
    return packed


def remember_packed(x: Tensor, packed: Tensor) -> None:
    """Hand ``pack_kept_spikes`` the bytes ``packed`` of the spikes ``x``, computed by whoever
    made them (the fused neuron's forward kernel writes both in one pass): a spike layer that
    keeps ``x`` (or a contiguous view of it) then takes these instead of reading x again.
    ``packed`` must equal ``pack_spikes(x)`` (tested for the kernels that call this)."""
    if x.is_contiguous() and not x.is_inference() and x.device.type != "meta":
        _remember(x, packed)


def _remember(x: Tensor, packed: Tensor) -> None:
    root = x if x._base is None else x._base
    _RECENT[:] = [(weakref.ref(root), _memory(x), packed)] + [e for e in _RECENT if e[0]() is not None][:RECENT - 1]


def unpack_spikes(packed: Tensor, shape, dtype: torch.dtype) -> Tensor:
    """The tensor of ``shape`` and ``dtype`` held in ``packed`` in this module's layout (written by
    ``pack_spikes`` or a fused neuron's kernel: Q = ⌈numel/8⌉; a larger Q reads as ⌈numel/Q⌉
    planes); in a backward pass, in ``inflor.scratch`` memory."""
    numel = 1
    for s in shape:
        numel *= s
    Q = packed.numel()
    n_planes = -(-numel // Q) if Q else 0
    if Q < packed_numel(numel):
        raise ValueError(f"{Q} bytes cannot hold {numel} spikes (8 per byte at most)")
    planes = scratch.empty((n_planes, Q), dtype, packed.device)
    _run(_unpack_planes, "unpack_spikes", numel, packed.contiguous(), planes, n_planes)
    return planes.view(-1)[:numel].view(shape)
