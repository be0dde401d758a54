"""The GREW, CCPG and SUSTech1K releases, as unpacked, parse to the right sequences; nothing else does."""

from collections import defaultdict

import pytest

from gaitflow.data.layouts import (
    LAYOUTS,
    SUSTECH1K_DEFAULT_MODALITY,
    SUSTECH1K_MODALITIES,
    SequenceKey,
    get_layout,
    is_labelled,
    parse_pkl,
    parse_sustech1k_pkl,
    sustech1k_file_name,
)
from gaitflow.errors import GaitflowError


def _sequences(parse, paths):
    """{key: [path, ...]} of the paths that parse; the rest under None."""
    out = defaultdict(list)
    for p in paths:
        out[parse(p)].append(p)
    return dict(out)


# ------------------------------------------------------------------ GREW
# One sequence folder of the release: silhouette frames, 2D and 3D pose text.
def _grew_sequence(folder: str, frames: int = 3) -> list[str]:
    out = []
    for i in range(1, frames + 1):
        out += [f"{folder}/{i:05d}.png", f"{folder}/{i:05d}_2d_pose.txt", f"{folder}/{i:05d}_3d_pose.txt"]
    return out


GREW_TREE = [
    *_grew_sequence("GREW/train/00001/4XPn5Z28"),
    "GREW/train/00001/4XPn5Z28_gei.png",
    *_grew_sequence("GREW/train/00001/5TXe8svE"),
    "GREW/train/00001/5TXe8svE_gei.png",
    *_grew_sequence("GREW/train/20000/k2W9aQ0c"),
    *_grew_sequence("GREW/test/gallery/00001/79XJefi8"),
    "GREW/test/gallery/00001/79XJefi8_gei.png",
    *_grew_sequence("GREW/test/gallery/00001/t16VLaQf"),
    *_grew_sequence("GREW/test/probe/01DdvEHX"),
    "GREW/test/probe/01DdvEHX_gei.png",
    *_grew_sequence("GREW/test/probe/etaGVnWf"),
    *_grew_sequence("GREW/distractor/edXJefi8"),
    "GREW/distractor/edXJefi8_gei.png",
    # the optical-flow tree mirrors the silhouettes; its images are not frames
    "GREW/flow/train/00001/4XPn5Z28/00001_00002_flow.png",
    "GREW/flow/test/gallery/00001/79XJefi8/00001_00002_flow.png",
    "GREW/flow/test/probe/01DdvEHX/00001_00002_flow.png",
]


def test_grew_release_tree():
    seqs = _sequences(LAYOUTS["grew"].parse, GREW_TREE)
    rejected = seqs.pop(None)
    assert set(seqs) == {
        ("00001train", "train", "4XPn5Z28"),
        ("00001train", "train", "5TXe8svE"),
        ("20000train", "train", "k2W9aQ0c"),
        ("00001", "gallery", "79XJefi8"),
        ("00001", "gallery", "t16VLaQf"),
        ("probe", "probe", "01DdvEHX"),
        ("probe", "probe", "etaGVnWf"),
        ("distractor", "distractor", "edXJefi8"),
    }
    assert all(len(frames) == 3 and all(f.endswith(".png") for f in frames) for frames in seqs.values())
    assert all(p.endswith((".txt", "_gei.png", "_flow.png")) for p in rejected)
    assert len(rejected) == len(GREW_TREE) - 3 * len(seqs)


def test_grew_probes_name_no_identity():
    keys = {k for k in map(LAYOUTS["grew"].parse, GREW_TREE) if k}
    unlabelled = {k for k in keys if not is_labelled(k)}
    assert {k.type for k in unlabelled} == {"probe", "distractor"}
    assert all(k.subject in ("probe", "distractor") for k in unlabelled)
    # training and test identities are different people with the same numbers
    assert {k.subject for k in keys if k.type == "train"}.isdisjoint({k.subject for k in keys if k.type == "gallery"})
    assert is_labelled(SequenceKey("00001", "gallery", "79XJefi8"))


