"""Property-based tests of every reader of input from outside the project.

Params files and ``--set`` overrides, partition files, archives, PNG frames, pickles,
checkpoints and ``identify``'s gallery and probe folders, each fed random, truncated,
corrupted and hostile input. Whatever the input, the reader either succeeds, or the
command ends non-zero with exactly one line ``gaitflow <command>: error: ...`` (never a
traceback), or (one bad file among many in a dataset) the file is skipped and counted in
the preprocess report. Nothing is written outside the output, nothing half-written is
left at it, and memory stays far below what a hostile file claims.

The CLI is driven in-process (``gaitflow.cli.main``), so an example costs milliseconds;
a subprocess measures the peak memory of the cases that allocate outside Python.
"""

from __future__ import annotations

import contextlib
import gzip
import inspect
import io
import json
import os
import pickle
import shutil
import struct
import subprocess
import sys
import tarfile
import tempfile
import tracemalloc
import zipfile
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml
from conftest import REPO
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gaitflow.cli import main
from gaitflow.data import archive, partition
from gaitflow.data import preprocess as pp
from gaitflow.data.pretreat import decode
from gaitflow.errors import GaitflowError
from gaitflow.opengait import read_checkpoint
from gaitflow.runs import CHECKPOINT, CONFIG, load_checkpoint

FIXTURES = Path(__file__).parent / "fixtures" / "opengait"


def fuzz(examples: int):
    """Deterministic, no example database written into the repository, no deadline (a first call
    imports and warms up)."""
    return settings(
        max_examples=examples,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    )


# ---------------------------------------------------------------- the contract


