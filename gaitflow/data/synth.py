"""
No public gait dataset can be downloaded everywhere, so gaitflow draws its own,
in the real file layouts of CASIA-B, OU-MVLP, Gait3D, GREW, SUSTech1K and CCPG
(each a release's *twin*), so that every later step runs unchanged on real data.

Each sequence is drawn by :mod:`gaitflow.data.walker`, from a generator seeded by
(seed, subject) for the body and (seed, subject, condition, sequence, view) for a
sequence, so the output is byte-identical for the same seed and params whatever
the number of workers.

The twins of the other releases, each in its release's tree and file names and
with its partition file written at the dataset's ``partition`` path:

- GREW (layout ``grew``): the first three quarters of the identities (GREW:
  20,000 of 26,000) are training identities, ``train/<id:05d>/<seq>/<frame:05d>.png``,
  numbered from 00001; the others are test identities, numbered from 00001 again.
  Of a test identity's sequences (in the order condition, number, view) the
  first half is its gallery, ``test/gallery/<id:05d>/<seq>/...``, the second half
  (rounded down: none when it has only one) are probes, ``test/probe/<seq>/...``,
  with no identity in the path. ``<seq>`` is an eight-character alphanumeric
  name, drawn from the seed and unique in the dataset, like the release's
  ``4XPn5Z28``. GREW's scenes have no condition labels: every condition of the
  spec is rendered and its label dropped. The partition file is OpenGait's
  ``GREW.json``: TRAIN_SET the ``<id>train`` names, TEST_SET the test ids and
  ``probe``. Beside it, ``<partition stem>.probe_ids.json`` maps each probe
  sequence name to its true test id. That file exists for the twin only (GREW
  keeps its probes' identities on its evaluation server), so that a submission
  in the official format can be scored on the twin.
- SUSTech1K (layout ``sustech1k``), released as pickles only:
  ``SUSTech1K-Released-pkl/<id:04d>/<nn>-<covariate>/<view:03d>/`` holds the
  sixteen files that ``sustech1k_file_name`` names, ids from 0000. ``<nn>`` numbers
  an identity's sequences from 00 in covariate order (``00-nm`` first, SUSTech1K's
  gallery), so one sequence of each covariate is ``00-nm 01-bg 02-cl 03-cr 04-ub
  05-uf 06-oc 07-nt``. The spec's ``conditions`` may name any of the eight
  covariates (:data:`SUSTECH1K_COVARIATES`); each is rendered as the closest
  condition the walker has (:data:`SUSTECH1K_RENDER`): nm, oc (occlusion) and nt
  (night) as nm, bg, cr (carrying) and ub (umbrella, a held object) as bg, cl and
  uf (uniform, a change of clothes) as cl. ``Camera-Sils_aligned`` holds the
  sequence's silhouettes as the release ships them: the standard pretreatment's
  64 x 64 uint8 frames ``[n, 64, 64]`` (frames it drops are left out).
  ``Camera-Sils_raw`` holds the walker's crop resized to 64 x 64 without
  alignment, as the release's pretreatment made it; the others hold small arrays
  of the walker itself: ``LiDAR-PCDs`` float32 points ``[n, 19, 3]`` (the joints
  in camera coordinates, metres), ``LiDAR-PCDs_depths`` float32 depth images
  ``[n, 32, 32]``, ``LiDAR-PCDs_sils`` uint8 scan-line silhouettes ``[n, 64, 64]``,
  ``Camera-Pose`` float32 COCO keypoints ``[n, 17, 2]`` in pixels,
  ``Camera-Ratios-HW`` int64 crop (height, width) ``[n, 2]`` and ``Camera-RGB_raw``
  a uint8 thumbnail ``[n, 32, 32, 3]``. LiDAR files hold every third camera frame
  (10 of 30 Hz); the ``sync-`` camera files hold the camera frames taken with a
  LiDAR frame. Every file is ``pickle.dumps`` of one plain numpy array. The
  partition file holds TRAIN_SET, the first quarter of the ids (SUSTech1K: 250
  of 1,050; the release's are spread over its ids), and TEST_SET, the rest.
- CCPG (layout ``ccpg``): ``CCPG_G_SIL/<id:03d>/<status>/<camera:02d>_<n>/<frame:05d>.png``,
  ids from 000. The i-th view of the spec is camera i + 1 and ``<n>`` numbers a
  status's sequences on a camera from 0. Conditions map onto clothing statuses
  (:func:`ccpg_status`): nm is ``U0_D0``, bg ``U0_D0_BG``; the k-th cl sequence
  is the k-th of the five clothes changes ``U1_D0 U1_D1 U2_D2 U3_D3 U0_D3``
  (round robin), rendered as cl; a status may also be named as a condition
  (``{U1_D1: 1}``). The partition file: the first half of the ids train
  (CCPG: 100 of 200), the rest test.
"""

