"""The papers' printed figures beside ours: every row of a printed table that names one of our
backbones (GaitMPL tables I-IV, Waveloss tables 1-3) and every row of Waveloss tables 4-6, each
with the run of ours that reports the same thing.

A printed row names a backbone and what was added to it: GaitMPL's variant (base, +D, +G, ++),
or Waveloss (its method: norm-fusion with the Dynamic Learning Process); Waveloss tables 4-6
name the fusion, the exponent schedule or the loss. Our run is the one whose recipe *is* that
(gaitflow.tables.recipes._kind), on the same backbone. Beside each figure stand our difference
from our base (paired interval) and the paper's from its own base row, because on synthetic data
only the differences and their direction are comparable.
"""

from __future__ import annotations

from gaitflow.errors import GaitflowError
from gaitflow.stats import MEAN, Bootstrap, Estimate
from gaitflow.tables.ablations import NOT_COMPARABLE
from gaitflow.tables.published import _load
from gaitflow.tables.recipes import _trained
from gaitflow.tables.results import Result, _difference, _observed
from gaitflow.tables.table import Table

# the printed tables of each protocol, in the papers' order
PROTOCOL_TABLES = {
    "casia-b": [
        ("gaitmpl", "table-i"),
        ("gaitmpl", "table-iii"),
        ("waveloss", "table-2"),
        ("waveloss", "table-4"),
        ("waveloss", "table-5"),
        ("waveloss", "table-6"),
    ],
    "ou-mvlp": [("gaitmpl", "table-ii"), ("gaitmpl", "table-iv"), ("waveloss", "table-1")],
    "gait3d": [("waveloss", "table-3")],
}
RETRIEVAL_COLUMNS = {"Rank-1": "rank1", "Rank-5": "rank5", "mAP": "mAP", "mINP": "mINP"}
WAVELOSS_BASES = ("circle", "triplet")  # the base loss a Waveloss row is compared on: the paper's first

# Waveloss tables 4-6: what each printed row is, as a test on _kind (table-level backbone: gaitgl)
_DYNAMIC = "dynamic [-1, 1]"
WAVELOSS_ROWS = {
    "table-4": {
        "-1": lambda k: k["fusion"] == "norm" and k["l"] == "static l=-1",
        "0": lambda k: k["plain"],  # static l = 0 is post-fusion (the table's note)
        "1": lambda k: k["fusion"] == "norm" and k["l"] == "static l=1",
        "[-1,0]": lambda k: k["fusion"] == "norm" and k["l"] == "dynamic [-1, 0]",
        "[0,1]": lambda k: k["fusion"] == "norm" and k["l"] == "dynamic [0, 1]",
        "[-1,1]": lambda k: k["fusion"] == "norm" and k["l"] == _DYNAMIC,
    },
    "table-5": {
        "Pre-fusion": lambda k: k["fusion"] == "pre",
        "Post-fusion": lambda k: k["plain"],
        "Norm-fusion": lambda k: k["fusion"] == "norm" and k["l"] == _DYNAMIC,
    },
    "table-6": {
        "Softmax Loss": lambda k: k["plain"] and k["base"] == "ce",
        "Triplet Loss": lambda k: k["plain"] and k["base"] == "triplet",
        "Circleloss": lambda k: k["plain"] and k["base"] == "circle",
        "Ours": lambda k: k["base"] == "circle" and k["fusion"] == "norm" and k["l"] == _DYNAMIC,
    },
}
WAVELOSS_BASE_ROW = {"table-4": "0", "table-5": "Post-fusion", "table-6": "Circleloss"}


def _figure(entry: dict, row: dict) -> tuple[str, str]:
    """(the printed column compared, our column): a condition's Mean, the Mean, or Gait3D's Rank-1."""
    if "Rank-1" in entry["columns"]:
        return "Rank-1", RETRIEVAL_COLUMNS["Rank-1"]
    if "condition" in row and row["condition"] != "Mean":
        return "Mean", row["condition"]
    return "Mean", MEAN


def _is(kind: dict, row: dict, base: str) -> bool:
    """Whether a run of ours (its recipe's _kind) is what a GaitMPL or Waveloss printed row reports."""
    if kind["ours"] or kind["base"] != base:
        return False
    if row.get("method") == "Waveloss":
        return kind["fusion"] == "norm" and kind["l"] == _DYNAMIC and not kind["drpl"] and not kind["gsam"]
    variant = row.get("variant", "base")
    want = {"base": (False, False), "+D": (True, False), "+G": (False, True), "++": (True, True)}[variant]
    return (kind["drpl"], kind["gsam"]) == want and kind["fusion"] == "post"