def cli(args: list[str]) -> tuple[int, str, str]:
    """``gaitflow ARGS`` in this process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main(args)
        except SystemExit as exc:  # argparse refusing the command line
            rc = exc.code
    return rc, out.getvalue(), err.getvalue()


def assert_one_line_or_success(rc: int, err: str, command: str) -> None:
    assert "Traceback" not in err, err
    if rc != 0:
        lines = [line for line in err.splitlines() if line.strip()]
        errors = [line for line in lines if line.startswith(f"gaitflow {command}: error: ")]
        assert len(errors) == 1 and lines[-1] == errors[0], err
        assert len(errors[0]) > len(f"gaitflow {command}: error: ") + 10, err


def snapshot(root: Path, exclude: Path | None = None) -> dict[str, tuple]:
    """Every path under root (but ``exclude`` and what is below it) with its kind, size and mtime."""
    found = {}
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(dirpath) / name
            if exclude is not None and (path == exclude or exclude in path.parents):
                continue
            st_ = path.lstat()
            found[str(path.relative_to(root))] = (st_.st_mode, st_.st_size if not path.is_dir() else 0, st_.st_mtime_ns)
    return found


@contextlib.contextmanager
def workspace():
    """A fresh folder per example; the working directory is set to it (params hold relative paths)."""
    here = os.getcwd()
    with tempfile.TemporaryDirectory(prefix="fuzz-") as tmp:
        os.chdir(tmp)
        try:
            yield Path(tmp)
        finally:
            os.chdir(here)


def run_contained(command: str, args: list[str], root: Path, out: Path) -> tuple[int, str, str]:
    """Run a command that writes ``out``; check the contract, that nothing outside ``out`` changed
    and that a failure leaves nothing at ``out``."""
    before = snapshot(root, out)
    existed = out.exists()
    rc, stdout, err = cli([command, *args])
    assert_one_line_or_success(rc, err, command)
    assert snapshot(root, out) == before, "something was written outside the output"
    if rc != 0 and not existed:
        assert not out.exists(), "a failed run left its output behind"
    return rc, stdout, err


# ---------------------------------------------------------------- inputs

PARAMS_TEXT = (REPO / "params.yaml").read_text()
PARAMS = yaml.safe_load(PARAMS_TEXT)
PRE = ["--set", "preprocess.workers=1", "--set", "preprocess.img_size=32", "--set", "preprocess.min_frames=2"]


def _key_paths(node, prefix=()):
    if isinstance(node, dict):
        for k, v in node.items():
            yield (*prefix, str(k))
            yield from _key_paths(v, (*prefix, str(k)))


KEY_PATHS = sorted(set(_key_paths(PARAMS)))

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=12),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


def walker_png(x: int = 60, h: int = 120, w: int = 160) -> bytes:
    img = np.zeros((h, w), np.uint8)
    cv2.ellipse(img, (x, 60), (12, 40), 0, 0, 360, 255, -1)
    return cv2.imencode(".png", img)[1].tobytes()


GOOD_PNGS = [walker_png(50 + i) for i in range(4)]


def png_header(width: int, height: int, bit_depth: int = 8, idat: bytes | None = None) -> bytes:
    """A PNG whose header claims width x height (grayscale), with the given image data or none."""

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    head = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, bit_depth, 0, 0, 0, 0))
    return head + (chunk(b"IDAT", idat) + chunk(b"IEND", b"") if idat is not None else b"")


def png_bomb(side: int = 20000) -> bytes:
    """A valid 1-bit PNG of side x side black pixels: 48 kB that decode to side * side bytes."""
    row = b"\0" * (1 + (side + 7) // 8)
    comp = zlib.compressobj(9)
    return png_header(side, side, 1, b"".join(comp.compress(row) for _ in range(side)) + comp.flush())


def casia_tree(sequences: int = 3, frames: int = 3) -> dict[str, bytes]:
    """A tiny CASIA-B tree: ``sequences`` identities of one sequence of ``frames`` walker frames."""
    return {
        f"{s:03d}/nm-01/090/{s:03d}-nm-01-090-{f:03d}.png": GOOD_PNGS[f % len(GOOD_PNGS)]
        for s in range(1, sequences + 1)
        for f in range(1, frames + 1)
    }


def write_archive(path: Path, files: dict[str, bytes], kind: str) -> Path:
    if kind == "zip" or kind == "zip-deflated":
        method = zipfile.ZIP_DEFLATED if kind == "zip-deflated" else zipfile.ZIP_STORED
        with zipfile.ZipFile(path, "w", method) as zf:
            for name, data in files.items():
                zf.writestr(name, data)
    elif kind == "folder":
        path.mkdir(parents=True, exist_ok=True)
        for name, data in files.items():
            (path / name).parent.mkdir(parents=True, exist_ok=True)
            (path / name).write_bytes(data)
    else:
        mode = {"tar": "w", "tar.gz": "w:gz", "tar.bz2": "w:bz2", "tar.xz": "w:xz"}[kind]
        with tarfile.open(path, mode) as tf:
            for name, data in files.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
    return path


ARCHIVE_KINDS = ["zip", "zip-deflated", "tar", "tar.gz", "tar.bz2", "tar.xz"]


def _valid_archive(kind: str) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        return write_archive(Path(tmp) / "raw", casia_tree(), kind).read_bytes()


VALID_ARCHIVES = {kind: _valid_archive(kind) for kind in ARCHIVE_KINDS}


def preprocess_cli(root: Path, src: Path, *extra: str) -> tuple[int, str, str]:
    (root / "params.yaml").write_text(PARAMS_TEXT)
    out = root / "packed"
    args = ["--quiet", "--input", str(src), "--out", str(out), *PRE, *extra]
    return run_contained("preprocess", args, root, out)


def skipped(root: Path) -> dict[str, int]:
    report = json.loads((root / "packed" / "report.json").read_text())
    return {reason: v["count"] for reason, v in report["skipped"].items()}


# ============================================================ 1. params files and --set


@fuzz(20)
@given(st.one_of(st.text(max_size=300), st.binary(max_size=300)))
def test_fuzz_params_file_random_text(content):
    with workspace() as root:
        path = root / "p.yaml"
        path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8", "surrogatepass"))
        run_contained("preprocess", ["--params", str(path), "--input", "missing.zip", "--out", "o"], root, root / "o")


@fuzz(20)
@given(
    st.sampled_from(KEY_PATHS),
    st.one_of(json_values, st.just("__delete__"), st.just("__unknown__")),
)
def test_fuzz_params_wrong_types_unknown_and_missing_keys(key_path, value):
    """One key of the repository's params.yaml replaced by a random value, removed, or joined by an
    unknown key: validated (one line naming the key) or, when still valid, read on to the missing input."""
    params = yaml.safe_load(PARAMS_TEXT)
    node = params
    for part in key_path[:-1]:
        node = node[part]
    if value == "__delete__":
        del node[key_path[-1]]
    elif value == "__unknown__":
        node[key_path[-1] + "_x"] = 1 if not isinstance(node.get(key_path[-1]), dict) else {}
    else:
        node[key_path[-1]] = value
    with workspace() as root:
        (root / "params.yaml").write_text(yaml.safe_dump(params))
        rc, _, err = run_contained("preprocess", ["--input", "missing.zip", "--out", "o", *PRE], root, root / "o")
        assert rc != 0  # valid or not, the input is missing


set_keys = st.sampled_from([".".join(k) for k in KEY_PATHS]) | st.text(max_size=20)
set_values = st.text(max_size=30) | json_values.map(lambda v: yaml.safe_dump(v, default_flow_style=True).strip())


@fuzz(8)
@given(st.lists(st.one_of(st.text(max_size=40), st.tuples(set_keys, set_values).map("=".join)), min_size=1, max_size=3))
def test_fuzz_set_overrides(overrides):
    with workspace() as root:
        (root / "params.yaml").write_text(PARAMS_TEXT)
        sets = [a for item in overrides for a in ("--set", item)]
        rc, _, err = run_contained("preprocess", ["--input", "missing.zip", "--out", "o", *sets], root, root / "o")
        assert rc != 0


@pytest.mark.parametrize(
    "content, expected",
    [
        (b"", "expected a mapping of sections at the top level, got NoneType"),
        (b"- 1\n- 2\n", "expected a mapping of sections at the top level, got list"),
        (b"just a string\n", "expected a mapping of sections at the top level, got str"),
        (b"seed: 0\n\xff\xfe\n", "p.yaml: not UTF-8 text (byte 8)"),
        (b"a: " + b"[" * 3000 + b"]" * 3000, "p.yaml: nested too deeply; expected at most 64 levels"),
        (b"a: " + b"[" * 3000, "p.yaml: nested too deeply"),  # the YAML parser itself recurses
        (b"!!python/object/apply:os.system ['touch pwned']\n", "p.yaml: line 1: not valid YAML"),
    ],
)
def test_a_bad_params_document_is_one_line(content, expected, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "p.yaml").write_bytes(content)
    rc, _, err = run_contained(
        "preprocess", ["--params", "p.yaml", "--input", "x", "--out", "o"], tmp_path, tmp_path / "o"
    )
    assert rc == 2 and expected in err, err
    assert not (tmp_path / "pwned").exists()


def test_a_yaml_alias_bomb_is_refused_at_once(tmp_path, monkeypatch):
    """Eight lines of aliases stand for 9**8 values: refused by count, before any validation walks them."""
    import time

    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)]
    lines.append("grid: {datasets: *a8}")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "p.yaml").write_text("\n".join(lines) + "\n" + PARAMS_TEXT.replace("grid:", "grid_:"))
    start = time.perf_counter()
    rc, _, err = cli(["preprocess", "--params", "p.yaml"])
    assert rc == 2 and "p.yaml: more than 200000 values (YAML aliases repeated?)" in err
    assert time.perf_counter() - start < 5


def test_a_deep_set_value_is_one_line(project):
    rc, _, err = cli(["preprocess", "--set", "grid.datasets=" + "[" * 3000 + "]" * 3000])
    assert rc == 2 and "nested too deeply; expected at most 64 levels" in err and "\n" not in err.strip()
    rc, _, err = cli(["preprocess", "--set", "=1"])
    assert rc == 2 and "--set '=1': expected KEY.PATH=VALUE" in err


def test_a_long_bad_value_is_shown_short(project):
    rc, _, err = cli(["preprocess", "--set", "preprocess.img_size=[" + ", ".join(["1"] * 5000) + "]"])
    assert rc == 2 and "preprocess.img_size = [1, 1, 1, 1, 1, 1, 1, 1, ...]: expected integer" in err


# ============================================================ 2. partition files

partition_shapes = st.one_of(
    json_values,
    st.dictionaries(
        st.sampled_from(["TRAIN_SET", "TEST_SET", "PROBE_SET", "GALLERY_SET", "OTHER"]), json_values, max_size=5
    ),
    st.fixed_dictionaries(
        {"TRAIN_SET": st.lists(st.text(max_size=4) | st.integers(0, 9), max_size=4), "TEST_SET": json_values}
    ),
)


@fuzz(12)
@given(st.one_of(st.binary(max_size=200), partition_shapes.map(lambda v: json.dumps(v).encode())))
def test_fuzz_partition_file(content):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "p.json"
        path.write_bytes(content)
        try:
            found = partition.load(path)
        except GaitflowError as exc:
            assert str(path) in str(exc) and "\n" not in str(exc)
            return
        assert {"TRAIN_SET", "TEST_SET"} <= set(found)
        assert all(isinstance(v, list) and all(isinstance(x, str) for x in v) for v in found.values())


@fuzz(8)
@given(st.one_of(st.binary(max_size=100), partition_shapes.map(lambda v: json.dumps(v).encode())))
def test_fuzz_partition_file_through_preprocess(content):
    """preprocess reads the partition file first: a bad one is one line, and nothing is written."""
    with workspace() as root:
        (root / "part.json").write_bytes(content)
        write_archive(root / "raw.zip", casia_tree(), "zip")
        preprocess_cli(root, root / "raw.zip", "--set", "datasets.casiab-syn.partition=part.json")


def test_a_deep_partition_file_is_one_line(tmp_path):
    (tmp_path / "p.json").write_text("[" * 100000)
    with pytest.raises(GaitflowError, match=r"p.json: nested too deeply; expected a partition file"):
        partition.load(tmp_path / "p.json")
    (tmp_path / "p.json").write_text('{"TRAIN_SET": [true], "TEST_SET": []}')
    with pytest.raises(GaitflowError, match="TRAIN_SET is not a list of names"):
        partition.load(tmp_path / "p.json")


# ============================================================ 3. archives


@fuzz(12)
@given(st.sampled_from(ARCHIVE_KINDS), st.binary(max_size=300))
def test_fuzz_archive_random_bytes(kind, content):
    with workspace() as root:
        src = root / f"raw.{kind.split('-')[0]}"
        src.write_bytes(content)
        rc, _, _ = preprocess_cli(root, src)
        assert rc != 0


@fuzz(20)
@given(st.sampled_from(ARCHIVE_KINDS), st.floats(0, 1))
def test_fuzz_archive_truncated(kind, fraction):
    data = VALID_ARCHIVES[kind]
    with workspace() as root:
        src = root / f"raw.{kind.split('-')[0]}"
        src.write_bytes(data[: int(len(data) * fraction)])
        preprocess_cli(root, src)


@fuzz(8)
@given(
    st.sampled_from(ARCHIVE_KINDS), st.lists(st.tuples(st.floats(0, 1), st.integers(0, 255)), min_size=1, max_size=8)
)
def test_fuzz_archive_corrupted_headers_and_directory(kind, flips):
    """Bytes overwritten anywhere, more often in the last 200 (a zip's central directory, a tar's end)."""
    data = bytearray(VALID_ARCHIVES[kind])
    for i, (where, value) in enumerate(flips):
        span = len(data) if i % 2 else min(200, len(data))
        data[len(data) - span + int(where * (span - 1))] = value
    with workspace() as root:
        src = root / f"raw.{kind.split('-')[0]}"
        src.write_bytes(bytes(data))
        preprocess_cli(root, src)


hostile_names = st.lists(
    st.one_of(
        st.sampled_from(
            [
                "../../001/nm-01/090/001-nm-01-090-001.png",
                "/tmp/001/nm-01/090/001-nm-01-090-002.png",
                "/etc/passwd.png",
                "..\\..\\x.png",
                "001/nm-01/090/../../../escape.png",
                "./001/nm-01/090/001-nm-01-090-003.png",
                "001//nm-01///090/001-nm-01-090-004.png",
                "",
                ".png",
                "a" * 300 + ".png",
            ]
        ),
        st.text(st.characters(blacklist_categories=["Cs"]), min_size=1, max_size=30).map(lambda s: s + ".png"),
    ),
    max_size=5,
)


@fuzz(12)
@given(st.sampled_from(["zip", "tar", "tar.gz"]), hostile_names, st.booleans())
def test_fuzz_member_names_write_nothing_outside(kind, names, links):
    """Names with '..', absolute paths, odd characters; symlink and hard-link members (tar): nothing is
    extracted, so nothing lands anywhere but the output, and a link is never followed."""
    files = {**casia_tree(2), **{name: GOOD_PNGS[0] for name in names if name}}
    with workspace() as root:
        src = root / f"raw.{kind}"
        if kind == "zip":
            write_archive(src, files, "zip")
        else:
            with tarfile.open(src, "w:gz" if kind == "tar.gz" else "w") as tf:
                for name, data in files.items():
                    info = tarfile.TarInfo(name)
                    info.size = len(data)
                    tf.addfile(info, io.BytesIO(data))
                if links:
                    for i, (link_type, target) in enumerate(
                        [
                            (tarfile.SYMTYPE, "/etc/passwd"),
                            (tarfile.LNKTYPE, "../../../outside"),
                            (tarfile.SYMTYPE, ".."),
                        ]
                    ):
                        info = tarfile.TarInfo(f"003/nm-01/090/003-nm-01-090-{i:03d}.png")
                        info.type, info.linkname = link_type, target
                        tf.addfile(info)
        rc, _, _ = preprocess_cli(root, src)
        assert rc == 0  # the two good sequences are there whatever else is
        assert not (root.parent / "outside").exists() and not (Path("/tmp") / "001").exists()


def _peak(fn) -> int:
    """Peak Python-allocated bytes while fn runs."""
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _zip_with_sizes(path: Path, name: str, data: bytes, usize: int, method=zipfile.ZIP_DEFLATED) -> None:
    """A zip of one member whose headers declare ``usize`` bytes (whatever ``data`` inflates to)."""
    with zipfile.ZipFile(path, "w", method) as zf:
        zf.writestr(name, data)
    raw = bytearray(path.read_bytes())
    for sig, at in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        pos = raw.find(sig)
        raw[pos + at : pos + at + 4] = struct.pack("<L", usize)
    path.write_bytes(bytes(raw))


NAME = "003/nm-01/090/003-nm-01-090-001.png"


@pytest.mark.parametrize("declared", [0xFFFFFFFE, 100])
def test_a_zip_bomb_is_refused_by_its_declared_size(tmp_path, monkeypatch, declared):
    """A member declaring 4 GiB is refused unread; one declaring 100 bytes is never inflated past them."""
    monkeypatch.chdir(tmp_path)
    bomb = tmp_path / "raw.zip"
    _zip_with_sizes(bomb, NAME, b"\0" * (64 << 20), declared)  # 64 MiB of zeros, 64 kB deflated
    with zipfile.ZipFile(bomb, "a") as zf:
        for name, data in casia_tree(2).items():
            zf.writestr(name, data)
    peak = _peak(lambda: preprocess_cli(tmp_path, bomb))
    assert peak < 16 << 20, peak
    assert skipped(tmp_path).get(pp.BAD_PNG) == 1
    reader = archive.RandomAccessReader(bomb, "zip")
    loc = next(loc for name, loc in archive.list_members(bomb, "zip", ".png") if loc[3] == declared)
    with pytest.raises(ValueError, match="declares 4294967294 bytes|inflates to other than its declared 100"):
        reader.read(loc)
    reader.close()


def test_a_tar_member_claiming_a_terabyte_costs_no_memory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for kind in ("tar", "tar.gz"):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tf:
            for name, data in casia_tree(2).items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
            info = tarfile.TarInfo("003/nm-01/090/003-nm-01-090-001.png")
            info.size = 1 << 40
            tf.addfile(info)  # the header only: the data that would follow is missing
        raw = buf.getvalue()
        src = tmp_path / f"raw.{kind}"
        src.write_bytes(raw if kind == "tar" else gzip.compress(raw))
        peak = _peak(lambda src=src: preprocess_cli(tmp_path, src))
        assert peak < 16 << 20, (kind, peak)
        shutil.rmtree(tmp_path / "packed", ignore_errors=True)


def test_a_compressed_tar_member_past_the_limit_is_not_read(tmp_path, monkeypatch):
    monkeypatch.setattr(archive, "MAX_MEMBER_BYTES", 1 << 20)
    files = {**casia_tree(2), "003/nm-01/090/003-nm-01-090-001.png": b"\0" * (4 << 20)}
    src = write_archive(tmp_path / "raw.tar.gz", files, "tar.gz")
    found = dict(archive.stream_tar(src, ".png"))
    assert found["003/nm-01/090/003-nm-01-090-001.png"] == b""
    assert _peak(lambda: list(archive.stream_tar(src, ".png"))) < 2 << 20


def test_a_damaged_zip_member_is_counted_not_a_traceback(tmp_path, monkeypatch):
    """Deflate data overwritten and a local header offset past the end: each member skipped and counted."""
    monkeypatch.chdir(tmp_path)
    src = write_archive(tmp_path / "raw.zip", casia_tree(3), "zip-deflated")
    data = bytearray(src.read_bytes())
    first = data.find(b"PK\x03\x04")
    data[first + 60 : first + 200] = b"\xff" * 140  # inside the first member's deflate stream
    src.write_bytes(bytes(data))
    rc, _, err = preprocess_cli(tmp_path, src)
    assert rc == 0 and skipped(tmp_path) == {pp.BAD_PNG: 1}
    reader = archive.RandomAccessReader(src, "zip")
    with pytest.raises(ValueError, match="past the end"):
        reader.read((10**9, 10, zipfile.ZIP_STORED, 10))
    reader.close()


# ============================================================ 4. PNG frames

bad_frames = st.one_of(
    st.binary(max_size=100),
    st.just(b""),
    st.builds(lambda f: GOOD_PNGS[0][: int(len(GOOD_PNGS[0]) * f)], st.floats(0, 0.95)),
    st.builds(png_header, st.integers(0, 2**31 - 1), st.integers(0, 2**31 - 1)),
    st.just(png_header(100000, 100000)),
    st.just(cv2.imencode(".jpg", np.full((120, 160), 255, np.uint8))[1].tobytes()),  # not a PNG, named .png
    st.just(b"\x89PNG\r\n\x1a\n" + np.random.default_rng(0).bytes(40)),
)


@fuzz(12)
@given(bad_frames)
def test_fuzz_decode_bad_png_bytes(data):
    img = decode(data)
    assert img is None or (img.dtype == np.uint8 and img.ndim == 2)


@fuzz(12)
@given(st.lists(bad_frames, min_size=1, max_size=4), st.sampled_from(["zip", "tar", "tar.gz", "folder"]))
def test_fuzz_bad_frames_are_skipped_and_counted(frames, kind):
    """Bad frames among good sequences: every one counted as an unreadable PNG (none of them decodes);
    the good sequences packed."""
    files = casia_tree(3)
    for i, data in enumerate(frames):
        files[f"004/nm-01/090/004-nm-01-090-{i + 1:03d}.png"] = data
    with workspace() as root:
        src = root / ("raw" if kind == "folder" else f"raw.{kind}")
        write_archive(src, files, kind)
        rc, out, _ = preprocess_cli(root, src)
        assert rc == 0
        counts = skipped(root)
        assert counts[pp.BAD_PNG] == len(frames) and counts[pp.SHORT_SEQUENCE] == 1
        assert f"skipped {len(frames)} x {pp.BAD_PNG}" in out


def test_a_png_claiming_huge_dimensions_is_refused_by_its_header():
    assert decode(png_header(100000, 100000)) is None
    assert decode(png_header(30000, 30000, idat=b"")) is None
    assert decode(png_bomb(5000)) is None  # 25 M pixels, more than MAX_FRAME_PIXELS: not decoded
    assert decode(walker_png()) is not None


# ============================================================ 5. pickles


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _numpy_reduce(shape):
    """A pickle whose _reconstruct names ``shape`` but holds three bytes of data."""

    class Claim:
        def __reduce__(self):
            return (
                np._core.multiarray._reconstruct,
                (np.ndarray, (0,), b"b"),
                (1, shape, np.dtype("uint8"), False, b"abc"),
            )

    return pickle.dumps(Claim())


def _ndarray_called(shape):
    """A pickle that calls numpy.ndarray(shape) itself: it would allocate the whole shape."""

    class Call:
        def __reduce__(self):
            return (np.ndarray, (shape, "u1"))

    return pickle.dumps(Call(), protocol=2)


def _reconstruct_huge(shape):
    class Call:
        def __reduce__(self):
            return (np._core.multiarray._reconstruct, (np.ndarray, shape, b"b"))

    return pickle.dumps(Call())


arrays = st.builds(
    lambda shape, dtype, seed: np.random.default_rng(seed).integers(0, 255, shape).astype(dtype),
    st.lists(st.integers(0, 6), min_size=0, max_size=4).map(tuple),
    st.sampled_from([np.uint8, np.int64, np.float32, np.bool_, np.uint16]),
    st.integers(0, 9),
)
pickle_objects = st.one_of(
    json_values, arrays, st.lists(arrays, max_size=2), st.dictionaries(st.text(max_size=3), arrays)
)


@fuzz(12)
@given(
    st.one_of(
        st.binary(max_size=200),
        st.tuples(pickle_objects, st.integers(0, 5)).map(lambda t: pickle.dumps(t[0], protocol=t[1])),
        st.tuples(arrays, st.integers(0, 5), st.lists(st.tuples(st.floats(0, 1), st.integers(0, 255)), max_size=3)).map(
            lambda t: _flip(pickle.dumps(t[0], protocol=t[1]), t[2])
        ),
        st.sampled_from(
            [
                b"\x80\x04B" + struct.pack("<I", 2**31),  # BINBYTES claiming 2 GiB
                b"\x80\x04\x8e" + struct.pack("<Q", 2**40),  # BINBYTES8 claiming 1 TiB
                b"\x80\x04\x96" + struct.pack("<Q", 2**40),  # BYTEARRAY8
                b"\x80\x04\x8d" + struct.pack("<Q", 2**40),  # BINUNICODE8
                _numpy_reduce((100000, 100000, 100000)),
                _ndarray_called((10**5, 10**5, 10**4)),
                _reconstruct_huge((10**5, 10**5, 10**4)),
            ]
        ),
    )
)
def test_fuzz_array_pickles(data):
    """An ndarray, or refused; never more memory than a small multiple of the pickle's size."""
    found = []

    def load():
        try:
            found.append(pp.load_array_pickle(data))
        except Exception:  # noqa: BLE001 - the workers count any failure as one bad pickle
            pass

    assert _peak(load) < 20 * len(data) + (1 << 20)
    assert not found or isinstance(found[0], np.ndarray)


