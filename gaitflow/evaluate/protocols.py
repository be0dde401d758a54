"""The cross-view rank-1 protocol of CASIA-B and OU-MVLP.

For each probe condition c, probe view v1 and gallery view v2, accuracy is the
share of probes of c at v1 whose nearest gallery sequence at v2 has their
identity, in percent, rounded to 2 decimals per view pair (as the reference
evaluator does). Identical views are excluded by default: the per-view score
averages over v2 != v1 (``identical_views="include"`` averages over every v2),
and the condition's score is the mean over probe views.

CASIA-B: gallery NM#1-4, probes NM#5-6, BG#1-2, CL#1-2. OU-MVLP: gallery 01,
probe 00. A probe whose identity has no gallery sequence at v2 counts as a miss
(``no_gallery="error"``, the reference behaviour) or is left out of that pair
(``"exclude"``, as some papers report).
"""

from __future__ import annotations

import fnmatch
import re

import numpy as np

from gaitflow.evaluate.distances import nearest_in_groups


def select_types(types: np.ndarray, patterns: list[str]) -> np.ndarray:
    """Rows whose sequence type is one of ``patterns`` (exact names, or shell patterns such as ``*-bg``)."""
    types = np.asarray(types).astype(str)
    mask = np.isin(types, [p for p in patterns if not any(c in p for c in "*?[")])
    for pattern in (p for p in patterns if any(c in p for c in "*?[")):
        mask |= np.array([fnmatch.fnmatchcase(t, pattern) for t in types], bool)
    return mask


def view_labels(views: np.ndarray, regex: str | None) -> np.ndarray:
    """The view each sequence counts as: its label, or the part ``regex`` matches (CCPG's folder
    ``01_0`` is camera ``01``)."""
    views = np.asarray(views).astype(str)
    if not regex:
        return views
    pattern = re.compile(regex)
    return np.array([(m.group(0) if (m := pattern.search(v)) else v) for v in views])


def probe_setting(setting) -> tuple[list[str], list[str] | None]:
    """A probe set as params give it: a list of sequence types (against the protocol's gallery), or
    ``{probe: [...], gallery: [...]}`` with a gallery of its own (CCPG's four settings)."""
    if isinstance(setting, dict):
        return setting["probe"], setting.get("gallery")
    return setting, None


def cross_view_rank1(
    embeddings: np.ndarray,
    subjects: np.ndarray,
    types: np.ndarray,
    views: np.ndarray,
    gallery_types: list[str] | None,
    probe_sets: dict[str, list[str] | dict],
    metric: str = "euclidean",
    no_gallery: str = "error",
    identical_views: str = "exclude",
    ranks=(1,),
) -> dict:
    """Rank-1 (and rank-k for the other ``ranks``) per condition, per probe view and per view pair;
    see the module docstring. Gallery rows are never probes, whatever the probe patterns match."""
    if no_gallery not in ("error", "exclude"):
        raise ValueError(f"no_gallery {no_gallery!r}: expected error or exclude")
    if identical_views not in ("exclude", "include"):
        raise ValueError(f"identical_views {identical_views!r}: expected exclude or include")
    subjects, types, views = (np.asarray(a).astype(str) for a in (subjects, types, views))
    all_views = sorted(set(views.tolist()))
    result = {
        "metric": metric,
        "no_gallery": no_gallery,
        "identical_views": identical_views,
        "views": all_views,
        "rank1": {},
        **{f"rank{k}": {} for k in ranks if k != 1},
        "per_view": {},
        "matrix": {},
        "probes": {},
        "hits": {},
    }
    for name, setting in probe_sets.items():
        probe_types, own_gallery = probe_setting(setting)
        in_gallery = select_types(types, own_gallery or gallery_types)
        gal = np.flatnonzero(in_gallery)
        groups = [np.flatnonzero(views[gal] == v) for v in all_views]
        probe = np.flatnonzero(select_types(types, probe_types) & ~in_gallery)
        if len(probe) == 0 or len(gal) == 0:
            continue
        nearest = nearest_in_groups(embeddings, embeddings, groups, metric, probe_rows=probe, gallery_rows=gal)
        hit = np.where(nearest >= 0, subjects[gal][np.maximum(nearest, 0)] == subjects[probe][:, None], False)
        mean, per_view, matrix = _view_scores(
            hit, probe, gal, groups, subjects, views, all_views, no_gallery, identical_views
        )
        result["rank1"][name] = mean
        result["per_view"][name] = per_view
        result["matrix"][name] = matrix
        result["probes"][name] = int(len(probe))
        result["hits"][name] = hit_record(hit, probe, gal, groups, subjects, views, no_gallery)
        for k in (k for k in ranks if k != 1):
            top = nearest_in_groups(embeddings, embeddings, groups, metric, probe_rows=probe, gallery_rows=gal, k=k)
            ids = subjects[gal][np.maximum(top, 0)]
            hit_k = ((ids == subjects[probe][:, None, None]) & (top >= 0)).any(-1)
            result[f"rank{k}"][name] = _view_scores(
                hit_k, probe, gal, groups, subjects, views, all_views, no_gallery, identical_views
            )[0]
    return result


def hit_record(hit, probe, gal, groups, subjects, views, no_gallery) -> dict:
    """Each probe's rank-1 hits against every gallery view, compactly: its identity, its view and a
    string with one character per gallery view (``1`` hit, ``0`` miss, ``x`` not counted: no gallery
    there). Enough to recompute the condition's rank-1 under any reweighting of the identities,
    which is what the tables' bootstrap intervals do (gaitflow.stats)."""
    counted = np.ones(hit.shape, bool)
    for b, group in enumerate(groups):
        if not len(group):
            counted[:, b] = False
        elif no_gallery == "exclude":
            counted[:, b] &= np.isin(subjects[probe], subjects[gal][group])
    marks = np.where(counted, np.where(hit, "1", "0"), "x")
    return {
        "subjects": subjects[probe].tolist(),
        "views": views[probe].tolist(),
        "hits": ["".join(row) for row in marks],
    }


def _view_scores(hit, probe, gal, groups, subjects, views, all_views, no_gallery, identical_views):
    """(condition mean, per probe view, view x view matrix) of hits [probes, gallery views]."""
    matrix = np.full((len(all_views), len(all_views)), np.nan)
    for a, v1 in enumerate(all_views):
        rows = views[probe] == v1
        for b in range(len(all_views)):
            use = rows.copy()
            if no_gallery == "exclude":
                use &= np.isin(subjects[probe], subjects[gal][groups[b]])
            if use.any() and len(groups[b]):
                matrix[a, b] = round(100.0 * hit[use, b].mean(), 2)
    off = matrix.copy()
    if identical_views == "exclude":
        np.fill_diagonal(off, np.nan)
    with np.errstate(invalid="ignore"):
        counts = np.sum(~np.isnan(off), axis=1)
        per_view = np.where(counts > 0, np.nansum(off, axis=1) / np.maximum(counts, 1), np.nan)
    valid = per_view[~np.isnan(per_view)]
    mean = round(float(valid.mean()), 4) if len(valid) else float("nan")
    by_view = {v: (None if np.isnan(x) else round(float(x), 4)) for v, x in zip(all_views, per_view)}
    return mean, by_view, [[None if np.isnan(x) else float(x) for x in row] for row in matrix]
