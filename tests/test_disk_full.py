"""A disk that fills during training: a small tmpfs as the work folder's file system (mounting one
needs root; skipped otherwise). The run fails in one line, its last good checkpoint stays whole,
and once space is freed the same command resumes from it to the weights of a run alone."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import subprocess
import uuid

import pytest
import torch
from conftest import as_sets
from test_train import TRAIN

from gaitflow.cli import main
from gaitflow.train import load_checkpoint

SETS = as_sets([*TRAIN, "train.iterations=8", "train.checkpoint_every=2", "train.milestones=[6]"])
CMD = ["train", "--quiet", "--backbone", "gaitset", "--recipe", "triplet"]


@contextlib.contextmanager
def tmpfs(path, size: int):
    path.mkdir(parents=True)
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
    except OSError as exc:
        pytest.skip(f"cannot mount a tmpfs here ({exc})")
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode(errors='replace').strip() or 'mount failed'}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def _cli(*argv):
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, err.getvalue()


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("mount") is None, reason="mounting a tmpfs needs root")
def test_a_disk_that_fills_fails_in_one_line_keeps_the_last_checkpoint_and_resumes(project):
    assert main(["synth", "--quiet", *SETS]) == 0 and main(["preprocess", "--quiet", *SETS]) == 0
    alone = project / "models" / "alone"
    assert main([*CMD, "--out", str(alone), *SETS]) == 0
    size = (alone / "checkpoint.pt").stat().st_size
    # room for one checkpoint and half of the next one's temporary file, beside the log: the
    # checkpoint of iteration 2 is written, the one of iteration 4 finds the disk full
    page = 4096
    room = (int(size * 1.5) // page + 8) * page
    freed = (size // page + 16) * page  # what the user frees later: one more checkpoint's worth
    with tmpfs(project / "small", room + freed) as disk:
        filler = disk / "filler"
        filler.write_bytes(b"\0" * freed)
        work, out = disk / "work", project / "models" / "done"
        code, err = _cli(*CMD, "--out", str(out), "--work", str(work), *SETS)
        assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
        assert err.startswith(f"gaitflow train: error: {work / 'checkpoint.pt'}: the checkpoint of iteration 4 ")
        assert "no space left on its disk" in err and "the checkpoint of iteration 2 is intact" in err
        assert load_checkpoint(work / "checkpoint.pt")["iteration"] == 2  # whole, and loadable
        assert not [p.name for p in work.iterdir() if ".tmp-" in p.name]  # no partial file left
        assert not out.exists()
        filler.unlink()  # space freed
        code, err = _cli(*CMD, "--out", str(out), "--work", str(work), *SETS)
        assert code == 0, err
    ours, theirs = load_checkpoint(out / "checkpoint.pt"), load_checkpoint(alone / "checkpoint.pt")
    assert ours["iteration"] == theirs["iteration"] == 8
    assert all(torch.equal(ours["model"][k], theirs["model"][k]) for k in theirs["model"])
    log = (out / "train.log").read_text().splitlines()
    assert len(log) == 8 and [int(line.split('"iteration": ')[1].split(",")[0]) for line in log] == list(range(1, 9))


def test_a_full_disk_met_outside_a_checkpoint_is_one_line(project, monkeypatch):
    """Any write a step did not expect to fail on a full disk (ENOSPC) still ends in one line."""
    import errno

    import gaitflow.cli as cli

    def full(args):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), f"models/x/{uuid.uuid4().hex}")

    monkeypatch.setattr(cli, "cmd_train", full)
    code, err = _cli(*CMD, *SETS)
    assert code == 2 and err.count("\n") == 1 and "no space left on its disk" in err and "models/x/" in err