def _pairs(entry: dict, table: str, runs: list[tuple[Result, dict]]):
    """(printed row, our run or None, printed base row, our base run or None) for each printed row."""
    rows = entry["rows"]
    if table in WAVELOSS_ROWS:
        backbone = entry["backbone"]
        tests = WAVELOSS_ROWS[table]
        base_label = WAVELOSS_BASE_ROW[table]

        def find_w(label, base_loss):
            test = tests.get(label)
            found = [r for r, k in runs if r.backbone == backbone and test and test(k) and not k["ours"]]
            if table != "table-6":
                found = [r for r in found if _base_of(r, runs) == base_loss]
            return found[0] if found else None

        base_loss = next(
            (b for b in WAVELOSS_BASES if any(r.backbone == backbone and k["base"] == b for r, k in runs)), "circle"
        )
        printed_base = next(r for r in rows if r["label"] == base_label)
        ours_base = find_w(base_label, base_loss)
        for row in rows:
            yield row, find_w(row["label"], base_loss), printed_base, ours_base
        return
    for row in rows:
        backbone = row.get("backbone")
        if backbone is None:
            continue
        printed_base = next(
            (
                b
                for b in rows
                if b.get("backbone") == backbone
                and b.get("variant", "base") == "base"
                and b.get("method") != "Waveloss"
                and b.get("condition") == row.get("condition")
            ),
            None,
        )
        bases = WAVELOSS_BASES if row.get("method") == "Waveloss" else ("triplet",)
        ours = ours_base = None
        for base in bases:
            ours = next((r for r, k in runs if r.backbone == backbone and _is(k, row, base)), None)
            ours_base = next((r for r, k in runs if r.backbone == backbone and _is(k, {}, base)), None)
            if ours is not None:
                break
        yield row, ours, printed_base, ours_base


def _base_of(r: Result, runs) -> str:
    return next(k["base"] for x, k in runs if x is r)


def printed_table(results: list[Result], recipes: dict, boot: Bootstrap | None, protocol: str | None) -> Table:
    """Every printed row of the papers' tables on ``protocol`` beside the run of ours that reports
    the same: ours (with its interval), the paper's figure, ours minus our base (paired) and the
    paper's minus its base. A printed row of a method we do not have is left out; one of our
    backbones without its run in the grid shows the paper's figures only."""
    table = Table(
        "published",
        "The papers' printed figures beside ours (rank-1 %, the Mean over conditions unless the row is a "
        "condition's; Gait3D: Rank-1)",
        ["paper", "table", "row", "our run"],
        ["ours", "paper", "ours vs base", "paper vs base"],
        notes=[NOT_COMPARABLE.replace("the differences from the baseline", "the differences from the base")],
    )
    table.signed = {"ours vs base", "paper vs base"}
    runs = _trained(results, recipes)
    data = _load()
    for paper, name in PROTOCOL_TABLES.get(protocol or "", []):
        entry = data[paper][name]
        for row, ours, printed_base, ours_base in _pairs(entry, name, runs):
            printed_col, our_col = _figure(entry, row)
            value = ours and (_observed(ours, our_col) if our_col != MEAN else _observed(ours, _headline(ours)))
            col = our_col if our_col != MEAN else (_headline(ours) if ours else MEAN)
            est = Estimate(None)
            if ours is not None and ours_base is not None and ours is not ours_base and boot is not None:
                est = _difference(boot, ours, ours_base, col)
            paper_value = row["values"].get(printed_col)
            paper_base = printed_base["values"].get(printed_col) if printed_base and printed_base is not row else None
            paper_delta = paper_value - paper_base if paper_value is not None and paper_base is not None else None
            label = row["label"] + (f" ({row['condition']})" if "condition" in row else "")
            labels = (paper, name, label, ours.recipe if ours else "-")
            interval = ours.intervals.get(col) if ours else None
            table.add(
                labels,
                [value, paper_value, est.value, paper_delta],
                ours.run_id if ours else None,
                [interval, None, (est.low, est.high) if est.low is not None else None, None],
            )
    return table


def _headline(r: Result) -> str:
    if r.kind == "cross-view":
        return MEAN
    return RETRIEVAL_COLUMNS["Rank-1"]


def check() -> None:
    """Every printed table named here exists in published.yaml (a typo fails the tests, not a run)."""
    data = _load()
    for tables in PROTOCOL_TABLES.values():
        for paper, name in tables:
            if name not in data.get(paper, {}):
                raise GaitflowError(f"published figures: {paper} {name} is not in published.yaml")
