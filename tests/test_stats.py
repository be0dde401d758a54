"""Bootstrap intervals over test identities (gaitflow.stats) and how the tables use them:
seeds combined, paired differences, the claims table's verdicts."""

from __future__ import annotations

import numpy as np
import pytest

from gaitflow.evaluate.protocols import cross_view_rank1
from gaitflow.evaluate.retrieval import PROBE_SCORES, record_figures, retrieval
from gaitflow.stats import Bootstrap, Estimate, weighted_rank1
from gaitflow.tables import build_tables
from gaitflow.tables.results import Result, combine

VIEWS = ["000", "090", "180"]
CONDS = {"NM": ["nm-05", "nm-06"], "BG": ["bg-01", "bg-02"], "CL": ["cl-01", "cl-02"]}
RECIPES = {
    "triplet": {"triplet": {}},
    "triplet+drpl": {"triplet": {}, "drpl": {}},
    "triplet+gsam": {"triplet": {}, "gsam": {}},
    "triplet+drpl+gsam": {"triplet": {}, "drpl": {}, "gsam": {}},
    "triplet+gsam-centred": {"triplet": {}, "gsam": {"center": True}},
}


def _dataset(ids=12, seed=0, noise=1.0):
    """Embeddings of a tiny CASIA-B-like test set: identity centres plus noise (more noise, fewer hits)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(ids, 8))
    subjects, types, views, emb = [], [], [], []
    for i in range(ids):
        for t in ["nm-01", "nm-02", "nm-03", "nm-04", *[t for ts in CONDS.values() for t in ts]]:
            for v in VIEWS:
                subjects.append(f"{i:03d}")
                types.append(t)
                views.append(v)
                emb.append(centres[i] + noise * rng.normal(size=8))
    return np.array(emb)[:, None, :], np.array(subjects), np.array(types), np.array(views)


def _metrics(noise, seed=0):
    emb, subjects, types, views = _dataset(seed=0, noise=noise)
    emb = emb + np.random.default_rng(seed + 100).normal(scale=0.05, size=emb.shape)  # a seed's own run
    return cross_view_rank1(emb, subjects, types, views, ["nm-01", "nm-02", "nm-03", "nm-04"], CONDS)


def _result(recipe, metrics, seed=0, backbone="gaitset"):
    return Result(
        f"{backbone}-{recipe}",
        backbone,
        recipe,
        metrics["rank1"],
        metrics["per_view"],
        f"run-{recipe}-{seed}",
        seed=seed,
        runs=[{k: metrics[k] for k in ("hits", "views", "identical_views")}],
    )


def test_unit_weights_reproduce_the_protocols_rank1():
    metrics = _metrics(noise=1.2)
    ids = sorted(set(metrics["hits"]["NM"]["subjects"]))
    index = {s: i for i, s in enumerate(ids)}
    for cond, record in metrics["hits"].items():
        value, per_view = weighted_rank1(record, metrics["views"], np.ones((1, len(ids))), index, diagonal=False)
        assert value[0] == pytest.approx(metrics["rank1"][cond], abs=0.01)  # cells are rounded to 0.01
        for view, x in per_view.items():
            assert x[0] == pytest.approx(metrics["per_view"][cond][view], abs=0.01)
    # an identity drawn twice counts twice: its probes weigh double in every accuracy
    weights = np.ones((1, len(ids)))
    weights[0, 0] = 0
    without_first, _ = weighted_rank1(metrics["hits"]["CL"], metrics["views"], weights, index, diagonal=False)
    kept = [s != ids[0] for s in metrics["hits"]["CL"]["subjects"]]
    record = {k: [x for x, keep in zip(v, kept) if keep] for k, v in metrics["hits"]["CL"].items()}
    alone, _ = weighted_rank1(record, metrics["views"], np.ones((1, len(ids))), index, diagonal=False)
    assert without_first[0] == pytest.approx(alone[0])


def test_intervals_hold_the_value_are_deterministic_and_shrink_when_paired():
    base, better = _result("triplet", _metrics(1.4)), _result("triplet+drpl", _metrics(1.0))
    tables = build_tables([base, better], RECIPES)
    again = build_tables([_result("triplet", _metrics(1.4)), _result("triplet+drpl", _metrics(1.0))], RECIPES)
    variants = tables["variants"][0]
    assert variants.intervals == again["variants"][0].intervals  # fixed bootstrap seed
    for (labels, col), (low, high) in variants.intervals.items():
        value = dict(variants.rows)[labels][variants.columns.index(col)][0]
        assert low <= value <= high and high - low > 0
    diff = tables["variants"][1]
    assert [labels for labels, _ in diff.rows] == [("gaitset", "triplet + DRPL", "triplet")]
    low, high = diff.intervals[(diff.rows[0][0], "Mean")]
    width_base = np.subtract(*variants.intervals[(("gaitset", "triplet", "base"), "Mean")][::-1])
    width_var = np.subtract(*variants.intervals[(("gaitset", "triplet", "+D"), "Mean")][::-1])
    assert high - low < np.hypot(width_base, width_var)  # paired: narrower than independent intervals
    assert low > 0 and "*" in diff.cell(diff.rows[0][0], "Mean", diff.rows[0][1][-1][0])


def test_a_variant_equal_to_its_base_differs_by_exactly_zero():
    same = _metrics(1.2)
    tables = build_tables([_result("triplet", same), _result("triplet+gsam", same)], RECIPES)
    diff = tables["variants"][1]
    assert diff.intervals[(diff.rows[0][0], "Mean")] == (0.0, 0.0)
    claims = tables["claims"][0]
    gsam = [labels for labels, _ in claims.rows if labels[1] == "GSAM improves the baseline"]
    assert claims.verdicts[gsam[0]] == "inconclusive"


def test_claims_get_verdicts_and_untested_claims_say_so():
    tables = build_tables(
        [
            _result("triplet", _metrics(1.4)),
            _result("triplet+drpl", _metrics(0.9)),
            _result("triplet+gsam", _metrics(2.0)),
        ],
        RECIPES,
    )
    claims = tables["claims"][0]
    verdicts = {labels[1]: claims.verdicts[labels] for labels, _ in claims.rows}
    assert verdicts["DRPL improves the baseline"] == "supported"
    assert verdicts["GSAM improves the baseline"] == "contradicted"
    assert verdicts["GSAM adds to DRPL"] == "not tested"  # no triplet+drpl+gsam run
    assert verdicts["The full Waveloss beats circle loss alone"] == "not tested"
    assert "not tested" in "\n".join(to for to in map(str, claims.verdicts.values()))


def test_seeds_are_combined_and_their_spread_widens_the_interval():
    same = [_result("triplet", _metrics(1.2, seed=0), seed=s) for s in range(3)]  # three seeds, one outcome
    spread = [_result("triplet", _metrics(0.9 + 0.4 * s, seed=s), seed=s) for s in range(3)]
    (combined,) = combine(spread)
    assert combined.rank1["NM"] == pytest.approx(np.mean([r.rank1["NM"] for r in spread]))
    assert len(combined.runs) == 3 and combined.seed == 0
    width = {}
    for name, group in (("same", same), ("spread", spread)):
        table = build_tables(group, RECIPES)["variants"][0]
        low, high = table.intervals[(("gaitset", "triplet", "base"), "Mean")]
        width[name] = high - low
    assert width["spread"] > width["same"] > 0  # the spread over seeds enters the interval


def test_estimate_and_bootstrap_basics():
    boot = Bootstrap(["a", "b", "c"], seeds=1, replicates=200, level=0.9, seed=1)
    assert boot.weights.shape == (200, 3) and (boot.weights.sum(1) == 3).all()
    est = boot.estimate(1.0, np.linspace(0, 10, 101))
    assert est.low == pytest.approx(0.5) and est.high == pytest.approx(9.5)
    assert Estimate(1.0, 0.1, 2.0).excludes_zero and not Estimate(1.0, -0.1, 2.0).excludes_zero


def test_an_addition_of_ours_is_labelled_and_kept_out_of_the_papers_claims():
    runs = [
        _result("triplet", _metrics(1.2)),
        _result("triplet+gsam", _metrics(2.0)),
        _result("triplet+drpl+gsam", _metrics(1.8)),
        _result("triplet+gsam-centred", _metrics(1.0)),
    ]
    tables = build_tables(runs, RECIPES)
    variants = [labels[2] for labels, _ in tables["variants"][0].rows]
    assert variants == ["base", "+G", "+G centred (ours)", "++"]
    claims = tables["claims"][0]
    rows = {(labels[1], labels[3]): claims.verdicts[labels] for labels, _ in claims.rows}
    assert rows[("GSAM improves the baseline", "triplet+gsam vs triplet")] == "contradicted"
    assert not any("centred" in pair for claim, pair in rows if not claim.startswith("Centr"))
    assert rows[("Centred GSAM improves the baseline", "triplet+gsam-centred vs triplet")] == "supported"
    assert rows[("Centring improves GSAM", "triplet+gsam-centred vs triplet+gsam")] == "supported"


def _retrieval_metrics(noise, proxy=False):
    """A Gait3D-like retrieval result (every sequence of an identity against the others' gallery half)."""
    emb, subjects, _, _ = _dataset(seed=0, noise=noise)
    probe, gallery = np.arange(0, len(emb), 2), np.arange(1, len(emb), 2)
    figures, record = retrieval(emb, subjects, probe, gallery, ranks=(1, 5), per_probe=True)
    name = "retrieval_proxy" if proxy else "retrieval"
    return {name: figures, PROBE_SCORES: {"figures": name, **record}}


def _retrieval_result(recipe, metrics):
    figures = metrics.get("retrieval") or {f"proxy {k}": v for k, v in metrics["retrieval_proxy"].items()}
    rank1 = {k: v for k, v in figures.items() if not k.endswith("probes")}
    return Result(f"gaitset-{recipe}", "gaitset", recipe, rank1, {}, None, kind="retrieval", seed=0, runs=[metrics])


def test_retrieval_probe_scores_reproduce_the_figures_and_get_intervals():
    metrics = _retrieval_metrics(noise=1.5)
    record = metrics[PROBE_SCORES]
    assert len(record["subjects"]) == metrics["retrieval"]["probes"]
    ones = record_figures(record, np.ones((1, len(record["subjects"]))))
    for name in ("rank1", "rank5", "mAP", "mINP"):
        assert ones[name][0] == pytest.approx(metrics["retrieval"][name], abs=0.01)  # AP, INP kept to 4 decimals
    # an identity drawn twice counts twice
    twice = np.where(np.array(record["subjects"]) == record["subjects"][0], 2.0, 1.0)[None]
    first = np.asarray(record["first"]) < 1
    assert record_figures(record, twice)["rank1"][0] == pytest.approx(100 * (twice[0] @ first) / twice.sum())

    base, better = _retrieval_result("triplet", metrics), _retrieval_result("triplet+drpl", _retrieval_metrics(0.9))
    tables = build_tables([base, better], RECIPES)
    variants, diff = tables["variants"]
    for labels, _ in variants.rows:
        for col in ("rank1", "mAP"):
            low, high = variants.intervals[(labels, col)]
            assert low <= dict(variants.rows)[labels][variants.columns.index(col)][0] <= high and high > low
    low, high = diff.intervals[(diff.rows[0][0], "rank1")]
    assert low > 0  # less noise, better retrieval, on the same resampled identities


def test_a_proxy_score_gets_intervals_under_its_own_names():
    proxy = _retrieval_result("triplet", _retrieval_metrics(1.2, proxy=True))
    table = build_tables([proxy], RECIPES)["variants"][0]
    assert (table.rows[0][0], "proxy rank1") in table.intervals


def test_claims_on_a_retrieval_protocol_compare_rank1():
    base, drpl = (
        _retrieval_result("triplet", _retrieval_metrics(1.5)),
        _retrieval_result("triplet+drpl", _retrieval_metrics(0.9)),
    )
    claims = build_tables([base, drpl], RECIPES)["claims"][0]
    (labels,) = [labels for labels, _ in claims.rows if labels[1] == "DRPL improves the baseline"]
    value = dict(claims.rows)[labels][0][0]
    assert value == pytest.approx(drpl.rank1["rank1"] - base.rank1["rank1"])
    assert claims.verdicts[labels] == "supported"
