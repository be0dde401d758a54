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
from gaitflow.data.layouts import SequenceKey, is_labelled
from gaitflow.data.packed import write_json, write_text_atomic
from gaitflow.data.partition import in_force, sequence_name
from gaitflow.errors import GaitflowError
from gaitflow.evaluate.protocols import cross_view_rank1, probe_setting, select_types, view_labels
from gaitflow.evaluate.retrieval import PROBE_SCORES, ranked_ids, retrieval
from gaitflow.models.base import to_channels_last
from gaitflow.runs import embed, load_run, resolve_device


def score(
    emb: np.ndarray,
    data: PackedDataset,
    test: np.ndarray,
    protocol_name: str,
    protocol: dict,
    metric: str,
    out_dir: Path | None = None,
) -> dict:
    """Protocol metrics of test-set embeddings, as the protocol's entry in params describes them.
    A protocol whose probes carry no identity (GREW) writes its submission file into ``out_dir``."""
    subjects, types = data.subjects[test], data.types[test]
    views = view_labels(data.views[test], protocol.get("view_regex"))
    if protocol["kind"] == "retrieval":
        ranks = tuple(protocol.get("ranks", (1, 5, 10)))
        if protocol.get("unlabelled_probes"):
            return identification(emb, subjects, types, views, protocol, metric, ranks, out_dir)
        probe, gallery = retrieval_sets(data, test, protocol)
        figures, record = retrieval(
            emb, subjects, np.flatnonzero(probe), np.flatnonzero(gallery), metric, ranks, per_probe=True
        )
        return {"metric": metric, "retrieval": figures, PROBE_SCORES: {"figures": "retrieval", **record}}
    result = cross_view_rank1(
        emb,
        subjects,
        types,
        views,
        protocol.get("gallery"),
        protocol["probes"],
        metric,
        protocol.get("no_gallery", "error"),
        protocol.get("identical_views", "exclude"),
        tuple(protocol.get("ranks", (1,))),
    )
    if protocol.get("gallery"):  # all probes against the whole gallery
        in_gallery = select_types(types, protocol["gallery"])
        result["retrieval"] = retrieval(emb, subjects, np.flatnonzero(~in_gallery), np.flatnonzero(in_gallery), metric)
    if protocol.get("retrieval_by_probe"):  # re-identification figures per probe setting (CCPG)
        result["retrieval_by_probe"] = {}
        for name, setting in protocol["probes"].items():
            probe_types, own_gallery = probe_setting(setting)
            in_gallery = select_types(types, own_gallery or protocol["gallery"])
            probe = np.flatnonzero(select_types(types, probe_types) & ~in_gallery)
            result["retrieval_by_probe"][name] = retrieval(emb, subjects, probe, np.flatnonzero(in_gallery), metric)
    return result


SUBMISSION_FILE = "submission.csv"


def figures(metrics: dict) -> dict[str, float]:
    """Every number of a metrics file under its protocol's own name, flat (for MLflow and the CLI):
    ``rank1/NM``, ``rank5/BG``, ``retrieval/mAP``, ``retrieval_proxy/rank1``, ``retrieval_by_probe/CL/mINP``."""
    out = {}
    for key, value in metrics.items():
        if not (key.startswith("rank") or key.startswith("retrieval")) or not isinstance(value, dict):
            continue
        for name, v in value.items():
            if isinstance(v, dict):
                out.update({f"{key}/{name}/{k}": x for k, x in v.items() if isinstance(x, (int, float))})
            elif isinstance(v, (int, float)) and name != "probes":
                out[f"{key}/{name}"] = v
    return out


def identification(emb, subjects, types, views, protocol, metric, ranks, out_dir: Path | None) -> dict:
    """Probes without identity (GREW): the challenge's submission file (each probe's first
    ``submission_top`` gallery identities, ``videoId,rank1,...``), and a local proxy score that is
    not the official protocol: every gallery sequence against the other gallery sequences."""
    labelled = np.array([is_labelled(SequenceKey(s, t, v)) for s, t, v in zip(subjects, types, views)], bool)
    gallery = np.flatnonzero(select_types(types, protocol["gallery"]) & labelled)
    probe = np.flatnonzero(~labelled & select_types(types, protocol.get("probe_types", ["probe"])))
    top = int(protocol.get("submission_top", 20))
    result = {"metric": metric, "submission": {"file": SUBMISSION_FILE, "probes": int(len(probe)), "top": top}}
    if out_dir is not None:
        ranked = ranked_ids(emb, subjects, probe, gallery, top, metric)
        width = min(top, len(gallery))  # top places, fewer only when the gallery holds fewer sequences
        header = ",".join(["videoId", *(f"rank{k}" for k in range(1, width + 1))])
        lines = [header] + [",".join([views[p], *(_id(i) for i in ids)]) for p, ids in zip(probe, ranked)]
        out_dir.mkdir(parents=True, exist_ok=True)
        write_text_atomic(out_dir / SUBMISSION_FILE, "\n".join(lines) + "\n")
    figures, record = retrieval(emb, subjects, gallery, gallery, metric, ranks, exclude_self=True, per_probe=True)
    result["retrieval_proxy"] = {
        "note": "proxy, not the official protocol: gallery sequences against the other gallery sequences",
        **figures,
    }
    result[PROBE_SCORES] = {"figures": "retrieval_proxy", **record}
    return result


def _id(subject: str) -> str:
    """A gallery identity as the challenge writes it: a number where it is one (00001 -> 1)."""
    return str(int(subject)) if subject.isdigit() else subject


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
    result = score(emb, data, test, protocol_name, protocol, metric, out_dir=Path(out).parent)
    metrics = {
        "method": config.get("name") or f"{config['backbone']}-{config['recipe']}",
        **({"label": config["label"], "imported": config["imported"]} if "imported" in config else {}),
        "backbone": config["backbone"],
        "recipe": config["recipe"],
        **({"seed": config["seed"]} if config.get("seed") is not None else {}),
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


def summary(metrics: dict) -> dict[str, float]:
    """A metrics file's headline numbers, flat and rounded (rank-1 per condition and their mean, the
    further ranks, the retrieval figures): the columns of `dvc metrics show` and `dvc exp show`,
    where the per-view entries of metrics.json would be hundreds of columns."""
    flat = figures(metrics)
    rank1 = [v for k, v in flat.items() if k.startswith("rank1/")]
    if len(rank1) > 1:
        flat["rank1/mean"] = sum(rank1) / len(rank1)
    return {k: round(float(v), 4) for k, v in flat.items()}
