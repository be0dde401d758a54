"""GaitMPL's ablations, tables V-IX and Fig. 6 (on GaitSet in the paper), with the paper's figures
beside ours.

Each table is a list of rows, each the paper's row label and what the row's recipe *is*: its
components, and the parameters of its additions that differ from their defaults (the paper's
settings). A run belongs to a row when its recipe has exactly those components and, once the
defaults are filled in, exactly those parameters (the base loss's own parameters are free). The
paper's figures come from ``published.yaml``; beside our Mean stand our difference from the
baseline row (with its paired interval), the paper's Mean and the paper's difference, since on
synthetic data the absolute figures are not comparable and the differences are what a reader
compares.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gaitflow.errors import GaitflowError
from gaitflow.losses import registry
from gaitflow.stats import MEAN, Bootstrap, Estimate
from gaitflow.tables.published import published_table
from gaitflow.tables.recipes import base_losses, formulation
from gaitflow.tables.results import Result, _difference, mean
from gaitflow.tables.table import Table

NOT_COMPARABLE = (
    "Synthetic data: absolute figures are not comparable with the paper's; compare the differences "
    "from the baseline (ours: paired 95% interval, * excludes zero) and their direction."
)


@dataclass(frozen=True)
class Row:
    """A row of a paper's table: its printed label and the recipe it reports (components, and
    the parameters of the additions that differ from their defaults)."""

    label: str
    additions: dict = field(default_factory=dict)  # component -> {parameter: value}; {} = the base loss alone


@dataclass(frozen=True)
class Ablation:
    name: str  # the file and table name
    paper: str
    table: str  # published.yaml's key
    title: str
    rows: tuple[Row, ...]
    measured: tuple[str, ...] = ()  # further measured columns (table VII: memory and step time)


MEASURED = {"memory": "memory rows/id", "step": "step time x"}
BASELINE = Row("Baseline")
ABLATIONS = (
    Ablation(
        "gaitmpl_v",
        "gaitmpl",
        "table-v",
        "Attention weights in DRPL (GaitMPL table V)",
        (
            BASELINE,
            Row("Thresholding", {"drpl": {"weighting": "threshold"}}),
            Row("Dynamic Polynomial", {"drpl": {"weighting": "polynomial"}}),
            Row("Exponential", {"drpl": {"weighting": "exponential"}}),
            Row("Ours", {"drpl": {}}),
        ),
    ),
    Ablation(
        "gaitmpl_vi",
        "gaitmpl",
        "table-vi",
        "Objective functions in DRPL; BH batch-hard, BA batch-all, SF the smoothness factor (GaitMPL table VI)",
        (
            Row("Vanilla BH", {"drpl": {"hard": "vanilla", "batch_all": False, "smooth": False}}),
            Row("DRPL-BH", {"drpl": {"batch_all": False, "smooth": False}}),
            Row("Vanilla BH + BA (w/o SF)", {"drpl": {"hard": "vanilla", "smooth": False}}),
            Row("DRPL-BH + BA (w/o SF)", {"drpl": {"smooth": False}}),
            Row("Vanilla BH + BA (w/ SF)", {"drpl": {"hard": "vanilla"}}),
            Row("DRPL-BH + BA (w/ SF)", {"drpl": {}}),
        ),
    ),
    Ablation(
        "gaitmpl_vii",
        "gaitmpl",
        "table-vii",
        "Memory elements in GSAM, with the paper's COST measured: the memory's rows per identity and "
        "the training step time relative to the baseline's (GaitMPL table VII)",
        (
            BASELINE,
            Row("Hardest", {"gsam": {"element": "hardest"}}),
            Row("Random", {"gsam": {"element": "random"}}),
            Row("Multi-Seqs", {"gsam": {"element": "multi"}}),
            Row("Ours", {"gsam": {}}),
        ),
        measured=("memory", "step"),
    ),
    Ablation(
        "gaitmpl_viii",
        "gaitmpl",
        "table-viii",
        "Update strategies of the memory bank (GaitMPL table VIII)",
        (
            BASELINE,
            Row("No update", {"gsam": {"update": "none"}}),
            Row("Hard update", {"gsam": {"update": "hard"}}),
            Row("Momentum update (PU)", {"gsam": {"update": "pu"}}),
            Row("GSAM (PU+AU)", {"gsam": {}}),
        ),
    ),
    Ablation(
        "gaitmpl_ix",
        "gaitmpl",
        "table-ix",
        "Fusion factors between DRPL and GSAM (GaitMPL table IX)",
        (
            BASELINE,
            Row("Equal weights", {"drpl": {}, "gsam": {"factor": "equal"}}),
            Row("Multi Steps", {"drpl": {}, "gsam": {"factor": "multistep"}}),
            Row("Logarithmic", {"drpl": {}, "gsam": {"factor": "logarithmic"}}),
            Row("Exponential", {"drpl": {}, "gsam": {"factor": "exponential"}}),
            Row("Polynomial", {"drpl": {}, "gsam": {"factor": "polynomial"}}),
            Row("Sine", {"drpl": {}, "gsam": {}}),
        ),
    ),
)
BACKBONE = "gaitset"  # the paper's ablation backbone (section IV-D)
TAU = "gaitmpl_fig6"  # Fig. 6: rank-1 against GSAM's temperature tau


def _additions(recipe: dict) -> dict | None:
    """The recipe's additions (components beyond the base losses) with every parameter resolved,
    or None for a recipe that is not the paper's (as_printed, or an addition of ours)."""
    if formulation(recipe) != "intended" or (recipe.get("gsam") or {}).get("center"):
        return None
    bases = base_losses()
    if not any(c in bases for c in recipe):
        return None
    extra = {c: p for c, p in recipe.items() if c not in bases}
    return registry.resolve(extra)


