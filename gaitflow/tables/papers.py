"""The papers' tables: GaitMPL table I (rank-1 by probe view) and table III (the variants per
backbone, with each variant minus its base), Waveloss tables 4-6, and the two formulations
side by side."""

from __future__ import annotations

from gaitflow.stats import MEAN, Bootstrap, Estimate
from gaitflow.tables.recipes import (
    VARIANTS,
    _trained,
    _without_formulation,
    base_loss,
    centred_gsam,
    formulation,
    gaitmpl_variant,
    l_schedule,
    loss_label,
    variant_label,
    waveloss_fusion,
)
from gaitflow.tables.results import Result, _difference, mean
from gaitflow.tables.table import Table


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
