"""Sequences per second the data layer serves to a training loop.

    python benchmarks/bench_loader.py [--data data/processed/casiab-syn] [--batches 50]

P x K sampling, frame sampling and conversion to a float tensor in [0, 1], at
the paper shape (P8 x K8 x 30 frames) and a CPU-profile shape (P4 x K4 x 16),
for both frame-sampling modes. Compare with the training step time of the
slowest backbone (benchmarks/bench_models.py): loading must serve at least ten
times what a step consumes.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from gaitflow.data.dataset import PackedDataset
from gaitflow.data.sampler import PKSampler, clip_batch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default="data/processed/casiab-syn")
    ap.add_argument("--batches", type=int, default=50)
    args = ap.parse_args()
    ds = PackedDataset(args.data)
    train = ds.split("TRAIN_SET")
    labels, _ = ds.labels(train)
    print(f"{args.data}: {len(train)} training sequences, frames {ds.frame_shape}")
    for p, k, frames in ((8, 8, 30), (4, 4, 16)):
        for mode in ("ordered", "unordered"):
            sampler = PKSampler(labels, p, k, seed=0)
            rng = np.random.default_rng(0)
            start = time.perf_counter()
            for _ in range(args.batches):
                idx = train[next(sampler)]
                x = torch.from_numpy(clip_batch(ds, idx, frames, mode, rng)).float().div_(255)
            seconds = time.perf_counter() - start
            rate = args.batches * p * k / seconds
            print(
                f"P{p} x K{k} x {frames} frames, {mode:9s}: {rate:8.0f} sequences/s "
                f"({seconds / args.batches * 1e3:6.1f} ms per batch of {tuple(x.shape)})"
            )


if __name__ == "__main__":
    main()