def matches(recipe: dict, row: Row, base: str = "triplet") -> bool:
    """Whether a recipe is the one ``row`` reports: ``base`` as its base loss, exactly the row's
    additions, each at its defaults but for the row's parameters."""
    if set(c for c in recipe if c in base_losses()) != {base}:
        return False
    have = _additions(recipe)
    return have is not None and have == registry.resolve({c: dict(p) for c, p in row.additions.items()})


def _published(ablation: Ablation) -> dict[str, dict]:
    try:
        entry = published_table(ablation.paper, ablation.table)
    except GaitflowError:
        return {}
    return {r["label"]: r["values"] for r in entry["rows"]}


def _paper_baseline(ablation: Ablation, printed: dict[str, dict]) -> dict | None:
    return printed.get(ablation.rows[0].label)


def _step_ratio(r: Result, base: Result | None) -> float | None:
    if base is None or r.step_seconds is None or base.step_seconds is None:
        return None
    return r.step_seconds / base.step_seconds


def _memory_rows(recipe: dict) -> float:
    """Rows the GSAM memory keeps per identity (0: no memory): 1, or gsam per_id for multi."""
    if "gsam" not in recipe:
        return 0.0
    gsam = registry.resolve({"gsam": recipe["gsam"]})["gsam"]
    return float(gsam["per_id"] if gsam["element"] == "multi" else 1)


def _conditions(results: list[Result]) -> list[str]:
    return list(dict.fromkeys(c for r in results for c in r.rank1))


def ablation_table(
    ablation: Ablation, results: list[Result], recipes: dict, boot: Bootstrap | None, backbone: str = BACKBONE
) -> Table:
    """One of tables V-IX on ``backbone``: ours per condition with intervals, our difference from the
    baseline row, the paper's Mean and its difference from its baseline."""
    runs = [r for r in results if r.backbone == backbone and r.recipe in recipes]
    conds = _conditions(runs)
    cols = [*conds, MEAN, "ours vs baseline", "paper Mean", "paper vs baseline"]
    cols += [MEASURED[m] for m in ablation.measured]
    table = Table(ablation.name, ablation.title, ["row", "recipe"], cols, notes=[NOT_COMPARABLE])
    table.signed = {"ours vs baseline", "paper vs baseline"}
    printed = _published(ablation)
    paper_base = _paper_baseline(ablation, printed)
    found = [(row, r) for row in ablation.rows for r in runs if matches(recipes[r.recipe], row)]
    base = next((r for row, r in found if row == ablation.rows[0]), None)
    for row, r in found:
        values = [r.rank1.get(c) for c in conds] + [mean(r.rank1.get(c) for c in conds)]
        intervals = [r.intervals.get(c) for c in conds] + [r.intervals.get(MEAN)]
        if base is not None and r is not base and boot is not None:
            est = _difference(boot, r, base, MEAN)
        else:
            est = Estimate(None)
        paper = printed.get(row.label, {})
        paper_delta = (
            paper["Mean"] - paper_base["Mean"] if paper_base and "Mean" in paper and row != ablation.rows[0] else None
        )
        values += [est.value, paper.get("Mean"), paper_delta]
        intervals += [(est.low, est.high) if est.low is not None else None, None, None]
        if "memory" in ablation.measured:
            values.append(_memory_rows(recipes[r.recipe]))
        if "step" in ablation.measured:
            values.append(_step_ratio(r, base))
        table.add((row.label, r.recipe), values, r.run_id, intervals)
    return table


