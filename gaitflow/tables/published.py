"""The figures the papers print, typed in from their tables: ``published.yaml`` beside this module.

``published_table("gaitmpl", "table-iii")`` returns that table's entry: its caption, dataset,
columns and rows (each a printed label and its values by column), and where they apply a
backbone, units, the cells the paper leaves empty (``missing``) and a ``note`` on how a table
garbled by the text extraction was reconstructed. The file's header describes every key.

GaitMPL's tables are ``table-i`` to ``table-ix``, Waveloss's ``table-1`` to ``table-6``; a figure
the paper shows only as a plot (GaitMPL's Fig. 6) is listed under ``not_printed`` with the
reason, and asking for it says so.
"""

from __future__ import annotations

import copy
from functools import cache
from importlib import resources

import yaml

from gaitflow.errors import GaitflowError

FILE = "published.yaml"


@cache
def _load() -> dict:
    return yaml.safe_load(resources.files(__package__).joinpath(FILE).read_text(encoding="utf-8"))


def published_table(paper: str, table: str) -> dict:
    """The entry of ``table`` (as the paper numbers it: ``table-v``, ``table-2``) of ``paper``
    (``gaitmpl`` or ``waveloss``). Raises :class:`GaitflowError` for a paper or table the file
    does not hold, naming the ones it does, or the reason a figure's values are not printed."""
    data = _load()
    papers = sorted(k for k in data if k != "not_printed")
    if paper not in papers:
        raise GaitflowError(f"published figures: unknown paper {paper!r}; expected one of {', '.join(papers)}")
    for item in data.get("not_printed", []):
        if (item["paper"], item["table"]) == (paper, table):
            raise GaitflowError(f"published figures: {paper} {table} has no printed values: {item['reason']}")
    if table not in data[paper]:
        raise GaitflowError(
            f"published figures: {paper} has no table {table!r}; expected one of {', '.join(data[paper])}"
        )
    return copy.deepcopy(data[paper][table])  # the caller's to change: the cache stays as read
