"""Worker pools that are safe next to OpenCV's own threads.

A process forked while OpenCV's thread pool is alive inherits its locks but
not its threads, and hangs on its first call that touches the pool. So the
parent stops OpenCV's threads before forking (``setNumThreads(0)`` joins them),
the children run OpenCV single-threaded (one process per core is the
parallelism), and the parent's setting is restored afterwards.
"""

from __future__ import annotations

import multiprocessing as mp
from contextlib import contextmanager


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


def worker_pool(n: int, initializer=None, initargs=()):
    """A fork-based pool of n processes whose OpenCV runs single-threaded."""
    with opencv_serial():
        return mp.get_context("fork").Pool(n, initializer=initializer, initargs=initargs)
