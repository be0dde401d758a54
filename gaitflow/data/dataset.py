"""Reads the packed format: sequences by subject, type, condition and view.

Frames stay in a read-only memory map; a sequence is a slice of it, so
selecting and reading cost no copy until a batch is assembled. The model input
is the pretreated window less ``cut_width`` columns on each side (64 x 64 ->
64 x 44), applied here so every consumer sees the same frames.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from gaitflow.data import packed
from gaitflow.data.pretreat import cut_width
from gaitflow.errors import GaitflowError


class PackedDataset:
    """A packed dataset folder (``data/processed/<name>``)."""

    def __init__(self, root: str | Path, cut: bool = True):
        self.root = Path(root)
        frames_path = self.root / packed.FRAMES_FILE
        if not frames_path.exists():
            raise GaitflowError(
                f"{self.root}: no packed dataset here ({packed.FRAMES_FILE} is missing); "
                "run `gaitflow preprocess` first"
            )
        try:
            self.frames = np.load(frames_path, mmap_mode="r")
            index = packed.read_index(self.root / packed.INDEX_FILE)
            self.partition = json.loads((self.root / packed.PARTITION_FILE).read_text())
        except (OSError, ValueError, json.JSONDecodeError) as exc:
            raise GaitflowError(
                f"{self.root}: the packed dataset is unreadable or incomplete ({exc}); run `gaitflow preprocess` again"
            ) from None
        if self.frames.ndim != 3 or self.frames.dtype != np.uint8:
            raise GaitflowError(
                f"{frames_path}: expected uint8 [frames, H, W], got {self.frames.dtype} {self.frames.shape}"
            )
        self.subjects = index["subject"]
        self.types = index["type"]
        self.views = index["view"]
        self.conditions = index["condition"]
        self.offsets = index["offset"]
        self.counts = index["count"]
        if len(self.offsets) and (self.offsets + self.counts).max() > len(self.frames):
            raise GaitflowError(
                f"{self.root}: {packed.INDEX_FILE} points past the end of {packed.FRAMES_FILE}; "
                "run `gaitflow preprocess` again"
            )
        width = self.frames.shape[2]
        self.cut = cut_width(self.frames.shape[1]) if cut else 0
        self.cut = min(self.cut, max(0, (width - 1) // 2))
        self.frame_shape = (self.frames.shape[1], width - 2 * self.cut)

    def __len__(self) -> int:
        return len(self.offsets)

    def select(
        self,
        subjects: Iterable[str] | None = None,
        types: Iterable[str] | None = None,
        conditions: Iterable[str] | None = None,
        views: Iterable[str] | None = None,
    ) -> np.ndarray:
        """Indices of the sequences that match every given filter."""
        mask = np.ones(len(self), bool)
        for values, column in (
            (subjects, self.subjects),
            (types, self.types),
            (conditions, self.conditions),
            (views, self.views),
        ):
            if values is not None:
                mask &= np.isin(column, np.asarray(list(values), dtype=str))
        return np.flatnonzero(mask)

    def split(self, name: str) -> np.ndarray:
        """Indices of the TRAIN_SET or TEST_SET subjects."""
        return self.select(subjects=self.partition[name])

    def sequence(self, i: int, frames: np.ndarray | None = None) -> np.ndarray:
        """Frames of sequence i (all, or the given frame positions), uint8 [n, H, W'] after the cut."""
        start, count = int(self.offsets[i]), int(self.counts[i])
        block = self.frames[start : start + count]
        if frames is not None:
            block = block[frames]
        if self.cut:
            block = block[:, :, self.cut : -self.cut]
        return block

    def labels(self, indices: np.ndarray) -> tuple[np.ndarray, list[str]]:
        """Integer labels 0..n-1 for the subjects of `indices` (sorted subject order) and the subject list."""
        names = sorted(set(self.subjects[indices].tolist()))
        lookup = {s: i for i, s in enumerate(names)}
        return np.array([lookup[s] for s in self.subjects[indices]], np.int64), names

    def batches(
        self, indices: np.ndarray, max_frames: int = 4096
    ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Evaluation loading: (sequence indices, lengths, frames concatenated [sum(lengths), H, W'])
        of consecutive sequences, at most `max_frames` frames per batch (one long sequence may exceed it)."""
        batch: list[int] = []
        total = 0
        for i in indices:
            n = int(self.counts[i])
            if batch and total + n > max_frames:
                yield self._concat(batch)
                batch, total = [], 0
            batch.append(int(i))
            total += n
        if batch:
            yield self._concat(batch)

    def _concat(self, batch: list[int]):
        seqs = [self.sequence(i) for i in batch]
        return np.array(batch), np.array([len(s) for s in seqs]), np.concatenate(seqs)
