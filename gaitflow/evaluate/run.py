"""``gaitflow evaluate``: embed a test set with a trained run and score it under a protocol.

Writes ``results/<dataset>/<backbone>-<recipe>/metrics.json``. The test set is
the protocol's TEST_SET of the evaluation dataset, which is the training
dataset unless another one is named (cross-dataset evaluation). Every sequence
is embedded whole (all frames, batched with padding, no gradient).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from gaitflow.data.dataset import PackedDataset
from gaitflow.data.packed import write_json
from gaitflow.errors import GaitflowError
from gaitflow.evaluate.protocols import cross_view_rank1
from gaitflow.evaluate.retrieval import retrieval
from gaitflow.models.base import to_channels_last
from gaitflow.runs import embed, load_run, resolve_device


def score(
    emb: np.ndarray, data: PackedDataset, test: np.ndarray, protocol_name: str, protocol: dict, metric: str
) -> dict:
    """Protocol metrics of test-set embeddings."""
    subjects, types, views = data.subjects[test], data.types[test], data.views[test]
    if protocol_name == "retrieval":
        gallery_types = protocol.get("gallery")
        gallery = np.isin(types, gallery_types) if gallery_types else np.ones(len(test), bool)
        probe = ~gallery if gallery_types else np.ones(len(test), bool)
        return {
            "metric": metric,
            "retrieval": retrieval(emb, subjects, np.flatnonzero(probe), np.flatnonzero(gallery), metric),
        }
    result = cross_view_rank1(
        emb,
        subjects,
        types,
        views,
        protocol["gallery"],
        protocol["probes"],
        metric,
        protocol.get("no_gallery", "error"),
    )
    gallery = np.flatnonzero(np.isin(types, protocol["gallery"]))
    probe = np.flatnonzero(~np.isin(types, protocol["gallery"]))
    result["retrieval"] = retrieval(emb, subjects, probe, gallery, metric)  # all probes against the whole gallery
    return result


def _run_id(run_dir: Path) -> str | None:
    """The MLflow run the training logged to, so tables can link back to it."""
    from gaitflow.tracking import saved_run

    return (saved_run(run_dir) or {}).get("run_id")


def evaluate(
    params: dict,
    run_dir: Path,
    eval_name: str,
    eval_spec: dict,
    data_dir: Path,
    out: Path,
    device: str | None = None,
    progress: bool = True,
) -> dict:
    dev = resolve_device(device or params["train"]["device"])
    model, config = load_run(run_dir, dev)
    data = PackedDataset(data_dir)
    if tuple(data.frame_shape) != tuple(config["frame_shape"]):
        raise GaitflowError(
            f"{data_dir}: frames are {data.frame_shape[0]} x {data.frame_shape[1]} but the model was "
            f"trained on {config['frame_shape'][0]} x {config['frame_shape'][1]}; preprocess it at "
            "the same preprocess.img_size"
        )
    if params["train"]["channels_last"]:
        to_channels_last(model)
    test = data.split("TEST_SET")
    protocol_name = eval_spec["protocol"]
    protocol = params["protocols"].get(protocol_name, {})
    metric = params["evaluate"]["metric"]
    start = time.perf_counter()
    emb = embed(model, data, test, dev, params["evaluate"]["max_frames"], progress).numpy()
    seconds = time.perf_counter() - start
    result = score(emb, data, test, protocol_name, protocol, metric)
    metrics = {
        "method": f"{config['backbone']}-{config['recipe']}",
        "backbone": config["backbone"],
        "recipe": config["recipe"],
        "trained_on": config["dataset"],
        "evaluated_on": eval_name,
        "protocol": protocol_name,
        "test_subjects": len(data.partition["TEST_SET"]),
        "test_sequences": int(len(test)),
        "iterations": config["iteration"],
        "embedding_seconds": round(seconds, 3),
        "mlflow_run_id": _run_id(run_dir),
        **result,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json(out, metrics)
    return metrics
