"""The papers' printed figures (gaitflow/tables/published.yaml): well formed, complete, and typed
in right: spot checks against the papers, and the papers' own arithmetic (a printed Mean is the
mean of its row; a figure two tables share is the same in both), which a mistyped cell breaks."""

from __future__ import annotations

import pytest

from gaitflow.errors import GaitflowError
from gaitflow.tables.published import _load, published_table

REQUESTED = {
    "gaitmpl": [f"table-{n}" for n in ("i", "ii", "iii", "iv", "v", "vi", "vii", "viii", "ix")] + ["fig-6"],
    "waveloss": [f"table-{n}" for n in range(1, 7)],
}
CONDITIONS = ["NM", "BG", "CL"]


def _entries():
    data = _load()
    return [(paper, tid, entry) for paper in REQUESTED for tid, entry in data[paper].items()]


ENTRIES = _entries()
IDS = [f"{paper}-{tid}" for paper, tid, _ in ENTRIES]


def _row(entry: dict, label: str, **fields) -> dict:
    (row,) = [r for r in entry["rows"] if r["label"] == label and all(r.get(k) == v for k, v in fields.items())]
    return row["values"]


def test_every_requested_table_is_present_or_named_as_not_printed():
    data = _load()
    not_printed = {(item["paper"], item["table"]): item["reason"] for item in data["not_printed"]}
    assert all(reason.strip() for reason in not_printed.values())
    for paper, tables in REQUESTED.items():
        for tid in tables:
            assert (tid in data[paper]) != ((paper, tid) in not_printed), (paper, tid)
    assert set(data) == {"not_printed", *REQUESTED}


@pytest.mark.parametrize(("paper", "tid", "entry"), ENTRIES, ids=IDS)
def test_every_entry_has_the_required_keys_and_only_known_ones(paper, tid, entry):
    assert {"caption", "dataset", "columns", "rows"} <= set(entry)
    assert set(entry) <= {"caption", "dataset", "columns", "rows", "backbone", "units", "missing", "note"} | {
        "gallery",
        "probes",
    }
    assert entry["dataset"] in ("casia-b", "ou-mvlp", "gait3d")
    assert entry["caption"].strip() and entry["rows"]
    assert len(set(entry["columns"])) == len(entry["columns"])
    for row in entry["rows"]:
        assert (
            {"label", "values"}
            <= set(row)
            <= {
                "label",
                "values",
                "method",
                "backbone",
                "variant",
                "condition",
                "group",
                "index",
            }
        )
        assert isinstance(row["label"], str) and row["label"]
        # what a row reports: its own method or backbone, or the table's one backbone
        assert "method" in row or "backbone" in row or "backbone" in entry
        assert row.get("variant", "base") in ("base", "+D", "+G", "++")
        assert row.get("condition", "NM") in [*CONDITIONS, "Mean"]


@pytest.mark.parametrize(("paper", "tid", "entry"), ENTRIES, ids=IDS)
def test_every_backbone_named_is_one_of_the_registry(paper, tid, entry):
    from gaitflow.models import available

    names = {entry.get("backbone")} | {r.get("backbone") for r in entry["rows"]}
    assert names - {None} <= set(available())


@pytest.mark.parametrize(("paper", "tid", "entry"), ENTRIES, ids=IDS)
def test_every_value_is_a_percentage_or_in_its_stated_unit(paper, tid, entry):
    units = entry.get("units", {})
    assert set(units) <= set(entry["columns"])
    for row in entry["rows"]:
        assert set(row["values"]) <= set(entry["columns"]), row["label"]
        for col, value in row["values"].items():
            assert isinstance(value, (int, float)) and not isinstance(value, bool), (row["label"], col)
            if col in units:
                assert value > 0, (row["label"], col)
            else:
                assert 0 <= value <= 100, (row["label"], col)


