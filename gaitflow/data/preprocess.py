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
the end, so an interrupted run leaves nothing that looks complete; the folder
of a run killed outright is removed by the next run.

PNG frames and pickle trees share the listing, the report and the staging
folder (:func:`preprocess`) and differ in the rest: PNG frames are decoded and
pretreated by workers that write straight into the output
(:func:`_pack_pngs`); pickled sequences come back whole and are appended in
order (:func:`_pack_pickles`).
"""

from __future__ import annotations

import io
import math
import os
import pickle
import time
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import ClassVar

import numpy as np

from gaitflow.config import workers as resolve_workers
from gaitflow.data import archive, packed
from gaitflow.data import partition as partitions
from gaitflow.data.layouts import (
    SUSTECH1K_DEFAULT_MODALITY,
    Layout,
    SequenceKey,
    get_layout,
    parse_pkl,
    parse_sustech1k_pkl,
)
from gaitflow.data.partition import DEFAULT_TRAIN_FRACTION
from gaitflow.data.pretreat import decode, fit_aligned, pretreat
from gaitflow.errors import GaitflowError
from gaitflow.parallel import opencv_serial, worker_pool

BAD_PATH = "path does not fit the layout"
BAD_PNG = "unreadable or corrupt PNG"
BAD_PKL = "unreadable, unsafe or malformed pickle"
SHORT_SEQUENCE = "sequence with too few valid frames"
EXTRA_PKL = "second pickle in a sequence folder (the first sorted one is used)"
NO_MODALITY = "sequence folder without a pickle of the chosen modality"
# Releases that ship pickles, one per modality in each sequence folder: the modality's file is the sequence.
PICKLE_RELEASES = {"sustech1k": (parse_sustech1k_pkl, SUSTECH1K_DEFAULT_MODALITY)}
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


# ---------------------------------------------------------------- listing


@dataclass
class _Sequences:
    """A source's files of one kind (PNG frames or pickles), grouped into sequences."""

    source: Path
    kind: str  # folder, zip, tar or tar-stream (see archive.source_kind)
    suffix: str  # .png or .pkl
    parse: Callable[[str], SequenceKey | None]
    groups: dict[SequenceKey, list[archive.Member]]  # each sequence's files, sorted by name
    keys: list[SequenceKey]  # sorted

    @property
    def pickles(self) -> bool:
        return self.suffix == ".pkl"

    @property
    def streamed(self) -> bool:
        """A compressed tar cannot be read at random; its members are streamed once more."""
        return self.kind == "tar-stream"

    @property
    def reader_kind(self) -> str:
        """How a worker reads a locator. Streamed members reach it as bytes, which need no reader."""
        return "folder" if self.streamed else self.kind

    def files(self) -> Iterator[tuple[SequenceKey, list]]:
        """(key, files) of every sequence: in key order from a random-access source; from a stream
        in the order the sequences complete, each as soon as its last file has arrived (as bytes)."""
        if not self.streamed:
            for key in self.keys:
                yield key, self.groups[key]
            return
        pending: dict[SequenceKey, list] = defaultdict(list)
        wanted = {k: len(v) for k, v in self.groups.items()}
        for name, data in archive.stream_tar(self.source, self.suffix):
            key = self.parse(name)
            if key is None or key not in wanted:
                continue
            pending[key].append((name, data))
            if len(pending[key]) == wanted[key]:
                yield key, sorted(pending.pop(key), key=lambda m: m[0])


