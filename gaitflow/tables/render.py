"""A table as Markdown, as LaTeX, and a group of tables as one long CSV (one line per cell)."""

from __future__ import annotations

import csv
import io

from gaitflow.tables.table import Table


def to_markdown(table: Table) -> str:
    head = [*table.row_headers, *table.columns]
    lines = [
        f"**{table.title}**",
        "",
        *[f"*{note}*\n" for note in table.notes],
        "| " + " | ".join(head) + " |",
        "|" + "|".join(["---"] * len(table.row_headers) + ["---:"] * len(table.columns)) + "|",
    ]
    previous: tuple[str, ...] = ()
    for labels, cells in table.rows:
        # a label repeated from the row above is left blank, as the papers print their blocks
        shown = [
            ("" if i < len(previous) and previous[: i + 1] == labels[: i + 1] else lab) for i, lab in enumerate(labels)
        ]
        text = [table.cell(labels, col, v) for col, (v, _) in zip(table.columns, cells)]
        lines.append("| " + " | ".join([*shown, *text]) + " |")
        previous = labels
    if not table.rows:
        lines.append("| " + " | ".join(["(no runs of this kind in the grid)"] + [""] * (len(head) - 1)) + " |")
    return "\n".join(lines) + "\n"


def _tex(text: str) -> str:
    for a, b in (
        ("\\", r"\textbackslash{}"),
        ("&", r"\&"),
        ("%", r"\%"),
        ("_", r"\_"),
        ("#", r"\#"),
        ("[", "{[}"),
        ("]", "{]}"),
    ):
        text = text.replace(a, b)
    return text


def to_latex(table: Table) -> str:
    spec = "l" * len(table.row_headers) + "r" * len(table.columns)
    lines = [
        r"\begin{table}[t]",
        r"\centering",
        rf"\caption{{{_tex(' '.join([table.title, *table.notes]))}}}",
        rf"\label{{tab:{table.name.replace('_', '-')}}}",
        rf"\begin{{tabular}}{{{spec}}}",
        r"\toprule",
        " & ".join(_tex(h) for h in [*table.row_headers, *table.columns]) + r" \\",
        r"\midrule",
    ]
    for labels, cells in table.rows:
        text = [_tex(table.cell(labels, col, v)) for col, (v, _) in zip(table.columns, cells)]
        lines.append(" & ".join([*(_tex(x) for x in labels), *text]) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def to_csv(tables: list[Table]) -> str:
    """Long format: one line per cell, with the MLflow run it comes from."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["table", "row", "column", "rank1", "low", "high", "mlflow_run_id"])
    for t in tables:
        for labels, cells in t.rows:
            for col, (value, run_id) in zip(t.columns, cells):
                low, high = t.intervals.get((labels, col), ("", ""))
                writer.writerow(
                    [
                        t.name,
                        " / ".join(labels),
                        col,
                        "" if value is None else round(value, 4),
                        low if low == "" else round(low, 4),
                        high if high == "" else round(high, 4),
                        run_id or "",
                    ]
                )
    return out.getvalue()


def tau_tsv(table: Table) -> str:
    """Fig. 6's points as a tab-separated table (what ``dvc plots`` draws): tau, each condition's
    rank-1, the Mean and its interval."""
    conds = [c for c in table.columns if c not in ("Mean", "vs tau=0.1")]
    lines = ["\t".join(["tau", *conds, "Mean", "low", "high", "recipe"])]
    for labels, cells in table.rows:
        values = dict(zip(table.columns, (v for v, _ in cells)))
        low, high = table.intervals.get((labels, "Mean"), (None, None))
        row = [labels[0], *(values[c] for c in conds), values["Mean"], low, high]
        lines.append(
            "\t".join("" if v is None else (v if isinstance(v, str) else f"{v:.4f}") for v in row) + f"\t{labels[1]}"
        )
    return "\n".join(lines) + "\n"
