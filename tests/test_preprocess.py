"""Raw silhouettes -> packed dataset: every source kind, bad input skipped and counted, atomic output."""

import io
import json
import pickle
import tarfile
import zipfile

import cv2
import numpy as np
import pytest

from gaitflow.data import packed
from gaitflow.data import preprocess as pp
from gaitflow.data.dataset import PackedDataset
from gaitflow.data.partition import by_rule
from gaitflow.errors import GaitflowError


def _png(img):
    return cv2.imencode(".png", img)[1].tobytes()


def _walker(h=120, w=160, x=60, y=20, tall=80):
    img = np.zeros((h, w), np.uint8)
    cv2.ellipse(img, (x, y + tall // 2), (12, tall // 2), 0, 0, 360, 255, -1)
    return img


def _write_zip(path, files):
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)


def _good_sequence(prefix, n=6):
    return {f"{prefix}/{prefix.replace('/', '-')}-{i:03d}.png": _png(_walker(x=50 + i)) for i in range(1, n + 1)}


def test_every_bad_input_is_skipped_and_counted(tmp_path):
    files = {}
    files.update(_good_sequence("001/nm-01/090"))
    files.update(_good_sequence("002/nm-01/090"))
    seq = _good_sequence("003/nm-01/090")
    names = sorted(seq)
    seq[names[0]] = b"\x89PNG\r\n\x1a\n not really"  # corrupt PNG
    seq[names[1]] = seq[names[1]][:40]  # truncated PNG
    seq[names[2]] = _png(np.zeros((120, 160), np.uint8))  # empty frame
    files.update(seq)  # 3 valid frames left: too few
    files["004/zz-01/090/004-zz-01-090-001.png"] = _png(_walker())  # does not fit the layout
    src = tmp_path / "raw.zip"
    _write_zip(src, files)
    out = tmp_path / "packed"
    report = pp.preprocess(src, out, "casia-b", size=32, min_frames=5, workers=1, progress=False)
    skipped = {k: v["count"] for k, v in report["skipped"].items()}
    assert skipped == {pp.BAD_PNG: 2, "empty frame (too little foreground)": 1, pp.SHORT_SEQUENCE: 1, pp.BAD_PATH: 1}
    assert report["skipped"][pp.BAD_PATH]["first"] == ["004/zz-01/090/004-zz-01-090-001.png"]
    assert report["sequences_kept"] == 2 and report["frames_kept"] == 12
    on_disk = json.loads((out / packed.REPORT_FILE).read_text())
    assert on_disk["skipped"] == report["skipped"]
    ds = PackedDataset(out)
    assert sorted(ds.subjects) == ["001", "002"]


def test_sources_folder_zip_tar_targz_give_identical_packs(tiny_archive, tmp_path):
    with zipfile.ZipFile(tiny_archive) as zf:
        zf.extractall(tmp_path / "folder")
        names = zf.namelist()[:300]
        data = {n: zf.read(n) for n in names}
    for mode, suffix in (("w", ".tar"), ("w:gz", ".tar.gz")):
        with tarfile.open(tmp_path / f"raw{suffix}", mode) as tf:
            for n in names:
                info = tarfile.TarInfo(n)
                info.size = len(data[n])
                tf.addfile(info, io.BytesIO(data[n]))
    _write_zip(tmp_path / "sub.zip", data)
    outs = {}
    for src in ("sub.zip", "raw.tar", "raw.tar.gz"):
        outs[src] = tmp_path / f"out-{src}"
        pp.preprocess(tmp_path / src, outs[src], "casia-b", size=32, workers=2, progress=False)
    ref = (outs["sub.zip"] / packed.FRAMES_FILE).read_bytes()
    for src in ("raw.tar", "raw.tar.gz"):
        assert (outs[src] / packed.FRAMES_FILE).read_bytes() == ref
        assert (outs[src] / packed.INDEX_FILE).read_text() == (outs["sub.zip"] / packed.INDEX_FILE).read_text()
    whole_zip, whole_dir = tmp_path / "zip-all", tmp_path / "dir-all"
    pp.preprocess(tiny_archive, whole_zip, "casia-b", size=32, workers=1, progress=False)
    pp.preprocess(tmp_path / "folder", whole_dir, "casia-b", size=32, workers=2, progress=False)
    assert (whole_zip / packed.FRAMES_FILE).read_bytes() == (whole_dir / packed.FRAMES_FILE).read_bytes()


@pytest.mark.parametrize("where", ["mid-run", "while compacting"])
def test_interrupted_run_leaves_nothing_that_looks_complete(tiny_archive, tmp_path, monkeypatch, where):
    out = tmp_path / "packed"
    pp.preprocess(tiny_archive, out, "casia-b", size=32, workers=1, progress=False)
    before = (out / packed.FRAMES_FILE).read_bytes()
    calls = []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) > 10 or where == "while compacting":
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    target = (pp, "pretreat") if where == "mid-run" else (packed.SlotFile, "compact")
    real = getattr(*target)
    monkeypatch.setattr(*target, interrupted)
    with pytest.raises(KeyboardInterrupt):
        pp.preprocess(tiny_archive, out, "casia-b", size=64, workers=1, progress=False)
    assert calls
    assert (out / packed.FRAMES_FILE).read_bytes() == before  # the earlier result is intact
    assert [p.name for p in tmp_path.iterdir()] == ["packed"]  # no temporary folder left


