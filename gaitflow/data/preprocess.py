"""Raw silhouettes (folder or archive) -> the packed dataset.

Reads a CASIA-B / OU-MVLP / Gait3D / OpenGait-layout tree of PNGs straight
out of a folder, a zip or a tar (plain or compressed) without unpacking it,
applies the reference pretreatment to every frame in parallel, and packs the
result (see :mod:`gaitflow.data.packed`). OpenGait's already-pretreated
``<id>/<type>/<view>/*.pkl`` trees are imported too, through an unpickler that
accepts numpy arrays and nothing else.

Bad input is skipped and counted, never a crash: unreadable or corrupt files,
empty frames, sequences with too few valid frames, paths that do not fit the
layout. The output is built in a temporary folder and renamed into place at
the end, so an interrupted run leaves nothing that looks complete.
"""

from __future__ import annotations

import io
import os
import pickle
import time
from collections import Counter, defaultdict, deque
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gaitflow.config import workers as resolve_workers
from gaitflow.data import archive, packed
from gaitflow.data.layouts import SequenceKey, get_layout, parse_pkl
from gaitflow.data.pretreat import decode, pretreat
from gaitflow.errors import GaitflowError
from gaitflow.parallel import opencv_serial, worker_pool

BAD_PATH = "path does not fit the layout"
BAD_PNG = "unreadable or corrupt PNG"
BAD_PKL = "unreadable, unsafe or malformed pickle"
BAD_SHAPE = "frame size differs from the dataset's"
SHORT_SEQUENCE = "sequence with too few valid frames"
EXTRA_PKL = "second pickle in a sequence folder (the first sorted one is used)"
EXAMPLES = 5


@dataclass
class Report:
    """What was kept and what was skipped, with the first paths of each reason."""

    files: int = 0
    sequences: int = 0
    frames_kept: int = 0
    sequences_kept: int = 0
    skipped: Counter = field(default_factory=Counter)
    examples: dict = field(default_factory=lambda: defaultdict(list))

    def skip(self, reason: str, path: str, n: int = 1) -> None:
        self.skipped[reason] += n
        if len(self.examples[reason]) < EXAMPLES:
            self.examples[reason].append(path)

    def as_dict(self) -> dict:
        return {
            "files": self.files,
            "sequences": self.sequences,
            "frames_kept": self.frames_kept,
            "sequences_kept": self.sequences_kept,
            "skipped": {r: {"count": n, "first": self.examples[r]} for r, n in sorted(self.skipped.items())},
        }

    def lines(self) -> list[str]:
        out = []
        for reason, n in sorted(self.skipped.items()):
            out.append(f"  skipped {n} x {reason}: " + ", ".join(self.examples[reason][:3]))
        return out


# ------------------------------------------------------------------ workers
# Worker processes keep the source open and, for PNG sources, a writable map of
# the output, so that only small tasks and counts pass between processes.

_reader: archive.RandomAccessReader | None = None
_out: np.memmap | None = None


def _init_worker(path: str, kind: str, out: tuple | None = None) -> None:
    """Open the source (and the output map) once per worker."""
    global _reader, _out
    _reader = archive.RandomAccessReader(Path(path), kind)
    _out = np.memmap(out[0], np.uint8, "r+", out[1], out[2]) if out else None


def _read(locator):
    return locator if isinstance(locator, (bytes, bytearray)) else _reader.read(locator)


_jobs: dict = {}  # PNG sequences by task number; set before the workers fork, so tasks are just numbers


def _png_sequence(task):
    """Pretreat the frames of one sequence into its output slot -> (frames kept, [(reason, path)])."""
    slot, size, min_fg, files = _jobs[task] if isinstance(task, int) else task
    kept, bad = 0, []
    for name, locator in files:
        try:
            img = decode(_read(locator))
        except (OSError, ValueError):
            img = None
        if img is None:
            bad.append((BAD_PNG, name))
            continue
        frame, reason = pretreat(img, size, min_fg)
        if frame is None:
            bad.append((reason, name))
        else:
            _out[slot + kept] = frame
            kept += 1
    return kept, bad


class _ArraysOnly(pickle.Unpickler):
    """Unpickles numpy arrays and refuses everything else: a pickle can run code."""

    ALLOWED = {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
    }

    def find_class(self, module, name):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"{module}.{name} is not allowed")


