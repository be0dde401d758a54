"""Open-set retrieval metrics (Gait3D style): rank-k (CMC), mAP and mINP.

For each probe the gallery is ranked by distance. Probes with no true match in
the gallery are left out (they have no rank). CMC at k is the share of probes
whose first true match is within the top k; AP is the mean precision at each
true match; INP is the number of true matches over the rank of the last one.
Values in percent.

With ``per_probe`` the scores of every probe are returned too (its identity, its
first-match rank, AP and INP): the tables' bootstrap over test identities
reweights them (gaitflow/stats.py) without ranking anything again.
"""

from __future__ import annotations

import numpy as np

from gaitflow.evaluate.distances import prepared_chunks

PROBE_SCORES = "probe_scores"  # a retrieval protocol's per-probe scores in metrics.json (probe_record)


def _per_probe(distances: np.ndarray, probe_ids: np.ndarray, gallery_ids: np.ndarray, ranks, allowed=None) -> dict:
    """Per-probe first-match rank, AP and INP of the probes that have a match (among ``allowed``
    gallery entries, [n, m], when given: the others rank last and never match)."""
    if allowed is not None:
        distances = np.where(allowed, distances, np.inf)
    order = np.argsort(distances, axis=1, kind="stable")
    matches = gallery_ids[order] == np.asarray(probe_ids)[:, None]  # [n, m] in rank order
    if allowed is not None:
        matches &= np.take_along_axis(allowed, order, 1)
    kept = matches.any(1)
    matches = matches[kept]
    cum = np.cumsum(matches, 1)
    positions = np.arange(1, matches.shape[1] + 1)
    last = matches.shape[1] - 1 - np.argmax(matches[:, ::-1], 1)
    return {
        "subjects": np.asarray(probe_ids)[kept],
        "first": matches.argmax(1),
        "ap": (cum / positions * matches).sum(1) / matches.sum(1),
        "inp": matches.sum(1) / (last + 1),
    }


def _summarise(per: dict, ranks) -> dict:
    """The protocol's figures: :func:`record_figures` with every probe weighing one (NaN without probes)."""
    n = len(per["first"])
    figures = record_figures({**per, "ranks": ranks}, np.ones((1, n)))
    return {"probes": int(n), **{name: float(value[0]) for name, value in figures.items()}}


def retrieval_metrics(distances: np.ndarray, probe_ids: np.ndarray, gallery_ids: np.ndarray, ranks=(1, 5, 10)) -> dict:
    """Metrics from a full probe x gallery distance matrix."""
    return _summarise(_per_probe(distances, probe_ids, gallery_ids, ranks), ranks)


def retrieval(
    embeddings: np.ndarray,
    subjects: np.ndarray,
    probe: np.ndarray,
    gallery: np.ndarray,
    metric: str = "euclidean",
    ranks=(1, 5, 10),
    chunk: int = 1024,
    exclude_self: bool = False,
    per_probe: bool = False,
) -> dict | tuple[dict, dict]:
    """Retrieval metrics of probe rows against gallery rows of one embedding matrix, a chunk of
    probes at a time (the full matrix is never held). With ``exclude_self`` a probe that is also in
    the gallery is not matched with itself (leave-one-out within one set). With ``per_probe``:
    (metrics, :func:`probe_record` of the probes that have a match)."""
    parts = {"subjects": [], "first": [], "ap": [], "inp": []}
    gallery_ids = subjects[gallery]
    for start, d in prepared_chunks(embeddings, embeddings, metric, chunk, probe_rows=probe, gallery_rows=gallery):
        allowed = probe[start : start + len(d), None] != np.asarray(gallery)[None, :] if exclude_self else None
        per = _per_probe(d, subjects[probe][start : start + len(d)], gallery_ids, ranks, allowed)
        for k in parts:
            parts[k].append(per[k])
    per = {k: np.concatenate(v) if v else np.array([]) for k, v in parts.items()}
    summary = _summarise(per, ranks)
    return (summary, probe_record(per, ranks)) if per_probe else summary


def probe_record(per: dict, ranks) -> dict:
    """Each probe's scores, compactly for a metrics file: identity, first-match rank (0-based),
    AP and INP (4 decimals: the tables round to 0.1 %)."""
    return {
        "ranks": [int(k) for k in ranks],
        "subjects": [str(s) for s in per["subjects"]],
        "first": [int(f) for f in per["first"]],
        "ap": [round(float(a), 4) for a in per["ap"]],
        "inp": [round(float(i), 4) for i in per["inp"]],
    }


def record_figures(record: dict, weights: np.ndarray) -> dict[str, np.ndarray]:
    """The retrieval figures (%) of a :func:`probe_record` under probe weights [B, probes]:
    {"rank<k>": [B], "mAP": [B], "mINP": [B]}; unit weights give the protocol's own figures."""
    total = weights.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):

        def share(x):
            return np.where(total > 0, 100.0 * (weights @ np.asarray(x, float)) / total, np.nan)

        first = np.asarray(record["first"])
        out = {f"rank{k}": share(first < k) for k in record["ranks"]}
        out.update({"mAP": share(record["ap"]), "mINP": share(record["inp"])})
    return out


def ranked_ids(
    embeddings: np.ndarray,
    subjects: np.ndarray,
    probe: np.ndarray,
    gallery: np.ndarray,
    top: int = 20,
    metric: str = "euclidean",
    chunk: int = 1024,
) -> list[list[str]]:
    """Each probe's first ``top`` gallery identities by rising distance (what an identification challenge
    such as GREW's asks to submit): each identity once while there are others to name, then, to fill
    the ``top`` places when the gallery holds fewer identities, the next sequences' identities."""
    out = []
    gallery_ids = np.asarray(subjects)[gallery]
    for _, d in prepared_chunks(embeddings, embeddings, metric, chunk, probe_rows=probe, gallery_rows=gallery):
        for row in np.argsort(d, axis=1, kind="stable"):
            ranked = gallery_ids[row].tolist()
            ids = list(dict.fromkeys(ranked))[:top]
            ids += ranked[: min(top, len(ranked)) - len(ids)]  # as many places as sequences, at most top
            out.append([str(i) for i in ids])
    return out
