"""Tests of inflor's own transforms: Cutout, RandomShift, FlipRoll."""
import torch

from inflor.data.transforms import Cutout, FlipRoll, RandomShift, shift_zero_fill


def test_cutout_hand_checked_inside():
    img = torch.ones(3, 8, 8)
    out = Cutout.apply(img, cy=4, cx=3, size=4)       # rows 2..5, cols 1..4 zeroed
    expected = torch.ones(8, 8)
    expected[2:6, 1:5] = 0
    for c in range(3):
        assert torch.equal(out[c], expected)
    assert torch.equal(img, torch.ones(3, 8, 8))       # input untouched


def test_cutout_clipped_at_corner():
    img = torch.ones(1, 6, 6)
    out = Cutout.apply(img, cy=0, cx=5, size=4)       # rows -2..1 -> 0..1, cols 3..6 -> 3..5
    assert out.sum() == 36 - 2 * 3
    assert torch.equal(out[0, :2, 3:], torch.zeros(2, 3))
    assert Cutout.box(0, 5, 4, 6, 6) == (0, 2, 3, 6)


def test_cutout_random_centre_anywhere():
    g = torch.Generator().manual_seed(0)
    cut = Cutout(16, generator=g)
    zeros = [int((cut(torch.ones(3, 32, 32))[0] == 0).sum()) for _ in range(200)]
    assert max(zeros) == 256                          # a full square when away from borders
    assert min(zeros) < 256                           # clipped near borders
    assert min(zeros) >= 64                           # at worst a corner quarter (8 x 8)


def test_shift_zero_fill():
    img = torch.arange(9.0).reshape(1, 3, 3)
    out = shift_zero_fill(img, 1, -1)
    assert torch.equal(out[0], torch.tensor([[0., 0., 0.], [1., 2., 0.], [4., 5., 0.]]))
    g = torch.Generator().manual_seed(1)
    assert RandomShift(1, generator=g)(img).shape == img.shape


def _recover_flip_shift(out, h, w):
    """(flipped, dh, dw) that maps arange(h*w) onto ``out``, read off two tracked pixels."""
    r0, c0 = [int(v) for v in (out == 0).nonzero()[0]]
    _, c1 = [int(v) for v in (out == 1).nonzero()[0]]
    flipped = c1 != (c0 + 1) % w
    signed = lambda v, n: (v + n // 2) % n - n // 2
    return flipped, signed(r0, h), signed(c0 - (w - 1) if flipped else c0, w)


def test_flip_roll_bounds():
    h = w = 12
    plain = torch.arange(h * w, dtype=torch.float32).reshape(h, w)
    frames = plain.expand(3, 2, h, w)                  # same flip/shift on every step, channel
    aug = FlipRoll(max_shift=5, generator=torch.Generator().manual_seed(0))
    seen = set()
    for _ in range(400):
        out = aug(frames)
        f, dh, dw = _recover_flip_shift(out[0, 0], h, w)
        expected = torch.roll(plain.flip(-1) if f else plain, (dh, dw), (-2, -1))
        assert torch.equal(out, expected.expand(3, 2, h, w))
        assert -5 <= dh <= 5 and -5 <= dw <= 5
        seen.add((f, dh, dw))
    assert {f for f, _, _ in seen} == {False, True}
    assert {dh for _, dh, _ in seen} == set(range(-5, 6))
    assert {dw for _, _, dw in seen} == set(range(-5, 6))
