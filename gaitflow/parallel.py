"""Worker pools that are safe next to OpenCV's own threads.

A process forked while OpenCV's thread pool is alive inherits its locks but
not its threads, and hangs on its first call that touches the pool. So the
parent stops OpenCV's threads before forking (``setNumThreads(0)`` joins them),
the children run OpenCV single-threaded (one process per core is the
parallelism), and the parent's setting is restored afterwards.

A worker whose parent is gone (killed outright, so it could not stop its
pool) finds the pipe back to it broken when it hands in its next result; it
then exits quietly instead of printing the broken pipe's traceback.
"""

from __future__ import annotations

import multiprocessing as mp
import multiprocessing.pool
import os
from contextlib import contextmanager

_FORK = mp.get_context("fork")


@contextmanager
def opencv_serial():
    """Run OpenCV without its thread pool inside the block (and in processes forked in it)."""
    import cv2

    previous = cv2.getNumThreads()
    cv2.setNumThreads(0)
    try:
        yield
    finally:
        cv2.setNumThreads(previous)


def parent_gone() -> bool:
    """In a worker process: whether the process that started it has exited."""
    parent = mp.parent_process()
    return parent is not None and os.getppid() != parent.pid


class _ForkProcess(_FORK.Process):
    """A pool process that exits quietly once its parent is gone and the pipes to it are broken."""

    def run(self):
        try:
            super().run()
        except (BrokenPipeError, ConnectionResetError, EOFError):
            if not parent_gone():
                raise


class _Pool(multiprocessing.pool.Pool):
    @staticmethod
    def Process(ctx, *args, **kwds):  # the name multiprocessing.pool.Pool makes its processes with
        return _ForkProcess(*args, **kwds)


def worker_pool(n: int, initializer=None, initargs=()):
    """A fork-based pool of n processes whose OpenCV runs single-threaded."""
    with opencv_serial():
        return _Pool(n, initializer=initializer, initargs=initargs, context=_FORK)
