"""File naming of the gait datasets, parsed and written.

Every layout maps a frame's path to a sequence key ``(subject, type, view)``
and back. ``type`` is the dataset's own sequence label (``nm-01`` in CASIA-B,
``00`` in OU-MVLP, ``camid0_videoid2`` in Gait3D, ``U1_D0`` in CCPG); protocols
select sequences by it. Paths may sit below any top folder of an archive: only
the trailing components are read. A layout accepts one or more shapes of path
(:class:`PathForm`): GREW's probes lie one folder higher than its gallery.

- casia-b:  ``<id:03d>/<cond>-<seq:02d>/<view:03d>/<id>-<cond>-<seq>-<view>-<frame:03d>.png``
- ou-mvlp:  ``Silhouette_<view:03d>-<seq:02d>/<id:05d>/<frame:04d>.png`` (the release's layout)
- gait3d:   ``<id:04d>/camid<c>_videoid<v>/seq<n>/<name>.png``
- opengait: ``<id>/<type>/<view>/<name>.png`` (any names; OpenGait's rearranged trees)
- grew:     the release as unpacked from ``train.zip``, ``test.zip`` and ``distractor.zip``;
  ``<seq>`` is the release's sequence name (``4XPn5Z28``), and each frame is
  ``<frame:05d>.png``::

      train/<id:05d>/<seq>/00001.png         -> (<id>train,  train,      <seq>)
      test/gallery/<id:05d>/<seq>/00001.png  -> (<id>,       gallery,    <seq>)
      test/probe/<seq>/00001.png             -> (probe,      probe,      <seq>)
      distractor/<seq>/00001.png             -> (distractor, distractor, <seq>)

  The training and the test identities are different people, both numbered
  from 00001, so a training identity is named ``<id>train`` (as OpenGait's
  ``GREW.json`` partition names it; that file applies as it is). Probe and
  distractor sequences carry no identity: their subject is a placeholder,
  ``probe`` or ``distractor`` (:data:`UNLABELLED_SUBJECTS`), never a person;
  the sequence name alone tells one such sequence from another, and
  :func:`is_labelled` tells their keys from labelled ones. The folder ``distractors`` is
  read like ``distractor``. Beside the frames the release holds pose text
  files (``00001_2d_pose.txt``), a GEI per sequence (``<seq>_gei.png``) and an
  optical-flow tree (``00001_00002_flow.png``): none of them is a frame.
- ccpg:     the silhouette archive of the release, ``CCPG_G_SIL`` (its RGB
  frames, faces and shoes masked, are ``CCPG_D_MASK_FACE_SHOE``)::

      <id:03d>/<status>/<camera:02d>_<n>/<name>.png -> (<id>, <status>, <camera>_<n>)

  ``<status>`` is the clothing status, ``U<upper>_D<lower>`` with ``_BG`` when
  a bag is carried: ``U0_D0_BG``, ``U0_D0``, ``U1_D0``, ``U1_D1``, ``U2_D2``,
  ``U3_D3``, ``U0_D3``. The view is the sequence folder; its camera is the
  part before ``_``.

SUSTech1K is released as pickles only (``SUSTech1K-Released-pkl``), sixteen per
sequence folder, one per modality and rate::

    <id:04d>/<nn>-<covariate>/<view:03d>/<k:02d>-<view>-<modality>.pkl        (k = 00..07)
    <id:04d>/<nn>-<covariate>/<view:03d>/<k:02d>-sync-<view>-<modality>.pkl   (k = 08..15)

:data:`SUSTECH1K_MODALITIES` names them in file order and
:func:`parse_sustech1k_pkl` keys the one file of a chosen modality (by default
:data:`SUSTECH1K_DEFAULT_MODALITY`, the aligned camera silhouettes
``06-<view>-Camera-Sils_aligned.pkl``), so that a sequence is one pickle.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import NamedTuple

from gaitflow.errors import GaitflowError


class SequenceKey(NamedTuple):
    subject: str
    type: str
    view: str


CASIA_B_CONDITIONS = ("nm", "bg", "cl")

# Subjects that name no person: GREW's probe and distractor sequences carry no identity.
GREW_PROBE = "probe"
GREW_DISTRACTOR = "distractor"
UNLABELLED_SUBJECTS = frozenset({GREW_PROBE, GREW_DISTRACTOR})


def is_labelled(key: SequenceKey) -> bool:
    """Whether a sequence's subject is a person, not the placeholder of an unlabelled sequence."""
    return key.subject not in UNLABELLED_SUBJECTS


def condition_of(seq_type: str) -> str:
    """The walking condition of a sequence type: ``nm-05`` -> ``nm``; other types are their own."""
    head, _, tail = seq_type.partition("-")
    return head if tail and head in CASIA_B_CONDITIONS else seq_type