@pytest.mark.parametrize(
    "path",
    [
        "GREW/train/00001/4XPn5Z28/00001.jpg",  # not a PNG
        "GREW/train/4XPn5Z28/00001.png",  # no identity folder
        "GREW/train/abcde/4XPn5Z28/00001.png",  # identity not a number
        "GREW/gallery/00001/79XJefi8/00001.png",  # gallery outside test/
        "GREW/test/probe/00001/01DdvEHX/00001.png",  # probes have no identity folder
        "GREW/probe/01DdvEHX/00001.png",  # probe outside test/
        "probe/01DdvEHX/00001.png",
        "00001.png",
    ],
)
def test_grew_rejects_paths_outside_the_release(path):
    assert LAYOUTS["grew"].parse(path) is None


@pytest.mark.parametrize(
    "key",
    [("00007train", "train", "4XPn5Z28"), ("00007", "gallery", "79XJefi8"), ("probe", "probe", "01DdvEHX")],
)
def test_grew_written_paths_parse_back(key):
    lay = get_layout("grew")
    path = lay.frame_path(SequenceKey(*key), 12)
    assert path.endswith("/00012.png")
    assert lay.parse("GREW/" + path) == key


def test_grew_writes_no_key_outside_its_convention():
    with pytest.raises(GaitflowError):
        get_layout("grew").frame_path(SequenceKey("00007", "train", "4XPn5Z28"), 1)  # a training subject is <id>train


# ------------------------------------------------------------------ CCPG
CCPG_STATUSES = ("U0_D0_BG", "U0_D0", "U1_D0", "U1_D1", "U2_D2", "U3_D3", "U0_D3")


def test_ccpg_silhouette_archive():
    paths = [
        f"CCPG_G_SIL/{sid}/{status}/{view}/{frame:05d}.png"
        for sid in ("000", "199")
        for status in CCPG_STATUSES
        for view in ("01_0", "10_1")
        for frame in (1, 2)
    ]
    seqs = _sequences(LAYOUTS["ccpg"].parse, paths)
    assert None not in seqs
    assert len(seqs) == 2 * len(CCPG_STATUSES) * 2
    assert all(len(v) == 2 for v in seqs.values())
    assert LAYOUTS["ccpg"].parse("CCPG_G_SIL/000/U0_D0_BG/01_0/00001.png") == ("000", "U0_D0_BG", "01_0")
    assert LAYOUTS["ccpg"].parse("013/U3_D3/04_1/a.png") == ("013", "U3_D3", "04_1")


@pytest.mark.parametrize(
    "path",
    [
        "CCPG_D_MASK_FACE_SHOE/000/U0_D0/01_0/00001.jpg",  # the RGB archive's frames
        "CCPG_G_SIL/000/nm-01/01_0/00001.png",  # not a clothing status
        "CCPG_G_SIL/000/U0_D0_CL/01_0/00001.png",
        "CCPG_G_SIL/000/U0_D0/01/00001.png",  # view without its sequence number
        "CCPG_G_SIL/ab/U0_D0/01_0/00001.png",
        "U0_D0/01_0/00001.png",  # too shallow
    ],
)
def test_ccpg_rejects_paths_outside_the_release(path):
    assert LAYOUTS["ccpg"].parse(path) is None


# ------------------------------------------------------------------ SUSTech1K
# The sixteen files of a sequence folder, as the release names them for view 000.
SUSTECH1K_FOLDER_000 = [
    "00-000-LiDAR-PCDs.pkl",
    "01-000-LiDAR-PCDs_depths.pkl",
    "02-000-LiDAR-PCDs_sils.pkl",
    "03-000-Camera-Pose.pkl",
    "04-000-Camera-Ratios-HW.pkl",
    "05-000-Camera-RGB_raw.pkl",
    "06-000-Camera-Sils_aligned.pkl",
    "07-000-Camera-Sils_raw.pkl",
    "08-sync-000-LiDAR-PCDs.pkl",
    "09-sync-000-LiDAR-PCDs_depths.pkl",
    "10-sync-000-LiDAR-PCDs_sils.pkl",
    "11-sync-000-Camera-Pose.pkl",
    "12-sync-000-Camera-Ratios-HW.pkl",
    "13-sync-000-Camera-RGB_raw.pkl",
    "14-sync-000-Camera-Sils_aligned.pkl",
    "15-sync-000-Camera-Sils_raw.pkl",
]


