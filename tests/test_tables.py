"""The papers' tables from results files: shapes, what each recipe counts as, formats."""

from __future__ import annotations

import csv
import io
import json

import pytest

from gaitflow.cli import main
from gaitflow.errors import GaitflowError
from gaitflow.tables import build_tables, write_tables
from gaitflow.tables.recipes import l_schedule, loss_label
from gaitflow.tables.render import to_csv, to_latex, to_markdown
from gaitflow.tables.results import Result, load_result

VIEWS = ["000", "090", "180"]
RECIPES = {
    "triplet": {"triplet": {"margin": 0.2}},
    "triplet+drpl": {"triplet": {}, "drpl": {"formulation": "intended"}},
    "triplet+gsam": {"triplet": {}, "gsam": {}},
    "triplet+drpl+gsam": {"triplet": {}, "drpl": {}, "gsam": {}},
    "triplet+drpl-printed": {"triplet": {}, "drpl": {"formulation": "as_printed"}},
    "circle": {"circle": {}},
    "circle+waveloss": {"circle": {}, "waveloss": {"fusion": "norm", "l_min": -1, "l_max": 1}},
    "circle+wl-static": {"circle": {}, "waveloss": {"fusion": "norm", "l_min": 1, "l_max": 1}},
    "circle+wl-pre": {"circle": {}, "waveloss": {"fusion": "pre"}},
    "ce": {"ce": {}},
}


def _result(backbone, recipe, base):
    per_view = {c: {v: base + i + 10 * j for j, v in enumerate(VIEWS)} for i, c in enumerate(["NM", "BG", "CL"])}
    rank1 = {c: sum(d.values()) / len(d) for c, d in per_view.items()}
    method = f"{backbone}-{recipe}" if recipe else "gei-baseline"
    return Result(method, backbone if recipe else method, recipe, rank1, per_view, f"run-{method}" if recipe else None)


@pytest.fixture
def results():
    rows = [_result("gei", None, 5.0)]
    rows += [_result(b, r, 20.0 + k) for b in ("gaitset", "gaitpart") for k, r in enumerate(RECIPES)]
    return rows


def test_per_view_has_nm_bg_cl_and_mean_rows_per_method(results):
    (table,) = build_tables(results, RECIPES)["per_view"]
    assert table.columns == [*VIEWS, "Mean"]
    labels = [labels for labels, _ in table.rows]
    assert labels[:4] == [("gei-baseline", c) for c in ("NM", "BG", "CL", "Mean")]
    nm = dict(table.rows)[("gaitset-triplet", "NM")]
    assert [v for v, _ in nm] == [20.0, 30.0, 40.0, 30.0]
    mean_row = dict(table.rows)[("gaitset-triplet", "Mean")]
    assert mean_row[0][0] == pytest.approx((20 + 21 + 22) / 3)  # the three conditions at view 000


def test_variants_table_is_base_d_g_plusplus_per_backbone_after_the_baseline(results):
    table = build_tables(results, RECIPES)["variants"][0]
    labels = [labels for labels, _ in table.rows]
    assert labels[0] == ("gei-baseline", "-", "baseline")
    gaitpart = [lab for lab in labels if lab[0] == "gaitpart"]
    assert [lab for lab in gaitpart if lab[1] == "triplet"] == [
        ("gaitpart", "triplet", v) for v in ("base", "+D", "+G", "++")
    ]
    assert [lab[1] for lab in gaitpart] == [
        "ce",
        "circle",
        "triplet",
        "triplet",
        "triplet",
        "triplet",
    ]  # grouped by base
    # neither Waveloss recipes nor as_printed ones belong here
    assert not any("printed" in " ".join(lab) for lab in labels)
    assert ("gaitpart", "circle", "base") in labels and len([lab for lab in gaitpart if lab[1] == "circle"]) == 1
    assert table.columns == ["NM", "BG", "CL", "Mean"]


