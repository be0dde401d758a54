"""The papers' tables, filled in from the results files of a dataset.

Built from ``results/<dataset>/*/metrics.json`` only (never from MLflow), so the
step is a pure function of its inputs. What a recipe *is* (base loss, +DRPL,
+GSAM, Waveloss fusion and exponent schedule, formulation) is read from its
components in params.yaml, not from its name.

Tables (each written as Markdown, LaTeX and a long CSV whose every cell names
its MLflow run):
- ``per_view``: GaitMPL table I, rank-1 by probe view; per method the NM, BG,
  CL rows and their mean.
- ``variants``: GaitMPL table III, each backbone with its base loss, +D
  (DRPL), +G (GSAM) and ++ (both).
- ``waveloss``: Waveloss tables 4-6: fusion ways, static versus dynamic l, and
  the loss ablation.
- ``formulations``: ``intended`` against ``as_printed`` where both were run.
"""

from __future__ import annotations

import csv
import io
import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gaitflow.errors import GaitflowError
from gaitflow.evaluate.retrieval import PROBE_SCORES
from gaitflow.losses import registry
from gaitflow.stats import MEAN, PROXY, Bootstrap, Estimate, identities, verdict
from gaitflow.workflow import VIEW_PLOT_FILE

VARIANTS = ("base", "+D", "+G", "++")
TABLES = ("per_view", "variants", "waveloss", "formulations")


@dataclass
class Result:
    """One evaluated method: a trained run, or the GEI baseline."""

    method: str
    backbone: str
    recipe: str | None
    rank1: dict[str, float]
    per_view: dict[str, dict[str, float]]
    run_id: str | None = None
    kind: str = "cross-view"  # the protocol's kind: cross-view (rank-1 per condition) or retrieval
    partition: dict = field(default_factory=dict)  # the split it was scored on (gaitflow.data.partition)
    extra: dict[str, float] = field(default_factory=dict)  # further figures, after the Mean (rank-5, ...)
    label: str | None = None  # an imported model's row name (params `imported`), e.g. "GaitGL (OpenGait zoo)"
    seed: int | None = None  # the training seed (None: the baseline, an imported model)
    runs: list[dict] = field(default_factory=list)  # per seed: what the bootstrap reads (hits, views)
    replicates: dict = field(default_factory=dict)  # column -> bootstrap replicates (gaitflow.stats)
    intervals: dict = field(default_factory=dict)  # column -> (low, high)

    @property
    def name(self) -> str:
        """The row's name: an imported model's label, else the method."""
        return self.label or self.method


@dataclass
class Table:
    """Rows of labelled cells; a cell is (value, MLflow run id)."""

    name: str
    title: str
    row_headers: list[str]
    columns: list[str]
    rows: list[tuple[tuple[str, ...], list[tuple[float | None, str | None]]]] = field(default_factory=list)
    intervals: dict = field(default_factory=dict)  # (labels, column) -> (low, high)
    verdicts: dict = field(default_factory=dict)  # labels -> verdict text (the claims table's last column)
    differences: bool = False  # cells are differences: signed, marked * where the interval excludes zero

    def add(self, labels: tuple[str, ...], values: list, run_id: str | None, intervals: list | None = None) -> None:
        self.rows.append((labels, [(v, run_id) for v in values]))
        for col, interval in zip(self.columns, intervals or []):
            if interval is not None:
                self.intervals[(labels, col)] = interval

    def cell(self, labels: tuple[str, ...], col: str, value: float | None) -> str:
        """A cell as text: the value, its interval in brackets, and * for a difference whose interval
        excludes zero."""
        if col == "verdict":
            return self.verdicts.get(labels, "-")
        if value is None:
            return "-"
        text = f"{value:+.1f}" if self.differences else f"{value:.1f}"
        interval = self.intervals.get((labels, col))
        if interval is None:
            return text
        low, high = interval
        mark = "*" if self.differences and (low > 0 or high < 0) else ""
        return f"{text} [{low:.1f}, {high:.1f}]{mark}"


