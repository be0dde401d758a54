"""Synthetic data generation throughput, and where a frame's time goes.

    python benchmarks/bench_synth.py [--dataset casiab-syn] [--ids N]

Draws the preset (all cores, to a temporary zip) and reports frames per second,
then times rendering, noise and PNG encoding of single frames on one core.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from gaitflow.config import load_params
from gaitflow.data import synth, walker


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", default="casiab-syn")
    ap.add_argument("--ids", type=int, help="override the preset's number of identities")
    args = ap.parse_args()
    overrides = [f"datasets.{args.dataset}.synth.ids={args.ids}"] if args.ids else []
    params = load_params("params.yaml", overrides)
    spec = params["datasets"][args.dataset]
    with tempfile.TemporaryDirectory() as tmp:
        stats = synth.synthesize(spec, params["seed"], Path(tmp) / "out.zip", "zip", 0, progress=False)
        size = (Path(tmp) / "out.zip").stat().st_size
    print(
        f"{args.dataset}: {stats['frames']} frames, {stats['sequences']} sequences in {stats['seconds']:.1f} s "
        f"= {stats['frames_per_second']:.0f} frames/s on all cores; {size / stats['frames'] / 1024:.2f} KiB per frame"
    )

    cv2.setNumThreads(1)
    syn = spec["synth"]
    body = synth.body_of(0, 1)
    timings = {"render": 0.0, "noise": 0.0, "encode": 0.0}
    n = 0
    for cond in ("nm", "bg", "cl"):
        shot = walker.sample_shot(walker.seeded(0, cond == "bg", cond == "cl"), body, cond, 60, 90)
        t0 = time.perf_counter()
        frames = walker.render(body, shot, syn["width"], syn["height"])
        timings["render"] += time.perf_counter() - t0
        rng = np.random.default_rng(0)
        for f in frames:
            t0 = time.perf_counter()
            f = walker.add_noise(f, rng, syn["noise"])
            t1 = time.perf_counter()
            cv2.imencode(".png", f)
            timings["noise"] += t1 - t0
            timings["encode"] += time.perf_counter() - t1
        n += len(frames)
    print("one core, per frame: " + ", ".join(f"{k} {v / n * 1e3:.3f} ms" for k, v in timings.items()))


if __name__ == "__main__":
    main()