@pytest.mark.parametrize(("paper", "tid", "entry"), ENTRIES, ids=IDS)
def test_every_row_has_every_column_unless_the_missing_note_names_it(paper, tid, entry):
    missing = {(m["row"], c) for m in entry.get("missing", []) for c in m["columns"]}
    assert all(m["reason"].strip() for m in entry.get("missing", []))
    labels = {r["label"] for r in entry["rows"]}
    assert {label for label, _ in missing} <= labels
    for row in entry["rows"]:
        for col in entry["columns"]:
            # a cell is either printed or named as missing, never both
            assert (col in row["values"]) != ((row["label"], col) in missing), (row["label"], col)


# The rows whose printed Mean is off the mean of their printed figures by more than rounding
# allows (each entry's note names them): (paper, table, label, condition).
MEANS_OFF = {
    ("gaitmpl", "table-i", "3DLocal", "CL"),  # 83.7 for 83.5
    ("gaitmpl", "table-vi", "DRPL-BH", None),  # 81.1 for 80.7
    ("gaitmpl", "table-vi", "DRPL-BH + BA (w/ SF)", None),  # 85.9 for 86.1 (NM 95.9, elsewhere 95.3)
    ("gaitmpl", "table-vii", "Baseline", None),  # 87.5 for 84.7
    ("waveloss", "table-2", "Ours", "NM"),  # 98.7 for 98.85
    ("waveloss", "table-2", "DyGait", "CL"),  # 87.8 for 88.2
}


@pytest.mark.parametrize(("paper", "tid", "entry"), ENTRIES, ids=IDS)
def test_a_printed_mean_is_the_mean_of_its_row(paper, tid, entry):
    """A mistyped cell moves a row's mean away from its printed Mean; rounding the figures and
    their mean to one decimal moves it by 0.1 at most."""
    parts = [c for c in entry["columns"] if c not in ("Mean", *entry.get("units", {}))]
    if "Mean" not in entry["columns"] or len(parts) < 2:
        return
    checked = 0
    for row in entry["rows"]:
        values = row["values"]
        if not set(parts) <= set(values):
            continue
        mean = sum(values[c] for c in parts) / len(parts)
        near = abs(mean - values["Mean"]) <= 0.1 + 1e-9
        assert near != ((paper, tid, row["label"], row.get("condition")) in MEANS_OFF), (row["label"], mean)
        checked += 1
    assert checked


def test_gaitmpl_table_i_mean_rows_average_the_three_conditions():
    entry = published_table("gaitmpl", "table-i")
    for row in [r for r in entry["rows"] if r["condition"] == "Mean"]:
        for col in entry["columns"]:
            avg = sum(_row(entry, row["label"], condition=c)[col] for c in CONDITIONS) / 3
            assert abs(avg - row["values"][col]) < 0.1, (row["label"], col)


def test_figures_that_two_tables_share_agree():
    """Where the papers print one result in two tables, both copies are typed in alike."""
    g = {t: published_table("gaitmpl", t) for t in ("table-i", "table-iii", "table-v", "table-viii", "table-ix")}
    w = {t: published_table("waveloss", t) for t in ("table-2", "table-4", "table-5", "table-6")}
    pairs = [("GaitMPL(M)", "MT3D++"), ("GaitMPL(G)", "GaitGL++"), ("GaitSet †", "GaitSet"), ("GaitPart †", "GaitPart")]
    for label, variant in pairs + [("GLN", "GLN"), ("GaitGL", "GaitGL")]:  # not MT3D: its BG differs, as the note says
        means = {c: _row(g["table-i"], label, condition=c)["Mean"] for c in [*CONDITIONS, "Mean"]}
        assert means == _row(g["table-iii"], variant), label
    ou = published_table("gaitmpl", "table-iv")
    for label in ("GaitPart", "MT3D", "GLN"):  # not GaitSet: 87.1 in table II, 87.3 in table IV
        assert _row(published_table("gaitmpl", "table-ii"), label)["Mean"] == _row(ou, label)["Mean"]
    for t in ("table-v", "table-viii", "table-ix"):
        assert _row(g[t], "Baseline") == _row(g["table-iii"], "GaitSet")
    assert _row(g["table-viii"], "GSAM (PU+AU)") == _row(g["table-iii"], "GaitSet + G")
    assert _row(g["table-ix"], "Sine") == _row(g["table-iii"], "GaitSet++")
    ours = _row(w["table-6"], "Ours")
    assert ours == _row(w["table-5"], "Norm-fusion") == _row(w["table-4"], "[-1,1]")
    assert _row(w["table-5"], "Post-fusion") == _row(w["table-6"], "Circleloss") == _row(w["table-4"], "0")
    assert ours == {c: _row(w["table-2"], "Ours", condition=c)["Mean"] for c in CONDITIONS} | {"Mean": 94.7}
    for c in CONDITIONS:
        assert _row(w["table-2"], "GaitMPL", condition=c) == _row(g["table-i"], "GaitMPL(G)", condition=c)