def load_result(path: Path) -> Result:
    try:
        m = json.loads(Path(path).read_text())
        cross_view = "per_view" in m
        return Result(
            method=m["method"],
            backbone=m.get("backbone", m["method"]),
            recipe=m.get("recipe"),
            # a retrieval protocol's own figures (rank-k, mAP, mINP) take the place of the conditions
            rank1=m["rank1"] if cross_view else _retrieval_columns(m),
            per_view=m["per_view"] if cross_view else {},
            run_id=m.get("mlflow_run_id"),
            kind="cross-view" if cross_view else "retrieval",
            partition=m.get("partition") or {},
            extra={f"{c} R{k[4:]}": v for k, by in m.items() if _is_rank_k(k) for c, v in by.items()},
            label=m.get("label"),
            seed=m.get("seed"),
            runs=[_checked_scores(m)],
        )
    except FileNotFoundError:
        raise GaitflowError(f"{path}: not found; evaluate the run first (gaitflow evaluate)") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise GaitflowError(
            f"{path}: not a gaitflow metrics file with rank-1 by view ({exc}); evaluate the run again"
        ) from None


def _checked_scores(m: dict) -> dict:
    """What the bootstrap reads of a metrics file (per-probe hits or scores), its shape checked so a
    damaged file is refused here in one line rather than failing inside the bootstrap."""
    scores = {k: m[k] for k in ("hits", "views", "identical_views", PROBE_SCORES) if k in m}
    for cond, record in scores.get("hits", {}).items():
        views = len(scores["views"])
        if len(record["subjects"]) != len(record["hits"]) or any(len(h) != views for h in record["hits"]):
            raise ValueError(f"hits.{cond}: one identity and one mark per gallery view expected for each probe")
    record = scores.get(PROBE_SCORES)
    if record is not None:
        n = len(record["subjects"])
        if record["figures"] not in ("retrieval", "retrieval_proxy") or any(
            len(record[k]) != n for k in ("first", "ap", "inp")
        ):
            raise ValueError(f"{PROBE_SCORES}: subjects, first, ap and inp of equal length expected")
    return scores


def _is_rank_k(key: str) -> bool:
    """rank5, rank10, ...: a cross-view protocol's figures beyond rank-1, by condition."""
    return key.startswith("rank") and key[4:].isdigit() and key != "rank1"


def _retrieval_columns(m: dict) -> dict[str, float]:
    """A retrieval result's figures; a proxy score (GREW's, whose probes have no identity) says so."""
    if "retrieval" in m:
        return {k: v for k, v in m["retrieval"].items() if k != "probes"}
    proxy = m["retrieval_proxy"]
    return {f"{PROXY}{k}": v for k, v in proxy.items() if k not in ("probes", "note")}


def mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


# --- what a recipe is ------------------------------------------------------


def base_losses() -> list[str]:
    """The registered components that are base losses (role ``part``), in registry order."""
    return [name for name in registry.names() if registry.load(name).role == "part"]


def base_loss(recipe: dict) -> str:
    return "+".join(c for c in base_losses() if c in recipe) or "none"


def _waveloss(recipe: dict) -> dict | None:
    """The recipe's waveloss parameters with the component's defaults filled in."""
    return registry.resolve({"waveloss": recipe["waveloss"]})["waveloss"] if "waveloss" in recipe else None


def centred_gsam(recipe: dict) -> bool:
    """GSAM on centred features: an addition of ours, not the paper's (gsam ``center``)."""
    return bool((recipe.get("gsam") or {}).get("center"))


def variant_label(recipe: dict) -> str:
    """+D, +G, ++ (GaitMPL table III), marked where the recipe carries an addition of ours."""
    return gaitmpl_variant(recipe) + (" centred (ours)" if centred_gsam(recipe) else "")


def gaitmpl_variant(recipe: dict) -> str:
    return {(False, False): "base", (True, False): "+D", (False, True): "+G", (True, True): "++"}[
        ("drpl" in recipe, "gsam" in recipe)
    ]


def formulation(recipe: dict) -> str:
    printed = any(isinstance(p, dict) and p.get("formulation") == "as_printed" for p in recipe.values())
    return "as_printed" if printed else "intended"


