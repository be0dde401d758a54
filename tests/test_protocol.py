"""The cross-view rank-1 protocol and distances on hand-built embeddings with known answers."""

import numpy as np
import pytest

from gaitflow.evaluate import cross_view_rank1, pairwise_distance


def test_partwise_euclidean_is_the_mean_of_part_distances():
    x = np.array([[[0, 0], [0, 0]]], np.float32)  # 1 probe, 2 parts
    y = np.array([[[3, 4], [0, 1]], [[0, 0], [6, 8]]], np.float32)
    d = pairwise_distance(x, y, "euclidean")
    np.testing.assert_allclose(d, [[(5 + 1) / 2, (0 + 10) / 2]], rtol=1e-6)
    c = pairwise_distance(np.array([[[1, 0], [0, 1]]], np.float32), np.array([[[2, 0], [0, -3]]], np.float32), "cosine")
    np.testing.assert_allclose(c, [[1 - (1 + -1) / 2]], atol=1e-6)


def test_chunking_does_not_change_distances():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(37, 3, 8)), rng.normal(size=(11, 3, 8))
    np.testing.assert_allclose(pairwise_distance(a, b, chunk=5), pairwise_distance(a, b, chunk=1000), rtol=1e-5)


def _toy(views=("000", "090", "180")):
    """Two subjects; subject A's probe at view 090 looks like B's gallery at 000 only."""
    subj, types, vw, emb = [], [], [], []
    base = {"A": np.array([0.0, 0.0]), "B": np.array([10.0, 0.0])}
    for s in "AB":
        for v in views:
            subj.append(s)
            types.append("nm-01")
            vw.append(v)
            emb.append(base[s] + [0, int(v) / 100])
            subj.append(s)
            types.append("nm-05")
            vw.append(v)
            emb.append(base[s] + [0.1, int(v) / 100])
    return np.array(emb, np.float32)[:, None, :], np.array(subj), np.array(types), np.array(vw)


def test_identical_views_are_excluded():
    emb, subj, types, views = _toy()
    probe_a_090 = np.flatnonzero((subj == "A") & (types == "nm-05") & (views == "090"))[0]
    emb[probe_a_090, 0] = [9.5, 0.9]  # now nearest to B everywhere except ... (misses at 000 and 180 too)
    r = cross_view_rank1(emb, subj, types, views, ["nm-01"], {"NM": ["nm-05"]})
    m = np.array(r["matrix"]["NM"])
    assert m[1, 0] == 50.0 and m[1, 2] == 50.0  # probe view 090: A misses, B hits
    assert m[0, 1] == 100.0
    assert r["per_view"]["NM"]["090"] == 50.0  # (50 + 50) / 2: the 090-090 cell is left out
    assert r["per_view"]["NM"]["000"] == 100.0
    assert r["rank1"]["NM"] == pytest.approx((100 + 50 + 100) / 3, abs=1e-3)


def test_no_gallery_policy():
    emb, subj, types, views = _toy()
    keep = ~((subj == "B") & (types == "nm-01") & (views == "000"))  # B has no gallery at 000
    args = (emb[keep], subj[keep], types[keep], views[keep], ["nm-01"], {"NM": ["nm-05"]})
    counted = np.array(cross_view_rank1(*args, no_gallery="error")["matrix"]["NM"])
    excluded = np.array(cross_view_rank1(*args, no_gallery="exclude")["matrix"]["NM"])
    assert counted[1, 0] == 50.0 and excluded[1, 0] == 100.0