def _list_sequences(
    source: Path, kind: str, layout: Layout | str, report: Report, modality: str | None = None
) -> _Sequences:
    """The source's PNG frames by sequence; a tree of pickles and no PNG is an OpenGait import; a
    pickle release (SUSTech1K) gives one sequence per folder: its file of the chosen modality."""
    if isinstance(layout, str):  # a pickle release
        return _list_release_pickles(source, kind, layout, report, modality)
    if kind == "tar-stream":
        names = archive.list_stream_names(source)
    else:
        names = archive.list_members(source, kind, "")
    pngs = [(n, loc) for n, loc in names if n.lower().endswith(".png")]
    pkls = [(n, loc) for n, loc in names if n.lower().endswith(".pkl")]
    importing = not pngs and bool(pkls)
    files = pkls if importing else pngs
    report.files = len(files)
    if not report.files:
        raise GaitflowError(
            f"{source}: no .png (or OpenGait .pkl) files found; expected a {layout.name}-layout dataset"
        )

    parse = parse_pkl if importing else layout.parse
    groups: dict[SequenceKey, list] = defaultdict(list)
    for name, loc in files:
        key = parse(name)
        if key is None:
            # a GEI kept beside the frames is not a frame, and not bad input either
            if importing or not name.lower().endswith("gei.png"):
                report.skip(BAD_PATH, name)
            continue
        groups[key].append((name, loc))
    if not groups:
        bad = report.examples[BAD_PATH][:3]
        what = "OpenGait pickle tree (<id>/<type>/<view>/<name>.pkl)" if importing else f"{layout.name} layout"
        raise GaitflowError(
            f"{source}: no path fits the {what}: {len(files)} paths read, none parsed "
            f"(for example: {', '.join(bad)}); check datasets.<name>.layout"
        )
    keys = sorted(groups)
    for key in keys:
        groups[key].sort(key=lambda m: m[0])
    report.sequences = len(keys)
    return _Sequences(source, kind, ".pkl" if importing else ".png", parse, dict(groups), keys)


def _list_release_pickles(source: Path, kind: str, layout: str, report: Report, modality: str | None) -> _Sequences:
    """A release's pickle tree: in each sequence folder, the one file of ``modality`` (the others are
    other modalities, not bad input); a folder without it is counted and named, never replaced."""
    parse_modality, default = PICKLE_RELEASES[layout]
    modality = modality or default
    parse = partial(parse_modality, modality=modality)
    parse("")  # an unknown modality is one line now, not an empty dataset later
    names = archive.list_stream_names(source) if kind == "tar-stream" else archive.list_members(source, kind, "")
    files = [(n, loc) for n, loc in names if n.lower().endswith(".pkl")]
    report.files = len(files)
    if not report.files:
        raise GaitflowError(f"{source}: no .pkl files found; expected a {layout} pickle tree")
    groups: dict[SequenceKey, list] = defaultdict(list)
    folders: dict[str, bool] = {}
    for name, loc in files:
        folder = name.replace("\\", "/").rpartition("/")[0]
        key = parse(name)
        folders[folder] = folders.get(folder, False) or key is not None
        if key is not None:
            groups[key].append((name, loc))
    for folder, found in folders.items():
        if not found:
            report.skip(NO_MODALITY, f"{folder} ({modality})")
    if not groups:
        raise GaitflowError(
            f"{source}: no {modality} pickle in any of its {len(folders)} folders; check datasets.<name>.modality"
        )
    keys = sorted(groups)
    report.sequences = len(keys)
    return _Sequences(source, kind, ".pkl", parse, dict(groups), keys)


# ------------------------------------------------------------------ workers
# A worker is built in the parent and handed to each pool process through the
# pool's initializer. The pool forks, so the worker and its task list arrive
# without being pickled, and only small tasks and counts pass between
# processes. Each process opens the source (and, for PNG sources, a writable
# map of the output) once.