def load_array_pickle(data) -> np.ndarray:
    """A numpy array from pickle bytes; raises pickle.UnpicklingError for anything else."""
    obj = _ArraysOnly(io.BytesIO(bytes(data))).load()
    if not isinstance(obj, np.ndarray):
        raise pickle.UnpicklingError(f"expected a numpy array, got {type(obj).__name__}")
    return obj


def _pkl_sequence(task):
    """Import one OpenGait pickle -> (frames [n, h, w] or None, [(reason, path)])."""
    name, locator = task
    try:
        arr = load_array_pickle(_read(locator))
    except Exception:  # noqa: BLE001 - any failure to unpickle is the same bad input
        return None, [(BAD_PKL, name)]
    if arr.ndim != 3 or arr.dtype != np.uint8 or 0 in arr.shape:
        return None, [(BAD_PKL, name)]
    return np.ascontiguousarray(arr), []


# --------------------------------------------------------------------- main


def preprocess(
    source: Path,
    out: Path,
    layout: str,
    size: int = 64,
    min_foreground: int = 10000,
    min_frames: int = 5,
    train_fraction: float = 0.5968,
    workers: int = 0,
    progress: bool = True,
) -> dict:
    """Pack a raw dataset at `source` into `out`; returns the report (also written to out/report.json)."""
    from tqdm import tqdm

    source, out = Path(source), Path(out)
    kind = archive.source_kind(source)
    lay = get_layout(layout)
    report = Report()
    start = time.perf_counter()

    if kind == "tar-stream":
        names = archive.list_stream_names(source)
    else:
        names = archive.list_members(source, kind, "")
    pngs = [(n, loc) for n, loc in names if n.lower().endswith(".png")]
    pkls = [(n, loc) for n, loc in names if n.lower().endswith(".pkl")]
    importing = not pngs and bool(pkls)
    report.files = len(pkls) if importing else len(pngs)
    if not report.files:
        raise GaitflowError(f"{source}: no .png (or OpenGait .pkl) files found; expected a {layout}-layout dataset")

    groups: dict[SequenceKey, list] = defaultdict(list)
    for name, loc in pkls if importing else pngs:
        key = parse_pkl(name) if importing else lay.parse(name)
        if key is None:
            if not (not importing and name.lower().endswith("gei.png")):
                report.skip(BAD_PATH, name)
            continue
        groups[key].append((name, loc))
    keys = sorted(groups)
    for key in keys:
        groups[key].sort(key=lambda m: m[0])
    report.sequences = len(keys)

    tmp = out.with_name(f"{out.name}.tmp-{os.getpid()}")
    archive.remove_path(tmp)
    tmp.mkdir(parents=True)
    frames_path = tmp / packed.FRAMES_FILE
    slots: dict[SequenceKey, int] = {}  # where each sequence's frames start in the output
    total = 0
    for key in keys:
        slots[key] = total
        total += 1 if importing else len(groups[key])
    if importing:
        writer = packed.FrameWriter(frames_path)
        shared = None
    else:
        writer = packed.SlotFile(frames_path, total, (size, 2 * (size // 2)))
        shared = (str(frames_path), packed.HEADER_BYTES, (max(total, 1),) + writer.frame_shape)
    rows: list[tuple[SequenceKey, int, int]] = []
    n_workers = min(resolve_workers(workers), max(1, len(keys)))
    bar = tqdm(
        total=report.files, unit="frame", unit_scale=True, desc=f"preprocess {source.name}", disable=not progress
    )

    def task(key, files):
        if not importing:
            return key, len(files), (slots[key], size, min_foreground, files)
        for extra, _ in files[1:]:
            report.skip(EXTRA_PKL, extra)
        return key, len(files), files[0]

    def tasks_random():
        for number, key in enumerate(keys):
            k, n, t = task(key, groups[key])
            yield k, n, (number if not importing else t)

    global _jobs
    _jobs = (
        {}
        if importing or kind == "tar-stream"
        else {number: (slots[key], size, min_foreground, groups[key]) for number, key in enumerate(keys)}
    )

    def tasks_stream():
        """Stream a compressed tar once more; a sequence is handed out when its last file has arrived."""
        pending: dict[SequenceKey, list] = defaultdict(list)
        wanted = {k: len(v) for k, v in groups.items()}
        for name, data in archive.stream_tar(source, ".pkl" if importing else ".png"):
            key = parse_pkl(name) if importing else lay.parse(name)
            if key is None or key not in wanted:
                continue
            pending[key].append((name, data))
            if len(pending[key]) == wanted[key]:
                yield task(key, sorted(pending.pop(key), key=lambda m: m[0]))

    work = _pkl_sequence if importing else _png_sequence
    tasks = tasks_stream() if kind == "tar-stream" else tasks_random()
    init_args = (str(source), kind if kind != "tar-stream" else "folder", shared)
    pool = None
    try:
        if n_workers > 1:
            pool = worker_pool(n_workers, _init_worker, init_args)
            if _jobs:  # random access: tasks are numbers, so hand them out in chunks
                listed = list(tasks)
                chunk = max(1, min(16, len(listed) // (8 * n_workers)))
                done = pool.imap(work, [t for _, _, t in listed], chunksize=chunk)
                results = ((k, n, r) for (k, n, _), r in zip(listed, done))
            else:  # a stream: keep a bounded window in flight
                results = _ordered(pool, work, tasks, window=8 * n_workers)
        else:
            _init_worker(*init_args)
            results = _serially(work, tasks)
        for key, n_files, (frames, bad) in results:
            for reason, name in bad:
                report.skip(reason, name)
            bar.update(n_files)
            if importing:
                if frames is None:
                    continue
                if writer.frame_shape is not None and tuple(frames.shape[1:]) != writer.frame_shape:
                    report.skip(BAD_SHAPE, "/".join(key), len(frames))
                    continue
                if len(frames) < min_frames:
                    report.skip(SHORT_SEQUENCE, "/".join(key))
                    continue
                rows.append((key, writer.append(frames), len(frames)))
            elif frames < min_frames:  # PNG workers return how many frames they kept
                report.skip(SHORT_SEQUENCE, "/".join(key))
            else:
                rows.append((key, slots[key], frames))
        if pool is not None:
            pool.close()
            pool.join()
            pool = None
        rows.sort(key=lambda r: r[1])
        if importing:
            writer.close()
        else:
            global _out
            _out = None
            _jobs = {}
            rows = writer.compact(rows)
        rows.sort(key=lambda r: r[0])
    except BaseException:
        if importing:
            writer.abort()
        archive.remove_path(tmp)
        raise
    finally:
        bar.close()
        if pool is not None:
            pool.terminate()

    if not rows:
        archive.remove_path(tmp)
        detail = "; ".join(f"{n} x {r}" for r, n in report.skipped.most_common(3))
        raise GaitflowError(f"{source}: no sequence survived preprocessing ({detail})")

    report.sequences_kept = len(rows)
    report.frames_kept = sum(r[2] for r in rows)
    seconds = time.perf_counter() - start
    packed.write_index(tmp / packed.INDEX_FILE, rows)
    part = packed.partition([k.subject for k, _, _ in rows], train_fraction)
    packed.write_json(tmp / packed.PARTITION_FILE, part)
    result = {
        "source": str(source),
        "layout": layout,
        "img_size": size,
        "frame_shape": list(writer.frame_shape),
        "imported_pickles": importing,
        **report.as_dict(),
        "seconds": round(seconds, 3),
        "frames_per_second": round(report.files / max(seconds, 1e-9), 1),
    }
    packed.write_json(tmp / packed.REPORT_FILE, result)
    archive.replace_path(tmp, out)
    result["summary_lines"] = report.lines()
    return result


def _serially(work, tasks):
    """In-process fallback of _ordered; OpenCV single-threaded as in the workers."""
    with opencv_serial():
        for key, n, task in tasks:
            yield key, n, work(task)


def _ordered(pool, work, tasks, window: int):
    """Like pool.imap over (key, n, task) but keeps at most `window` tasks in flight, in order."""
    inflight: deque = deque()
    for key, n, task in tasks:
        inflight.append((key, n, pool.apply_async(work, (task,))))
        if len(inflight) >= window:
            k, m, res = inflight.popleft()
            yield k, m, res.get()
    while inflight:
        k, m, res = inflight.popleft()
        yield k, m, res.get()
