"""GaitMPL's ablation tables (V-IX) and Fig. 6 (gaitflow.tables.ablations): which run fills which
row, the paper's figures beside ours, and the claims' verdicts with the "best of" rule."""

from __future__ import annotations

import pytest
import yaml
from conftest import REPO
from test_stats import _metrics, _result

from gaitflow.tables import build_tables, write_tables
from gaitflow.tables.ablations import ABLATIONS, Row, matches

PARAMS = yaml.safe_load((REPO / "params.yaml").read_text())
RECIPES = {
    **PARAMS["recipes"],
    "triplet+gsam~tau=0.01": {"triplet": {"margin": 0.2}, "gsam": {"tau": 0.01}},
    "triplet+gsam~tau=1.0": {"triplet": {"margin": 0.2}, "gsam": {"tau": 1.0}},
}


def _rows(table):
    return {labels[0]: dict(zip(table.columns, (v for v, _ in cells))) for labels, cells in table.rows}


def test_a_row_is_the_recipe_with_exactly_its_additions_at_their_defaults_but_one():
    assert matches(RECIPES["triplet+drpl"], Row("Ours", {"drpl": {}}))
    assert matches(RECIPES["triplet+drpl-threshold"], Row("T", {"drpl": {"weighting": "threshold"}}))
    assert not matches(RECIPES["triplet+drpl-threshold"], Row("Ours", {"drpl": {}}))
    assert not matches(RECIPES["triplet+drpl+gsam"], Row("Ours", {"drpl": {}}))  # a component more
    assert not matches(RECIPES["triplet+gsam-centred"], Row("Ours", {"gsam": {}}))  # an addition of ours
    assert not matches(RECIPES["circle+waveloss"], Row("Baseline"))
    assert matches(RECIPES["triplet"], Row("Baseline"))


def test_every_ablation_recipe_of_the_profile_fills_exactly_one_row():
    profile = yaml.safe_load((REPO / "workflow" / "params" / "ablations.yaml").read_text())
    for recipe in profile["grid"]["extra"]["recipes"]:
        hits = [(a.name, row.label) for a in ABLATIONS for row in a.rows if matches(RECIPES[recipe], row)]
        assert len(hits) == 1, (recipe, hits)


def test_the_ablation_tables_carry_ours_with_intervals_and_the_papers_figures_beside():
    runs = [
        _result("triplet", _metrics(1.6)),
        _result("triplet+drpl", _metrics(0.9)),
        _result("triplet+drpl-threshold", _metrics(1.2)),
        _result("triplet+drpl-polynomial", _metrics(1.3)),
        _result("triplet+drpl-exponential", _metrics(1.4)),
        _result("triplet+drpl", _metrics(1.0), backbone="mt3d"),  # not the ablation backbone
    ]
    tables = build_tables(runs, RECIPES, {"replicates": 200, "level": 0.95, "seed": 0})
    v = tables["gaitmpl_v"][0]
    rows = _rows(v)
    assert list(rows) == ["Baseline", "Thresholding", "Dynamic Polynomial", "Exponential", "Ours"]
    assert rows["Ours"]["paper Mean"] == 85.9 and rows["Ours"]["paper vs baseline"] == pytest.approx(85.9 - 84.7)
    assert rows["Baseline"]["ours vs baseline"] is None and rows["Ours"]["ours vs baseline"] > 0
    assert (("Ours", "triplet+drpl"), "ours vs baseline") in v.intervals
    assert v.notes and "not comparable" in v.notes[0]
    assert "gaitmpl_vi" in tables and "gaitmpl_fig6" not in tables  # rows only where runs are
    claims = tables["claims"][0]
    verdicts = {(labels[1], labels[3]): claims.verdicts[labels] for labels, _ in claims.rows}
    best = next(k for k in verdicts if k[0].startswith("The dynamic exponential"))
    assert best[1] == "triplet+drpl vs best other, triplet+drpl-threshold"
    assert verdicts[best] in ("supported", "inconclusive")
    assert verdicts[("PU+AU beats PU", "GSAM (PU+AU): not in the grid")] == "not tested"


def test_best_of_is_supported_only_when_every_paired_interval_excludes_zero():
    # ours far ahead of one rival and level with another: not supported
    level = [
        _result("triplet", _metrics(1.8)),
        _result("triplet+drpl", _metrics(0.8)),
        _result("triplet+drpl-threshold", _metrics(2.0)),
        _result("triplet+drpl-polynomial", _metrics(0.8, seed=0)),
    ]
    ahead = [*level[:3], _result("triplet+drpl-polynomial", _metrics(1.9))]
    boot = {"replicates": 300, "level": 0.95, "seed": 0}

    def verdict(runs):
        claims = build_tables(runs, RECIPES, boot)["claims"][0]
        return next(claims.verdicts[labels] for labels, _ in claims.rows if labels[1].startswith("The dynamic"))

    assert verdict(ahead) == "supported"
    assert verdict(level) == "inconclusive"
    behind = [*level[:3], _result("triplet+drpl-polynomial", _metrics(0.3))]
    assert verdict(behind) == "contradicted"