def waveloss_fusion(recipe: dict) -> str:
    w = _waveloss(recipe)
    return w["fusion"] if w else "post"


def l_schedule(recipe: dict) -> str:
    """``static l=1`` or ``dynamic [-1, 1]`` (the Dynamic Learning Process), as Waveloss table 4 names them."""
    w = _waveloss(recipe)
    if w is None or w["fusion"] != "norm":
        return "-"
    lo, hi = w["l_min"], w["l_max"]
    return f"static l={lo:g}" if lo == hi else f"dynamic [{lo:g}, {hi:g}]"


def loss_label(recipe: dict) -> str:
    """A description of a recipe in the words of Waveloss table 6 and GaitMPL table III."""
    label = {"ce": "softmax"}.get(base_loss(recipe), base_loss(recipe))
    if "drpl" in recipe:
        label += " + DRPL"
    if "gsam" in recipe:
        label += " + GSAM" + (" (centred, ours)" if centred_gsam(recipe) else "")
    if "waveloss" in recipe:
        fusion = waveloss_fusion(recipe)
        label += f" + {fusion}-fusion"
        if fusion == "norm":
            label += f" ({l_schedule(recipe)})"
    return label


def _without_formulation(recipe: dict) -> str:
    return json.dumps(
        {
            k: {a: b for a, b in p.items() if a != "formulation"} if isinstance(p, dict) else p
            for k, p in recipe.items()
        },
        sort_keys=True,
    )


# --- the tables -------------------------------------------------------------


def _conditions(results: list[Result]) -> list[str]:
    seen: list[str] = []
    for r in results:
        seen += [c for c in r.rank1 if c not in seen]
    return seen


def _with_mean(results: list[Result], conds: list[str]) -> bool:
    """A Mean column over the probe conditions (cross-view); retrieval figures are not averaged."""
    return len(conds) > 1 and all(r.kind == "cross-view" for r in results)


def _extras(results: list[Result]) -> list[str]:
    return list(dict.fromkeys(k for r in results for k in r.extra))


def _columns(results: list[Result]) -> tuple[list[str], list[str], list[str]]:
    """(conditions, further figures, the table's columns: the conditions, their Mean, the further figures)."""
    conds, extras = _conditions(results), _extras(results)
    return conds, extras, conds + (["Mean"] if _with_mean(results, conds) else []) + extras


def _summary(r: Result, conds: list[str], extras: list[str] | None = None) -> list[float | None]:
    values = [r.rank1.get(c) for c in conds]
    averaged = [mean(values)] if len(conds) > 1 and r.kind == "cross-view" else []
    return values + averaged + [r.extra.get(k) for k in (extras or [])]


def _intervals(r: Result, conds: list[str], extras: list[str] | None = None) -> list:
    """The intervals of ``_summary``'s cells (None where there is none: further ranks)."""
    averaged = [r.intervals.get(MEAN)] if len(conds) > 1 and r.kind == "cross-view" else []
    return [r.intervals.get(c) for c in conds] + averaged + [None] * len(extras or [])


def per_view_table(results: list[Result]) -> Table:
    views = sorted({v for r in results for c in r.per_view.values() for v in c}, key=lambda v: float(v))
    table = Table(
        "per_view",
        "Rank-1 (%) by probe view, gallery views averaged, identical views excluded (GaitMPL table I)",
        ["method", "probe"],
        [*views, "Mean"],
    )
    for r in results:
        rows = {c: [r.per_view[c].get(v) for v in views] for c in r.per_view}
        for c, values in rows.items():
            intervals = [r.intervals.get((c, v)) for v in views] + [r.intervals.get(c)]
            table.add((r.name, c), values + [mean(values)], r.run_id, intervals)
        if len(rows) > 1:
            values = [mean(rows[c][i] for c in rows) for i in range(len(views))]
            table.add(
                (r.name, "Mean"), values + [mean(values)], r.run_id, [None] * len(views) + [r.intervals.get(MEAN)]
            )
    return table


