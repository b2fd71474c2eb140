"""Tests of the offline ``digits`` dataset."""
import torch

from inflor.data import build_datasets


def test_shapes_labels_and_split():
    train, test, info = build_datasets("digits")
    assert (info.num_classes, info.input_shape, info.timesteps) == (10, (1, 8, 8), None)
    assert len(train) + len(test) == 1797 and len(test) == 360
    x, y = train[0]
    assert x.shape == (1, 8, 8) and x.dtype == torch.float32 and isinstance(y, int)
    # stratified: every class is in the test split in about the same proportion
    counts = torch.bincount(test.y, minlength=10)
    assert counts.min() >= 34 and counts.max() <= 38


def test_split_is_seeded():
    a, _, _ = build_datasets("digits", seed=1)
    b, _, _ = build_datasets("digits", seed=1)
    c, _, _ = build_datasets("digits", seed=2)
    assert torch.equal(a.x, b.x)
    assert not torch.equal(a.x, c.x)


def test_scaling_and_normalisation():
    raw, raw_test, _ = build_datasets("digits", normalize=False)
    assert raw.x.min() == 0.0 and raw.x.max() == 1.0
    norm, _, _ = build_datasets("digits")
    assert abs(float(norm.x.mean())) < 1e-5 and abs(float(norm.x.std()) - 1.0) < 1e-4
    _, _, _ = build_datasets("digits", test_size=0.5)


def test_augment_only_on_train():
    train, test, _ = build_datasets("digits", augment=True, normalize=False)
    torch.manual_seed(0)
    outs = [train[5][0] for _ in range(20)]
    assert any(not torch.equal(o, train.x[5]) for o in outs)
    assert all(o.shape == (1, 8, 8) for o in outs)
    assert torch.equal(test[5][0], test.x[5])
