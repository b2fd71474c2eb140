"""Spikes stored as bits: 8 binary values per byte, lossless for tensors of exact 0s and 1s.

``pack_spikes(x)`` flattens ``x`` (C order), pads it with zeros to a multiple of 8 and stores
element ``8k + i`` as bit ``i`` of byte ``k``::

    packed[k] = Σ_{i=0..7} 1[x[8k + i] ≠ 0] · 2^i          (uint8, ⌈numel/8⌉ bytes)

``unpack_spikes(packed, shape, dtype)`` inverts it: ``x[8k + i] = (packed[k] >> i) & 1``. For a
binary float32 ``x`` that is 1/32 of its bytes (1/64 for float64, 1/16 for float16).

``pack_spikes`` refuses input that is not binary (``ValueError``): the check costs two
comparisons and two counts (on a GPU also one host synchronisation). It is a ``torch.library``
operator (opaque to ``torch.compile``, with a fake implementation), so the check also runs
inside compiled graphs; ``unpack_spikes`` is plain tensor code that compiles into the backward.
Byte order: the packing reads 8 flags as one little-endian int64 (every platform PyTorch ships
for is little-endian).
"""
from __future__ import annotations

import torch

Tensor = torch.Tensor

#: bit i of a byte holds element 8k + i
_SHIFTS = tuple(range(8))
_GATHER = 0x0102040810204080


def packed_numel(numel: int) -> int:
    """Bytes that ``numel`` spikes take packed: ⌈numel / 8⌉."""
    return (numel + 7) // 8


@torch.library.custom_op("inflor::pack_spikes", mutates_args=())
def pack_spikes(x: Tensor) -> Tensor:
    """``x`` of exact 0s and 1s (any float dtype, any shape) -> uint8 ``[⌈numel/8⌉]`` (see module).

    Eight bytes of 0/1 flags, read as one little-endian int64 v, become one byte with
    ``(v · 0x0102040810204080) >> 56``: the multiplier moves byte i's bit (bit 8i) to bit 56 + i
    and every other product term lands below bit 56 or beyond bit 63, without carries into them.
    """
    flat = x.detach().reshape(-1)
    bits = flat != 0
    if int(torch.count_nonzero(bits)) != int(torch.count_nonzero(flat == 1)):
        bad = flat[torch.logical_and(bits, flat != 1)][0].item()
        raise ValueError(f"spike layer expects binary input (exact 0s and 1s), got the value {bad!r} "
                         f"in a tensor of shape {tuple(x.shape)}; use nn.Conv2d / nn.Linear for "
                         "real-valued input (e.g. after pooling or dropout)")
    pad = (-flat.numel()) % 8
    b = bits.view(torch.uint8)
    if pad:
        b = torch.cat([b, b.new_zeros(pad)])
    return ((b.view(torch.int64) * _GATHER) >> 56).to(torch.uint8)


@pack_spikes.register_fake
def _pack_spikes_fake(x: Tensor) -> Tensor:
    return x.new_empty((packed_numel(x.numel()),), dtype=torch.uint8)


def unpack_spikes(packed: Tensor, shape, dtype: torch.dtype) -> Tensor:
    """The tensor of ``shape`` and ``dtype`` that ``pack_spikes`` packed into ``packed``."""
    numel = 1
    for s in shape:
        numel *= s
    shifts = torch.tensor(_SHIFTS, dtype=torch.uint8, device=packed.device)
    bits = (packed.unsqueeze(1) >> shifts) & 1
    return bits.reshape(-1)[:numel].to(dtype).view(shape)