def variants_table(results: list[Result], recipes: dict) -> Table:
    conds, extras, cols = _columns(results)
    table = Table(
        "variants",
        "GaitMPL additions per backbone: +D = DRPL, +G = GSAM, ++ = both (GaitMPL table III)",
        ["backbone", "loss", "variant"],
        cols,
    )
    for r in results:
        if r.recipe is None and r.label is None:  # the GEI baseline heads the table
            table.add((r.method, "-", "baseline"), _summary(r, conds, extras), r.run_id, _intervals(r, conds, extras))
    for r in results:
        if r.label is not None:  # then the models trained elsewhere, imported (params `imported`)
            table.add((r.label, "-", "imported"), _summary(r, conds, extras), r.run_id, _intervals(r, conds, extras))
    rows = []
    for r in results:
        spec = recipes.get(r.recipe or "")
        if spec is None or "waveloss" in spec or formulation(spec) != "intended":
            continue
        rows.append(((r.backbone, base_loss(spec), VARIANTS.index(gaitmpl_variant(spec)), centred_gsam(spec)), r, spec))
    for (backbone, base, *_), r, spec in sorted(rows, key=lambda x: x[0]):
        table.add(
            (backbone, base, variant_label(spec)), _summary(r, conds, extras), r.run_id, _intervals(r, conds, extras)
        )
    return table


def waveloss_tables(results: list[Result], recipes: dict) -> list[Table]:
    """Waveloss tables 5 (fusion ways), 4 (static vs dynamic l) and 6 (the loss ablation)."""
    conds, extras, cols = _columns(results)
    runs = [
        (r, recipes[r.recipe]) for r in results if r.recipe in recipes and formulation(recipes[r.recipe]) == "intended"
    ]
    plain = [(r, s) for r, s in runs if "drpl" not in s and "gsam" not in s]
    fusion = Table(
        "waveloss_fusion", "Ways of fusing the part losses (Waveloss table 5)", ["backbone", "loss", "fusion"], cols
    )
    schedule = Table(
        "waveloss_l",
        "Static versus dynamic exponent l of norm-fusion (Waveloss table 4)",
        ["backbone", "loss", "l"],
        cols,
    )
    ablation = Table("waveloss_loss", "Loss ablation (Waveloss table 6)", ["backbone", "loss"], cols)
    with_wave = {(r.backbone, base_loss(s)) for r, s in plain if "waveloss" in s}
    for r, s in sorted(plain, key=lambda x: (x[0].backbone, base_loss(x[1]), waveloss_fusion(x[1]), l_schedule(x[1]))):
        key = (r.backbone, base_loss(s))
        if key in with_wave:  # a base loss that also ran with Waveloss: its post-fusion row belongs here
            fusion.add((*key, waveloss_fusion(s)), _summary(r, conds, extras), r.run_id, _intervals(r, conds, extras))
        if waveloss_fusion(s) == "norm":
            schedule.add((*key, l_schedule(s)), _summary(r, conds, extras), r.run_id, _intervals(r, conds, extras))
    for r, s in sorted(plain, key=lambda x: (x[0].backbone, loss_label(x[1]))):
        ablation.add((r.backbone, loss_label(s)), _summary(r, conds, extras), r.run_id, _intervals(r, conds, extras))
    return [fusion, schedule, ablation]


def formulations_table(results: list[Result], recipes: dict) -> Table:
    """Runs whose recipes differ only in ``formulation``, side by side."""
    conds, extras, cols = _columns(results)
    table = Table(
        "formulations",
        "Formulations: the papers' text (intended) against their printed equations (as_printed)",
        ["backbone", "loss", "formulation"],
        cols,
    )
    groups: dict[tuple[str, str], dict[str, list]] = {}
    for r in results:
        spec = recipes.get(r.recipe or "")
        if spec is not None:
            groups.setdefault((r.backbone, _without_formulation(spec)), {}).setdefault(formulation(spec), []).append(
                (r, spec)
            )
    for (backbone, _), by_form in sorted(groups.items()):
        if len(by_form) < 2:
            continue
        for form in ("intended", "as_printed"):
            for r, spec in by_form[form]:
                table.add(
                    (backbone, loss_label(spec), f"{form} ({r.recipe})"),
                    _summary(r, conds, extras),
                    r.run_id,
                    _intervals(r, conds, extras),
                )
    return table