def test_waveloss_tables(results):
    fusion, schedule, ablation = build_tables(results, RECIPES)["waveloss"]
    fusions = [lab for lab, _ in fusion.rows if lab[0] == "gaitset"]
    assert fusions == [
        ("gaitset", "circle", "norm"),
        ("gaitset", "circle", "norm"),
        ("gaitset", "circle", "post"),
        ("gaitset", "circle", "pre"),
    ]
    assert {lab[2] for lab, _ in schedule.rows} == {"dynamic [-1, 1]", "static l=1"}
    losses = {lab[1] for lab, _ in ablation.rows}
    assert {
        "softmax",
        "triplet",
        "circle",
        "circle + norm-fusion (static l=1)",
        "circle + norm-fusion (dynamic [-1, 1])",
        "circle + pre-fusion",
    } <= losses


def test_formulations_pair_recipes_that_differ_only_there(results):
    (table,) = build_tables(results, RECIPES)["formulations"]
    assert [lab for lab, _ in table.rows if lab[0] == "gaitset"] == [
        ("gaitset", "triplet + DRPL", "intended (triplet+drpl)"),
        ("gaitset", "triplet + DRPL", "as_printed (triplet+drpl-printed)"),
    ]


def test_labels_read_the_components_not_the_names():
    assert l_schedule({"waveloss": {"l_min": 0, "l_max": 0}}) == "static l=0"
    assert l_schedule({"waveloss": {"l_min": -1, "l_max": 0}}) == "dynamic [-1, 0]"
    assert loss_label({"triplet": {}, "ce": {}, "gsam": {}}) == "triplet+ce + GSAM"


def test_every_csv_cell_names_its_mlflow_run(results):
    tables = build_tables(results, RECIPES)
    rows = list(csv.DictReader(io.StringIO(to_csv(tables["variants"]))))
    assert rows[0]["table"] == "variants" and rows[0]["row"] == "gei-baseline / - / baseline"
    by_row = {(r["row"], r["column"]): r for r in rows}
    cell = by_row[("gaitset / triplet / +D", "NM")]
    assert cell["mlflow_run_id"] == "run-gaitset-triplet+drpl" and float(cell["rank1"]) == pytest.approx(31.0)


def test_markdown_and_latex_render_every_row(results):
    table = build_tables(results, RECIPES)["variants"][0]
    md = to_markdown(table)
    assert md.count("\n|") == len(table.rows) + 2
    assert "| gaitset | ce | base |" in md  # a block starts with its labels,
    assert "|  |  | +D | 31.0 | 32.0 | 33.0 | 32.0 |" in md  # repeated labels are left blank
    tex = to_latex(table)
    assert r"\begin{tabular}{lllrrrr}" in tex and tex.count(r" \\") == len(table.rows) + 1
    assert "{[}" in to_latex(build_tables(results, RECIPES)["waveloss"][1])  # brackets escaped


def test_gaitflow_tables_writes_every_file_from_results(project, results):
    root = project / "results" / "casiab-syn"
    recipes = ["triplet", "circle+waveloss"]
    for r in results:
        if r.recipe is None or (r.backbone in ("gaitset",) and r.recipe in recipes):
            out = root / (f"{r.method}-s0" if r.recipe else r.method) / "metrics.json"
            out.parent.mkdir(parents=True)
            out.write_text(
                json.dumps(
                    {
                        "method": r.method,
                        "backbone": r.backbone,
                        "recipe": r.recipe,
                        "rank1": r.rank1,
                        "per_view": r.per_view,
                        "mlflow_run_id": r.run_id,
                    }
                )
            )
    sets = ["--set", "grid.backbones=[gaitset]", "--set", "grid.recipes=[triplet, circle+waveloss]"]
    assert main(["tables", "--quiet", *sets]) == 0
    out = project / "results" / "tables" / "casiab-syn"
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [
            f"{t}.{e}"
            for t in ("per_view", "variants", "waveloss", "formulations", "claims")
            for e in ("md", "csv", "tex")
        ]
        + ["tables.md", "rank1_by_view.png", "ablation.png"]
    )
    assert "(no runs of this kind in the grid)" in (out / "formulations.md").read_text()
    # a missing results file is one line naming it, and the tables already written stay
    (root / "gaitset-triplet-s0" / "metrics.json").unlink()
    before = (out / "variants.md").read_text()
    assert main(["tables", "--quiet", *sets]) == 2
    assert (out / "variants.md").read_text() == before