def test_pickle_import_accepts_arrays_and_refuses_code(tmp_path):
    tree = tmp_path / "pkl"
    for sid in ("001", "002"):
        d = tree / sid / "nm-01" / "000"
        d.mkdir(parents=True)
        (d / "000.pkl").write_bytes(pickle.dumps(np.full((7, 64, 64), int(sid), np.uint8)))

    class Evil:
        def __reduce__(self):
            import os

            return (os.system, ("touch " + str(tmp_path / "pwned"),))

    bad = tree / "003" / "nm-01" / "000"
    bad.mkdir(parents=True)
    (bad / "000.pkl").write_bytes(pickle.dumps(Evil()))
    report = pp.preprocess(tree, tmp_path / "out", "casia-b", workers=1, progress=False)
    assert not (tmp_path / "pwned").exists()
    assert report["imported_pickles"] is True
    assert report["skipped"][pp.BAD_PKL]["count"] == 1
    ds = PackedDataset(tmp_path / "out")
    assert len(ds) == 2 and ds.sequence(1).min() == 2
    with pytest.raises(pickle.UnpicklingError):
        pp.load_array_pickle(pickle.dumps({"a": 1}))


def test_missing_or_unsuitable_source_is_one_clear_error(tmp_path):
    with pytest.raises(GaitflowError, match="not found"):
        pp.preprocess(tmp_path / "nothing.zip", tmp_path / "o", "casia-b", progress=False)
    (tmp_path / "junk.zip").write_bytes(b"not an archive at all")
    with pytest.raises(GaitflowError, match="not a readable folder, zip or tar"):
        pp.preprocess(tmp_path / "junk.zip", tmp_path / "o", "casia-b", progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(GaitflowError, match="no .png"):
        pp.preprocess(tmp_path / "empty", tmp_path / "o", "casia-b", progress=False)
    assert not (tmp_path / "o").exists()


def test_workers_do_not_hang_after_opencv_threads_ran_in_the_parent(tiny_archive, tmp_path):
    """A fork while OpenCV's thread pool is alive used to leave the workers waiting forever."""
    import subprocess
    import sys

    code = (
        "import cv2, numpy as np\n"
        "from gaitflow.data.preprocess import preprocess\n"
        "cv2.setNumThreads(2)\n"
        "for _ in range(20): cv2.resize(np.ones((2000, 2000), np.uint8), (3000, 3000), interpolation=cv2.INTER_CUBIC)\n"
        f"preprocess({str(tiny_archive)!r}, {str(tmp_path / 'out')!r}, 'casia-b', size=32, workers=2, progress=False)\n"
        "assert cv2.getNumThreads() == 2\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "out" / packed.FRAMES_FILE).exists()


def test_lean_zip_listing_matches_zipfile_on_a_zip64_archive(tmp_path):
    """Past 65535 members a zip needs the zip64 end record; the fast listing must read it."""
    from gaitflow.data import archive

    path = tmp_path / "many.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for i in range(66000):
            zf.writestr(f"{i:03d}/nm-01/000/{i:06d}.png", b"x")
    lean = archive._zip_central_directory(path)
    with zipfile.ZipFile(path) as zf:
        assert lean == [
            (i.filename, (i.header_offset, i.compress_size, i.compress_type, i.file_size)) for i in zf.infolist()
        ]


def test_packed_frames_equal_each_frame_pretreated_alone(tiny_archive, tmp_path):
    """Dropped frames leave gaps that are closed at the end; every sequence must still hold its own frames."""
    from gaitflow.data.layouts import LAYOUTS
    from gaitflow.data.pretreat import decode, pretreat

    out = tmp_path / "packed"
    report = pp.preprocess(tiny_archive, out, "casia-b", size=32, workers=2, progress=False)
    assert report["skipped"]  # the tiny set has noise-dropped frames, so the compaction had gaps to close
    expected = {}
    with zipfile.ZipFile(tiny_archive) as zf:
        for name in sorted(zf.namelist()):
            frame, _ = pretreat(decode(zf.read(name)), 32)
            if frame is not None:
                expected.setdefault(LAYOUTS["casia-b"].parse(name), []).append(frame)
    ds = PackedDataset(out, cut=False)
    assert len(ds) == len([k for k, v in expected.items() if len(v) >= 5])
    for i in range(len(ds)):
        key = (ds.subjects[i], ds.types[i], ds.views[i])
        np.testing.assert_array_equal(ds.sequence(i), np.stack(expected[key]))


def test_pickle_sources_and_worker_counts_give_identical_packs(tmp_path):
    """Pickles come back whole and are appended in arrival order: a stream and a pool must not change the pack."""
    rng = np.random.default_rng(0)
    tree = {}
    for sid in range(1, 7):
        for seq_type in ("nm-01", "bg-01"):
            n = int(rng.integers(3, 10))
            tree[f"{sid:03d}/{seq_type}/090/090.pkl"] = pickle.dumps(rng.integers(0, 255, (n, 16, 12), dtype=np.uint8))
    folder = tmp_path / "pkl"
    for name, data in tree.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    _write_zip(tmp_path / "pkl.zip", tree)
    with tarfile.open(tmp_path / "pkl.tar.gz", "w:gz") as tf:
        for name in sorted(tree, reverse=True):  # sequences complete out of key order
            info = tarfile.TarInfo(name)
            info.size = len(tree[name])
            tf.addfile(info, io.BytesIO(tree[name]))
    packs = set()
    for src in ("pkl", "pkl.zip", "pkl.tar.gz"):
        for workers in (1, 2):
            out = tmp_path / f"out-{src}-{workers}"
            report = pp.preprocess(tmp_path / src, out, "casia-b", min_frames=5, workers=workers, progress=False)
            assert report["imported_pickles"] is True
            ds = PackedDataset(out, cut=False)
            packs.add(tuple((ds.subjects[i], ds.types[i], ds.sequence(i).tobytes()) for i in range(len(ds))))
    assert len(packs) == 1


@pytest.mark.parametrize("workers", [1, 2])
def test_no_worker_state_is_left_behind(tiny_archive, tmp_path, workers):
    """Workers are built per run and serve only their own processes: the caller keeps nothing of them."""
    pp.preprocess(tiny_archive, tmp_path / "packed", "casia-b", size=32, workers=workers, progress=False)
    assert pp._Worker.current is None


def test_default_train_fraction_is_casia_b_split(tiny_archive, tmp_path):
    """74 of CASIA-B's 124 subjects train; preprocess uses that split unless told otherwise."""
    import inspect

    assert inspect.signature(pp.preprocess).parameters["train_fraction"].default == pp.DEFAULT_TRAIN_FRACTION
    assert len(by_rule([f"{i:03d}" for i in range(1, 125)], "first", pp.DEFAULT_TRAIN_FRACTION)["TRAIN_SET"]) == 74
    out = tmp_path / "packed"
    pp.preprocess(tiny_archive, out, "casia-b", size=32, workers=1, progress=False)
    subjects = sorted(set(PackedDataset(out, cut=False).subjects))
    expected = by_rule(subjects, "first", pp.DEFAULT_TRAIN_FRACTION)
    assert json.loads((out / packed.PARTITION_FILE).read_text()) == expected


def test_an_archive_in_another_layout_is_one_line(tiny_archive, tmp_path):
    with pytest.raises(GaitflowError) as err:
        pp.preprocess(tiny_archive, tmp_path / "out", "ou-mvlp", workers=1, progress=False)
    message = str(err.value)
    assert "no path fits the ou-mvlp layout: " in message and " paths read, none parsed (for example: " in message
    assert message.count(".png") == 3 and "\n" not in message
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("shape", [(64, 64), (64, 44), (128, 128), (32, 32)])
def test_aligned_pickles_are_brought_to_the_size_not_pretreated_again(tmp_path, shape):
    """Any aligned window (64 x 64, or 64 x 44 already cut) becomes the size x size window a PNG frame
    gives, so the reader's cut leaves the same columns."""
    rng = np.random.default_rng(0)
    frames = (rng.random((6, *shape)) > 0.5).astype(np.uint8) * 255
    d = tmp_path / "pkl" / "001" / "nm-01" / "000"
    d.mkdir(parents=True)
    (d / "x.pkl").write_bytes(pickle.dumps(frames))
    pp.preprocess(tmp_path / "pkl", tmp_path / "out", "casia-b", size=32, workers=1, progress=False)
    ds = PackedDataset(tmp_path / "out")
    assert ds.frames.shape[1:] == (32, 32) and ds.sequence(0).shape == (6, 32, 22)
    if shape == (32, 32):  # already at the size: untouched
        assert np.array_equal(ds.frames[:6], frames)
    if shape == (64, 44):  # the cut comes back as zero columns
        assert not ds.frames[:, :, :5].any() and not ds.frames[:, :, 27:].any()


def _staging(processed):
    return sorted(p for p in processed.iterdir() if ".tmp-" in p.name) if processed.is_dir() else []


def test_a_killed_run_leaves_quiet_workers_and_a_folder_the_next_run_removes(project):
    """SIGKILL takes the parent mid-run: its workers exit without a traceback, and the staging folder
    it leaves is removed by the next run, which completes."""
    import os
    import signal
    import subprocess
    import sys
    import time

    import psutil
    from conftest import TINY, as_sets, run

    sets = as_sets(
        TINY
        + [
            "datasets.casiab-syn.synth.ids=6",
            "datasets.casiab-syn.synth.frames=24",
            "synth.workers=2",
            "preprocess.workers=2",
        ]
    )
    run(["gaitflow", "synth", "--quiet", *sets], project)
    processed = project / "data" / "processed"
    env = {**os.environ, "PATH": f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ.get('PATH', '')}"}
    proc = subprocess.Popen(
        ["gaitflow", "preprocess", "--quiet", *sets], cwd=project, env=env, stderr=subprocess.PIPE, text=True
    )
    workers = []
    try:
        # the moment to kill: both workers are running and have written frames into the staging folder
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline:
            staging = _staging(processed)
            frames = staging[0] / packed.FRAMES_FILE if staging else None
            workers = psutil.Process(proc.pid).children()
            if len(workers) == 2 and frames and frames.is_file():
                with open(frames, "rb") as f:
                    if any(f.read(1 << 20)[packed.HEADER_BYTES :]):
                        break
            time.sleep(0.005)
        assert proc.poll() is None, "preprocess finished before it could be killed: draw a bigger dataset"
        os.kill(proc.pid, signal.SIGKILL)
        _, stderr = proc.communicate(timeout=120)  # EOF once the workers, which share the pipe, are gone too
    finally:  # nothing is left running, whatever happened
        for w in workers:
            try:
                w.kill()
            except psutil.NoSuchProcess:
                pass
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert "Traceback" not in stderr and "Error" not in stderr, stderr
    left = _staging(processed)
    assert [p.name for p in left] == [f"casiab-syn.tmp-{proc.pid}"]

    done = run(["gaitflow", "preprocess", "--quiet", *sets], project)
    assert "Traceback" not in done.stderr
    assert not left[0].exists() and _staging(processed) == []
    out = processed / "casiab-syn"
    report = json.loads((out / packed.REPORT_FILE).read_text())
    assert report["sequences_kept"] == report["sequences"] == 6 * 10 * 3
    assert len(PackedDataset(out, cut=False)) == report["sequences_kept"]


def test_staging_folders_of_live_processes_are_left_alone(tiny_archive, tmp_path):
    """Only the folders of processes that have exited go: a live one may be a concurrent run's."""
    import subprocess
    import sys
    import time

    import psutil

    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    zombie = subprocess.Popen([sys.executable, "-c", "pass"])  # exits, and is not reaped until the end
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    try:
        while psutil.Process(zombie.pid).status() != psutil.STATUS_ZOMBIE:
            time.sleep(0.01)
        out = tmp_path / "packed"
        names = {
            "live": f"packed.tmp-{live.pid}",
            "zombie": f"packed.tmp-{zombie.pid}",
            "gone": f"packed.tmp-{int(gone.stdout)}",
            "set aside": f"packed.old-{int(gone.stdout)}",
            "another output": f"packed-v2.tmp-{int(gone.stdout)}",
            "not a pid": "packed.tmp-notes",
        }
        for name in names.values():
            (tmp_path / name).mkdir()
            (tmp_path / name / packed.FRAMES_FILE).write_bytes(b"partial")
        pp.preprocess(tiny_archive, out, "casia-b", size=32, workers=1, progress=False)
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
            ["packed", names["live"], names["another output"], names["not a pid"]]
        )
        assert (tmp_path / names["live"] / packed.FRAMES_FILE).read_bytes() == b"partial"
    finally:
        live.kill()
        live.wait()
        zombie.wait()
