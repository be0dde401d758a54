"""Which identities train and which test: a release's partition file, or its protocol's rule.

A partition file is the JSON the field uses: ``TRAIN_SET`` and ``TEST_SET`` (lists
of identity names) and, where the protocol needs them, ``PROBE_SET`` and
``GALLERY_SET`` (lists of sequences, ``"<id>-<type>-<view>"``, as Gait3D names its
probes ``"0001-camid0_videoid2-seq0"``). Without a file the protocol's rule applies:

- ``first``: the first ``train_fraction`` of the sorted identities train, the rest
  test (CASIA-B: 74 of 124);
- ``odd-even``: odd identity numbers train, even ones test (OU-MVLP's official
  split: 00001, 00003, ... train).

The partition in force is written beside the packed data with a summary of
where it came from; identities a file lists that the data lacks, and identities
the data holds that no set names, are counted, not dropped silently.
"""

from __future__ import annotations

import json
from pathlib import Path

from gaitflow.errors import GaitflowError

RULES = ("first", "odd-even", "file")
# 74 of CASIA-B's 124 subjects train and 50 test: its standard split, and the
# fraction params.yaml gives the CASIA-B protocol. The one default for every
# caller that is given no fraction.
DEFAULT_TRAIN_FRACTION = 0.5968

ID_SETS = ("TRAIN_SET", "TEST_SET")
SEQUENCE_SETS = ("PROBE_SET", "GALLERY_SET")
EXAMPLES = 5


def sequence_name(subject: str, seq_type: str, view: str) -> str:
    """How a partition file names a sequence: ``<id>-<type>-<view>``."""
    return f"{subject}-{seq_type}-{view}"


def by_rule(subjects, rule: str, train_fraction: float | None = None) -> dict[str, list[str]]:
    """TRAIN_SET and TEST_SET of the identities present, by a protocol's rule."""
    ordered = sorted(set(subjects))
    if rule == "odd-even":
        odd = [s for s in ordered if _number(s) % 2 == 1]
        return {"TRAIN_SET": odd, "TEST_SET": [s for s in ordered if s not in set(odd)]}
    if rule != "first":
        raise GaitflowError(f"split {rule!r}: expected one of {', '.join(RULES)}")
    n_train = int(round(train_fraction * len(ordered)))
    n_train = min(max(n_train, 1), len(ordered) - 1) if len(ordered) > 1 else len(ordered)
    return {"TRAIN_SET": ordered[:n_train], "TEST_SET": ordered[n_train:]}


def _number(subject: str) -> int:
    try:
        return int(subject)
    except ValueError:
        raise GaitflowError(
            f"identity {subject!r}: the odd-even split needs numeric identity names; give a partition file"
        ) from None


def load(path: Path) -> dict[str, list[str]]:
    """A partition file, checked: one clear line naming the file and what is wrong."""
    path = Path(path)
    try:
        given = json.loads(path.read_text())
    except FileNotFoundError:
        raise GaitflowError(f"{path}: partition file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise GaitflowError(f"{path}: cannot read the partition file ({exc})") from None
    except json.JSONDecodeError as exc:
        raise GaitflowError(
            f"{path}: not valid JSON (line {exc.lineno}: {exc.msg}); expected a partition file"
        ) from None
    except RecursionError:
        raise GaitflowError(f"{path}: nested too deeply; expected a partition file (an object of lists)") from None
    if not isinstance(given, dict):
        raise GaitflowError(f"{path}: expected a JSON object with TRAIN_SET and TEST_SET lists")
    missing = [k for k in ID_SETS if k not in given]
    if missing:
        raise GaitflowError(f"{path}: no {' or '.join(missing)}; expected a partition file with TRAIN_SET and TEST_SET")
    for key in (*ID_SETS, *SEQUENCE_SETS):
        names = given.get(key, [])
        if not (isinstance(names, list) and all(isinstance(x, (str, int)) and not isinstance(x, bool) for x in names)):
            raise GaitflowError(f"{path}: {key} is not a list of names")
    return {k: [str(x) for x in given[k]] for k in (*ID_SETS, *SEQUENCE_SETS) if k in given}


def restrict(given: dict, subjects, sequences, source: str) -> tuple[dict[str, list[str]], dict]:
    """The file's partition limited to what the data holds, and a count of what did not match.

    ``subjects`` are the identities present, ``sequences`` the present sequences'
    names (:func:`sequence_name`)."""
    present, present_seqs = set(subjects), set(sequences)
    listed = set(given["TRAIN_SET"]) | set(given["TEST_SET"])
    if not listed & present:
        example = ", ".join(sorted(present)[:3])
        raise GaitflowError(f"{source}: names no identity present in the data (the data has {example}, ...)")
    part = {k: sorted(set(given[k]) & present) for k in ID_SETS}
    stats = {
        "listed_absent": _count(listed - present),
        "unassigned": _count(present - listed),
    }
    for key in SEQUENCE_SETS:
        if key in given:
            part[key] = sorted(set(given[key]) & present_seqs)
            stats[f"{key.lower()}_absent"] = _count(set(given[key]) - present_seqs)
    return part, stats


def _count(names: set) -> dict:
    return {"count": len(names), "first": sorted(names)[:EXAMPLES]}


def summary(part: dict, source: str, stats: dict | None = None) -> dict:
    """What a table or a run records about the partition in force."""
    out = {"source": source, **{k.lower(): len(v) for k, v in part.items()}}
    if stats:
        out.update({k: v["count"] for k, v in stats.items()})
    return out


def in_force(packed_dir: Path) -> dict:
    """The summary of the partition a packed dataset was made with (from its report), for runs and tables."""
    from gaitflow.data import packed

    try:
        report = json.loads((Path(packed_dir) / packed.REPORT_FILE).read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    return {k: v for k, v in report.get("partition", {}).items() if k != "unmatched"}
