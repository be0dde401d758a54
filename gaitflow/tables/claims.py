"""The papers' claims the grid can test, and their verdicts on this data: each claim's measured
difference between a variant and its base, with its paired interval."""

from __future__ import annotations

import numpy as np

from gaitflow.stats import MEAN, Bootstrap, Estimate, verdict
from gaitflow.tables.recipes import _trained
from gaitflow.tables.results import Result, _difference, _observed
from gaitflow.tables.table import Table


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


def claims_table(results: list[Result], recipes: dict, boot: Bootstrap | None, more: list = ()) -> Table:
    """Each claim the grid can test, per backbone: the measured difference, its paired interval and a
    verdict (supported, contradicted, inconclusive at this sample size); claims without runs: not tested.
    ``more``: further claims already measured, (paper, claim, backbone, comparison, Estimate, verdict,
    run id) each (GaitMPL's ablations: gaitflow.tables.ablations.ablation_claims)."""
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
    for paper, claim, backbone, comparison, est, verdict_text, run_id in more:
        labels = (paper, claim, backbone, comparison)
        interval = (est.low, est.high) if est.low is not None else None
        table.add(labels, [est.value, None], run_id, [interval, None])
        table.verdicts[labels] = verdict_text
    return table