def _sustech1k_tree():
    out = []
    for sid, seq_type, view in [("0000", "00-nm", "000"), ("0000", "01-bg", "090"), ("1049", "03-ub", "315")]:
        for name in SUSTECH1K_FOLDER_000:
            out.append(f"SUSTech1K-Released-pkl/{sid}/{seq_type}/{view}/{name.replace('-000-', f'-{view}-')}")
    return out


def test_sustech1k_modalities_are_the_release_files():
    assert len(SUSTECH1K_MODALITIES) == 16
    assert [sustech1k_file_name("000", m) for m in SUSTECH1K_MODALITIES] == SUSTECH1K_FOLDER_000
    assert SUSTECH1K_DEFAULT_MODALITY == "Camera-Sils_aligned"
    assert sustech1k_file_name("045") == "06-045-Camera-Sils_aligned.pkl"


def test_sustech1k_default_is_the_aligned_silhouettes():
    seqs = _sequences(parse_sustech1k_pkl, _sustech1k_tree())
    rejected = seqs.pop(None)
    assert seqs == {
        ("0000", "00-nm", "000"): ["SUSTech1K-Released-pkl/0000/00-nm/000/06-000-Camera-Sils_aligned.pkl"],
        ("0000", "01-bg", "090"): ["SUSTech1K-Released-pkl/0000/01-bg/090/06-090-Camera-Sils_aligned.pkl"],
        ("1049", "03-ub", "315"): ["SUSTech1K-Released-pkl/1049/03-ub/315/06-315-Camera-Sils_aligned.pkl"],
    }
    assert len(rejected) == 3 * 15


@pytest.mark.parametrize("modality", SUSTECH1K_MODALITIES)
def test_sustech1k_each_modality_picks_one_file_per_sequence(modality):
    seqs = _sequences(lambda p: parse_sustech1k_pkl(p, modality), _sustech1k_tree())
    seqs.pop(None)
    assert len(seqs) == 3
    index = SUSTECH1K_MODALITIES.index(modality)
    assert all(len(v) == 1 and v[0].rsplit("/", 1)[1].startswith(f"{index:02d}-") for v in seqs.values())
    # the OpenGait import keys the same sequences, from any of the sixteen files
    assert set(seqs) == {parse_pkl(p) for p in _sustech1k_tree()}


@pytest.mark.parametrize(
    "path",
    [
        "0000/00-nm/000/06-090-Camera-Sils_aligned.pkl",  # the file's view is not its folder's
        "0000/00-nm/000/07-000-Camera-Sils_aligned.pkl",  # wrong index for the modality
        "0000/00-nm/000/14-sync-000-Camera-Sils_aligned.pkl",  # the synchronized copy, another modality
        "0000/00-nm/000/06-000-Camera-Sils_aligned.png",
        "0000/nm/000/06-000-Camera-Sils_aligned.pkl",  # type without its number
        "00/00-nm/000/06-000-Camera-Sils_aligned.pkl",
        "00-nm/000/06-000-Camera-Sils_aligned.pkl",  # too shallow
    ],
)
def test_sustech1k_rejects_other_files(path):
    assert parse_sustech1k_pkl(path) is None


def test_sustech1k_unknown_modality_is_an_error():
    with pytest.raises(GaitflowError, match="Camera-Sils_aligned"):
        parse_sustech1k_pkl("0000/00-nm/000/06-000-Camera-Sils_aligned.pkl", "Sils_aligned")


# ------------------------------------------------------------------ the existing layouts
def test_single_form_layouts_keep_their_depth_and_pattern():
    assert {n: lay.depth for n, lay in LAYOUTS.items()} == {
        "casia-b": 4,
        "ou-mvlp": 3,
        "gait3d": 4,
        "opengait": 4,
        "grew": 5,
        "ccpg": 4,
    }
    assert LAYOUTS["casia-b"].pattern.fullmatch("001/nm-01/090/001-nm-01-090-045.png")
    assert LAYOUTS["casia-b"].parse("001/NM-01/090/a.png") == ("001", "NM-01", "090")  # case-insensitive as before