from __future__ import annotations

import pickle
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from gaitflow.config import workers as resolve_workers
from gaitflow.data.archive import ArchiveWriter
from gaitflow.data.layouts import (
    GREW_PROBE,
    SUSTECH1K_MODALITIES,
    SequenceKey,
    get_layout,
    sustech1k_file_name,
)
from gaitflow.data.packed import write_json
from gaitflow.data.partition import DEFAULT_TRAIN_FRACTION, by_rule, sequence_name
from gaitflow.data.pretreat import pretreat
from gaitflow.data.walker import (
    CONDITION_CODES,
    Body,
    add_noise,
    place_camera,
    pose,
    render,
    sample_body,
    sample_shot,
    seeded,
)
from gaitflow.errors import GaitflowError
from gaitflow.parallel import worker_pool

# ---------------------------------------------------------------- the dataset

SUSTECH1K = "sustech1k"  # a pickle release: no frame layout, its files are named by gaitflow.data.layouts
SUSTECH1K_TOP = "SUSTech1K-Released-pkl"
# SUSTech1K's covariates in the order an identity's sequences are numbered (00-nm first),
# and the condition the walker renders each as: the closest one it has.
SUSTECH1K_COVARIATES = ("nm", "bg", "cl", "cr", "ub", "uf", "oc", "nt")
SUSTECH1K_RENDER = {
    "nm": "nm",  # normal
    "bg": "bg",  # bag
    "cl": "cl",  # clothing change
    "cr": "bg",  # carrying an object: a carried bag
    "ub": "bg",  # umbrella: an object held by the walker
    "uf": "cl",  # uniform: a change of clothes
    "oc": "nm",  # occlusion: the walker is unchanged
    "nt": "nm",  # night: the walker is unchanged
}
SUSTECH1K_LIDAR_STEP = 3  # LiDAR at 10 Hz, camera at 30 Hz: one LiDAR frame per three camera frames
SUSTECH1K_ALIGNED = 64  # the release's aligned silhouettes are 64 x 64
SUSTECH1K_THUMB = 32  # side of the RGB thumbnails and depth images

CCPG_TOP = "CCPG_G_SIL"
CCPG_NORMAL = "U0_D0"
CCPG_BAG = "U0_D0_BG"
CCPG_CLOTHES = ("U1_D0", "U1_D1", "U2_D2", "U3_D3", "U0_D3")  # the clothes changes, in cl's round robin
CCPG_STATUSES = (CCPG_BAG, CCPG_NORMAL, *CCPG_CLOTHES)

GREW_TRAIN_SHARE = 0.75  # GREW: 20,000 training identities of 26,000
GREW_NAME_CHARS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
GREW_NAME_LENGTH = 8
SUSTECH1K_TRAIN_SHARE = 0.25  # SUSTech1K: 250 training identities of 1,050
CCPG_TRAIN_SHARE = 0.5  # CCPG: 100 of 200


