"""Results files in: one evaluated method per ``metrics.json`` (``Result``), loaded and checked
(a damaged file is refused in one line); the seeds of a method combined; bootstrap intervals
on shared replicates; paired differences between two results."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from gaitflow.errors import GaitflowError
from gaitflow.evaluate.retrieval import PROBE_SCORES
from gaitflow.stats import MEAN, PROXY, Bootstrap, Estimate, identities
from gaitflow.workflow import CURVE_FILE


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
    protocol: str | None = None  # the protocol it was scored under (casia-b, ou-mvlp, gait3d, ...)
    step_seconds: float | None = None  # the median training step time (its train_curve.tsv beside metrics.json)

    @property
    def name(self) -> str:
        """The row's name: an imported model's label, else the method."""
        return self.label or self.method


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
            step_seconds=_step_seconds(Path(path).parent / CURVE_FILE),
            protocol=m.get("protocol"),
        )
    except FileNotFoundError:
        raise GaitflowError(f"{path}: not found; evaluate the run first (gaitflow evaluate)") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise GaitflowError(
            f"{path}: not a gaitflow metrics file with rank-1 by view ({exc}); evaluate the run again"
        ) from None


def _step_seconds(curve: Path) -> float | None:
    """The median seconds per training iteration a run's curve logged (None: no curve, the baseline)."""
    import csv
    import statistics

    try:
        with open(curve, newline="") as fh:
            speeds = [float(row["iterations_per_second"]) for row in csv.DictReader(fh, delimiter="\t")]
    except (OSError, KeyError, ValueError, TypeError):
        return None
    speeds = [s for s in speeds if s > 0]
    return 1.0 / statistics.median(speeds) if speeds else None


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


# --- seeds combined, bootstrap intervals, paired differences


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
                step_seconds=mean(m.step_seconds for m in members),
                protocol=first.protocol,
            )
        )
    return out


BOOTSTRAP = {"replicates": 1000, "level": 0.95, "seed": 0}


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
        if r.rank1 and r.kind == "cross-view":
            observed[MEAN] = mean(r.rank1.values())
        for col, reps in r.replicates.items():
            est = boot.estimate(observed.get(col), reps)
            if est.low is not None:
                r.intervals[col] = (est.low, est.high)
    return boot


def _difference(boot: Bootstrap, a: Result, b: Result, col: str) -> Estimate:
    """a - b at column ``col``, with the paired interval (the same replicates for both)."""
    va, vb = _observed(a, col), _observed(b, col)
    value = None if va is None or vb is None else va - vb
    if col in a.replicates and col in b.replicates:
        return boot.estimate(value, a.replicates[col] - b.replicates[col])
    return Estimate(value)


def _observed(r: Result, col: str) -> float | None:
    return mean(r.rank1.values()) if col == MEAN else r.rank1.get(col)
