"""Small tensor transforms written for inflor.

* :class:`Cutout` — DeVries & Taylor (2017) Cutout: zero one ``size × size`` square whose centre
  is drawn uniformly over the whole image and which is clipped at the borders. It works on a
  ``[C, H, W]`` tensor, so it goes after ``ToTensor`` and before ``Normalize`` (as in the
  InfLoR/MPBN training scripts, see ``docs/design.md`` §8.1).
* :class:`RandomShift` — light augmentation for tiny images (digits): translate by up to
  ``max_shift`` pixels with zero fill.
* :class:`FlipRoll` — the CIFAR10-DVS training augmentation: horizontal flip with p = 0.5, then
  a circular roll by ``(dh, dw)``, each a uniform integer in ``[-max_shift, max_shift]``.

Every random transform takes an optional ``torch.Generator`` so tests can make it repeatable;
without one it draws from torch's global RNG (which DataLoader workers seed per worker).
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch


def _randint(low: int, high_inclusive: int, generator: Optional[torch.Generator]) -> int:
    return int(torch.randint(low, high_inclusive + 1, (1,), generator=generator))


class Cutout:
    """Zero a ``size × size`` square (``holes`` times) of a ``[..., H, W]`` tensor.

    The centre ``(cy, cx)`` is uniform over all pixels; the square spans rows
    ``[cy - size//2, cy + size//2)`` and columns likewise, clipped to the image, so near a border
    less than ``size²`` pixels are zeroed. The input is not modified; a copy is returned.
    """

    def __init__(self, size: int = 16, holes: int = 1,
                 generator: Optional[torch.Generator] = None):
        if size < 1 or holes < 1:
            raise ValueError(f"Cutout needs size >= 1 and holes >= 1, got size={size}, holes={holes}")
        self.size = int(size)
        self.holes = int(holes)
        self.generator = generator

    @staticmethod
    def box(cy: int, cx: int, size: int, h: int, w: int) -> Tuple[int, int, int, int]:
        """Clipped ``(y1, y2, x1, x2)`` of the square centred at ``(cy, cx)`` (end-exclusive)."""
        half = size // 2
        y1, y2 = max(cy - half, 0), min(cy + half, h)
        x1, x2 = max(cx - half, 0), min(cx + half, w)
        return y1, y2, x1, x2

    @classmethod
    def apply(cls, img: torch.Tensor, cy: int, cx: int, size: int) -> torch.Tensor:
        """Cutout with a given centre (deterministic; used by ``__call__`` and the tests)."""
        h, w = img.shape[-2:]
        y1, y2, x1, x2 = cls.box(cy, cx, size, h, w)
        out = img.clone()
        out[..., y1:y2, x1:x2] = 0
        return out

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        h, w = img.shape[-2:]
        for _ in range(self.holes):
            cy = _randint(0, h - 1, self.generator)
            cx = _randint(0, w - 1, self.generator)
            img = self.apply(img, cy, cx, self.size)
        return img

    def __repr__(self) -> str:
        return f"{type(self).__name__}(size={self.size}, holes={self.holes})"


def shift_zero_fill(img: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """Translate ``[..., H, W]`` by ``(dy, dx)`` pixels (positive = down/right), zero fill."""
    h, w = img.shape[-2:]
    out = torch.zeros_like(img)
    if abs(dy) >= h or abs(dx) >= w:
        return out
    src_y = slice(max(-dy, 0), h - max(dy, 0))
    dst_y = slice(max(dy, 0), h - max(-dy, 0))
    src_x = slice(max(-dx, 0), w - max(dx, 0))
    dst_x = slice(max(dx, 0), w - max(-dx, 0))
    out[..., dst_y, dst_x] = img[..., src_y, src_x]
    return out


class RandomShift:
    """Translate a ``[..., H, W]`` tensor by uniform integers in ``[-max_shift, max_shift]``."""

    def __init__(self, max_shift: int = 1, generator: Optional[torch.Generator] = None):
        self.max_shift = int(max_shift)
        self.generator = generator

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        m = self.max_shift
        dy, dx = _randint(-m, m, self.generator), _randint(-m, m, self.generator)
        return shift_zero_fill(img, dy, dx)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(max_shift={self.max_shift})"


class FlipRoll:
    """Event-frame augmentation for ``[T, C, H, W]`` (or ``[C, H, W]``) tensors.

    With probability ``flip_p`` flip along the width axis, then always ``torch.roll`` by
    ``(dh, dw)`` over (H, W), each a uniform integer in ``[-max_shift, max_shift]``. The same
    flip and shift apply to every time step. This is the CIFAR10-DVS recipe of the Guo et al.
    and TET loaders (``docs/design.md`` §8.2).
    """

    def __init__(self, max_shift: int = 5, flip_p: float = 0.5,
                 generator: Optional[torch.Generator] = None):
        self.max_shift = int(max_shift)
        self.flip_p = float(flip_p)
        self.generator = generator

    def __call__(self, frames: torch.Tensor) -> torch.Tensor:
        flip = bool(torch.rand((), generator=self.generator) < self.flip_p)
        if flip:
            frames = torch.flip(frames, dims=(-1,))
        m = self.max_shift
        dh, dw = _randint(-m, m, self.generator), _randint(-m, m, self.generator)
        return torch.roll(frames, shifts=(dh, dw), dims=(-2, -1))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(max_shift={self.max_shift}, flip_p={self.flip_p})"
