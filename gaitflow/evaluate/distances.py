"""Distances between part embeddings, as the reference implementations compare them.

Embeddings are [N, P, C]: P parts (horizontal bins) of C channels. They are not
flattened: for Euclidean distance each part is compared on its own and the
per-part distances are averaged, ``D = mean_p ||x_p - y_p||``; for cosine each
part is L2-normalised and ``D = 1 - mean_p <x_p, y_p>``. Smaller is closer.

Distances are matrix products (``|x|^2 + |y|^2 - 2 x.y``) computed over chunks of
probes, so memory stays bounded for OU-MVLP-sized sets.
"""

from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np

METRICS = ("euclidean", "cosine")


def _check(metric: str) -> None:
    if metric not in METRICS:
        raise ValueError(f"metric {metric!r}: expected one of {METRICS}")


def _prepare(x: np.ndarray, metric: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 2:
        x = x[:, None, :]
    if metric == "cosine":
        x = x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)
    return x


def _chunks(probe: np.ndarray, gallery: np.ndarray, metric: str, chunk: int,
            tile: int = 4096) -> Iterator[tuple[int, np.ndarray]]:
    """(start, distances [c, m]) for consecutive chunks of probes.

    Euclidean: for each gallery tile, the per-part squared distances come from one
    matrix product per part (``-2 x.y`` with the squared norms added in place), then
    clamp, sqrt and accumulate in place, so the elementwise passes stay in cache and
    run on every core (torch), not once per full-size matrix.
    """
    import torch

    parts = probe.shape[1]
    g = torch.from_numpy(np.ascontiguousarray(gallery))
    if metric == "cosine":
        gt = g.reshape(len(g), -1).T.contiguous()
        for s in range(0, len(probe), chunk):
            sim = torch.from_numpy(np.ascontiguousarray(probe[s : s + chunk])).reshape(-1, gt.shape[0]) @ gt
            yield s, (1.0 - sim / parts).numpy()
        return
    g_parts = [g[:, p, :].T.contiguous() for p in range(parts)]  # [C, m] per part
    g_norms = [(g[:, p, :] ** 2).sum(-1) for p in range(parts)]
    for s in range(0, len(probe), chunk):
        x = torch.from_numpy(np.ascontiguousarray(probe[s : s + chunk]))
        x_parts = [x[:, p, :].contiguous() for p in range(parts)]
        x_norms = [(xp**2).sum(-1, keepdim=True) for xp in x_parts]
        out = torch.empty(len(x), len(g))
        for t0 in range(0, len(g), tile):
            t1 = min(t0 + tile, len(g))
            acc = out[:, t0:t1]
            acc.zero_()
            for p in range(parts):
                d2 = torch.addmm(g_norms[p][t0:t1].expand(len(x), -1), x_parts[p], g_parts[p][:, t0:t1], alpha=-2)
                d2.add_(x_norms[p]).clamp_(min=0).sqrt_()
                acc.add_(d2)
            acc.div_(parts)
        yield s, out.numpy()


def pairwise_distance(probe: np.ndarray, gallery: np.ndarray, metric: str = "euclidean", chunk: int = 2048) -> np.ndarray:
    """Full distance matrix [n, m] between [n, P, C] and [m, P, C] embeddings ([n, C] is one part)."""
    _check(metric)
    probe, gallery = _prepare(probe, metric), _prepare(gallery, metric)
    out = np.empty((len(probe), len(gallery)), np.float32)
    for s, d in _chunks(probe, gallery, metric, chunk):
        out[s : s + len(d)] = d
    return out


def nearest_in_groups(probe: np.ndarray, gallery: np.ndarray, groups: Sequence[np.ndarray],
                      metric: str = "euclidean", chunk: int = 2048) -> np.ndarray:
    """For every probe and every group of gallery columns, the gallery index of the nearest one.

    Returns int64 [n, len(groups)], -1 where a group is empty. The full matrix is never held.
    """
    _check(metric)
    probe, gallery = _prepare(probe, metric), _prepare(gallery, metric)
    out = np.full((len(probe), len(groups)), -1, np.int64)
    for s, d in _chunks(probe, gallery, metric, chunk):
        for g, cols in enumerate(groups):
            if len(cols):
                out[s : s + len(d), g] = np.asarray(cols)[np.argmin(d[:, cols], axis=1)]
    return out
