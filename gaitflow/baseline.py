"""The Gait Energy Image baseline: mean aligned silhouette + nearest neighbour.

A GEI (Han and Bhanu, 2006) needs no training, so it shows at once whether a
dataset is a benchmark: cross-view matching of appearance alone should be well
above chance and well below perfect, and worst under clothing change.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gaitflow.data.dataset import PackedDataset
from gaitflow.data.packed import write_json
from gaitflow.data.partition import in_force
from gaitflow.evaluate.run import score
from gaitflow.workflow import BASELINE_METHOD


def gait_energy_images(dataset: PackedDataset, indices: np.ndarray) -> np.ndarray:
    """[len(indices), 1, H*W] GEIs in [0, 1] (one part: the whole image)."""
    out = np.empty((len(indices), 1, int(np.prod(dataset.frame_shape))), np.float32)
    for row, i in enumerate(indices):
        out[row, 0] = dataset.sequence(int(i)).mean(axis=0, dtype=np.float32).ravel() / 255.0
    return out


def run_baseline(data: Path, out: Path, protocol_name: str, protocol: dict, metric: str) -> dict:
    """GEI + nearest neighbour on the test subjects under the dataset's protocol; writes metrics.json."""
    dataset = PackedDataset(data)
    test = dataset.split("TEST_SET")
    emb = gait_energy_images(dataset, test)
    metrics = score(emb, dataset, test, protocol_name, protocol, metric, out_dir=Path(out).parent)
    metrics = {
        "method": BASELINE_METHOD,
        "protocol": protocol_name,
        "dataset": str(data),
        "test_subjects": len(dataset.partition["TEST_SET"]),
        "partition": in_force(data),
        **metrics,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json(out, metrics)
    return metrics