def _parts(path: str) -> list[str]:
    return path.replace("\\", "/").rstrip("/").split("/")


@dataclass(frozen=True)
class PathForm:
    """One shape of frame path: a pattern over the path's last ``depth`` components.

    ``key`` makes the sequence key from the match's named groups (``str.format``
    fields), so that a form can fix a value its paths do not spell (GREW's probes
    have no subject folder) or add to one."""

    pattern: re.Pattern  # matched against the last `depth` path components joined by '/'
    depth: int
    key: tuple[str, str, str] = ("{subject}", "{type}", "{view}")

    def parse(self, parts: list[str]) -> SequenceKey | None:
        if len(parts) < self.depth:
            return None
        m = self.pattern.fullmatch("/".join(parts[-self.depth :]))
        if not m:
            return None
        g = m.groupdict()
        return SequenceKey(*(field.format(**g) for field in self.key))


@dataclass(frozen=True)
class Layout:
    """How one dataset names its frame files."""

    name: str
    forms: tuple[PathForm, ...]  # tried in order; the first that fits names the sequence
    id_digits: int

    @property
    def depth(self) -> int:
        """The most trailing path components any form reads."""
        return max(f.depth for f in self.forms)

    @property
    def pattern(self) -> re.Pattern:
        """The first form's pattern (a single-form layout's only one)."""
        return self.forms[0].pattern

    def parse(self, path: str) -> SequenceKey | None:
        """The sequence a frame path belongs to, or None when the path does not fit the layout."""
        parts = _parts(path)
        for form in self.forms:
            key = form.parse(parts)
            if key is not None:
                return key
        return None

    def frame_path(self, key: SequenceKey, frame: int) -> str:
        """Where frame number ``frame`` (1-based) of a sequence is written."""
        s, t, v = key
        if self.name == "casia-b":
            return f"{s}/{t}/{v}/{s}-{t}-{v}-{frame:03d}.png"
        if self.name == "ou-mvlp":
            return f"Silhouette_{v}-{t}/{s}/{frame:04d}.png"
        if self.name == "grew":
            return _grew_frame_path(key, frame)
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


def _grew_frame_path(key: SequenceKey, frame: int) -> str:
    s, t, v = key
    name = f"{v}/{frame:05d}.png"
    if t == "train" and s.endswith("train"):
        return f"train/{s[: -len('train')]}/{name}"
    if t == "gallery":
        return f"test/gallery/{s}/{name}"
    if t == GREW_PROBE and s == GREW_PROBE:
        return f"test/probe/{name}"
    if t == GREW_DISTRACTOR and s == GREW_DISTRACTOR:
        return f"distractor/{name}"
    raise GaitflowError(
        f"sequence {'-'.join(key)}: not a GREW sequence key; expected a train, gallery, probe or distractor key"
    )


def _form(pattern: str, depth: int, key: tuple[str, str, str] | None = None, flags: int = 0) -> PathForm:
    compiled = re.compile(pattern, flags)
    return PathForm(compiled, depth) if key is None else PathForm(compiled, depth, key)


_GREW_SEQ = r"(?P<seq>[0-9A-Za-z]+)"
_GREW_FRAME = r"\d+\.png"  # 00001.png; 00001_00002_flow.png and <seq>_gei.png are not frames

LAYOUTS: dict[str, Layout] = {
    "casia-b": Layout(
        "casia-b",
        (_form(r"(?P<subject>\d{3,})/(?P<type>(?:nm|bg|cl)-\d{2})/(?P<view>\d{3})/[^/]+\.png", 4, flags=re.I),),
        3,
    ),
    "ou-mvlp": Layout(
        "ou-mvlp",
        (_form(r"Silhouette_(?P<view>\d{3})-(?P<type>\d{2})/(?P<subject>\d{5,})/[^/]+\.png", 3),),
        5,
    ),
    "gait3d": Layout(
        "gait3d",
        (_form(r"(?P<subject>\d{4,})/(?P<type>camid\d+_videoid\d+)/(?P<view>seq\d+)/[^/]+\.png", 4),),
        4,
    ),
    "opengait": Layout(
        "opengait",
        (_form(r"(?P<subject>[^/]+)/(?P<type>[^/]+)/(?P<view>[^/]+)/(?![^/]*gei\.png$)[^/]+\.png", 4),),
        3,
    ),
    "grew": Layout(
        "grew",
        (
            _form(rf"train/(?P<id>\d{{5,}})/{_GREW_SEQ}/{_GREW_FRAME}", 4, ("{id}train", "train", "{seq}")),
            _form(rf"test/gallery/(?P<id>\d{{5,}})/{_GREW_SEQ}/{_GREW_FRAME}", 5, ("{id}", "gallery", "{seq}")),
            _form(rf"test/probe/{_GREW_SEQ}/{_GREW_FRAME}", 4, (GREW_PROBE, GREW_PROBE, "{seq}")),
            _form(rf"distractors?/{_GREW_SEQ}/{_GREW_FRAME}", 3, (GREW_DISTRACTOR, GREW_DISTRACTOR, "{seq}")),
        ),
        5,
    ),
    "ccpg": Layout(
        "ccpg",
        (_form(r"(?P<subject>\d{3,})/(?P<type>U\d+_D\d+(?:_BG)?)/(?P<view>\d+_\d+)/[^/]+\.png", 4),),
        3,
    ),
}