class _Worker:
    """Reads a source's members by locator, in the process that opened it."""

    current: ClassVar[_Worker | None] = None  # the worker a pool process serves (set by start)

    def __init__(self, source: Path, kind: str):
        self.source = Path(source)
        self.kind = kind
        self._reader: archive.RandomAccessReader | None = None

    def start(self) -> None:
        """Pool initializer: open the source in this process and serve its tasks."""
        self.open()
        _Worker.current = self

    def open(self) -> None:
        self._reader = archive.RandomAccessReader(self.source, self.kind)

    def close(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None:
            try:
                reader.close()
            except BufferError:  # a view of the map outlived an interrupted read; the map goes with it
                pass

    def read(self, locator) -> bytes | memoryview:
        """A member's bytes (a streamed member is its bytes already)."""
        return locator if isinstance(locator, (bytes, bytearray)) else self._reader.read(locator)

    def run(self, task):
        raise NotImplementedError


def _run(task):
    """The pool's task function: the task, done by this process's worker."""
    return _Worker.current.run(task)


class _PngWorker(_Worker):
    """Pretreats a sequence's frames straight into its slots of the output, so frames never travel."""

    def __init__(self, source: Path, kind: str, out: packed.SlotFile, size: int, min_foreground: int, jobs: list):
        super().__init__(source, kind)
        self.out = out
        self.size = size
        self.min_foreground = min_foreground
        self.jobs = jobs  # (slot, files) by task number, for a source read at random: tasks are just numbers
        self._frames: np.memmap | None = None

    def open(self) -> None:
        super().open()
        self._frames = self.out.open()

    def close(self) -> None:
        self._frames = None  # unmapped before the file is compacted and truncated
        super().close()

    def run(self, task) -> tuple[int, list]:
        """One sequence, a task number or (slot, files) -> (frames kept, [(reason, path)])."""
        slot, files = self.jobs[task] if isinstance(task, int) else task
        out, size, min_foreground = self._frames, self.size, self.min_foreground
        kept, bad = 0, []
        for name, locator in files:
            try:
                img = decode(self.read(locator))
            except (OSError, ValueError):
                img = None
            if img is None:
                bad.append((BAD_PNG, name))
                continue
            frame, reason = pretreat(img, size, min_foreground)
            if frame is None:
                bad.append((reason, name))
            else:
                out[slot + kept] = frame
                kept += 1
        return kept, bad


# What a pickle is given for numpy.ndarray: the class argument of _reconstruct, never a constructor
# (called, it would allocate any shape the pickle names).
_NDARRAY = object()


class _ArraysOnly(pickle._Unpickler):
    """Unpickles numpy arrays and refuses everything else: a pickle can run code.

    The pure-Python unpickler: the C one allocates whatever length an opcode claims before
    reading it, so ten bytes could cost gigabytes. Nothing it builds is larger than its input."""

    ALLOWED = {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
    }

    def __init__(self, data: bytes):
        super().__init__(io.BytesIO(data))
        self.limit = len(data)

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"{module}.{name} is not allowed")
        if name == "ndarray":
            return _NDARRAY
        found = super().find_class(module, name)
        return self._reconstruct(found) if name == "_reconstruct" else found

    def _reconstruct(self, reconstruct):
        """numpy's _reconstruct for what numpy pickles hold: an ndarray of no more elements than
        the pickle has bytes (its data then comes by __setstate__, which checks its size)."""

        def guarded(subtype, shape, dtype):
            if subtype is not _NDARRAY or math.prod(shape) > self.limit:
                raise pickle.UnpicklingError("not a numpy array's pickle")
            return reconstruct(np.ndarray, shape, dtype)

        return guarded


def load_array_pickle(data) -> np.ndarray:
    """A numpy array from pickle bytes; raises pickle.UnpicklingError for anything else."""
    obj = _ArraysOnly(bytes(data)).load()
    if not isinstance(obj, np.ndarray):
        raise pickle.UnpicklingError(f"expected a numpy array, got {type(obj).__name__}")
    return obj


class _PickleWorker(_Worker):
    """Unpickles an already aligned sequence (OpenGait's trees, SUSTech1K) and brings it to the target
    size without pretreating it again. Its frames go back to the parent, which alone knows where they go."""

    def __init__(self, source: Path, kind: str, size: int):
        super().__init__(source, kind)
        self.size = size

    def run(self, task) -> tuple[np.ndarray | None, list]:
        """(name, locator) of one pickle -> (frames [n, h, w] or None, [(reason, path)])."""
        name, locator = task
        try:
            arr = load_array_pickle(self.read(locator))
        except Exception:  # noqa: BLE001 - any failure to unpickle is the same bad input
            return None, [(BAD_PKL, name)]
        if arr.ndim != 3 or arr.dtype != np.uint8 or 0 in arr.shape:
            return None, [(BAD_PKL, name)]
        try:
            return fit_aligned(arr, self.size), []
        except ValueError:  # not aligned windows: far wider than high
            return None, [(BAD_PKL, name)]


