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


def _chunks(probe: np.ndarray, gallery: np.ndarray, metric: str, chunk: int) -> Iterator[tuple[int, np.ndarray]]:
    """(start, distances [c, m]) for consecutive chunks of probes."""
    parts = probe.shape[1]
    if metric == "cosine":
        g = gallery.reshape(len(gallery), -1).T.copy()
        for s in range(0, len(probe), chunk):
            sim = probe[s : s + chunk].reshape(-1, g.shape[0]) @ g
            yield s, 1.0 - sim / parts
        return
    g_parts = [np.ascontiguousarray(gallery[:, p, :].T) for p in range(parts)]
    g_norms = [(gallery[:, p, :] ** 2).sum(-1) for p in range(parts)]
    for s in range(0, len(probe), chunk):
        block = probe[s : s + chunk]
        acc = np.zeros((len(block), len(gallery)), np.float32)
        for p in range(parts):
            x = block[:, p, :]
            d2 = x @ g_parts[p]
            d2 *= -2
            d2 += (x**2).sum(-1)[:, None]
            d2 += g_norms[p][None, :]
            np.maximum(d2, 0, out=d2)
            acc += np.sqrt(d2, out=d2)
        acc /= parts
        yield s, acc


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
