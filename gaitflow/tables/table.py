"""The table model: rows of labelled cells, each cell a value and the MLflow run it comes from,
with its interval; what a cell shows as text."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Table:
    """Rows of labelled cells; a cell is (value, MLflow run id)."""

    name: str
    title: str
    row_headers: list[str]
    columns: list[str]
    rows: list[tuple[tuple[str, ...], list[tuple[float | None, str | None]]]] = field(default_factory=list)
    intervals: dict = field(default_factory=dict)  # (labels, column) -> (low, high)
    verdicts: dict = field(default_factory=dict)  # labels -> verdict text (the claims table's last column)
    differences: bool = False  # cells are differences: signed, marked * where the interval excludes zero
    notes: list[str] = field(default_factory=list)  # lines printed above the table (how to read it)
    signed: set = field(default_factory=set)  # columns of differences in a table of values

    def add(self, labels: tuple[str, ...], values: list, run_id: str | None, intervals: list | None = None) -> None:
        self.rows.append((labels, [(v, run_id) for v in values]))
        for col, interval in zip(self.columns, intervals or []):
            if interval is not None:
                self.intervals[(labels, col)] = interval

    def cell(self, labels: tuple[str, ...], col: str, value: float | None) -> str:
        """A cell as text: the value, its interval in brackets, and * for a difference whose interval
        excludes zero."""
        if col == "verdict":
            return self.verdicts.get(labels, "-")
        if value is None:
            return "-"
        signed = self.differences or col in self.signed
        text = f"{value:+.1f}" if signed else f"{value:.1f}"
        if col.endswith(" x"):  # a ratio
            text = f"{value:.2f}"
        interval = self.intervals.get((labels, col))
        if interval is None:
            return text
        low, high = interval
        mark = "*" if signed and (low > 0 or high < 0) else ""
        return f"{text} [{low:.1f}, {high:.1f}]{mark}"
