"""Open-set retrieval metrics (Gait3D style): rank-k (CMC), mAP and mINP.

For each probe the gallery is ranked by distance. Probes with no true match in
the gallery are left out (they have no rank). CMC at k is the share of probes
whose first true match is within the top k; AP is the mean precision at each
true match; INP is the number of true matches over the rank of the last one.
Values in percent.
"""

from __future__ import annotations

import numpy as np

from gaitflow.evaluate.distances import pairwise_distance


def retrieval_metrics(distances: np.ndarray, probe_ids: np.ndarray, gallery_ids: np.ndarray,
                      ranks=(1, 5, 10)) -> dict:
    order = np.argsort(distances, axis=1, kind="stable")
    matches = gallery_ids[order] == np.asarray(probe_ids)[:, None]  # [n, m] in rank order
    valid = matches.any(1)
    matches = matches[valid]
    if not len(matches):
        return {"probes": 0, **{f"rank{k}": float("nan") for k in ranks}, "mAP": float("nan"), "mINP": float("nan")}
    first = matches.argmax(1)
    cum = np.cumsum(matches, 1)
    positions = np.arange(1, matches.shape[1] + 1)
    ap = (cum / positions * matches).sum(1) / matches.sum(1)
    last = matches.shape[1] - 1 - np.argmax(matches[:, ::-1], 1)
    inp = matches.sum(1) / (last + 1)
    out = {"probes": int(len(matches))}
    out.update({f"rank{k}": float(100 * (first < k).mean()) for k in ranks})
    out.update({"mAP": float(100 * ap.mean()), "mINP": float(100 * inp.mean())})
    return out


def retrieval(embeddings: np.ndarray, subjects: np.ndarray, probe: np.ndarray, gallery: np.ndarray,
              metric: str = "euclidean") -> dict:
    """Retrieval metrics of probe rows against gallery rows of one embedding matrix."""
    d = pairwise_distance(embeddings[probe], embeddings[gallery], metric)
    return retrieval_metrics(d, subjects[probe], subjects[gallery])
