"""Figures: the loss curve of a training log, the per-view rank-1 heatmap of a run, and the
tables' plots (rank-1 by view per condition, the ablation bar chart)."""

from __future__ import annotations

import json
from pathlib import Path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def curve_table(train_log: Path) -> str:
    """The training log (JSON lines) as a TSV table, iteration first, one column per logged figure
    (blank where a line lacks it): DVC's plots read it."""
    rows = [json.loads(line) for line in Path(train_log).read_text().splitlines() if line] if train_log.exists() else []
    columns = ["iteration"] + sorted({k for r in rows for k in r} - {"iteration"})
    cell = lambda v: str(v) if isinstance(v, int) else f"{v:.6g}"  # noqa: E731
    lines = ["\t".join(columns)] + ["\t".join(cell(r[c]) if c in r else "" for c in columns) for r in rows]
    return "\n".join(lines) + "\n"


def loss_curve(train_log: Path, out: Path) -> Path:
    """Every logged loss term against the iteration and, where logged, each component's loss and
    the norm of its gradient with respect to the embeddings (the balance between components)."""
    rows = [json.loads(line) for line in Path(train_log).read_text().splitlines() if line]
    plt = _pyplot()
    skip = {"iteration", "lr", "iterations_per_second", "data_share", "waveloss_l", "gsam_gamma"}
    keys = [k for k in rows[0] if k not in skip and "/" not in k] if rows else []
    norms = [k for k in rows[0] if k.startswith("grad_norm/")] if rows else []
    fig, axes = plt.subplots(1, 2 if norms else 1, figsize=(11 if norms else 6, 3.5), squeeze=False)
    its = [r["iteration"] for r in rows]
    ax = axes[0][0]
    for k in keys:
        ax.plot(its, [r[k] for r in rows], label=k, lw=2 if k == "total" else 1)
    ax.set_xlabel("iteration")
    ax.set_ylabel("loss")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    if norms:
        ax = axes[0][1]
        for k in norms:
            ax.plot(its, [r.get(k, float("nan")) for r in rows], label=k.split("/", 1)[1])
        ax.set_yscale("log")
        ax.set_xlabel("iteration")
        ax.set_ylabel("gradient norm w.r.t. the embeddings")
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


def rank1_by_view(results: list, out: Path) -> Path:
    """Rank-1 against the probe view, one panel per probe condition, one line per method."""
    plt = _pyplot()
    conds = list(dict.fromkeys(c for r in results for c in r.per_view))
    fig, axes = plt.subplots(1, max(1, len(conds)), figsize=(4.2 * max(1, len(conds)), 3.6), squeeze=False, sharey=True)
    for ax, cond in zip(axes[0], conds):
        for r in results:
            views = sorted(r.per_view.get(cond, {}), key=float)
            style = {"ls": "--", "color": "black"} if r.recipe is None else {}
            ax.plot(
                [float(v) for v in views],
                [r.per_view[cond][v] for v in views],
                marker=".",
                lw=1,
                label=r.method,
                **style,
            )
        ax.set_title(cond)
        ax.set_xlabel("probe view (degrees)")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("rank-1 (%)")
    axes[0][0].set_ylim(0, 100)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(
        handles,
        labels,
        loc="lower center",
        ncol=min(4, max(1, len(labels))),
        fontsize=7,
        bbox_to_anchor=(0.5, -0.02 - 0.045 * ((len(labels) + 3) // 4)),
    )
    fig.savefig(out, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return out


def ablation_bars(table, out: Path) -> Path:
    """Mean rank-1 of each backbone (groups) with each loss variant (bars): the table-III ablation."""
    import numpy as np

    plt = _pyplot()
    col = "Mean" if "Mean" in table.columns else (table.columns[0] if table.columns else None)
    cells = {}
    for labels, values in table.rows:
        cells[(labels[0], " ".join(labels[1:]))] = values[table.columns.index(col)][0]
    groups = list(dict.fromkeys(k[0] for k in cells))
    bars = list(dict.fromkeys(k[1] for k in cells))
    fig, ax = plt.subplots(figsize=(max(4.0, 1.1 * len(groups) * max(1, len(bars)) * 0.35 + 2), 3.6))
    width = 0.8 / max(1, len(bars))
    for i, bar in enumerate(bars):
        heights = [cells.get((g, bar)) or 0.0 for g in groups]
        ax.bar(np.arange(len(groups)) + i * width - 0.4 + width / 2, heights, width, label=bar)
    ax.set_xticks(range(len(groups)), groups)
    ax.set_ylabel(f"rank-1 (%), {col}" if col else "rank-1 (%)")
    ax.set_ylim(0, 100)
    ax.grid(axis="y", alpha=0.3)
    if bars:
        ax.legend(fontsize=7, ncol=2)
    else:
        ax.text(0.5, 0.5, "no runs of this kind in the grid", ha="center", transform=ax.transAxes)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def tau_plot(table, png: Path, pdf: Path) -> tuple[Path, Path]:
    """GaitMPL Fig. 6: rank-1 against GSAM's temperature tau (log axis), the Mean with its 95%
    interval as error bars and each probe condition as a line; saved as PNG and PDF."""
    plt = _pyplot()
    taus = [float(labels[0]) for labels, _ in table.rows]
    conds = [c for c in table.columns if c not in ("Mean", "vs tau=0.1")]
    values = [dict(zip(table.columns, (v for v, _ in cells))) for _, cells in table.rows]
    fig, ax = plt.subplots(figsize=(4.6, 3.4))
    for c in conds:
        ax.plot(taus, [v[c] for v in values], marker=".", lw=1, alpha=0.6, label=c)
    means = [v["Mean"] for v in values]
    low = [m - table.intervals.get((labels, "Mean"), (m, m))[0] for m, (labels, _) in zip(means, table.rows)]
    high = [table.intervals.get((labels, "Mean"), (m, m))[1] - m for m, (labels, _) in zip(means, table.rows)]
    ax.errorbar(taus, means, yerr=[low, high], color="black", marker="o", capsize=3, lw=1.5, label="Mean (95% CI)")
    ax.axvline(0.1, color="grey", ls=":", lw=1)
    ax.set_xscale("log")
    ax.set_xlabel("GSAM temperature tau")
    ax.set_ylabel("rank-1 (%)")
    ax.set_title("Rank-1 against tau (GaitMPL Fig. 6)", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    fig.savefig(pdf)
    plt.close(fig)
    return png, pdf