@dataclass(frozen=True)
class SeqJob:
    seed: int
    layout: str
    subject: int
    n_subjects: int
    condition: str
    number: int
    view: int
    frames: int
    width: int
    height: int
    noise: float
    camera: int = 0  # the view's position in the dataset's list (Gait3D names cameras, not angles)
    release_key: SequenceKey | None = None  # the key in the release's own naming, where jobs_for decides it

    @property
    def key(self) -> SequenceKey:
        if self.release_key is not None:  # GREW, SUSTech1K, CCPG: named by jobs_for
            return self.release_key
        if self.layout == "gait3d":  # <id>/camid<c>_videoid<v>/seq<n>: cameras and videos, no angles
            video = 100 * CONDITION_CODES[self.condition] + self.number  # unique across conditions
            return SequenceKey(f"{self.subject:04d}", f"camid{self.camera}_videoid{video}", "seq0")
        lay = get_layout(self.layout)
        return SequenceKey(
            lay.subject(self.subject, self.n_subjects),
            lay.sequence_type(self.condition, self.number),
            lay.view(self.view),
        )


def body_of(seed: int, subject: int) -> Body:
    return sample_body(seeded(seed, 1, subject))


def frame_path(lay, key: SequenceKey, frame: int) -> str:
    """Where the release puts a frame: the layout's path, or Gait3D's and CCPG's own trees and frame names."""
    if lay.name == "gait3d":
        return f"2D_Silhouettes/{key.subject}/{key.type}/{key.view}/human_crop_f{frame:05d}.png"
    if lay.name == "ccpg":
        return f"{CCPG_TOP}/{key.subject}/{key.type}/{key.view}/{frame:05d}.png"
    return lay.frame_path(key, frame)


def sustech1k_path(key: SequenceKey, modality: str) -> str:
    """Where SUSTech1K puts one modality's pickle of a sequence."""
    return f"{SUSTECH1K_TOP}/{key.subject}/{key.type}/{key.view}/{sustech1k_file_name(key.view, modality)}"


def _train_count(n: int, share: float) -> int:
    """How many of n identities train: `share` of them, at least one, and at least one left to test."""
    return min(max(int(round(share * n)), 1), n - 1)


def twin_partition(jobs: list[SeqJob], layout: str, train_share: float = 0.75) -> dict[str, list[str]]:
    """The partition file a release ships, for its synthetic twin: the first identities train (Gait3D:
    3,000 of 4,000), the rest test; for Gait3D one probe sequence per test identity (its first).
    GREW, SUSTech1K and CCPG have their own (see the module docstring)."""
    if layout in RELEASE_PARTITIONS:
        return RELEASE_PARTITIONS[layout](jobs)
    subjects = sorted({j.key.subject for j in jobs})
    n_train = min(max(int(round(train_share * len(subjects))), 1), len(subjects) - 1)
    part = {"TRAIN_SET": subjects[:n_train], "TEST_SET": subjects[n_train:]}
    if layout == "gait3d":
        first: dict[str, SequenceKey] = {}
        for key in sorted(j.key for j in jobs):
            first.setdefault(key.subject, key)
        part["PROBE_SET"] = [sequence_name(*first[s]) for s in part["TEST_SET"]]
    return part


def _grew_partition(jobs: list[SeqJob]) -> dict[str, list[str]]:
    """OpenGait's GREW.json: the training names ``<id>train``; the test ids, and ``probe`` for the probes."""
    keys = [j.key for j in jobs]
    test = sorted({k.subject for k in keys if k.type == "gallery"})
    if any(k.subject == GREW_PROBE for k in keys):
        test.append(GREW_PROBE)
    return {"TRAIN_SET": sorted({k.subject for k in keys if k.type == "train"}), "TEST_SET": test}


def _first_share_partition(share: float):
    def partition(jobs: list[SeqJob]) -> dict[str, list[str]]:
        subjects = sorted({j.key.subject for j in jobs})
        n_train = _train_count(len(subjects), share)
        return {"TRAIN_SET": subjects[:n_train], "TEST_SET": subjects[n_train:]}

    return partition


def _rule_partition(rule: str):
    """CASIA-B and OU-MVLP ship no partition file; the field's (OpenGait's CASIA-B.json, OUMVLP.json)
    follow the protocols' rules: the first 74 of 124 ids, or odd ids, train."""

    def partition(jobs: list[SeqJob]) -> dict[str, list[str]]:
        return by_rule([j.key.subject for j in jobs], rule, DEFAULT_TRAIN_FRACTION)

    return partition