def tau_points(results: list[Result], recipes: dict, backbone: str = BACKBONE) -> list[tuple[float, Result]]:
    """Fig. 6's points: every run of ``backbone`` whose recipe is triplet + GSAM at its defaults but
    for tau, by tau."""
    points = []
    for r in results:
        if r.backbone != backbone or r.recipe not in recipes:
            continue
        spec = recipes[r.recipe]
        have = _additions(spec)
        if not matches(spec, Row("", {"gsam": {"tau": (have or {}).get("gsam", {}).get("tau")}})):
            continue
        points.append((float(have["gsam"]["tau"]), r))
    return sorted(points, key=lambda p: p[0])


def tau_table(results: list[Result], recipes: dict, boot: Bootstrap | None, backbone: str = BACKBONE) -> Table:
    """Fig. 6 as a table: rank-1 per condition and Mean (with intervals) at each tau, and each
    point's difference from the paper's tau = 0.1 (paired)."""
    points = tau_points(results, recipes, backbone)
    conds = _conditions([r for _, r in points])
    cols = [*conds, MEAN, "vs tau=0.1"]
    table = Table(
        TAU,
        "Rank-1 against GSAM's temperature tau, GaitSet + GSAM (GaitMPL Fig. 6; the paper prints no values: "
        "its best is tau = 0.1)",
        ["tau", "recipe"],
        cols,
        notes=[NOT_COMPARABLE.replace("the differences from the baseline", "the differences from tau = 0.1")],
    )
    table.signed = {"vs tau=0.1"}
    ref = next((r for tau, r in points if abs(tau - 0.1) < 1e-12), None)
    for tau, r in points:
        est = (
            _difference(boot, r, ref, MEAN) if boot is not None and ref is not None and r is not ref else Estimate(None)
        )
        values = [r.rank1.get(c) for c in conds] + [mean(r.rank1.get(c) for c in conds), est.value]
        intervals = [r.intervals.get(c) for c in conds] + [r.intervals.get(MEAN)]
        intervals.append((est.low, est.high) if est.low is not None else None)
        table.add((f"{tau:g}", r.recipe), values, r.run_id, intervals)
    return table


def ablation_tables(results: list[Result], recipes: dict, boot: Bootstrap | None) -> list[Table]:
    """Tables V-IX and Fig. 6's table, for the runs on the ablation backbone that fill them."""
    return [ablation_table(a, results, recipes, boot) for a in ABLATIONS] + [tau_table(results, recipes, boot)]


# --- the ablations' claims ---------------------------------------------------------