def _flip(data: bytes, flips) -> bytes:
    out = bytearray(data)
    for where, value in flips:
        out[int(where * (len(out) - 1))] = value
    return bytes(out)


def test_pickles_that_would_run_code_or_allocate_are_refused(tmp_path):
    marker = tmp_path / "pwned"
    for data in (pickle.dumps(_Evil(marker), protocol=p) for p in range(6)):
        with pytest.raises(pickle.UnpicklingError, match="posix.system is not allowed|os.system is not allowed"):
            pp.load_array_pickle(data)
    assert not marker.exists()
    for data in (_ndarray_called((10**5, 10**5, 10**4)), _reconstruct_huge((10**5, 10**5, 10**4))):
        assert (
            _peak(lambda data=data: pytest.raises((TypeError, pickle.UnpicklingError), pp.load_array_pickle, data))
            < 1 << 20
        )
    with pytest.raises(ValueError, match="buffer size does not match"):
        pp.load_array_pickle(_numpy_reduce((100000, 100000, 100000)))
    for protocol in range(3, 6):  # what numpy itself writes still loads (0-2 need _codecs: refused)
        arr = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
        assert np.array_equal(pp.load_array_pickle(pickle.dumps(arr, protocol=protocol)), arr)


def _pickle_tree(bad: dict[str, bytes], layout: str) -> dict[str, bytes]:
    good = pickle.dumps(np.full((6, 64, 64), 255, np.uint8) * (np.arange(64) % 7 < 3)[None, None, :].astype(np.uint8))
    if layout == "sustech1k":
        from gaitflow.data.layouts import sustech1k_file_name

        name = sustech1k_file_name("000")
        files = {f"{s:04d}/00-nm/000/{name}": good for s in (1, 2)}
        files.update({f"{s:04d}/00-nm/000/{name}": data for s, data in zip(range(3, 10), bad.values())})
        return files
    files = {f"{s:03d}/nm-01/000/000.pkl": good for s in (1, 2)}
    files.update({f"{s:03d}/nm-01/000/000.pkl": data for s, data in zip(range(3, 10), bad.values())})
    return files