def test_spot_checks_against_the_papers():
    assert _row(published_table("gaitmpl", "table-iii"), "GaitGL++") == {
        "NM": 97.5,
        "BG": 94.5,
        "CL": 88.0,
        "Mean": 93.3,
    }
    assert _row(published_table("gaitmpl", "table-iii"), "GLN + D") == {
        "NM": 96.5,
        "BG": 93.4,
        "CL": 83.1,
        "Mean": 91.0,
    }
    cl = _row(published_table("gaitmpl", "table-i"), "CNN-LB", condition="CL")
    assert [cl[v] for v in ("0", "90", "180", "Mean")] == [37.7, 54.6, 39.4, 54.0]
    assert _row(published_table("gaitmpl", "table-ii"), "GaitMPL(G)")["180"] == 86.1
    assert _row(published_table("gaitmpl", "table-iv"), "GLN++") == {"Mean": 90.3}
    assert _row(published_table("gaitmpl", "table-vi"), "Vanilla BH", index=1)["CL"] == 7.8
    assert _row(published_table("gaitmpl", "table-vii"), "Multi-Seqs") == {
        "NM": 94.4,
        "BG": 89.3,
        "CL": 73.2,
        "Mean": 85.6,
        "COST": 8,
    }
    assert _row(published_table("waveloss", "table-1"), "DeepGaitv2") == {"Mean": 91.9}
    assert _row(published_table("waveloss", "table-1"), "Ours")["60"] == 94.0
    cl = _row(published_table("waveloss", "table-2"), "Ours", condition="CL")
    assert list(cl.values()) == [83.3, 93.1, 95.0, 91.0, 89.5, 86.4, 88.4, 89.7, 92.4, 91.7, 78.7, 89.0]
    assert _row(published_table("waveloss", "table-3"), "Ours") == {
        "Rank-1": 75.6,
        "Rank-5": 88.4,
        "mAP": 66.5,
        "mINP": 46.5,
    }
    assert _row(published_table("waveloss", "table-5"), "Pre-fusion") == {
        "NM": 92.7,
        "BG": 84.7,
        "CL": 63.7,
        "Mean": 80.4,
    }


def test_the_entry_returned_is_a_copy():
    published_table("gaitmpl", "table-v")["rows"].clear()
    assert len(published_table("gaitmpl", "table-v")["rows"]) == 5


@pytest.mark.parametrize(
    ("paper", "table", "message"),
    [
        ("gaitmpl", "table-x", r"^published figures: gaitmpl has no table 'table-x'; expected one of table-i, "),
        ("gaitmpl", "table-3", r"no table 'table-3'"),
        ("waveloss", "table-iii", r"no table 'table-iii'; expected one of table-1, "),
        ("gaitset", "table-i", r"unknown paper 'gaitset'; expected one of gaitmpl, waveloss$"),
        ("gaitmpl", "fig-6", r"gaitmpl fig-6 has no printed values: Fig\. 6 .* tau = 0\.1"),
    ],
)
def test_an_unknown_table_is_one_clear_line(paper, table, message):
    with pytest.raises(GaitflowError, match=message) as err:
        published_table(paper, table)
    assert "\n" not in str(err.value)