RELEASE_PARTITIONS = {
    "casia-b": _rule_partition("first"),
    "ou-mvlp": _rule_partition("odd-even"),
    "grew": _grew_partition,
    SUSTECH1K: _first_share_partition(SUSTECH1K_TRAIN_SHARE),
    "ccpg": _first_share_partition(CCPG_TRAIN_SHARE),
}


def grew_probe_ids(jobs: list[SeqJob]) -> dict[str, str]:
    """The true test id of each probe sequence of a GREW twin, by sequence name (the twin's answer key)."""
    truth = {}
    for job in jobs:
        if job.key.type == GREW_PROBE:
            n_train = _train_count(job.n_subjects, GREW_TRAIN_SHARE)
            truth[job.key.view] = _grew_id(job.subject - n_train, job.n_subjects)
    return dict(sorted(truth.items()))


def probe_ids_path(partition: Path) -> Path:
    """Where a GREW twin's answer key lies: ``<partition stem>.probe_ids.json`` beside the partition file."""
    partition = Path(partition)
    return partition.with_name(f"{partition.stem}.probe_ids.json")


def render_job(job: SeqJob) -> list[tuple[str, bytes]]:
    """PNG files (path, bytes) of one sequence; for SUSTech1K its sixteen pickles."""
    if job.layout == SUSTECH1K:
        return render_sustech1k(job)
    body = body_of(job.seed, job.subject)
    rng = seeded(job.seed, 2, job.subject, CONDITION_CODES[job.condition], job.number, job.view)
    shot = sample_shot(rng, body, job.condition, job.frames, job.view)
    lay = get_layout(job.layout)
    key = job.key
    out = []
    for i, img in enumerate(render(body, shot, job.width, job.height), start=1):
        img = add_noise(img, rng, job.noise)
        ok, png = cv2.imencode(".png", img)
        out.append((frame_path(lay, key, i), png.tobytes()))
    return out


# ------------------------------------------------------------------ SUSTech1K's other modalities

# The points of the LiDAR cloud: the walker's joints.
_CLOUD_JOINTS = (
    "head",
    "neck",
    "pelvis",
    *(f"{j}_{s}" for j in ("shoulder", "elbow", "wrist", "hand", "hip", "knee", "ankle", "heel") for s in "lr"),
)
# COCO's 17 keypoints (as ViTPose gives them): (joint, forward, up, right) offsets in head radii for the face.
_COCO_FACE = (
    ("head", 1.0, 0.0, 0.0),  # nose
    ("head", 0.8, 0.25, -0.35),  # left eye
    ("head", 0.8, 0.25, 0.35),  # right eye
    ("head", 0.0, 0.1, -1.0),  # left ear
    ("head", 0.0, 0.1, 1.0),  # right ear
)
_COCO_BODY = tuple(f"{j}_{s}" for j in ("shoulder", "elbow", "wrist", "hip", "knee", "ankle") for s in "lr")


def _keypoints(body: Body, joints: dict[str, np.ndarray]) -> np.ndarray:
    """COCO's 17 keypoints [T, 17, 3] in the walker's frame."""
    r = body.head_radius
    face = [joints[j] + r * np.array([f, u, s]) for j, f, u, s in _COCO_FACE]
    return np.stack(face + [joints[j] for j in _COCO_BODY], axis=1)


def _crop_box(img: np.ndarray) -> tuple[int, int, int, int]:
    """The person detector's box (y0, y1, x0, x1) around a silhouette, a tenth of its height wider each way."""
    ys, xs = np.nonzero(img)
    h, w = img.shape
    if len(ys) == 0:
        return 0, h, 0, w
    pad = max(1, int(0.1 * (ys.max() - ys.min() + 1)))
    return max(0, ys.min() - pad), min(h, ys.max() + 1 + pad), max(0, xs.min() - pad), min(w, xs.max() + 1 + pad)


def _pkl(arr: np.ndarray) -> bytes:
    return pickle.dumps(np.ascontiguousarray(arr), protocol=4)