def test_fig6_is_a_table_a_plot_and_points_for_dvc_plots(tmp_path):
    runs = [
        _result("triplet", _metrics(1.6)),
        _result("triplet+gsam", _metrics(1.0)),
        _result("triplet+gsam~tau=0.01", _metrics(1.5)),
        _result("triplet+gsam~tau=1.0", _metrics(1.2)),
    ]
    tables = write_tables(runs, RECIPES, tmp_path / "out", "casiab-syn", {"replicates": 100, "level": 0.95, "seed": 0})
    fig = tables["gaitmpl_fig6"][0]
    assert [labels[0] for labels, _ in fig.rows] == ["0.01", "0.1", "1"]
    for suffix in ("md", "tex", "csv", "png", "pdf", "tsv"):
        assert (tmp_path / "out" / f"gaitmpl_fig6.{suffix}").stat().st_size > 0
    tsv = (tmp_path / "out" / "gaitmpl_fig6.tsv").read_text().splitlines()
    assert tsv[0].split("\t")[:5] == ["tau", "NM", "BG", "CL", "Mean"] and len(tsv) == 4
    claims = tables["claims"][0]
    tau = next(labels for labels, _ in claims.rows if labels[1].startswith("tau = 0.1"))
    assert tau[3].startswith("triplet+gsam vs best other") and claims.verdicts[tau] != "not tested"
    assert "Synthetic data" in (tmp_path / "out" / "gaitmpl_fig6.md").read_text()


def test_the_printed_rows_of_the_benchmark_stand_beside_the_runs_that_report_the_same():
    from gaitflow.tables.printed import check

    check()
    runs = [
        _result("triplet", _metrics(1.6)),
        _result("triplet+drpl+gsam", _metrics(1.0)),
        _result("triplet", _metrics(1.4), backbone="mt3d"),
        _result("triplet+waveloss", _metrics(1.0), backbone="gaitgl"),
        _result("triplet", _metrics(1.2), backbone="gaitgl"),
    ]
    for r in runs:
        r.protocol = "casia-b"
    table = build_tables(runs, RECIPES, {"replicates": 200, "level": 0.95, "seed": 0})["published"][0]
    rows = {labels[:3]: (labels[3], dict(zip(table.columns, (v for v, _ in cells)))) for labels, cells in table.rows}
    recipe, cells = rows[("gaitmpl", "table-iii", "GaitSet++")]
    assert recipe == "triplet+drpl+gsam" and cells["paper"] == 88.4
    assert cells["paper vs base"] == pytest.approx(88.4 - 84.7) and cells["ours vs base"] > 0
    assert rows[("gaitmpl", "table-iii", "GLN++")] == (
        "-",
        {"ours": None, "paper": 91.8, "ours vs base": None, "paper vs base": pytest.approx(91.8 - 89.5)},
    )
    recipe, cells = rows[("gaitmpl", "table-i", "GaitSet † (CL)")]  # a condition's row: that condition's figure
    assert recipe == "triplet" and cells["ours"] == runs[0].rank1["CL"] and cells["paper"] == 71.8
    recipe, cells = rows[("waveloss", "table-5", "Norm-fusion")]  # on the table's backbone, GaitGL
    assert recipe == "triplet+waveloss" and cells["paper vs base"] == pytest.approx(94.7 - 94.2)
    assert not any(t == "table-ii" for _, t, _ in rows)  # OU-MVLP's tables: not on a CASIA-B dataset


def _one_condition(noise, seed=0):
    """An OU-MVLP-like metrics file: one probe condition (NM), so the Mean is that condition."""
    from test_stats import CONDS, _dataset

    from gaitflow.evaluate.protocols import cross_view_rank1

    emb, subjects, types, views = _dataset(seed=0, noise=noise)
    emb = emb + __import__("numpy").random.default_rng(seed + 100).normal(scale=0.05, size=emb.shape)
    return cross_view_rank1(emb, subjects, types, views, ["nm-01", "nm-02", "nm-03", "nm-04"], {"NM": CONDS["NM"]})


def test_a_one_condition_benchmark_has_intervals_on_its_mean_and_verdicts():
    runs = [
        _result("triplet", _one_condition(1.6)),
        _result("triplet+drpl+gsam", _one_condition(1.0)),
        _result("triplet", _one_condition(1.4), backbone="mt3d"),
    ]
    for r in runs:
        r.protocol = "ou-mvlp"
    tables = build_tables(runs, RECIPES, {"replicates": 200, "level": 0.95, "seed": 0})
    published = tables["published"][0]
    labels = next(lab for lab, _ in published.rows if lab[:3] == ("gaitmpl", "table-iv", "GaitSet++"))
    low, high = published.intervals[(labels, "ours")]
    assert low <= runs[1].rank1["NM"] <= high and high > low
    low, high = published.intervals[(labels, "ours vs base")]
    assert low > 0  # clearly better: the paired interval excludes zero
    claims = tables["claims"][0]
    both = next(lab for lab, _ in claims.rows if lab[1] == "DRPL and GSAM together improve the baseline")
    assert claims.verdicts[both] == "supported" and (both, "difference") in claims.intervals
