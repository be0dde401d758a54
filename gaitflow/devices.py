"""Give each concurrent job a GPU of its own.

Snakemake's ``resources: gpu=1`` only counts GPUs; it never says which one a
job should use, so without this every job would start on device 0. A job
claims a device by holding an exclusive lock on ``<lock dir>/gpu-<id>.lock``
for its lifetime (the kernel releases it when the process ends, even when
killed) and then sees only that device through ``CUDA_VISIBLE_DEVICES``.
Must run before torch initialises CUDA. Cheap to import: no torch.
"""

from __future__ import annotations

import fcntl
import os
import sys
import tempfile
import time
from pathlib import Path

_held: list = []  # open lock files, kept for the life of the process


def visible_gpus() -> list[str]:
    """The GPU ids this process may use, without importing torch."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        ids = [d.strip() for d in env.split(",") if d.strip()]
        return [] if not ids or ids[0] == "-1" else ids
    try:
        return [str(i) for i in range(len(os.listdir("/proc/driver/nvidia/gpus")))]
    except OSError:
        return []


def lock_dir() -> Path:
    """Node-local by default, so jobs on different cluster nodes never block each other."""
    return Path(os.environ.get("GAITFLOW_GPU_LOCKS") or Path(tempfile.gettempdir()) / "gaitflow-gpu-locks")


def claim_gpu(wait: float = 1.0, timeout: float | None = None) -> str | None:
    """Pin this process to one free GPU and return its id (None when there is nothing to choose).

    Nothing is done under torchrun (each rank picks ``LOCAL_RANK``) or when at
    most one GPU is visible (a SLURM job is handed exactly the GPUs it asked
    for). When every GPU is taken, waits for one to be released.
    """
    if _held:
        return os.environ.get("CUDA_VISIBLE_DEVICES")
    gpus = visible_gpus()
    if len(gpus) <= 1 or int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return None
    folder = lock_dir()
    folder.mkdir(parents=True, exist_ok=True)
    start, told = time.monotonic(), False
    while True:
        for gpu in gpus:
            handle = open(folder / f"gpu-{gpu}.lock", "a+")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                handle.close()
                continue
            _held.append(handle)
            os.environ["CUDA_VISIBLE_DEVICES"] = gpu
            return gpu
        if timeout is not None and time.monotonic() - start > timeout:
            return None
        if not told:
            print(
                f"gaitflow: all {len(gpus)} GPUs are taken by other jobs; waiting for one "
                "(run Snakemake with --resources gpu=N to queue jobs instead)",
                file=sys.stderr,
            )
            told = True
        time.sleep(wait)