# --- uncertainty: seeds combined, bootstrap intervals, paired differences, the papers' claims


def combine(results: list[Result]) -> list[Result]:
    """One Result per method: the seeds of a trained run averaged (each figure the mean over seeds),
    their per-seed hits kept for the bootstrap. Order: first appearance."""
    groups: dict[tuple, list[Result]] = {}
    for r in results:
        key = (r.backbone, r.recipe, r.label) if r.recipe is not None else (r.method, None, r.label)
        groups.setdefault(key, []).append(r)
    out = []
    for members in groups.values():
        members = sorted(members, key=lambda r: (r.seed is None, r.seed or 0))
        first = members[0]
        if len(members) == 1:
            out.append(first)
            continue

        def avg(get, members=members):
            keys = list(dict.fromkeys(k for m in members for k in get(m)))
            return {k: mean(get(m).get(k) for m in members) for k in keys}

        per_view = {c: avg(lambda m, c=c: m.per_view.get(c, {})) for c in first.per_view}
        out.append(
            Result(
                method=first.method,
                backbone=first.backbone,
                recipe=first.recipe,
                rank1=avg(lambda m: m.rank1),
                per_view=per_view,
                run_id=first.run_id,
                kind=first.kind,
                partition=first.partition,
                extra=avg(lambda m: m.extra),
                label=first.label,
                seed=first.seed,
                runs=[run for m in members for run in m.runs],
            )
        )
    return out


def attach_intervals(results: list[Result], settings: dict | None = None) -> Bootstrap | None:
    """Bootstrap replicates and intervals for every result (in place), on shared replicates."""
    settings = {**BOOTSTRAP, **(settings or {})}
    ids = sorted({s for r in results for run in r.runs for s in identities(run)})
    if not ids or not settings["replicates"]:
        return None
    boot = Bootstrap(
        ids, max(len(r.runs) for r in results), settings["replicates"], settings["level"], settings["seed"]
    )
    for r in results:
        r.replicates = boot.replicates(r.runs)
        observed = {**r.rank1, **{(c, v): x for c, by in r.per_view.items() for v, x in by.items()}}
        if len(r.rank1) > 1 and r.kind == "cross-view":
            observed[MEAN] = mean(r.rank1.values())
        for col, reps in r.replicates.items():
            est = boot.estimate(observed.get(col), reps)
            if est.low is not None:
                r.intervals[col] = (est.low, est.high)
    return boot


def _kind(spec: dict) -> dict:
    """What a recipe is, for pairing variants with their base: base loss, +DRPL, +GSAM, fusion, l."""
    return {
        "base": base_loss(spec),
        "drpl": "drpl" in spec,
        "gsam": "gsam" in spec,
        "fusion": waveloss_fusion(spec),
        "l": l_schedule(spec),
        "plain": all(c in base_losses() for c in spec),
        "ours": centred_gsam(spec),
    }


def _trained(results: list[Result], recipes: dict) -> list[tuple[Result, dict]]:
    return [
        (r, _kind(recipes[r.recipe]))
        for r in results
        if r.recipe in recipes and formulation(recipes[r.recipe]) == "intended"
    ]


def _difference(boot: Bootstrap, a: Result, b: Result, col: str) -> Estimate:
    """a - b at column ``col``, with the paired interval (the same replicates for both)."""
    va, vb = _observed(a, col), _observed(b, col)
    value = None if va is None or vb is None else va - vb
    if col in a.replicates and col in b.replicates:
        return boot.estimate(value, a.replicates[col] - b.replicates[col])
    return Estimate(value)


def _observed(r: Result, col: str) -> float | None:
    return mean(r.rank1.values()) if col == MEAN else r.rank1.get(col)


