"""Retrieval metrics by hand."""

import numpy as np
import pytest

from gaitflow.evaluate.retrieval import retrieval_metrics


def test_rank_map_minp_by_hand():
    # both probes see the gallery ranked B, A, C, A (columns are already in distance order)
    d = np.array([[0.2, 0.3, 0.5, 0.9], [0.1, 0.8, 0.9, 0.95]])
    gallery = np.array(["B", "A", "C", "A"])
    probes = np.array(["A", "B"])
    m = retrieval_metrics(d, probes, gallery, ranks=(1, 2))
    # probe A: matches at ranks 2 and 4 -> AP = (1/2 + 2/4) / 2 = 0.5, INP = 2 / 4
    # probe B: match at rank 1 -> AP 1, INP 1
    assert m["rank1"] == 50.0 and m["rank2"] == 100.0
    assert m["mAP"] == pytest.approx(75.0) and m["mINP"] == pytest.approx(75.0)
    assert m["probes"] == 2


def test_probes_without_a_match_are_left_out():
    m = retrieval_metrics(np.array([[0.1, 0.2]]), np.array(["Z"]), np.array(["A", "B"]))
    assert m["probes"] == 0


def test_chunked_retrieval_equals_the_full_matrix():
    from gaitflow.evaluate.distances import pairwise_distance
    from gaitflow.evaluate.retrieval import retrieval

    rng = np.random.default_rng(0)
    emb = rng.normal(size=(60, 3, 4)).astype(np.float32)
    subjects = np.repeat(np.arange(12), 5).astype(str)
    probe, gallery = np.arange(0, 60, 2), np.arange(1, 60, 2)
    full = retrieval_metrics(pairwise_distance(emb[probe], emb[gallery]), subjects[probe], subjects[gallery])
    assert retrieval(emb, subjects, probe, gallery, chunk=7) == pytest.approx(full)
