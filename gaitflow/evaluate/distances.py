"""Distances between part embeddings, as the reference implementations compare them.

Embeddings are [N, P, C]: P parts (horizontal bins) of C channels. They are not
flattened: for Euclidean distance each part is compared on its own and the
per-part distances are averaged, ``D = mean_p ||x_p - y_p||``; for cosine each
part is L2-normalised and ``D = 1 - mean_p <x_p, y_p>``. Smaller is closer.

Distances are matrix products (``|x|^2 + |y|^2 - 2 x.y``) computed over chunks of
probes, so memory stays bounded for OU-MVLP-sized sets.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

METRICS = ("euclidean", "cosine")


def _check(metric: str) -> None:
    if metric not in METRICS:
        raise ValueError(f"metric {metric!r}: expected one of {METRICS}")


def _as_parts(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x)
    return x[:, None, :] if x.ndim == 2 else x


def _part(x: np.ndarray, rows: np.ndarray, p: int, metric: str):
    """Rows of one part as float32 torch [n, C], L2-normalised for cosine."""
    import torch

    out = torch.from_numpy(np.ascontiguousarray(x[rows, p], dtype=np.float32))
    return torch.nn.functional.normalize(out, dim=1) if metric == "cosine" else out


def distance_chunks(
    probe: np.ndarray,
    gallery: np.ndarray,
    metric: str,
    chunk: int = 1024,
    tile: int = 4096,
    probe_rows: np.ndarray | None = None,
    gallery_rows: np.ndarray | None = None,
) -> Iterator[tuple[int, np.ndarray]]:
    """(start, distances [c, m]) for consecutive chunks of probe rows against all gallery rows.

    probe / gallery are [N, P, C] arrays (possibly the same one) and the *_rows select from
    them, so no copy of either set is made. The gallery is held once, transposed per part.
    Euclidean: for each gallery tile, the per-part squared distances come from one matrix
    product per part (``-2 x.y`` with the squared norms added in place), then clamp, sqrt
    and accumulate in place, so the elementwise passes stay in cache and run on every core.
    Cosine: parts are normalised and one product of the flattened parts gives the mean similarity.
    """
    import torch

    _check(metric)
    probe, gallery = _as_parts(probe), _as_parts(gallery)
    pr = np.arange(len(probe)) if probe_rows is None else np.asarray(probe_rows)
    gr = np.arange(len(gallery)) if gallery_rows is None else np.asarray(gallery_rows)
    parts, m = probe.shape[1], len(gr)
    g_parts = [_part(gallery, gr, p, metric).T.contiguous() for p in range(parts)]  # [C, m] each
    if metric == "cosine":
        gt = torch.cat(g_parts)  # [P*C, m]
        del g_parts
        for s in range(0, len(pr), chunk):
            rows = pr[s : s + chunk]
            x = torch.cat([_part(probe, rows, p, metric) for p in range(parts)], dim=1)
            yield s, (1.0 - (x @ gt) / parts).numpy()
        return
    g_norms = [(g**2).sum(0) for g in g_parts]
    for s in range(0, len(pr), chunk):
        rows = pr[s : s + chunk]
        x_parts = [_part(probe, rows, p, metric) for p in range(parts)]
        x_norms = [(xp**2).sum(-1, keepdim=True) for xp in x_parts]
        out = torch.empty(len(rows), m)
        for t0 in range(0, m, tile):
            t1 = min(t0 + tile, m)
            acc = out[:, t0:t1]
            acc.zero_()
            for p in range(parts):
                d2 = torch.addmm(g_norms[p][t0:t1].expand(len(rows), -1), x_parts[p], g_parts[p][:, t0:t1], alpha=-2)
                d2.add_(x_norms[p]).clamp_(min=0).sqrt_()
                acc.add_(d2)
            acc.div_(parts)
        yield s, out.numpy()


def prepared_chunks(
    probe: np.ndarray,
    gallery: np.ndarray,
    metric: str = "euclidean",
    chunk: int = 1024,
    probe_rows=None,
    gallery_rows=None,
) -> Iterator[tuple[int, np.ndarray]]:
    """distance_chunks under the public name, for consumers that reduce each chunk."""
    yield from distance_chunks(probe, gallery, metric, chunk, probe_rows=probe_rows, gallery_rows=gallery_rows)


def pairwise_distance(
    probe: np.ndarray, gallery: np.ndarray, metric: str = "euclidean", chunk: int = 1024
) -> np.ndarray:
    """Full distance matrix [n, m] between [n, P, C] and [m, P, C] embeddings ([n, C] is one part)."""
    out = np.empty((len(probe), len(gallery)), np.float32)
    for s, d in distance_chunks(probe, gallery, metric, chunk):
        out[s : s + len(d)] = d
    return out


def nearest_in_groups(
    probe: np.ndarray,
    gallery: np.ndarray,
    groups: Sequence[np.ndarray],
    metric: str = "euclidean",
    chunk: int = 1024,
    probe_rows=None,
    gallery_rows=None,
    k: int = 1,
) -> np.ndarray:
    """For every probe row and every group of gallery positions, the gallery position of the nearest one.

    Returns int64 [n, len(groups)], -1 where a group is empty; with ``k`` > 1, [n, len(groups), k]: the
    k nearest by rising distance, -1 past the group's size. The full matrix is never held.
    """
    n = len(probe) if probe_rows is None else len(probe_rows)
    out = np.full((n, len(groups)) if k == 1 else (n, len(groups), k), -1, np.int64)
    for s, d in distance_chunks(probe, gallery, metric, chunk, probe_rows=probe_rows, gallery_rows=gallery_rows):
        for g, cols in enumerate(groups):
            if not len(cols):
                continue
            cols = np.asarray(cols)
            if k == 1:
                out[s : s + len(d), g] = cols[np.argmin(d[:, cols], axis=1)]
                continue
            sub = d[:, cols]
            kk = min(k, len(cols))
            part = np.argpartition(sub, kk - 1, axis=1)[:, :kk]
            order = np.take_along_axis(part, np.argsort(np.take_along_axis(sub, part, 1), axis=1, kind="stable"), 1)
            out[s : s + len(d), g, :kk] = cols[order]
    return out