def test_a_corrupt_results_file_is_named(tmp_path):
    bad = tmp_path / "metrics.json"
    bad.write_text("{not json")
    with pytest.raises(Exception, match="metrics.json: not a gaitflow metrics file"):
        load_result(bad)


@pytest.mark.parametrize(
    "damage, key",
    [
        ({"hits": {"NM": {"subjects": ["001"], "views": ["000"], "hits": ["1"]}}}, "hits.NM"),
        (
            {
                "probe_scores": {
                    "figures": "retrieval",
                    "ranks": [1],
                    "subjects": ["001"],
                    "first": [],
                    "ap": [],
                    "inp": [],
                }
            },
            "probe_scores",
        ),
    ],
)
def test_damaged_per_probe_scores_are_named(tmp_path, damage, key):
    """The bootstrap's inputs are checked when the file is read: one line naming the file and the key."""
    metrics = {"method": "gei-baseline", "rank1": {"NM": 50.0}, "per_view": {"NM": {}}, "views": ["000", "090"]}
    bad = _write(tmp_path / "metrics.json", {**metrics, **damage})
    with pytest.raises(GaitflowError, match=f"metrics.json: not a gaitflow metrics file .*{key}"):
        load_result(bad)


def test_write_tables_replaces_the_folder_whole(tmp_path, results):
    out = tmp_path / "tables"
    out.mkdir()
    (out / "stale.md").write_text("old")
    write_tables(results[:3], RECIPES, out, "casiab-syn")
    assert not (out / "stale.md").exists() and (out / "tables.md").read_text().startswith("# Results on casiab-syn")
    assert [p.name for p in tmp_path.iterdir()] == ["tables"]  # no staging folder left behind


def test_each_protocol_keeps_its_own_figures_in_the_tables(tmp_path):
    """Retrieval results (Gait3D) give rank-k / mAP / mINP columns, GREW's a proxy's, labelled as such; a
    cross-view protocol's rank-5 follows its Mean; the split is named above the tables."""
    split = {"source": "data/raw/Gait3D.json", "train_set": 3000, "test_set": 1000, "probe_set": 1000}
    gait3d = {"rank1": 41.5, "rank5": 60.0, "rank10": 67.2, "mAP": 31.0, "mINP": 20.1, "probes": 1000}
    files = {
        "gei-baseline": {"method": "gei-baseline", "retrieval": gait3d, "partition": split},
        "gaitset-triplet": {
            "method": "gaitset-triplet",
            "backbone": "gaitset",
            "recipe": "triplet",
            "retrieval": {**gait3d, "rank1": 52.0},
            "partition": split,
        },
    }
    paths = []
    for method, metrics in files.items():
        (tmp_path / method).mkdir()
        (tmp_path / method / "metrics.json").write_text(json.dumps(metrics))
        paths.append(tmp_path / method / "metrics.json")
    results = [load_result(p) for p in paths]
    tables = write_tables(results, {"triplet": {"triplet": {}}}, tmp_path / "tables", "gait3d")
    variants = tables["variants"][0]
    assert variants.columns == ["rank1", "rank5", "rank10", "mAP", "mINP"] and "per_view" not in tables
    text = (tmp_path / "tables" / "tables.md").read_text()
    assert "Split: data/raw/Gait3D.json; 3000 training and 1000 test identities, 1000 probe sequences." in text
    proxy = {"method": "gei-baseline", "retrieval_proxy": {"note": "proxy, ...", "rank1": 80.0, "mAP": 50.0}}
    assert list(load_result(_write(tmp_path / "p.json", proxy)).rank1) == ["proxy rank1", "proxy mAP"]
    sustech = {
        "method": "gei-baseline",
        "rank1": {"NM": 90.0, "BG": 70.0},
        "rank5": {"NM": 99.0, "BG": 90.0},
        "per_view": {"NM": {}, "BG": {}},
    }
    r = load_result(_write(tmp_path / "s.json", sustech))
    variants = build_tables([r], {})["variants"][0]
    assert variants.columns == ["NM", "BG", "Mean", "NM R5", "BG R5"]
    assert [v for v, _ in variants.rows[0][1]] == [90.0, 70.0, 80.0, 99.0, 90.0]


def _write(path, obj):
    path.write_text(json.dumps(obj))
    return path
