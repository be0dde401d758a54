"""The papers' tables, filled in from the results files of a dataset.

Built from ``results/<dataset>/*/metrics.json`` only (never from MLflow), so the
step is a pure function of its inputs. What a recipe *is* (base loss, +DRPL,
+GSAM, Waveloss fusion and exponent schedule, formulation) is read from its
components in params.yaml, not from its name.

Tables (each written as Markdown, LaTeX and a long CSV whose every cell names
its MLflow run):
- ``per_view``: GaitMPL table I, rank-1 by probe view; per method the NM, BG,
  CL rows and their mean.
- ``variants``: GaitMPL table III, each backbone with its base loss, +D
  (DRPL), +G (GSAM) and ++ (both); then each variant minus its base, with a
  paired interval.
- ``waveloss``: Waveloss tables 4-6: fusion ways, static versus dynamic l, and
  the loss ablation.
- ``formulations``: ``intended`` against ``as_printed`` where both were run.
- ``gaitmpl_v`` ... ``gaitmpl_ix``, ``gaitmpl_fig6``: GaitMPL's ablations on GaitSet and
  rank-1 against GSAM's tau, the paper's figures beside ours (``ablations``).
- ``published``: every printed row of the papers' tables on the dataset's benchmark beside
  the run of ours that reports the same (``printed``).
- ``claims``: each claim of the papers the grid can test, with its paired
  difference and a verdict (docs/statistics.md).

Modules: ``results`` (results files in: loading, checking, seeds combined,
intervals), ``recipes`` (what a recipe is), ``table`` (the table model),
``papers`` (the papers' tables I, III, Waveloss 4-6), ``ablations`` (GaitMPL V-IX, Fig. 6),
``printed`` (the printed figures beside ours), ``published`` (the printed figures),
``claims`` (the papers' claims and their verdicts), ``render`` (Markdown, LaTeX, CSV); this module is the step.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from gaitflow.tables.ablations import TAU, ablation_claims, ablation_tables
from gaitflow.tables.claims import claims_table
from gaitflow.tables.papers import (
    differences_table,
    formulations_table,
    per_view_table,
    variants_table,
    waveloss_tables,
)
from gaitflow.tables.printed import printed_table
from gaitflow.tables.render import tau_tsv, to_csv, to_latex, to_markdown
from gaitflow.tables.results import Result, attach_intervals, combine
from gaitflow.tables.results import load_result as load_result  # re-exported: the CLI reads results with it
from gaitflow.tables.table import Table
from gaitflow.workflow import VIEW_PLOT_FILE

TABLES = ("per_view", "variants", "waveloss", "formulations")


def build_tables(results: list[Result], recipes: dict, bootstrap: dict | None = None) -> dict[str, list[Table]]:
    """Every table, grouped by the file it is written to. Seeds of one method are combined first;
    every cell gets its bootstrap interval (``bootstrap``: replicates, level, seed)."""
    results = combine(results)
    boot = attach_intervals(results, bootstrap)
    trained = [r for r in results if r.recipe is not None]
    by_view = [r for r in results if r.per_view]
    # an ablation table is written when it has a row beyond its baseline's
    ablations = [t for t in ablation_tables(trained, recipes, boot) if any(lab[0] != "Baseline" for lab, _ in t.rows)]
    protocol = next((r.protocol for r in results if r.protocol), None)
    printed = printed_table(trained, recipes, boot, protocol)
    return {
        **({"per_view": [per_view_table(by_view)]} if by_view else {}),
        "variants": [variants_table(results, recipes), differences_table(trained, recipes, boot)],
        "waveloss": waveloss_tables(trained, recipes),
        "formulations": [formulations_table(trained, recipes)],
        **{t.name: [t] for t in ablations},
        **({"published": [printed]} if printed.rows else {}),
        "claims": [claims_table(trained, recipes, boot, ablation_claims(ablations, trained, boot))],
    }


# --- the step -------------------------------------------------------------------


def _split_line(results: list[Result]) -> list[str]:
    """Which split the results were scored on (one line per distinct partition)."""
    lines = []
    for p in {json.dumps(r.partition, sort_keys=True) for r in results if r.partition}:
        p = json.loads(p)
        lines.append(
            f"Split: {p.get('source', '?')}; {p.get('train_set', '?')} training and "
            f"{p.get('test_set', '?')} test identities"
            + (f", {p['probe_set']} probe sequences" if "probe_set" in p else "")
            + ".\n"
        )
    return sorted(lines)


def write_tables(
    results: list[Result], recipes: dict, out: Path, dataset: str, intervals: dict | None = None
) -> dict[str, list[Table]]:
    """Write every table and plot into ``out``, replacing it whole (never half-written)."""
    from gaitflow.data.archive import replace_path
    from gaitflow.plots import ablation_bars, rank1_by_view, tau_plot

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tables = build_tables(results, recipes, intervals)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}.") as tmp:
        staging = Path(tmp) / out.name
        staging.mkdir()
        everything = [f"# Results on {dataset}\n", *_split_line(results)]
        for name, group in tables.items():
            (staging / f"{name}.md").write_text("\n".join(to_markdown(t) for t in group))
            (staging / f"{name}.tex").write_text("\n".join(to_latex(t) for t in group))
            (staging / f"{name}.csv").write_text(to_csv(group))
            everything += [to_markdown(t) for t in group]
        (staging / "tables.md").write_text("\n".join(everything))
        if "per_view" in tables:
            rank1_by_view(results, staging / VIEW_PLOT_FILE)
        ablation_bars(tables["variants"][0], staging / "ablation.png")
        if TAU in tables:  # GaitMPL Fig. 6: the plot (png, pdf) and its points for `dvc plots`
            table = tables[TAU][0]
            (staging / f"{TAU}.tsv").write_text(tau_tsv(table))
            tau_plot(table, staging / f"{TAU}.png", staging / f"{TAU}.pdf")
        replace_path(staging, out)
    return tables