def differences_table(results: list[Result], recipes: dict, boot: Bootstrap | None) -> Table:
    """Every variant minus its base (the recipe of its base loss alone), same backbone: paired intervals."""
    conds, _, _ = _columns(results)
    cols = conds + ([MEAN] if _with_mean(results, conds) else [])
    table = Table(
        "differences",
        "Each variant minus its base, same backbone (rank-1 points; paired 95% interval; * excludes zero)",
        ["backbone", "loss", "base"],
        cols,
        differences=True,
    )
    runs = _trained(results, recipes)
    for r, kind in sorted(runs, key=lambda x: (x[0].backbone, loss_label(recipes[x[0].recipe]))):
        if kind["plain"]:
            continue
        base = next((b for b, k in runs if b.backbone == r.backbone and k["plain"] and k["base"] == kind["base"]), None)
        if base is None:
            continue
        estimates = [_difference(boot, r, base, c) if boot else Estimate(None) for c in cols]
        table.add(
            (r.backbone, loss_label(recipes[r.recipe]), base.recipe),
            [e.value for e in estimates],
            r.run_id,
            [(e.low, e.high) if e.low is not None else None for e in estimates],
        )
    return table


# The papers' claims the grid can test: (paper, claim, variant, base, column); variant and base
# are predicates on what a recipe is (_kind), both runs on the same backbone and base loss. A
# column "CL-gain" compares the variant's gain on CL with its largest gain on another condition.
def _paper(test):
    """A claim of the papers: about their methods, so runs with an addition of ours are left out."""
    return lambda k: not k["ours"] and test(k)


CLAIMS = [
    (
        "GaitMPL",
        "DRPL improves the baseline",
        _paper(lambda k: k["drpl"] and not k["gsam"]),
        _paper(lambda k: k["plain"]),
        MEAN,
    ),
    (
        "GaitMPL",
        "GSAM improves the baseline",
        _paper(lambda k: k["gsam"] and not k["drpl"]),
        _paper(lambda k: k["plain"]),
        MEAN,
    ),
    (
        "GaitMPL",
        "GSAM adds to DRPL",
        _paper(lambda k: k["gsam"] and k["drpl"]),
        _paper(lambda k: k["drpl"] and not k["gsam"]),
        MEAN,
    ),
    (
        "GaitMPL",
        "DRPL and GSAM together improve the baseline",
        _paper(lambda k: k["gsam"] and k["drpl"]),
        _paper(lambda k: k["plain"]),
        MEAN,
    ),
    (
        "GaitMPL",
        "The gain of DRPL is largest on CL",
        _paper(lambda k: k["drpl"] and not k["gsam"]),
        _paper(lambda k: k["plain"]),
        "CL-gain",
    ),
    (
        "Waveloss",
        "Norm-fusion beats post-fusion",
        _paper(lambda k: k["fusion"] == "norm" and not k["drpl"] and not k["gsam"] and k["l"].startswith("dynamic")),
        _paper(lambda k: k["plain"]),
        MEAN,
    ),
    (
        "Waveloss",
        "Norm-fusion beats pre-fusion",
        _paper(lambda k: k["fusion"] == "norm" and k["l"].startswith("dynamic")),
        _paper(lambda k: k["fusion"] == "pre"),
        MEAN,
    ),
    (
        "Waveloss",
        "A dynamic exponent beats a static one",
        _paper(lambda k: k["fusion"] == "norm" and k["l"].startswith("dynamic")),
        _paper(lambda k: k["fusion"] == "norm" and k["l"].startswith("static")),
        MEAN,
    ),
    (
        "Waveloss",
        "The full Waveloss beats circle loss alone",
        _paper(lambda k: k["base"] == "circle" and k["fusion"] == "norm" and k["l"].startswith("dynamic")),
        _paper(lambda k: k["base"] == "circle" and k["plain"]),
        MEAN,
    ),
    (
        "ours",
        "Centred GSAM improves the baseline",
        lambda k: k["ours"] and not k["drpl"],
        _paper(lambda k: k["plain"]),
        MEAN,
    ),
    (
        "ours",
        "Centring improves GSAM",
        lambda k: k["ours"] and not k["drpl"],
        lambda k: k["gsam"] and not k["ours"] and not k["drpl"],
        MEAN,
    ),
]


