"""Sequence augmentation: one transform per sequence, reproducible from the generator."""

import numpy as np
import torch

from gaitflow.data.transforms import augment


def _batch():
    x = torch.zeros(3, 4, 16, 12)
    x[:, :, 4:12, 1:4] = 1  # a bar near the left edge
    return x


def test_nothing_applies_at_zero_probability():
    x = _batch()
    assert augment(x, np.random.default_rng(0)) is x


def test_flip_mirrors_every_frame_of_a_sequence():
    out = augment(_batch(), np.random.default_rng(0), flip=1.0)
    torch.testing.assert_close(out, _batch().flip(-1))


def test_affine_moves_mass_but_keeps_it_and_is_reproducible():
    a = augment(_batch(), np.random.default_rng(3), affine=1.0, rotate=10, shift=0.1)
    b = augment(_batch(), np.random.default_rng(3), affine=1.0, rotate=10, shift=0.1)
    torch.testing.assert_close(a, b)
    assert not torch.equal(a, _batch())
    assert abs(a.sum().item() - _batch().sum().item()) / _batch().sum().item() < 0.25
    for seq in a:  # every frame of a sequence got the same transform
        assert all(torch.equal(seq[0], f) for f in seq[1:])