# (claim, table, kind, claimed row, other rows): "pair" compares the claimed row with each other row
# named (one claim row each); "best" holds when the claimed row's paired intervals against every
# other row exclude zero from above (all of them named: None = every other row but the baseline);
# "below" claims the claimed row is below the other (the difference shown is other - claimed).
ABLATION_CLAIMS = (
    ("The dynamic exponential weights are the best of table V", "gaitmpl_v", "best", "Ours", None),
    ("DRPL-BH is more stable than vanilla BH", "gaitmpl_vi", "pair", "DRPL-BH", ("Vanilla BH",)),
    (
        "DRPL-BH is more stable than vanilla BH",
        "gaitmpl_vi",
        "pair",
        "DRPL-BH + BA (w/o SF)",
        ("Vanilla BH + BA (w/o SF)",),
    ),
    (
        "DRPL-BH is more stable than vanilla BH",
        "gaitmpl_vi",
        "pair",
        "DRPL-BH + BA (w/ SF)",
        ("Vanilla BH + BA (w/ SF)",),
    ),
    ("BA stabilises the batch-hard loss", "gaitmpl_vi", "pair", "Vanilla BH + BA (w/o SF)", ("Vanilla BH",)),
    ("BA stabilises the batch-hard loss", "gaitmpl_vi", "pair", "DRPL-BH + BA (w/o SF)", ("DRPL-BH",)),
    ("SF helps DRPL-BH", "gaitmpl_vi", "pair", "DRPL-BH + BA (w/ SF)", ("DRPL-BH + BA (w/o SF)",)),
    ("Centroids are the best memory elements", "gaitmpl_vii", "best", "Ours", None),
    ("PU+AU beats PU", "gaitmpl_viii", "pair", "GSAM (PU+AU)", ("Momentum update (PU)",)),
    ("No update hurts: below the baseline", "gaitmpl_viii", "below", "No update", ("Baseline",)),
    ("Sine is the best fusion factor", "gaitmpl_ix", "best", "Sine", None),
    ("tau = 0.1 is the best temperature", TAU, "best", "0.1", None),
)


def _rows_by_label(table: Table, results: list[Result]) -> dict[str, Result]:
    by_run = {r.run_id: r for r in results if r.run_id}
    by_recipe = {(r.backbone, r.recipe): r for r in results}
    found = {}
    for labels, cells in table.rows:
        r = by_recipe.get((BACKBONE, labels[1])) or by_run.get(cells[0][1])
        found.setdefault(labels[0], r)
    return found


def _best_of(boot: Bootstrap, claimed: Result, others: list[Result]) -> tuple[Estimate, str, str]:
    """(difference to the strongest other row, its label, verdict): supported only when every
    paired interval against the others excludes zero from above; contradicted when one other row
    is above it with an interval that excludes zero."""
    from gaitflow.stats import verdict

    estimates = [(o, _difference(boot, claimed, o, MEAN)) for o in others]
    estimates = [(o, e) for o, e in estimates if e.value is not None]
    if not estimates:
        return Estimate(None), "-", "not tested"
    rival, closest = min(estimates, key=lambda oe: oe[1].value)
    verdicts = [verdict(e) for _, e in estimates]
    if all(v == "supported" for v in verdicts):
        final = "supported"
    elif any(v == "contradicted" for v in verdicts):
        final = "contradicted"
    else:
        final = "inconclusive"
    return closest, rival.recipe, final


def ablation_claims(tables: list[Table], results: list[Result], boot: Bootstrap | None):
    """(paper, claim, backbone, comparison, Estimate, verdict, run id) for each claim of tables V-IX
    and Fig. 6 that the runs can test; a claim whose rows did not run: not tested."""
    from gaitflow.stats import verdict

    by_name = {t.name: t for t in tables}
    out = []
    for claim, name, kind, claimed, others in ABLATION_CLAIMS:
        table = by_name.get(name)
        rows = _rows_by_label(table, results) if table is not None else {}
        mine = rows.get(claimed)
        if kind == "best":
            rivals = [r for label, r in rows.items() if label != claimed and label != BASELINE.label]
        else:
            rivals = [rows[o] for o in others if o in rows]
        if mine is None or not rivals or boot is None:
            missing = claimed if mine is None else ("its other rows" if kind == "best" else ", ".join(others))
            out.append(("GaitMPL", claim, BACKBONE, f"{missing}: not in the grid", Estimate(None), "not tested", None))
            continue
        if kind == "best":
            est, rival, final = _best_of(boot, mine, rivals)
            out.append(("GaitMPL", claim, BACKBONE, f"{mine.recipe} vs best other, {rival}", est, final, mine.run_id))
            continue
        for other in rivals:
            a, b = (other, mine) if kind == "below" else (mine, other)
            est = _difference(boot, a, b, MEAN)
            out.append(("GaitMPL", claim, BACKBONE, f"{a.recipe} vs {b.recipe}", est, verdict(est), a.run_id))
    return out