def _gain_on_cl(boot: Bootstrap, variant: Result, base: Result) -> Estimate:
    """(variant - base) on CL minus the largest (variant - base) on the other conditions."""
    others = [c for c in variant.rank1 if c != "CL" and c in base.rank1]
    if "CL" not in variant.rank1 or "CL" not in base.rank1 or not others:
        return Estimate(None)
    gain = {c: variant.rank1[c] - base.rank1[c] for c in [*others, "CL"]}
    value = gain["CL"] - max(gain[c] for c in others)
    cols = [*others, "CL"]
    if not all(c in variant.replicates and c in base.replicates for c in cols):
        return Estimate(value)
    reps = {c: variant.replicates[c] - base.replicates[c] for c in cols}
    return boot.estimate(value, reps["CL"] - np.max(np.stack([reps[c] for c in others]), 0))


def _headline(r: Result) -> str:
    """The figure a claim compares: the mean over conditions, or a retrieval protocol's rank-1."""
    if r.kind == "cross-view":
        return MEAN
    return next((c for c in r.rank1 if c.endswith("rank1")), MEAN)


def claims_table(results: list[Result], recipes: dict, boot: Bootstrap | None) -> Table:
    """Each claim the grid can test, per backbone: the measured difference, its paired interval and a
    verdict (supported, contradicted, inconclusive at this sample size); claims without runs: not tested."""
    table = Table(
        "claims",
        "The papers' claims on this data (rank-1 points: mean over conditions, or a retrieval protocol's rank-1, "
        "unless stated; paired 95% interval)",
        ["paper", "claim", "backbone", "variant vs base"],
        ["difference", "verdict"],
        differences=True,
    )
    runs = _trained(results, recipes)
    for paper, claim, is_variant, is_base, col in CLAIMS:
        found = False
        for r, kind in sorted(runs, key=lambda x: (x[0].backbone, x[0].recipe)):
            if not is_variant(kind):
                continue
            for b, bkind in runs:
                same = b.backbone == r.backbone and bkind["base"] == kind["base"] and b is not r
                if not same or not is_base(bkind):
                    continue
                if col == "CL-gain":
                    est = _gain_on_cl(boot, r, b) if boot else Estimate(None)
                else:
                    c = _headline(r) if col == MEAN else col
                    est = _difference(boot, r, b, c) if boot else Estimate(_observed(r, c))
                labels = (paper, claim, r.backbone, f"{r.recipe} vs {b.recipe}")
                interval = (est.low, est.high) if est.low is not None else None
                table.add(labels, [est.value, None], r.run_id, [interval, None])
                table.verdicts[labels] = verdict(est) if est.value is not None else "not tested"
                found = True
        if not found:
            labels = (paper, claim, "-", "not in the grid")
            table.add(labels, [None, None], None)
            table.verdicts[labels] = "not tested"
    return table


BOOTSTRAP = {"replicates": 1000, "level": 0.95, "seed": 0}


def build_tables(results: list[Result], recipes: dict, bootstrap: dict | None = None) -> dict[str, list[Table]]:
    """Every table, grouped by the file it is written to. Seeds of one method are combined first;
    every cell gets its bootstrap interval (``bootstrap``: replicates, level, seed)."""
    results = combine(results)
    boot = attach_intervals(results, bootstrap)
    trained = [r for r in results if r.recipe is not None]
    by_view = [r for r in results if r.per_view]
    return {
        **({"per_view": [per_view_table(by_view)]} if by_view else {}),
        "variants": [variants_table(results, recipes), differences_table(trained, recipes, boot)],
        "waveloss": waveloss_tables(trained, recipes),
        "formulations": [formulations_table(trained, recipes)],
        "claims": [claims_table(trained, recipes, boot)],
    }


# --- rendering ----------------------------------------------------------------