# OpenGait's pretreated tree: <id>/<type>/<view>/<anything>.pkl
PKL_PATTERN = re.compile(r"(?P<subject>[^/]+)/(?P<type>[^/]+)/(?P<view>[^/]+)/[^/]+\.pkl")


def get_layout(name: str) -> Layout:
    try:
        return LAYOUTS[name]
    except KeyError:
        raise GaitflowError(f"layout {name!r} is unknown; expected one of: {', '.join(LAYOUTS)}") from None


def parse_pkl(path: str) -> SequenceKey | None:
    parts = path.replace("\\", "/").split("/")
    if len(parts) < 4:
        return None
    m = PKL_PATTERN.fullmatch("/".join(parts[-4:]))
    return SequenceKey(m["subject"], m["type"], m["view"]) if m else None


# ------------------------------------------------------------------ SUSTech1K
# The modalities of a SUSTech1K sequence folder, in file order: file k holds
# SUSTECH1K_MODALITIES[k]. The first eight are at their sensor's own rate (LiDAR
# 10 Hz, camera 30 Hz); the "sync-" eight are the frames of both sensors that
# match in time.
SUSTECH1K_MODALITIES = (
    "LiDAR-PCDs",  # point clouds
    "LiDAR-PCDs_depths",  # depth images projected from the point clouds
    "LiDAR-PCDs_sils",  # silhouettes projected from the point clouds
    "Camera-Pose",  # 2D skeletons (ViTPose)
    "Camera-Ratios-HW",  # (height, width) of the camera crops
    "Camera-RGB_raw",  # camera crops, 64x64 RGB
    "Camera-Sils_aligned",  # camera silhouettes, aligned
    "Camera-Sils_raw",  # camera silhouettes, not aligned
    "sync-LiDAR-PCDs",
    "sync-LiDAR-PCDs_depths",
    "sync-LiDAR-PCDs_sils",
    "sync-Camera-Pose",
    "sync-Camera-Ratios-HW",
    "sync-Camera-RGB_raw",
    "sync-Camera-Sils_aligned",
    "sync-Camera-Sils_raw",
)
SUSTECH1K_DEFAULT_MODALITY = "Camera-Sils_aligned"
_SYNC = "sync-"
_SUSTECH1K_FOLDER = re.compile(r"(?P<subject>\d{4,})/(?P<type>\d{2}-[^/]+)/(?P<view>\d{3})")


def _modality_index(modality: str) -> int:
    try:
        return SUSTECH1K_MODALITIES.index(modality)
    except ValueError:
        raise GaitflowError(
            f"SUSTech1K modality {modality!r} is unknown; expected one of: {', '.join(SUSTECH1K_MODALITIES)}"
        ) from None


def sustech1k_file_name(view: str, modality: str = SUSTECH1K_DEFAULT_MODALITY) -> str:
    """The file of one modality in a SUSTech1K sequence folder: ``06-000-Camera-Sils_aligned.pkl``."""
    index = _modality_index(modality)
    if modality.startswith(_SYNC):
        return f"{index:02d}-{_SYNC}{view}-{modality[len(_SYNC) :]}.pkl"
    return f"{index:02d}-{view}-{modality}.pkl"


def parse_sustech1k_pkl(path: str, modality: str = SUSTECH1K_DEFAULT_MODALITY) -> SequenceKey | None:
    """The sequence of a SUSTech1K pickle when it is the file of ``modality``, else None.

    ``<id>/<nn>-<covariate>/<view>/<k>-[sync-]<view>-<modality>.pkl`` below any top
    folder -> ``(<id>, <nn>-<covariate>, <view>)``; the other fifteen files of the
    folder give None, so each sequence is one pickle. An unknown modality raises
    :class:`GaitflowError` rather than matching nothing."""
    _modality_index(modality)
    parts = _parts(path)
    if len(parts) < 4:
        return None
    m = _SUSTECH1K_FOLDER.fullmatch("/".join(parts[-4:-1]))
    if not m or parts[-1] != sustech1k_file_name(m["view"], modality):
        return None
    return SequenceKey(m["subject"], m["type"], m["view"])
