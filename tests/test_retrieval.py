"""Retrieval metrics by hand."""

import numpy as np
import pytest

from gaitflow.evaluate.retrieval import retrieval_metrics


def test_rank_map_minp_by_hand():
    # both probes see the gallery ranked B, A, C, A (columns are already in distance order)
    d = np.array([[0.2, 0.3, 0.5, 0.9],
                  [0.1, 0.8, 0.9, 0.95]])
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