def to_markdown(table: Table) -> str:
    head = [*table.row_headers, *table.columns]
    lines = [
        f"**{table.title}**",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "|".join(["---"] * len(table.row_headers) + ["---:"] * len(table.columns)) + "|",
    ]
    previous: tuple[str, ...] = ()
    for labels, cells in table.rows:
        # a label repeated from the row above is left blank, as the papers print their blocks
        shown = [
            ("" if i < len(previous) and previous[: i + 1] == labels[: i + 1] else lab) for i, lab in enumerate(labels)
        ]
        text = [table.cell(labels, col, v) for col, (v, _) in zip(table.columns, cells)]
        lines.append("| " + " | ".join([*shown, *text]) + " |")
        previous = labels
    if not table.rows:
        lines.append("| " + " | ".join(["(no runs of this kind in the grid)"] + [""] * (len(head) - 1)) + " |")
    return "\n".join(lines) + "\n"


def _tex(text: str) -> str:
    for a, b in (
        ("\\", r"\textbackslash{}"),
        ("&", r"\&"),
        ("%", r"\%"),
        ("_", r"\_"),
        ("#", r"\#"),
        ("[", "{[}"),
        ("]", "{]}"),
    ):
        text = text.replace(a, b)
    return text


def to_latex(table: Table) -> str:
    spec = "l" * len(table.row_headers) + "r" * len(table.columns)
    lines = [
        r"\begin{table}[t]",
        r"\centering",
        rf"\caption{{{_tex(table.title)}}}",
        rf"\label{{tab:{table.name.replace('_', '-')}}}",
        rf"\begin{{tabular}}{{{spec}}}",
        r"\toprule",
        " & ".join(_tex(h) for h in [*table.row_headers, *table.columns]) + r" \\",
        r"\midrule",
    ]
    for labels, cells in table.rows:
        text = [_tex(table.cell(labels, col, v)) for col, (v, _) in zip(table.columns, cells)]
        lines.append(" & ".join([*(_tex(x) for x in labels), *text]) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def to_csv(tables: list[Table]) -> str:
    """Long format: one line per cell, with the MLflow run it comes from."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["table", "row", "column", "rank1", "low", "high", "mlflow_run_id"])
    for t in tables:
        for labels, cells in t.rows:
            for col, (value, run_id) in zip(t.columns, cells):
                low, high = t.intervals.get((labels, col), ("", ""))
                writer.writerow(
                    [
                        t.name,
                        " / ".join(labels),
                        col,
                        "" if value is None else round(value, 4),
                        low if low == "" else round(low, 4),
                        high if high == "" else round(high, 4),
                        run_id or "",
                    ]
                )
    return out.getvalue()


# --- the step -------------------------------------------------------------------


def _split_line(results: list[Result]) -> list[str]:
    """Which split the results were scored on (one line per distinct partition)."""
    lines = []
    for p in {json.dumps(r.partition, sort_keys=True) for r in results if r.partition}:
        p = json.loads(p)
        lines.append(
            f"Split: {p.get('source', '?')}; {p.get('train_set', '?')} training and "
            f"{p.get('test_set', '?')} test identities"
            + (f", {p['probe_set']} probe sequences" if "probe_set" in p else "")
            + ".\n"
        )
    return sorted(lines)


def write_tables(
    results: list[Result], recipes: dict, out: Path, dataset: str, intervals: dict | None = None
) -> dict[str, list[Table]]:
    """Write every table and plot into ``out``, replacing it whole (never half-written)."""
    from gaitflow.data.archive import replace_path
    from gaitflow.plots import ablation_bars, rank1_by_view

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tables = build_tables(results, recipes, intervals)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}.") as tmp:
        staging = Path(tmp) / out.name
        staging.mkdir()
        everything = [f"# Results on {dataset}\n", *_split_line(results)]
        for name, group in tables.items():
            (staging / f"{name}.md").write_text("\n".join(to_markdown(t) for t in group))
            (staging / f"{name}.tex").write_text("\n".join(to_latex(t) for t in group))
            (staging / f"{name}.csv").write_text(to_csv(group))
            everything += [to_markdown(t) for t in group]
        (staging / "tables.md").write_text("\n".join(everything))
        if "per_view" in tables:
            rank1_by_view(results, staging / VIEW_PLOT_FILE)
        ablation_bars(tables["variants"][0], staging / "ablation.png")
        replace_path(staging, out)
    return tables