def _stack(frames: list[np.ndarray], shape: tuple[int, ...], dtype) -> np.ndarray:
    return np.stack(frames).astype(dtype) if frames else np.zeros((0, *shape), dtype)


def render_sustech1k(job: SeqJob) -> list[tuple[str, bytes]]:
    """The sixteen pickles (path, bytes) of one SUSTech1K sequence folder, in file order."""
    body = body_of(job.seed, job.subject)
    code = CONDITION_CODES[job.condition]
    rng = seeded(job.seed, 2, job.subject, code, job.number, job.view)
    shot = sample_shot(rng, body, job.condition, job.frames, job.view)
    clean = render(body, shot, job.width, job.height)
    noisy = [add_noise(img.copy(), rng, job.noise) for img in clean]  # the camera's segmentation
    joints = pose(body, shot)
    cam = place_camera(body, shot, joints, job.width, job.height)
    keypoints = cam.project(_keypoints(body, joints))[0].astype(np.float32)  # [T, 17, 2]
    cloud = cam.to_camera(np.stack([joints[j] for j in _CLOUD_JOINTS], axis=1)).astype(np.float32)  # [T, 19, 3]
    colours = seeded(job.seed, 4, job.subject, code, job.number).integers(0, 256, (2, 3)).astype(np.uint8)

    thumb, side = (SUSTECH1K_THUMB, SUSTECH1K_THUMB), (SUSTECH1K_ALIGNED, SUSTECH1K_ALIGNED)
    boxes, raw, rgb, depth, scan, aligned = [], [], [], [], [], []
    for t, (img, seg) in enumerate(zip(clean, noisy)):
        y0, y1, x0, x1 = _crop_box(img)
        boxes.append((y1 - y0, x1 - x0))
        raw.append(cv2.resize(seg[y0:y1, x0:x1], side, interpolation=cv2.INTER_CUBIC))
        person = cv2.resize(img[y0:y1, x0:x1], thumb, interpolation=cv2.INTER_AREA)
        alpha = (person.astype(np.float32) / 255.0)[..., None]
        rgb.append(np.round(alpha * colours[0] + (1 - alpha) * colours[1]).astype(np.uint8))
        depth.append((person > 127) * cloud[t, 2, 2])  # the pelvis's distance on the body, 0 elsewhere
        lines = cv2.resize(img[y0:y1, x0:x1], side, interpolation=cv2.INTER_NEAREST)
        lines[np.arange(SUSTECH1K_ALIGNED) % 4 != 0] = 0  # the LiDAR's scan lines
        scan.append(lines)
        frame, _ = pretreat(seg, SUSTECH1K_ALIGNED, 0)
        aligned.append(frame)

    def camera(idx) -> dict[str, np.ndarray]:
        kept = [aligned[t] for t in idx if aligned[t] is not None]
        return {
            "Camera-Pose": _stack([keypoints[t] for t in idx], (17, 2), np.float32),
            "Camera-Ratios-HW": _stack([np.array(boxes[t]) for t in idx], (2,), np.int64),
            "Camera-RGB_raw": _stack([rgb[t] for t in idx], (*thumb, 3), np.uint8),
            "Camera-Sils_aligned": _stack(kept, side, np.uint8),
            "Camera-Sils_raw": _stack([raw[t] for t in idx], side, np.uint8),
        }

    lidar_idx = range(0, len(clean), SUSTECH1K_LIDAR_STEP)
    lidar = {
        "LiDAR-PCDs": _stack([cloud[t] for t in lidar_idx], (len(_CLOUD_JOINTS), 3), np.float32),
        "LiDAR-PCDs_depths": _stack([depth[t] for t in lidar_idx], thumb, np.float32),
        "LiDAR-PCDs_sils": _stack([scan[t] for t in lidar_idx], side, np.uint8),
    }
    arrays = {**lidar, **camera(range(len(clean)))}
    arrays.update({f"sync-{m}": a for m, a in lidar.items()})  # every LiDAR frame has its camera frame
    arrays.update({f"sync-{m}": a for m, a in camera(lidar_idx).items()})
    return [(sustech1k_path(job.key, m), _pkl(arrays[m])) for m in SUSTECH1K_MODALITIES]


