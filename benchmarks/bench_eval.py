"""Evaluation at OU-MVLP scale: time, distance throughput and peak memory, in one run.

    python benchmarks/bench_eval.py [--ids 5154] [--parts 16] [--channels 256] [--metric euclidean]

Synthetic embeddings for the OU-MVLP test set (5154 ids x 14 views x 2 sequences,
about 144,000 sequences of 16 parts x 256 channels, as the Waveloss paper's
OU-MVLP backbone gives) go through the full cross-view protocol (gallery 01,
probe 00). Reported: wall time, the effective distance throughput against this
machine's own float32 matrix-multiply throughput, and the process's peak
resident memory. --ids scales the set down for a quick run.
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np
import torch

from gaitflow.evaluate.protocols import cross_view_rank1

VIEWS = [f"{v:03d}" for v in (0, 15, 30, 45, 60, 75, 90, 180, 195, 210, 225, 240, 255, 270)]


def sgemm_rate(n: int = 4096, k: int = 4096) -> float:
    a, b = torch.randn(n, k), torch.randn(k, n)
    a @ b
    start = time.perf_counter()
    for _ in range(3):
        a @ b
    return 3 * 2 * n * n * k / (time.perf_counter() - start) / 1e9


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ids", type=int, default=5154)
    ap.add_argument("--parts", type=int, default=16)
    ap.add_argument("--channels", type=int, default=256)
    ap.add_argument("--metric", default="euclidean", choices=["euclidean", "cosine"])
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    n_ids, p, c = args.ids, args.parts, args.channels
    subjects = np.repeat(np.arange(n_ids), 2 * len(VIEWS)).astype(str)
    types = np.tile(np.repeat(["00", "01"], len(VIEWS)), n_ids)
    views = np.tile(VIEWS, 2 * n_ids)
    emb = np.empty((len(subjects), p, c), np.float32)
    for i in range(n_ids):  # identity centre + per-sequence noise, built in place to keep memory low
        emb[i * 28 : (i + 1) * 28] = rng.standard_normal((1, p, c), dtype=np.float32) + 3.0 * rng.standard_normal(
            (28, p, c), dtype=np.float32
        )
    peak_rate = sgemm_rate()
    start = time.perf_counter()
    result = cross_view_rank1(emb, subjects, types, views, ["01"], {"NM": ["00"]}, args.metric)
    seconds = time.perf_counter() - start
    probes = galleries = len(subjects) // 2
    flops = 2.0 * probes * galleries * p * c
    rate = flops / seconds / 1e9
    peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    print(
        f"{len(subjects)} sequences ({probes} probes x {galleries} gallery), {p} x {c}, {args.metric}, "
        f"{torch.get_num_threads()} threads"
    )
    print(
        f"evaluation: {seconds:.1f} s; distances {rate:.1f} GFLOP/s = {rate / peak_rate:.0%} of this machine's "
        f"sgemm ({peak_rate:.1f} GFLOP/s); peak memory {peak_gib:.2f} GiB; rank-1 NM {result['rank1']['NM']:.2f}"
    )


if __name__ == "__main__":
    main()
