"""The packed dataset format: every frame in one memory-mapped uint8 array.

``data/processed/<dataset>/`` holds

- ``silhouettes.npy``: uint8 ``[frames, H, W]``, all sequences back to back;
- ``index.csv``: one row per sequence: subject, type, view, condition, offset, count;
- ``partition.json``: the train and test subjects in force (OpenGait's keys; see partition.py);
- ``report.json``: what preprocessing kept and skipped, and why.

One big file instead of one small file per sequence keeps data versioning fast
and lets the reader slice any sequence without a file open.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np

from gaitflow.data.layouts import SequenceKey, condition_of

FRAMES_FILE = "silhouettes.npy"
INDEX_FILE = "index.csv"
PARTITION_FILE = "partition.json"
REPORT_FILE = "report.json"
INDEX_COLUMNS = ("subject", "type", "view", "condition", "offset", "count")
HEADER_BYTES = 128


class FrameWriter:
    """Appends frames to an .npy file whose length is known only at the end."""

    def __init__(self, path: Path, frame_shape: tuple[int, int] | None = None):
        self.path = Path(path)
        self.frame_shape = frame_shape
        self.count = 0
        self._file = open(self.path, "wb")
        self._file.write(b"\0" * HEADER_BYTES)

    def append(self, frames: np.ndarray) -> int:
        """Write [n, H, W] uint8 frames; returns the offset of the first one."""
        if self.frame_shape is None:
            self.frame_shape = tuple(frames.shape[1:])
        assert frames.dtype == np.uint8 and tuple(frames.shape[1:]) == self.frame_shape
        offset = self.count
        self._file.write(np.ascontiguousarray(frames).tobytes())
        self.count += len(frames)
        return offset

    def abort(self) -> None:
        """Stop writing; the caller removes the half-written file with its folder."""
        self._file.close()

    def close(self) -> None:
        shape = (self.count,) + tuple(self.frame_shape or (0, 0))
        header = _npy_header(shape)
        self._file.seek(0)
        self._file.write(header)
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()


class SlotFile:
    """An .npy of frames written in place by several processes, then compacted.

    Each sequence is given a slot range as long as its file count before any
    frame is decoded; workers write the frames they keep straight into a shared
    memory map, so frames never travel between processes. Slots left unused by
    dropped frames or sequences are closed up at the end.
    """

    def __init__(self, path: Path, slots: int, frame_shape: tuple[int, int]):
        self.path = Path(path)
        self.slots = slots
        self.frame_shape = tuple(frame_shape)
        self.frame_bytes = int(np.prod(self.frame_shape))
        with open(self.path, "wb") as f:
            f.write(_npy_header((slots,) + self.frame_shape))
            f.truncate(HEADER_BYTES + slots * self.frame_bytes)

    def open(self) -> np.memmap:
        return np.memmap(self.path, np.uint8, "r+", HEADER_BYTES, (max(self.slots, 1),) + self.frame_shape)

    def compact(self, rows: list[tuple[object, int, int]]) -> list[tuple[object, int, int]]:
        """Close the gaps: rows of (key, slot, count) in slot order -> rows with final offsets.

        Runs of sequences that shift by the same amount move as one block, through
        the file in large reads and writes (forward, so a block never overwrites
        data not yet moved)."""
        out, offset, moves = [], 0, []
        for key, slot, count in rows:
            if slot != offset:
                if moves and moves[-1][0] + moves[-1][2] == slot and moves[-1][0] - moves[-1][1] == slot - offset:
                    moves[-1][2] += count
                else:
                    moves.append([slot, offset, count])
            out.append((key, offset, count))
            offset += count
        fb = self.frame_bytes
        block = max(1, (64 << 20) // fb)
        with open(self.path, "r+b") as f:
            fd = f.fileno()
            for src, dest, count in moves:
                for start in range(0, count, block):
                    n = min(block, count - start)
                    data = os.pread(fd, n * fb, HEADER_BYTES + (src + start) * fb)
                    os.pwrite(fd, data, HEADER_BYTES + (dest + start) * fb)
            f.seek(0)
            f.write(_npy_header((offset,) + self.frame_shape))
            f.truncate(HEADER_BYTES + offset * fb)
            f.flush()
            os.fsync(fd)
        return out


def _npy_header(shape: tuple[int, ...]) -> bytes:
    """An .npy version 1.0 header padded to exactly HEADER_BYTES."""
    d = repr({"descr": "|u1", "fortran_order": False, "shape": tuple(int(s) for s in shape)}).encode("latin1")
    pad = HEADER_BYTES - 10 - len(d) - 1
    assert pad >= 0, "shape too large for a fixed header"
    body = d + b" " * pad + b"\n"
    return b"\x93NUMPY\x01\x00" + len(body).to_bytes(2, "little") + body


def write_index(path: Path, rows: list[tuple[SequenceKey, int, int]]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(INDEX_COLUMNS)
        for key, offset, count in rows:
            w.writerow([key.subject, key.type, key.view, condition_of(key.type), offset, count])


def read_index(path: Path) -> dict[str, np.ndarray]:
    """Columns of index.csv as arrays (strings for names, int64 for offsets and counts)."""
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows or tuple(rows[0]) != INDEX_COLUMNS:
        raise ValueError(f"expected the header {','.join(INDEX_COLUMNS)}")
    body = rows[1:]
    cols = {
        name: np.array([r[i] for r in body], dtype=object if i < 4 else np.int64)
        for i, name in enumerate(INDEX_COLUMNS)
    }
    for name in INDEX_COLUMNS[:4]:
        cols[name] = cols[name].astype(str)
    return cols


def write_text_atomic(path: Path, text: str) -> None:
    """Write a file whole or not at all (a reader never sees half of it)."""
    tmp = Path(f"{path}.tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_json(path: Path, obj) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2) + "\n")