# ------------------------------------------------------------------ jobs


def _jobs_casia_like(spec: dict, seed: int) -> list[SeqJob]:
    syn = spec["synth"]
    return [
        _release_job(spec, seed, s, cond, k, view, None)
        for s in range(1, syn["ids"] + 1)
        for cond, count in syn["conditions"].items()
        for k in range(1, count + 1)
        for view in syn["views"]
    ]


def _release_job(spec: dict, seed: int, subject: int, condition: str, number: int, view: int, key) -> SeqJob:
    """One sequence to draw; ``key`` names it in a release that the layout cannot derive it for."""
    syn = spec["synth"]
    return SeqJob(
        seed,
        spec["layout"],
        subject,
        syn["ids"],
        condition,
        number,
        view,
        syn["frames"],
        syn["width"],
        syn["height"],
        syn["noise"],
        syn["views"].index(view),
        None if key is None else SequenceKey(*key),
    )


def _grew_id(index: int, count: int) -> str:
    return f"{index:0{max(5, len(str(count)))}d}"


def _grew_name(rng: np.random.Generator) -> str:
    return "".join(GREW_NAME_CHARS[i] for i in rng.integers(len(GREW_NAME_CHARS), size=GREW_NAME_LENGTH))


def _unknown_condition(spec: dict, condition: str, known) -> GaitflowError:
    return GaitflowError(
        f"synth conditions: {condition!r} is not a {spec['layout']} condition; expected one of: {', '.join(known)}"
    )


def _jobs_grew(spec: dict, seed: int) -> list[SeqJob]:
    """Training identities, then test identities whose later sequences are identity-less probes."""
    syn = spec["synth"]
    n = syn["ids"]
    n_train = _train_count(n, GREW_TRAIN_SHARE)
    for cond in syn["conditions"]:
        if cond not in CONDITION_CODES:
            raise _unknown_condition(spec, cond, CONDITION_CODES)
    seqs = [
        (cond, k, view)
        for cond, count in syn["conditions"].items()
        for k in range(1, count + 1)
        for view in syn["views"]
    ]
    used: set[str] = set()
    jobs = []
    for s in range(1, n + 1):
        n_probe = 0 if s <= n_train else len(seqs) // 2
        for i, (cond, k, view) in enumerate(seqs):
            rng = seeded(seed, 3, s, CONDITION_CODES[cond], k, view)
            name = _grew_name(rng)
            while name in used:  # names are unique in the dataset, as the release's
                name = _grew_name(rng)
            used.add(name)
            if s <= n_train:
                key = (f"{_grew_id(s, n)}train", "train", name)
            elif i < len(seqs) - n_probe:
                key = (_grew_id(s - n_train, n), "gallery", name)
            else:
                key = (GREW_PROBE, GREW_PROBE, name)
            jobs.append(_release_job(spec, seed, s, cond, k, view, key))
    return jobs


def _jobs_sustech1k(spec: dict, seed: int) -> list[SeqJob]:
    """Each identity's sequences numbered from 00 in covariate order, each rendered as its closest condition."""
    syn = spec["synth"]
    for cov in syn["conditions"]:
        if cov not in SUSTECH1K_RENDER:
            raise _unknown_condition(spec, cov, SUSTECH1K_COVARIATES)
    types = [
        (f"{nn:02d}-{cov}", SUSTECH1K_RENDER[cov], nn + 1)
        for nn, cov in enumerate(cov for cov in SUSTECH1K_COVARIATES for _ in range(syn["conditions"].get(cov, 0)))
    ]
    width = max(4, len(str(syn["ids"] - 1)))
    return [
        _release_job(spec, seed, s, cond, number, view, (f"{s - 1:0{width}d}", seq_type, f"{view:03d}"))
        for s in range(1, syn["ids"] + 1)
        for seq_type, cond, number in types
        for view in syn["views"]
    ]


