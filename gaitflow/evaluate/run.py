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
from gaitflow.data.partition import in_force, sequence_name
from gaitflow.errors import GaitflowError
from gaitflow.evaluate.protocols import cross_view_rank1
from gaitflow.evaluate.retrieval import retrieval
from gaitflow.models.base import to_channels_last
from gaitflow.runs import embed, load_run, resolve_device


def score(
    emb: np.ndarray, data: PackedDataset, test: np.ndarray, protocol_name: str, protocol: dict, metric: str
) -> dict:
    """Protocol metrics of test-set embeddings, as the protocol's entry in params describes them."""
    subjects, types, views = data.subjects[test], data.types[test], data.views[test]
    if protocol["kind"] == "retrieval":
        probe, gallery = retrieval_sets(data, test, protocol)
        ranks = tuple(protocol.get("ranks", (1, 5, 10)))
        return {
            "metric": metric,
            "retrieval": retrieval(emb, subjects, np.flatnonzero(probe), np.flatnonzero(gallery), metric, ranks),
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
        protocol.get("identical_views", "exclude"),
    )
    gallery = np.flatnonzero(np.isin(types, protocol["gallery"]))
    probe = np.flatnonzero(~np.isin(types, protocol["gallery"]))
    result["retrieval"] = retrieval(emb, subjects, probe, gallery, metric)  # all probes against the whole gallery
    return result


def retrieval_sets(data: PackedDataset, test: np.ndarray, protocol: dict) -> tuple[np.ndarray, np.ndarray]:
    """(probe, gallery) masks over the test rows: the partition's PROBE_SET against every other test
    sequence (Gait3D); or the gallery's sequence types against the rest; or every sequence against all."""
    if protocol.get("probe_set"):
        listed = data.partition.get("PROBE_SET")
        if not listed:
            raise GaitflowError(f"{data.root}: the partition in force has no PROBE_SET; the protocol needs one")
        names = [sequence_name(*k) for k in zip(data.subjects[test], data.types[test], data.views[test])]
        probe = np.isin(names, listed)
        return probe, ~probe
    if protocol.get("gallery"):
        gallery = np.isin(data.types[test], protocol["gallery"])
        return ~gallery, gallery
    everything = np.ones(len(test), bool)
    return everything, everything


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
    protocol = params["protocols"][protocol_name]
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
        "partition": in_force(data_dir),
        "iterations": config["iteration"],
        "embedding_seconds": round(seconds, 3),
        "mlflow_run_id": _run_id(run_dir),
        **result,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json(out, metrics)
    return metrics