@fuzz(8)
@given(
    st.lists(
        st.one_of(
            st.binary(max_size=80),
            pickle_objects.map(pickle.dumps),
            st.just(_ndarray_called((10**5, 10**5, 10**4))),
            st.just(pickle.dumps(np.zeros((3, 1, 40000), np.uint8))),  # far wider than high: not aligned
        ),
        min_size=1,
        max_size=4,
    ),
    st.sampled_from(["casia-b", "sustech1k"]),
    st.sampled_from(["folder", "zip", "tar.gz"]),
)
def test_fuzz_pickle_trees_skip_and_count_bad_pickles(bad, layout, kind):
    """OpenGait's pickle trees and the SUSTech1K release: every bad pickle is skipped and counted."""
    files = _pickle_tree({str(i): b for i, b in enumerate(bad)}, layout)
    with workspace() as root:
        src = root / ("raw" if kind == "folder" else f"raw.{kind}")
        write_archive(src, files, kind)
        rc, _, _ = preprocess_cli(root, src, "--layout", layout)
        assert rc == 0
        counts = skipped(root)
        kept = json.loads((root / "packed" / "report.json").read_text())["sequences_kept"]
        # a random pickle may be an array of aligned frames: then it is a sequence like the good ones
        assert counts.get(pp.BAD_PKL, 0) + counts.get(pp.SHORT_SEQUENCE, 0) + kept - 2 == len(bad)