def ccpg_status(condition: str, k: int) -> tuple[str, str]:
    """The clothing status of the k-th (0-based) sequence of a spec condition, and the condition it renders as."""
    if condition == "nm":
        return CCPG_NORMAL, "nm"
    if condition == "bg":
        return CCPG_BAG, "bg"
    if condition == "cl":
        return CCPG_CLOTHES[k % len(CCPG_CLOTHES)], "cl"
    if condition in CCPG_STATUSES:
        return condition, {CCPG_NORMAL: "nm", CCPG_BAG: "bg"}.get(condition, "cl")
    raise GaitflowError(
        f"synth conditions: {condition!r} is not a ccpg condition; expected nm, bg, cl or a status: "
        f"{', '.join(CCPG_STATUSES)}"
    )


def _jobs_ccpg(spec: dict, seed: int) -> list[SeqJob]:
    """Conditions as clothing statuses; a status's sequences on a camera are numbered from 0."""
    syn = spec["synth"]
    seqs = []  # (status, run, rendered condition, number)
    runs: dict[str, int] = {}
    for cond, count in syn["conditions"].items():
        for k in range(count):
            status, rendered = ccpg_status(cond, k)
            seqs.append((status, runs.get(status, 0), rendered, len(seqs) + 1))
            runs[status] = runs.get(status, 0) + 1
    width = max(3, len(str(syn["ids"] - 1)))
    return [
        _release_job(
            spec,
            seed,
            s,
            rendered,
            number,
            view,
            (f"{s - 1:0{width}d}", status, f"{syn['views'].index(view) + 1:02d}_{run}"),
        )
        for s in range(1, syn["ids"] + 1)
        for status, run, rendered, number in seqs
        for view in syn["views"]
    ]


RELEASE_JOBS = {"grew": _jobs_grew, SUSTECH1K: _jobs_sustech1k, "ccpg": _jobs_ccpg}


def jobs_for(spec: dict, seed: int) -> list[SeqJob]:
    """Every sequence of a synthetic dataset, in file order."""
    build = RELEASE_JOBS.get(spec["layout"], _jobs_casia_like)
    return sorted(build(spec, seed), key=lambda j: j.key)


def _frame_count(files: list[tuple[str, bytes]]) -> int:
    """Frames in one sequence's files: its PNGs, or a SUSTech1K folder's camera frames."""
    raw = [data for name, data in files if name.endswith("-Camera-Sils_raw.pkl") and "-sync-" not in name]
    return len(pickle.loads(raw[0])) if raw else len(files)


def synthesize(
    spec: dict,
    seed: int,
    out: Path,
    archive: str = "zip",
    workers: int = 0,
    progress: bool = True,
    partition_out: Path | None = None,
) -> dict:
    """Write a synthetic dataset to `out` (an archive, or a folder), and the partition file its release
    (or the field, for CASIA-B and OU-MVLP) ships to `partition_out`; returns counts and timing."""
    from tqdm import tqdm

    jobs = jobs_for(spec, seed)
    n_workers = resolve_workers(workers)
    writer = ArchiveWriter(Path(out), archive)
    frames = 0
    start = time.perf_counter()
    try:
        bar = tqdm(total=len(jobs), unit="seq", desc=f"synth {Path(out).name}", disable=not progress)
        if n_workers == 1:
            results = map(render_job, jobs)
            pool = None
        else:
            pool = worker_pool(n_workers)
            results = pool.imap(render_job, jobs, chunksize=4)
        try:
            for files in results:
                for name, data in files:
                    writer.add(name, data)
                frames += _frame_count(files)
                bar.update(1)
        finally:
            if pool is not None:
                pool.terminate()
            bar.close()
        writer.close()
    except BaseException:
        writer.abort()
        raise
    seconds = time.perf_counter() - start
    if partition_out is not None:  # the release's partition file, as the twin's
        path = Path(partition_out)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json(path, twin_partition(jobs, spec["layout"]))
        if spec["layout"] == "grew":  # the twin's answer key: GREW's probes carry no identity
            write_json(probe_ids_path(path), grew_probe_ids(jobs))
    return {
        "sequences": len(jobs),
        "frames": frames,
        "seconds": seconds,
        "frames_per_second": frames / max(seconds, 1e-9),
    }
