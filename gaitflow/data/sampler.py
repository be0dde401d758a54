"""Training batches: the P x K identity sampler and frame sampling.

Metric losses need several sequences of each identity in a batch, so a batch
is P distinct identities with K sequences each, drawn without replacement when
an identity has at least K sequences and with replacement otherwise (as the
reference sampler does). Each sequence contributes a fixed number of frames,
drawn as an ordered contiguous-ish clip (GaitPart, GaitGL) or as an unordered
random set (GaitSet). All randomness comes from one numpy generator whose state
can be saved and restored, so a resumed run draws the same batches.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

FRAME_MODES = ("unordered", "ordered")


class PKSampler:
    """Infinite stream of batches of dataset indices, P identities x K sequences each."""

    def __init__(self, labels: np.ndarray, p: int, k: int, seed: int = 0, shuffle: bool = True):
        labels = np.asarray(labels)
        self.ids = np.unique(labels)
        if len(self.ids) < p:
            from gaitflow.errors import GaitflowError

            raise GaitflowError(f"sampler: P = {p} identities per batch, but the training set has only {len(self.ids)}")
        self.by_id = {int(i): np.flatnonzero(labels == i) for i in self.ids}
        self.p, self.k, self.shuffle = p, k, shuffle
        self.rng = np.random.default_rng(seed)

    def __iter__(self) -> Iterator[np.ndarray]:
        return self

    def __next__(self) -> np.ndarray:
        chosen = self.rng.choice(self.ids, self.p, replace=False)
        batch = []
        for i in chosen:
            pool = self.by_id[int(i)]
            batch.append(self.rng.choice(pool, self.k, replace=len(pool) < self.k))
        batch = np.concatenate(batch)
        if self.shuffle:
            batch = self.rng.permutation(batch)
        return batch

    def state_dict(self) -> dict:
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict) -> None:
        self.rng.bit_generator.state = state["rng"]


def sample_frames(count: int, n: int, mode: str, rng: np.random.Generator, skip: int = 0) -> np.ndarray:
    """Positions of `n` frames out of a sequence of `count`.

    unordered: n random frames, with replacement only when the sequence is shorter than n.
    ordered:   a random window of n + skip consecutive frames (the sequence is tiled
               when shorter), n of them kept in order; skip = 0 gives a contiguous clip.
    """
    if count <= 0:
        raise ValueError("empty sequence")
    if mode == "unordered":
        return rng.choice(count, n, replace=count < n)
    if mode == "ordered":
        span = n + skip
        pos = np.arange(count)
        if count < span:
            pos = np.tile(pos, -(-span // count))
        start = int(rng.integers(0, len(pos) - span + 1))
        window = pos[start : start + span]
        keep = np.sort(rng.choice(span, n, replace=False)) if skip else np.arange(n)
        return window[keep]
    raise ValueError(f"frame sampling mode {mode!r}: expected one of {FRAME_MODES}")


def clip_batch(
    dataset, indices: np.ndarray, n_frames: int, mode: str, rng: np.random.Generator, skip: int = 0
) -> np.ndarray:
    """uint8 [len(indices), n_frames, H, W] training clips of the given sequences."""
    out = np.empty((len(indices), n_frames) + tuple(dataset.frame_shape), np.uint8)
    for b, i in enumerate(indices):
        pos = sample_frames(int(dataset.counts[i]), n_frames, mode, rng, skip)
        out[b] = dataset.sequence(int(i), pos)
    return out