@contextmanager
def _results(worker: _Worker, tasks, n_workers: int, numbered: bool):
    """(key, n files, result) for each (key, n files, task) of `tasks`, in their order.

    Several workers are a fork-based pool, forked once OpenCV's thread pool is
    stopped (see gaitflow.parallel). Numbered tasks are handed out in chunks;
    others carry their files or arrive from a stream, so a bounded window of
    them is kept in flight. One worker runs here, OpenCV single-threaded as in
    the pool. On leaving, every worker is done and the worker's maps are
    closed in this process."""
    if n_workers <= 1:
        worker.open()
        try:
            with opencv_serial():
                yield ((key, n, worker.run(task)) for key, n, task in tasks)
        finally:
            worker.close()
        return
    pool = worker_pool(n_workers, worker.start)
    try:
        if numbered:
            listed = list(tasks)
            chunk = max(1, min(16, len(listed) // (8 * n_workers)))
            done = pool.imap(_run, [task for _, _, task in listed], chunksize=chunk)
            yield ((key, n, result) for (key, n, _), result in zip(listed, done))
        else:
            yield _ordered(pool, _run, tasks, window=8 * n_workers)
        pool.close()
        pool.join()
    except BaseException:
        pool.terminate()
        raise


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


# ------------------------------------------------------------------ packing


def _tally(report: Report, bar, n_files: int, bad: list) -> None:
    for reason, name in bad:
        report.skip(reason, name)
    bar.update(n_files)


def _pack_pngs(
    seqs: _Sequences,
    frames_path: Path,
    size: int,
    min_foreground: int,
    min_frames: int,
    n_workers: int,
    report: Report,
    bar,
) -> tuple[list, tuple]:
    """Pretreat every PNG frame into `frames_path` -> (rows of (key, offset, count) by key, frame shape).

    Each sequence is given as many slots as it has files before any is decoded,
    so workers write the frames they keep in place and send back counts only;
    the slots left empty are closed up at the end."""
    slots: dict[SequenceKey, int] = {}  # where each sequence's frames start in the output
    total = 0
    for key in seqs.keys:
        slots[key] = total
        total += len(seqs.groups[key])
    writer = packed.SlotFile(frames_path, total, (size, 2 * (size // 2)))
    numbered = not seqs.streamed
    if numbered:  # the file lists reach the workers with the worker itself, when they fork
        jobs = [(slots[key], seqs.groups[key]) for key in seqs.keys]
        tasks = ((key, len(seqs.groups[key]), number) for number, key in enumerate(seqs.keys))
    else:
        jobs = []
        tasks = ((key, len(files), (slots[key], files)) for key, files in seqs.files())
    worker = _PngWorker(seqs.source, seqs.reader_kind, writer, size, min_foreground, jobs)
    rows: list[tuple[SequenceKey, int, int]] = []
    with _results(worker, tasks, n_workers, numbered) as results:
        for key, n_files, (kept, bad) in results:
            _tally(report, bar, n_files, bad)
            if kept < min_frames:
                report.skip(SHORT_SEQUENCE, "/".join(key))
            else:
                rows.append((key, slots[key], kept))
    rows.sort(key=lambda r: r[1])
    rows = writer.compact(rows)
    rows.sort(key=lambda r: r[0])
    return rows, writer.frame_shape


def _pack_pickles(
    seqs: _Sequences, frames_path: Path, size: int, min_frames: int, n_workers: int, report: Report, bar
) -> tuple[list, tuple | None]:
    """Append every pickled sequence to `frames_path` -> (rows of (key, offset, count) by key, frame shape).

    Sequences are appended as they come back, every one at the target size (fit_aligned)."""
    writer = packed.FrameWriter(frames_path)

    def tasks():
        for key, files in seqs.files():
            for extra, _ in files[1:]:
                report.skip(EXTRA_PKL, extra)
            yield key, len(files), files[0]

    rows: list[tuple[SequenceKey, int, int]] = []
    try:
        worker = _PickleWorker(seqs.source, seqs.reader_kind, size)
        with _results(worker, tasks(), n_workers, numbered=False) as results:
            for key, n_files, (frames, bad) in results:
                _tally(report, bar, n_files, bad)
                if frames is None:
                    continue
                if len(frames) < min_frames:
                    report.skip(SHORT_SEQUENCE, "/".join(key))
                    continue
                rows.append((key, writer.append(frames), len(frames)))
        writer.close()
    except BaseException:
        writer.abort()
        raise
    rows.sort(key=lambda r: r[0])
    return rows, writer.frame_shape


# --------------------------------------------------------------------- main


def _partition_lines(stats: dict | None) -> list[str]:
    """Report lines for what a partition file names that the data lacks, and the reverse."""
    words = {
        "listed_absent": "identities the partition file lists are absent from the data",
        "unassigned": "identities in the data are in no set of the partition file (not used)",
        "probe_set_absent": "PROBE_SET sequences are absent from the data",
        "gallery_set_absent": "GALLERY_SET sequences are absent from the data",
    }
    return [
        f"  partition: {v['count']} {words[k]}: {', '.join(v['first'][:3])}"
        for k, v in (stats or {}).items()
        if v["count"]
    ]


def _pid_alive(pid: int) -> bool:
    """Whether a process with this id runs on this machine (one that has exited but is not yet
    reaped by its parent does not count)."""
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
    except psutil.Error:  # another user's process, which this one may not inspect
        return True


def remove_stale_staging(out: Path) -> list[Path]:
    """Remove what killed runs left beside `out`: staging folders ``<out>.tmp-<pid>`` (and folders
    ``<out>.old-<pid>`` set aside while replacing `out`) whose process no longer runs. A live
    process's folder is left alone: a concurrent run may be writing it. Returns the removed paths."""
    out = Path(out)
    removed = []
    if not out.parent.is_dir():
        return removed
    for path in sorted(out.parent.iterdir()):
        for marker in (".tmp-", ".old-"):
            pid = path.name.removeprefix(out.name + marker)
            if pid != path.name and pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid)):
                archive.remove_path(path)
                removed.append(path)
    return removed


def preprocess(
    source: Path,
    out: Path,
    layout: str,
    size: int = 64,
    min_foreground: int = 10000,
    min_frames: int = 5,
    train_fraction: float = DEFAULT_TRAIN_FRACTION,
    workers: int = 0,
    progress: bool = True,
    split: str = "first",
    partition_file: Path | None = None,
    modality: str | None = None,
) -> dict:
    """Pack a raw dataset at `source` into `out`; returns the report (also written to out/report.json).

    Everything is written to a staging folder beside `out` that replaces it
    only when complete; on any failure the staging folder is removed and an
    earlier `out` is left as it was."""
    from tqdm import tqdm

    source, out = Path(source), Path(out)
    given = partitions.load(partition_file) if partition_file else None  # a bad file stops before any work
    kind = archive.source_kind(source)
    lay = layout if layout in PICKLE_RELEASES else get_layout(layout)
    report = Report()
    start = time.perf_counter()
    seqs = _list_sequences(source, kind, lay, report, modality)

    remove_stale_staging(out)
    tmp = out.with_name(f"{out.name}.tmp-{os.getpid()}")
    archive.remove_path(tmp)
    tmp.mkdir(parents=True)
    frames_path = tmp / packed.FRAMES_FILE
    n_workers = min(resolve_workers(workers), max(1, len(seqs.keys)))
    bar = tqdm(
        total=report.files, unit="frame", unit_scale=True, desc=f"preprocess {source.name}", disable=not progress
    )
    try:
        if seqs.pickles:
            rows, frame_shape = _pack_pickles(seqs, frames_path, size, min_frames, n_workers, report, bar)
        else:
            rows, frame_shape = _pack_pngs(seqs, frames_path, size, min_foreground, min_frames, n_workers, report, bar)
    except BaseException:
        archive.remove_path(tmp)
        raise
    finally:
        bar.close()

    if not rows:
        archive.remove_path(tmp)
        detail = "; ".join(f"{n} x {r}" for r, n in report.skipped.most_common(3))
        raise GaitflowError(f"{source}: no sequence survived preprocessing ({detail})")

    report.sequences_kept = len(rows)
    report.frames_kept = sum(r[2] for r in rows)
    seconds = time.perf_counter() - start
    packed.write_index(tmp / packed.INDEX_FILE, rows)
    subjects = [k.subject for k, _, _ in rows]
    stats = None
    if given is not None:
        names = [partitions.sequence_name(*k) for k, _, _ in rows]
        part, stats = partitions.restrict(given, subjects, names, str(partition_file))
        origin = str(partition_file)
    else:
        part = partitions.by_rule(subjects, split, train_fraction)
        origin = f"rule {split}" + (f" {train_fraction:g}" if split == "first" else "")
    packed.write_json(tmp / packed.PARTITION_FILE, part)
    result = {
        "source": str(source),
        "layout": layout,
        "img_size": size,
        "frame_shape": list(frame_shape),
        "imported_pickles": seqs.pickles,
        **report.as_dict(),
        "partition": {**partitions.summary(part, origin, stats), **({"unmatched": stats} if stats else {})},
        "seconds": round(seconds, 3),
        "frames_per_second": round(report.files / max(seconds, 1e-9), 1),
    }
    packed.write_json(tmp / packed.REPORT_FILE, result)
    archive.replace_path(tmp, out)
    result["summary_lines"] = report.lines() + _partition_lines(stats)
    return result