def test_a_pickle_tree_that_would_run_code_runs_none(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    marker = tmp_path / "pwned"
    for layout in ("casia-b", "sustech1k"):
        files = _pickle_tree({"evil": pickle.dumps(_Evil(marker))}, layout)
        src = write_archive(tmp_path / f"{layout}.zip", files, "zip")
        rc, _, _ = preprocess_cli(tmp_path, src, "--layout", layout)
        assert rc == 0 and skipped(tmp_path) == {pp.BAD_PKL: 1}
        assert not marker.exists()


# ============================================================ 6. checkpoints


def _torch_bytes(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


tensors = st.builds(
    lambda shape, seed: torch.from_numpy(np.random.default_rng(seed).standard_normal(shape).astype(np.float32)),
    st.lists(st.integers(0, 4), max_size=4).map(tuple),
    st.integers(0, 9),
)
checkpoint_objects = st.one_of(
    tensors,
    json_values,
    st.dictionaries(st.sampled_from(["model", "iteration", "optimizer", "x"]), st.one_of(json_values, tensors)),
    st.fixed_dictionaries(
        {"model": st.dictionaries(st.text(max_size=8), tensors | json_values, max_size=3), "iteration": json_values}
    ),
)
GAITSET = (FIXTURES / "gaitset.pt").read_bytes()
checkpoint_bytes = st.one_of(
    st.binary(max_size=200),
    checkpoint_objects.map(_torch_bytes),
    st.builds(lambda f: GAITSET[: int(len(GAITSET) * f)], st.floats(0, 1)),
    st.lists(st.tuples(st.floats(0, 1), st.integers(0, 255)), min_size=1, max_size=4).map(
        lambda fl: _flip(GAITSET, fl)
    ),
)


@fuzz(12)
@given(checkpoint_bytes)
def test_fuzz_checkpoint_readers(data):
    """load_checkpoint (evaluate, identify, export, train --init-from) and read_checkpoint
    (import-checkpoint): a checkpoint of the expected shape, or one line naming the file."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "c.pt"
        path.write_bytes(data)
        for reader in (load_checkpoint, read_checkpoint):
            try:
                ckpt = reader(path)
            except GaitflowError as exc:
                assert str(path) in str(exc) and "\n" not in str(exc)
                continue
            assert isinstance(ckpt, dict) and all(isinstance(v, torch.Tensor) for v in ckpt["model"].values())


def _reshaped(state: dict, picks, shapes) -> dict:
    state = dict(state)
    keys = sorted(state)
    for pick, shape in zip(picks, shapes):
        key = keys[int(pick * (len(keys) - 1))]
        if shape is None:
            state.pop(key, None)
        else:
            state[key] = torch.zeros(shape)
    return state


@fuzz(20)
@given(
    st.sampled_from(["gaitset", "gaitpart", "gaitgl-casiab", "gln-phase2", "deepgaitv2-2d"]),
    st.sampled_from(["gaitset", "gaitpart", "gaitgl", "gln", "deepgaitv2"]),
    st.lists(st.floats(0, 1), min_size=1, max_size=3),
    st.lists(st.none() | st.lists(st.integers(0, 3), max_size=5).map(tuple), min_size=1, max_size=3),
)
def test_fuzz_import_checkpoint_wrong_keys_and_shapes(fixture, backbone, picks, shapes):
    ckpt = torch.load(FIXTURES / f"{fixture}.pt", weights_only=True)
    ckpt["model"] = _reshaped(ckpt["model"], picks, shapes)
    with workspace() as root:
        (root / "params.yaml").write_text(PARAMS_TEXT)
        torch.save(ckpt, root / "c.pt")
        out = root / "imported"
        run_contained(
            "import-checkpoint", ["--checkpoint", "c.pt", "--backbone", backbone, "--out", str(out)], root, out
        )


@pytest.fixture(scope="module")
def gei_run(tmp_path_factory):
    """A run folder of the weightless GEI backbone (as test_identify's) and a gallery of two identities."""
    root = tmp_path_factory.mktemp("gei")
    config = {
        "dataset": "casiab-syn",
        "backbone": "gei",
        "recipe": "none",
        "train": PARAMS["train"],
        "backbone_params": {},
        "preprocess": {**PARAMS["preprocess"], "img_size": 32},
        "subjects": ["001", "002"],
        "frame_shape": [32, 22],
    }
    (root / "run").mkdir()
    (root / "run" / CONFIG).write_text(yaml.safe_dump(config))
    torch.save({"model": {}, "iteration": 0}, root / "run" / CHECKPOINT)
    write_archive(root / "gallery", casia_tree(2), "folder")
    write_archive(root / "probe", {f"{i}.png": p for i, p in enumerate(GOOD_PNGS)}, "folder")
    return root


@pytest.fixture(scope="module")
def gaitset_run(tmp_path_factory):
    """A gaitset run folder (random weights at width 0.25) at 32 x 22."""
    from gaitflow.runs import build_model

    root = tmp_path_factory.mktemp("gaitset")
    train = {**PARAMS["train"], "width": 0.25}
    config = {
        "dataset": "casiab-syn",
        "backbone": "gaitset",
        "recipe": "triplet",
        "train": train,
        "backbone_params": PARAMS["backbones"]["gaitset"],
        "preprocess": {**PARAMS["preprocess"], "img_size": 32},
        "subjects": ["001", "002"],
        "frame_shape": [32, 22],
    }
    model = build_model(config, (32, 22), 2)
    (root / CONFIG).write_text(yaml.safe_dump(config))
    return root, model.state_dict()


@fuzz(12)
@given(
    st.one_of(
        checkpoint_bytes,
        st.tuples(
            st.lists(st.floats(0, 1), min_size=1, max_size=2),
            st.lists(st.none() | st.lists(st.integers(0, 3), max_size=4).map(tuple), min_size=1, max_size=2),
        ),
    )
)
def test_fuzz_a_runs_checkpoint_through_identify(gaitset_run, gei_run, case):
    """identify (as evaluate and export) loads a run's checkpoint first: any checkpoint gives a ranking
    or one line naming it."""
    config_dir, state = gaitset_run
    with workspace() as root:
        run = root / "run"
        shutil.copytree(config_dir, run)
        if isinstance(case, bytes):
            (run / CHECKPOINT).write_bytes(case)
        else:
            torch.save({"model": _reshaped(state, *case), "iteration": 3}, run / CHECKPOINT)
        args = ["--run", str(run), "--gallery", str(gei_run / "gallery"), "--probe", str(gei_run / "probe")]
        run_contained("identify", args, root, root / "none")


def test_checkpoints_that_would_run_code_are_refused_unrun(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    marker = tmp_path / "pwned"
    raw = pickle.dumps({"model": _Evil(marker), "iteration": 0}, protocol=2)
    buf = io.BytesIO()
    torch.save({"model": {}, "iteration": 0}, buf)
    with zipfile.ZipFile(buf) as z:  # the same payload as the data.pkl of a zip checkpoint
        members = {i.filename: z.read(i.filename) for i in z.infolist()}
    with zipfile.ZipFile(tmp_path / "zipped.pt", "w") as z:
        for name, data in members.items():
            z.writestr(name, raw if name.endswith("data.pkl") else data)
    (tmp_path / "raw.pt").write_bytes(raw)
    for name in ("raw.pt", "zipped.pt"):
        for reader in (load_checkpoint, read_checkpoint):
            with pytest.raises(GaitflowError, match=name):
                reader(tmp_path / name)
    assert not marker.exists()


def test_a_run_checkpoint_of_the_wrong_shape_is_one_line(gaitset_run, gei_run, tmp_path):
    config_dir, state = gaitset_run
    run = tmp_path / "run"
    shutil.copytree(config_dir, run)
    args = ["identify", "--run", str(run), "--gallery", str(gei_run / "gallery"), "--probe", str(gei_run / "probe")]
    for ckpt, expected in [
        (torch.zeros(3), "not a gaitflow checkpoint (expected a dict with 'model'"),
        ([1, 2], "not a gaitflow checkpoint"),
        ({"model": state}, "found dict keys model"),  # no iteration
        ({"model": state, "iteration": "ten"}, "'iteration', an integer"),
        ({"model": [1], "iteration": 1}, "not a gaitflow checkpoint"),
        ({"model": {"x": 1}, "iteration": 1}, "tensors by name"),
        ({"model": {}, "iteration": 1}, "its weights do not fit gaitset"),
    ]:
        torch.save(ckpt, run / CHECKPOINT)
        rc, _, err = cli(args)
        assert rc == 2 and expected in err and err.count("\n") == 1, err


@pytest.mark.parametrize(
    "change, expected",
    [
        ({"set_block1.forward_block.0.conv.weight": torch.zeros(0, 1, 5, 5)}, "its tensors' shapes are not"),
        ({"Head.fc_bin": torch.zeros(3)}, "its tensors' shapes are not an OpenGait gaitset's (IndexError"),
    ],
)
def test_an_opengait_checkpoint_of_degenerate_shapes_is_one_line(tmp_path, monkeypatch, change, expected):
    """A first convolution of no channels (width 0: a division by zero), a head of one dimension."""
    monkeypatch.chdir(tmp_path)
    ckpt = torch.load(FIXTURES / "gaitset.pt", weights_only=True)
    ckpt["model"].update(change)
    torch.save(ckpt, tmp_path / "c.pt")
    (tmp_path / "params.yaml").write_text(PARAMS_TEXT)
    rc, _, err = cli(["import-checkpoint", "--checkpoint", "c.pt", "--backbone", "gaitset", "--out", "o"])
    assert rc == 2 and expected in err and err.count("\n") == 1, err
    assert not (tmp_path / "o").exists()


# ============================================================ 7. identify's gallery and probes

tree_entries = st.dictionaries(
    st.lists(st.sampled_from(["001", "002", "nm-01", "a", "x.png", "090", "..", "q"]), min_size=1, max_size=4).map(
        lambda parts: "/".join(p for p in parts if p != "..") or "z"
    ),
    st.sampled_from(["good", "random", "empty", "dir", "broken-link", "jpeg"]),
    max_size=6,
)


def _write_tree(root: Path, entries: dict[str, str]) -> None:
    root.mkdir(parents=True, exist_ok=True)
    for i, (name, what) in enumerate(sorted(entries.items())):
        path = root / (name if name.endswith(".png") else f"{name}/{i:03d}.png")
        if any(p.is_symlink() or (p.exists() and not p.is_dir()) for p in path.parents):
            continue  # a file already where a folder would go
        if path.exists() or path.is_symlink():
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        if what == "dir":
            path.mkdir()
        elif what == "broken-link":
            path.symlink_to(root / "nowhere.png")
        else:
            path.write_bytes(
                {"good": GOOD_PNGS[i % 4], "random": bytes(range(i, i + 30)), "empty": b"", "jpeg": b"\xff\xd8\xff"}[
                    what
                ]
            )


@fuzz(20)
@given(tree_entries, tree_entries, st.sampled_from(["folder", "zip", "tar.gz"]))
def test_fuzz_identify_gallery_and_probe_folders(gei_run, gallery_tree, probe_tree, kind):
    """Empty folders, random names, non-PNG and unreadable frames (folders named .png, broken links),
    mixed layouts: a ranking, a warning per unusable probe, or one line."""
    with workspace() as root:
        _write_tree(root / "g", gallery_tree)
        _write_tree(root / "p", probe_tree)
        gallery = root / "g"
        if kind != "folder":
            files = {
                str(p.relative_to(gallery)): p.read_bytes()
                for p in gallery.rglob("*")
                if p.is_file() and not p.is_symlink()
            }
            gallery = write_archive(root / f"g.{kind}", files, kind)
        args = ["--run", str(gei_run / "run"), "--gallery", str(gallery), "--probe", str(root / "p")]
        rc, out, err = run_contained("identify", [*args, "--out", str(root / "ranks.csv")], root, root / "ranks.csv")
        warnings = [line for line in err.splitlines() if "warning" in line]
        assert all(line.startswith("gaitflow identify: warning: probe ") for line in warnings)


def test_a_folder_or_a_broken_link_named_png_in_a_probe_is_skipped(gei_run, tmp_path):
    probe = tmp_path / "probe"
    shutil.copytree(gei_run / "probe", probe)
    (probe / "folder.png").mkdir()
    (probe / "link.png").symlink_to(tmp_path / "missing.png")
    (probe / "random.png").write_bytes(b"\x89PNG\r\n\x1a\nrandom")
    rc, out, err = cli(
        ["identify", "--run", str(gei_run / "run"), "--gallery", str(gei_run / "gallery"), "--probe", str(probe)]
    )
    assert rc == 0 and err == "" and f"{probe}: 1. " in out


# ============================================================ memory outside Python

MEMORY_SCRIPT = r"""
import io, resource, struct, sys, zlib
import numpy as np, torch
from gaitflow.data.pretreat import decode, pretreat
from gaitflow.errors import GaitflowError
from gaitflow.runs import load_checkpoint

def rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024

base = rss_mb()
assert decode(png_bomb(20000)) is None  # 48 kB claiming 400 M pixels
flat = np.zeros((1, 65535), np.uint8); flat[0, :] = 255
frame, reason = pretreat(flat, 64, 0)  # one row across a wide frame: would resize to 64 x 4 M
assert frame is None and reason.startswith("degenerate"), reason
buf = io.BytesIO()
torch.save({"model": {"w": torch.zeros(4)}, "iteration": 1}, buf, _use_new_zipfile_serialization=False)
data = buf.getvalue()
at = data.index(b"K\x04N", data.index(b"FloatStorage"))
legacy = data[:at] + b"J\xff\xff\xff\x7fN" + data[at + 3 :]  # a storage claiming 8 GiB
open(sys.argv[2], "wb").write(legacy)
try:
    load_checkpoint(sys.argv[2])
    raise SystemExit("loaded")
except GaitflowError:
    pass
print(rss_mb() - base)
"""


def test_native_memory_stays_bounded_on_bombs(tmp_path):
    """PNG, pretreatment and checkpoint bombs allocate in C: the peak RSS of a process that meets them."""
    _helpers = "import struct, zlib\n" + inspect.getsource(png_header) + inspect.getsource(png_bomb)
    run = subprocess.run(
        [sys.executable, "-c", _helpers + MEMORY_SCRIPT, "", str(tmp_path / "c.pt")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert int(run.stdout.split()[-1]) < 200  # MB; the claims are 400 MB, 268 MB and 8 GiB
