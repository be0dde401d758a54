"""Preprocessing throughput in frames per second, against the PNG-decoding bound.

    python benchmarks/bench_preprocess.py [--archive data/raw/casiab-syn.zip] [--frames 60000]
                                          [--reference path/to/pretreatment.py]

Takes the first --frames frames of a synthetic archive (drawn if missing) and
reports, on all cores:

- decode bound: the PNG decoder alone over the same frames (bytes already in memory);
- gaitflow from the archive: `preprocess` on a zip of those frames, end to end;
- gaitflow from a folder: the same frames unpacked to a folder;
- optionally the reference pretreatment script on that folder (give its path), for
  comparison; its output is compared with ours frame by frame.

The load average is printed before and after: other work on the machine depresses
every figure, so compare runs only under a similar load.
"""

from __future__ import annotations

import argparse
import os
import pickle
import subprocess
import sys
import tempfile
import time
import zipfile
from multiprocessing import get_context
from pathlib import Path

import cv2
import numpy as np

from gaitflow.config import load_params, workers
from gaitflow.data.dataset import PackedDataset
from gaitflow.data.preprocess import preprocess
from gaitflow.data.synth import synthesize


def _decode_all(blobs):
    cv2.setNumThreads(1)
    for b in blobs:
        cv2.imdecode(np.frombuffer(b, np.uint8), cv2.IMREAD_GRAYSCALE)
    return len(blobs)


def decode_bound(blobs: list[bytes], n_workers: int) -> float:
    chunks = [blobs[i::n_workers] for i in range(n_workers)]
    with get_context("fork").Pool(n_workers) as pool:
        pool.map(_decode_all, [c[:50] for c in chunks])  # warm up
        start = time.perf_counter()
        pool.map(_decode_all, chunks)
        return len(blobs) / (time.perf_counter() - start)


def _load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} cores"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--archive", default="data/raw/casiab-syn.zip")
    ap.add_argument("--frames", type=int, default=60000)
    ap.add_argument("--reference", help="path to the reference pretreatment.py (optional)")
    ap.add_argument("--repeat", type=int, default=2, help="runs per measurement; the best is reported")
    args = ap.parse_args()

    archive = Path(args.archive)
    if not archive.exists():
        params = load_params("params.yaml")
        synthesize(params["datasets"]["casiab-syn"], params["seed"], archive, "zip")
    n_workers = workers(0)
    with zipfile.ZipFile(archive) as zf:
        names = sorted(n for n in zf.namelist() if n.endswith(".png"))
        # whole sequences only, so that the subset is a valid dataset
        names = names[: args.frames]
        last_seq = names[-1].rsplit("/", 1)[0]
        names = [n for n in names if not n.startswith(last_seq + "/")] or names
        blobs = {n: zf.read(n) for n in names}
    frames = len(blobs)
    print(f"{frames} frames of {archive} (320 x 240 PNG), {n_workers} worker processes")
    print(_load())

    best = max(decode_bound(list(blobs.values()), n_workers) for _ in range(args.repeat))
    print(f"decode bound (OpenCV PNG decoder alone):  {best:8.0f} frames/s")

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        sub = tmp / "raw.zip"
        with zipfile.ZipFile(sub, "w", zipfile.ZIP_STORED) as zf:
            for n, b in blobs.items():
                zf.writestr(n, b)
        folder = tmp / "folder"
        for n, b in blobs.items():
            p = folder / n
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(b)
        rates = {}
        for label, src in (("archive", sub), ("folder", folder)):
            runs = []
            for _ in range(args.repeat):
                start = time.perf_counter()
                preprocess(src, tmp / f"out-{label}", "casia-b", workers=0, progress=False)
                runs.append(frames / (time.perf_counter() - start))
            rates[label] = max(runs)
            print(
                f"gaitflow preprocess from the {label:7s}:  {rates[label]:8.0f} frames/s "
                f"({rates[label] / best:.0%} of the decode bound)"
            )

        if args.reference:
            out = tmp / "reference"
            cmd = [
                sys.executable,
                args.reference,
                "--input_path",
                str(folder),
                "--output_path",
                str(out),
                "--n_workers",
                str(n_workers),
                "--log_file",
                str(tmp / "reference.log"),
            ]
            start = time.perf_counter()
            subprocess.run(cmd, check=True, capture_output=True)
            seconds = time.perf_counter() - start
            print(f"reference script on the folder:         {frames / seconds:8.0f} frames/s (whole process)")
            ours = PackedDataset(tmp / "out-folder", cut=False)
            same = compared = 0
            for i in range(len(ours)):
                pkl = out / ours.subjects[i] / ours.types[i] / ours.views[i] / f"{ours.views[i]}.pkl"
                if pkl.exists():
                    with open(pkl, "rb") as f:
                        theirs = pickle.load(f)
                    compared += 1
                    same += int(np.array_equal(theirs, ours.sequence(i)))
            print(f"pixel parity with the reference: {same} of {compared} sequences identical")
    print(_load())


if __name__ == "__main__":
    main()
