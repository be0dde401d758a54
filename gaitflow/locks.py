"""One writer per output: an exclusive lock that a step holds on what it writes for its lifetime.

A training run locks its work folder (or its run folder when it has none), an evaluation its
metrics file, a preprocessing its packed folder. The lock is ``flock`` on a small file beside the
output (``.<name>.lock``), so the kernel releases it when the process dies, however it dies: a
SIGKILL never leaves a stale lock behind (the file it may leave locks nothing). The file holds the
holder's pid and host, which is what a refused second writer names. On a cluster's shared file
system the lock is as good as the file system's ``flock`` (NFSv4 and Lustre with ``flock``
mounted: across nodes; see docs/workflow.md).

Two ways to meet a held lock: refuse at once (``wait=False``: a second ``gaitflow train`` typed
by hand), or wait for the holder to exit (``wait=True``: the workflow's rerun of a job whose
orphaned process is still finishing the same run, which then adopts what that process left).
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from gaitflow.errors import GaitflowError


def lock_path(target: Path) -> Path:
    """The lock file of an output: beside it, hidden, so no step's glob of the folder sees it."""
    target = Path(target)
    return target.parent / f".{target.name}.lock"


def holder(path: Path) -> dict:
    """Who holds (or last held) a lock file: {pid, host, step}; {} when unreadable."""
    try:
        found = json.loads(Path(path).read_text() or "{}")
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


@contextmanager
def exclusive(target: Path, step: str, wait: bool = False, poll: float = 0.5):
    """Hold the lock of ``target`` for the block. Held by another live process: raise one line
    naming it (``wait=False``), or wait for it to exit (``wait=True``, a line on stderr first).
    The lock file is removed when the block ends, while still held; a process that locked the
    removed file meanwhile sees that it is gone and locks the new one (so there is never a second
    holder). A killed holder leaves the file, and its lock goes with the process."""
    path = lock_path(target)
    made = [p for p in (path.parent, *path.parent.parents) if not p.exists()]  # removed again if left empty
    path.parent.mkdir(parents=True, exist_ok=True)
    told = False
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            other = holder(path)
            who = f"pid {other.get('pid', '?')} on {other.get('host', '?')}"
            if not wait:
                raise GaitflowError(
                    f"{target}: {other.get('step', 'another process')} by {who} is writing it; "
                    "wait for it to end (or stop it) and run again"
                ) from None
            if not told:
                print(f"gaitflow {step}: {target}: waiting for {who}, which is writing it", file=sys.stderr)
                told = True
            time.sleep(poll)
            continue
        if _same_file(fd, path):
            break
        os.close(fd)  # locked a file its holder removed on leaving: lock the current one
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "step": step}).encode(), 0)
        yield path
    finally:
        try:
            os.unlink(path)
        except OSError:
            pass
        os.close(fd)  # closing the descriptor releases the lock (as does the process's death)
        for folder in made:  # a step refused before writing leaves no empty folder behind
            try:
                folder.rmdir()
            except OSError:
                break


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.fstat(fd).st_ino == os.stat(path).st_ino
    except OSError:
        return False
