"""Uncertainty in the tables: bootstrap intervals over test identities (and seeds).

A cell of the tables is a rank-1 averaged over (probe view, gallery view) pairs
of the probes of 20-124 test identities, for one training run or the mean of
several seeds. Its sampling error comes from which identities happened to be
in the test set, and from the run's randomness. Sequences of one identity are
not independent, so the bootstrap resamples *identities*: replicate ``r``
draws each test identity ``w[r, i]`` times (multinomial), and every probe of
identity ``i`` weighs ``w[r, i]`` in every accuracy it enters. With several
seeds, the replicate also draws the seeds with replacement and averages them
(a two-level bootstrap). The interval is the percentile interval of the
replicates (docs/statistics.md).

Every group of runs is evaluated on the *same* replicates (the same identity
weights and seed draws), so the difference between a variant and its base is
paired: its replicates are the differences of theirs, and the interval of the
difference is much narrower than the two intervals would suggest.

The per-probe hits come from the metrics files (``hits``: each probe's hit
against every gallery view, written by the cross-view protocol; ``probe_scores``:
each probe's first-match rank, AP and INP, written by a retrieval protocol):
nothing is embedded or ranked again.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from gaitflow.evaluate.retrieval import PROBE_SCORES, record_figures

MEAN = "Mean"
PROXY = "proxy "  # how the tables name a proxy score's figures (GREW's: its probes have no identity)


@dataclass(frozen=True)
class Estimate:
    """A figure with its interval (``low``, ``high``); ``low``/``high`` are None without replicates."""

    value: float | None
    low: float | None = None
    high: float | None = None

    @property
    def excludes_zero(self) -> bool:
        return self.low is not None and self.high is not None and (self.low > 0 or self.high < 0)


def _nanmean(x: np.ndarray, axis: int) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices stay NaN
        return np.nanmean(x, axis=axis)


def weighted_rank1(record: dict, gallery_views: list[str], weights: np.ndarray, index: dict[str, int], diagonal: bool):
    """Rank-1 (%) of one condition under identity weights [B, n_ids]: (condition [B], per probe view
    {view: [B]}), computed as the protocol computes it (accuracy per view pair, identical views left
    out unless ``diagonal``, averaged over gallery views, then over probe views)."""
    subjects = np.array([index[s] for s in record["subjects"]], dtype=np.int64)
    views = np.asarray(record["views"])
    marks = np.array([list(h) for h in record["hits"]]) if record["hits"] else np.zeros((0, len(gallery_views)))
    hit, counted = (marks == "1").astype(float), (marks != "x").astype(float)
    probe_weights = weights[:, subjects]  # [B, probes]
    per_view = {}
    for a, view in enumerate(gallery_views):
        rows = views == view
        if not rows.any():
            continue
        num = probe_weights[:, rows] @ hit[rows]  # [B, gallery views]
        den = probe_weights[:, rows] @ counted[rows]
        with np.errstate(invalid="ignore", divide="ignore"):
            cells = np.where(den > 0, 100.0 * num / den, np.nan)
        if not diagonal:
            cells[:, a] = np.nan
        per_view[view] = _nanmean(cells, 1)
    if not per_view:
        return np.full(len(weights), np.nan), {}
    return _nanmean(np.stack(list(per_view.values()), 1), 1), per_view


class Bootstrap:
    """Replicates shared by every group of runs of one dataset (so differences are paired).

    ``identities``: the test identities; ``seeds``: the most seeds any group has.
    """

    def __init__(self, identities: list[str], seeds: int, replicates: int = 1000, level: float = 0.95, seed: int = 0):
        rng = np.random.default_rng(seed)
        n = len(identities)
        self.index = {s: i for i, s in enumerate(identities)}
        self.level = level
        self.weights = rng.multinomial(n, np.full(n, 1.0 / n), size=replicates).astype(float) if n else None
        self.seed_draws = rng.random((replicates, max(1, seeds)))
        self.observed_weights = np.ones((1, n))

    def _per_seed(self, metrics: dict, weights: np.ndarray) -> dict:
        """{column: [B]} for one run: each condition, their mean, and (condition, view)."""
        out = {}
        diagonal = metrics.get("identical_views") == "include"
        for cond, record in metrics.get("hits", {}).items():
            value, per_view = weighted_rank1(record, metrics["views"], weights, self.index, diagonal)
            out[cond] = value
            out.update({(cond, v): x for v, x in per_view.items()})
        conds = [c for c in metrics.get("hits", {})]
        if conds:  # one condition (OU-MVLP's): its Mean is itself, and has the same interval
            out[MEAN] = _nanmean(np.stack([out[c] for c in conds], 1), 1)
        record = metrics.get(PROBE_SCORES)
        if record:  # a retrieval protocol: its figures, named as the tables name them
            prefix = PROXY if record["figures"] == "retrieval_proxy" else ""
            subjects = np.array([self.index[s] for s in record["subjects"]], dtype=np.int64)
            figures = record_figures(record, weights[:, subjects])
            out.update({prefix + name: value for name, value in figures.items()})
        return out

    def replicates(self, runs: list[dict]) -> dict:
        """{column: [B]} for a group of runs (the seeds of one method): per replicate, the mean over
        seeds drawn with replacement, under that replicate's identity weights."""
        if self.weights is None or not runs or not all(scored(m) for m in runs):
            return {}
        per_seed = [self._per_seed(m, self.weights) for m in runs]
        n = len(runs)
        draws = np.minimum((self.seed_draws[:, :n] * n).astype(int), n - 1)  # [B, n]: the seeds drawn
        rows = np.arange(len(draws))[:, None]
        return {
            col: _nanmean(np.stack([p[col] for p in per_seed], 1)[rows, draws], 1)
            for col in per_seed[0]
            if all(col in p for p in per_seed)
        }

    def estimate(self, value: float | None, replicates: np.ndarray | None) -> Estimate:
        if value is None or replicates is None:
            return Estimate(value)
        finite = replicates[np.isfinite(replicates)]
        if not len(finite):
            return Estimate(value)
        tail = (1 - self.level) / 2 * 100
        low, high = np.percentile(finite, [tail, 100 - tail])
        return Estimate(value, float(low), float(high))


def scored(metrics: dict) -> bool:
    """Whether a metrics file holds per-probe scores the bootstrap can reweight."""
    return "hits" in metrics or PROBE_SCORES in metrics


def identities(metrics: dict) -> set[str]:
    """The test identities of a metrics file's per-probe scores."""
    ids = {s for record in metrics.get("hits", {}).values() for s in record["subjects"]}
    return ids | set(metrics.get(PROBE_SCORES, {}).get("subjects", []))


def verdict(difference: Estimate) -> str:
    """supported (the interval is above zero), contradicted (below) or inconclusive."""
    if difference.low is None or difference.high is None:
        return "inconclusive"
    if difference.low > 0:
        return "supported"
    if difference.high < 0:
        return "contradicted"
    return "inconclusive"
