"""File naming of the gait datasets, parsed and written.

Every layout maps a frame's path to a sequence key ``(subject, type, view)``
and back. ``type`` is the dataset's own sequence label (``nm-01`` in CASIA-B,
``00`` in OU-MVLP, ``camid0_videoid2`` in Gait3D); protocols select sequences
by it. Paths may sit below any top folder of an archive: only the trailing
components are read.

- casia-b:  ``<id:03d>/<cond>-<seq:02d>/<view:03d>/<id>-<cond>-<seq>-<view>-<frame:03d>.png``
- ou-mvlp:  ``Silhouette_<view:03d>-<seq:02d>/<id:05d>/<frame:04d>.png`` (the release's layout)
- gait3d:   ``<id:04d>/camid<c>_videoid<v>/seq<n>/<name>.png``
- opengait: ``<id>/<type>/<view>/<name>.png`` (any names; OpenGait's rearranged trees)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import NamedTuple


class SequenceKey(NamedTuple):
    subject: str
    type: str
    view: str


CASIA_B_CONDITIONS = ("nm", "bg", "cl")


def condition_of(seq_type: str) -> str:
    """The walking condition of a sequence type: ``nm-05`` -> ``nm``; other types are their own."""
    head, _, tail = seq_type.partition("-")
    return head if tail and head in CASIA_B_CONDITIONS else seq_type


@dataclass(frozen=True)
class Layout:
    """How one dataset names its frame files."""

    name: str
    pattern: re.Pattern  # matched against the last `depth` path components joined by '/'
    depth: int
    id_digits: int

    def parse(self, path: str) -> SequenceKey | None:
        """The sequence a frame path belongs to, or None when the path does not fit the layout."""
        parts = path.replace("\\", "/").rstrip("/").split("/")
        if len(parts) < self.depth:
            return None
        m = self.pattern.fullmatch("/".join(parts[-self.depth :]))
        if not m:
            return None
        g = m.groupdict()
        return SequenceKey(g["subject"], g["type"], g["view"])

    def frame_path(self, key: SequenceKey, frame: int) -> str:
        """Where frame number ``frame`` (1-based) of a sequence is written."""
        s, t, v = key
        if self.name == "casia-b":
            return f"{s}/{t}/{v}/{s}-{t}-{v}-{frame:03d}.png"
        if self.name == "ou-mvlp":
            return f"Silhouette_{v}-{t}/{s}/{frame:04d}.png"
        return f"{s}/{t}/{v}/{frame:04d}.png"

    def subject(self, index: int, count: int) -> str:
        """The subject name of the index-th identity (1-based) in a dataset of `count`."""
        return f"{index:0{max(self.id_digits, len(str(count)))}d}"

    def sequence_type(self, condition: str, number: int) -> str:
        """The type label of the number-th (1-based) sequence of a condition."""
        if self.name == "ou-mvlp":
            return f"{number - 1:02d}"
        return f"{condition}-{number:02d}"

    def view(self, angle: int) -> str:
        return f"{angle:03d}"


LAYOUTS: dict[str, Layout] = {
    "casia-b": Layout(
        "casia-b",
        re.compile(r"(?P<subject>\d{3,})/(?P<type>(?:nm|bg|cl)-\d{2})/(?P<view>\d{3})/[^/]+\.png", re.I),
        4,
        3,
    ),
    "ou-mvlp": Layout(
        "ou-mvlp",
        re.compile(r"Silhouette_(?P<view>\d{3})-(?P<type>\d{2})/(?P<subject>\d{5,})/[^/]+\.png"),
        3,
        5,
    ),
    "gait3d": Layout(
        "gait3d",
        re.compile(r"(?P<subject>\d{4,})/(?P<type>camid\d+_videoid\d+)/(?P<view>seq\d+)/[^/]+\.png"),
        4,
        4,
    ),
    "opengait": Layout(
        "opengait",
        re.compile(r"(?P<subject>[^/]+)/(?P<type>[^/]+)/(?P<view>[^/]+)/(?![^/]*gei\.png$)[^/]+\.png"),
        4,
        3,
    ),
}

# OpenGait's pretreated tree: <id>/<type>/<view>/<anything>.pkl
PKL_PATTERN = re.compile(r"(?P<subject>[^/]+)/(?P<type>[^/]+)/(?P<view>[^/]+)/[^/]+\.pkl")


def get_layout(name: str) -> Layout:
    try:
        return LAYOUTS[name]
    except KeyError:
        from gaitflow.errors import GaitflowError

        raise GaitflowError(f"layout {name!r} is unknown; expected one of: {', '.join(LAYOUTS)}") from None


def parse_pkl(path: str) -> SequenceKey | None:
    parts = path.replace("\\", "/").split("/")
    if len(parts) < 4:
        return None
    m = PKL_PATTERN.fullmatch("/".join(parts[-4:]))
    return SequenceKey(m["subject"], m["type"], m["view"]) if m else None
