"""Figures logged with runs: the loss curve of a training log and the per-view rank-1 heatmap."""

from __future__ import annotations

import json
from pathlib import Path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def loss_curve(train_log: Path, out: Path) -> Path:
    """Every logged loss component against the iteration."""
    rows = [json.loads(line) for line in Path(train_log).read_text().splitlines() if line]
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    skip = {"iteration", "lr", "iterations_per_second", "data_share", "waveloss_l", "gsam_gamma"}
    keys = [k for k in rows[0] if k not in skip] if rows else []
    for k in keys:
        ax.plot([r["iteration"] for r in rows], [r[k] for r in rows], label=k, lw=2 if k == "total" else 1)
    ax.set_xlabel("iteration")
    ax.set_ylabel("loss")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def view_heatmap(metrics: dict, out: Path) -> Path:
    """Rank-1 for every probe view x gallery view, one panel per probe condition."""
    import numpy as np

    plt = _pyplot()
    conds = list(metrics.get("matrix", {}))
    views = metrics.get("views", [])
    fig, axes = plt.subplots(1, max(1, len(conds)), figsize=(4 * max(1, len(conds)), 3.6), squeeze=False)
    for ax, cond in zip(axes[0], conds):
        m = np.array([[np.nan if v is None else v for v in row] for row in metrics["matrix"][cond]], float)
        im = ax.imshow(m, vmin=0, vmax=100, cmap="viridis")
        ax.set_title(f"{cond}: rank-1 {metrics['rank1'][cond]:.1f}")
        ax.set_xticks(range(len(views)), views, rotation=90, fontsize=6)
        ax.set_yticks(range(len(views)), views, fontsize=6)
        ax.set_xlabel("gallery view")
        ax.set_ylabel("probe view")
    fig.colorbar(im, ax=axes[0].tolist(), shrink=0.8) if conds else None
    fig.savefig(out, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return out
