"""Reading the packed data: selection, the P x K sampler, frame sampling, evaluation batches."""

import numpy as np
import pytest

from gaitflow.data.dataset import PackedDataset
from gaitflow.data.preprocess import preprocess
from gaitflow.data.sampler import PKSampler, clip_batch, sample_frames
from gaitflow.errors import GaitflowError


@pytest.fixture(scope="module")
def dataset(tiny_archive, tmp_path_factory):
    out = tmp_path_factory.mktemp("packed") / "tiny"
    preprocess(tiny_archive, out, "casia-b", size=32, workers=1, progress=False)
    return PackedDataset(out)


def test_selection_and_cut(dataset):
    assert dataset.frame_shape == (32, 22)
    nm = dataset.select(conditions=["nm"], views=["090"])
    assert len(nm) == 4 * 6 and set(dataset.views[nm]) == {"090"}
    assert dataset.sequence(int(nm[0])).shape[1:] == (32, 22)
    train, test = dataset.split("TRAIN_SET"), dataset.split("TEST_SET")
    assert set(dataset.subjects[train]).isdisjoint(dataset.subjects[test])
    assert len(train) + len(test) == len(dataset)


def test_pk_sampler_invariants(dataset):
    train = dataset.split("TRAIN_SET")
    labels, names = dataset.labels(train)
    sampler = PKSampler(labels, p=2, k=4, seed=3)
    for _ in range(20):
        batch = next(sampler)
        ids, counts = np.unique(labels[batch], return_counts=True)
        assert len(batch) == 8 and len(ids) == 2 and set(counts) == {4}
    # K above an identity's sequence count: drawn with replacement, still K each
    few = PKSampler(np.array([0, 0, 1, 1, 2]), p=3, k=4, seed=0)
    assert set(np.unique(np.array([0, 0, 1, 1, 2])[next(few)], return_counts=True)[1]) == {4}


def test_sampler_state_restores_the_same_batches(dataset):
    labels, _ = dataset.labels(dataset.split("TRAIN_SET"))
    a = PKSampler(labels, 2, 2, seed=1)
    next(a)
    state = a.state_dict()
    expected = [next(a) for _ in range(3)]
    b = PKSampler(labels, 2, 2, seed=99)
    b.load_state_dict(state)
    assert all(np.array_equal(x, next(b)) for x in expected)


def test_sampler_needs_p_identities():
    with pytest.raises(GaitflowError, match="P = 5 identities"):
        PKSampler(np.array([0, 1]), 5, 2)


def test_frame_sampling_modes():
    rng = np.random.default_rng(0)
    u = sample_frames(30, 10, "unordered", rng)
    assert len(set(u)) == 10  # without replacement when long enough
    assert len(sample_frames(4, 10, "unordered", rng)) == 10
    o = sample_frames(30, 10, "ordered", rng)
    assert np.array_equal(o, np.arange(o[0], o[0] + 10))  # contiguous clip
    s = sample_frames(30, 10, "ordered", rng, skip=5)
    assert np.all(np.diff(s) > 0) and s[-1] - s[0] < 15
    short = sample_frames(4, 10, "ordered", rng)
    assert len(short) == 10 and short.max() < 4
    with pytest.raises(ValueError):
        sample_frames(5, 2, "sideways", rng)


def test_clip_batch_and_evaluation_batches(dataset):
    idx = dataset.split("TRAIN_SET")[:6]
    clips = clip_batch(dataset, idx, 5, "ordered", np.random.default_rng(0))
    assert clips.shape == (6, 5, 32, 22) and clips.dtype == np.uint8
    seen = []
    for seqs, lengths, frames in dataset.batches(idx, max_frames=20):
        assert frames.shape[0] == lengths.sum()
        start = 0
        for i, n in zip(seqs, lengths):
            np.testing.assert_array_equal(frames[start : start + n], dataset.sequence(int(i)))
            start += n
        seen += list(seqs)
    assert seen == list(idx)


def test_missing_dataset_is_a_clear_error(tmp_path):
    with pytest.raises(GaitflowError, match="run `gaitflow preprocess` first"):
        PackedDataset(tmp_path)
