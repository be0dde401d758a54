"""Protocols as data: type patterns, view labels, rank-k, unlabelled probes and pickle releases."""

import pickle

import numpy as np
import pytest

from gaitflow.data import preprocess as pp
from gaitflow.data.dataset import PackedDataset
from gaitflow.data.layouts import SUSTECH1K_MODALITIES, sustech1k_file_name
from gaitflow.errors import GaitflowError
from gaitflow.evaluate.protocols import cross_view_rank1, select_types, view_labels
from gaitflow.evaluate.retrieval import ranked_ids, retrieval
from gaitflow.evaluate.run import identification


def test_type_patterns_and_view_labels():
    types = np.array(["00-nm", "01-nm", "02-bg", "03-cl", "U0_D0"])
    assert select_types(types, ["*-nm"]).tolist() == [True, True, False, False, False]
    assert select_types(types, ["U0_D0", "02-bg"]).tolist() == [False, False, True, False, True]
    assert view_labels(np.array(["01_0", "12_3"]), r"^[0-9]+").tolist() == ["01", "12"]
    assert view_labels(np.array(["01_0"]), None).tolist() == ["01_0"]


def test_gallery_rows_are_never_probes_and_rank_k_is_at_least_rank_1():
    rng = np.random.default_rng(0)
    subjects = np.repeat(np.arange(5).astype(str), 4)
    types = np.tile(["00-nm", "01-nm", "02-bg", "03-cl"], 5)
    views = np.array(["000", "090"] * 10)
    emb = rng.normal(size=(20, 1, 8)) + subjects.astype(float)[:, None, None] * 0.3
    result = cross_view_rank1(emb, subjects, types, views, ["00-nm"], {"NM": ["*-nm"], "All": ["*"]}, ranks=(1, 5))
    assert result["probes"] == {"NM": 5, "All": 15}  # 00-nm is the gallery: matched by the patterns, not probed
    for cond in ("NM", "All"):
        assert result["rank5"][cond] >= result["rank1"][cond]
    assert result["rank5"]["NM"] == 100.0  # five identities in the gallery: the true one is always in the top 5


def test_each_setting_may_have_its_own_gallery():
    """CCPG: four settings, each a probe set against a gallery of its own; views are cameras (01_0 -> 01)."""
    subjects = np.repeat(["1", "2"], 4)
    types = np.tile(["U0_D0", "U0_D0_BG", "U1_D1", "U1_D0"], 2)
    views = view_labels(np.tile(["01_0", "02_1", "01_1", "02_0"], 2), r"^[0-9]+")
    emb = np.array([0.0, 0, 0, 0, 9, 9, 9, 9])[:, None, None]
    settings = {"BG": {"probe": ["U0_D0_BG"], "gallery": ["U0_D0"]}, "DN": {"probe": ["U1_D0"], "gallery": ["U1_D1"]}}
    result = cross_view_rank1(emb, subjects, types, views, None, settings)
    assert result["views"] == ["01", "02"] and result["probes"] == {"BG": 2, "DN": 2}
    assert result["rank1"] == {"BG": 100.0, "DN": 100.0}


def test_leave_one_out_retrieval_never_matches_a_sequence_with_itself():
    emb = np.array([[0.0], [0.1], [5.0], [5.1], [9.0]])[:, None, :]
    subjects = np.array(["a", "a", "b", "b", "c"])
    rows = np.arange(5)
    assert retrieval(emb, subjects, rows, rows, ranks=(1,))["rank1"] == 100.0  # each finds itself
    loo = retrieval(emb, subjects, rows, rows, ranks=(1,), exclude_self=True)
    assert loo["probes"] == 4 and loo["rank1"] == 100.0  # "c" has no other sequence: no rank
    assert ranked_ids(emb, subjects, np.array([0]), np.array([2, 3, 4, 1]), top=2) == [["a", "b"]]
    # fewer identities than places: each once, then the next sequences' identities fill the rest
    assert ranked_ids(emb, subjects, np.array([0]), np.array([2, 3, 1]), top=3) == [["a", "b", "a"]]


def test_unlabelled_probes_give_the_submission_file_and_a_proxy(tmp_path):
    emb = np.array([[0.0], [0.2], [5.0], [5.2], [0.1], [5.1]])[:, None, :]
    subjects = np.array(["00001", "00001", "00002", "00002", "probe", "probe"])
    types = np.array(["gallery"] * 4 + ["probe"] * 2)
    views = np.array(["g1", "g2", "g3", "g4", "Xa8b", "Zq1c"])
    protocol = {"gallery": ["gallery"], "submission_top": 2}
    result = identification(emb, subjects, types, views, protocol, "euclidean", (1, 5), tmp_path)
    lines = (tmp_path / "submission.csv").read_text().splitlines()
    assert lines == ["videoId,rank1,rank2", "Xa8b,1,2", "Zq1c,2,1"]
    assert result["submission"] == {"file": "submission.csv", "probes": 2, "top": 2}
    proxy = result["retrieval_proxy"]
    assert proxy["note"].startswith("proxy, not the official protocol") and proxy["rank1"] == 100.0


def _sustech_tree(root, modalities=SUSTECH1K_MODALITIES):
    rng = np.random.default_rng(1)
    for sid in ("0001", "0002"):
        for seq in ("00-nm", "01-bg"):
            folder = root / "SUSTech1K-Released-pkl" / sid / seq / "000"
            folder.mkdir(parents=True)
            for modality in modalities:
                if modality == "Camera-Sils_aligned":
                    arr = (rng.random((6, 64, 64)) > 0.5).astype(np.uint8) * 255
                else:
                    arr = rng.random((6, 3)).astype(np.float32)  # point clouds, poses, ...: not silhouettes
                (folder / sustech1k_file_name("000", modality)).write_bytes(pickle.dumps(arr))


def test_sustech1k_takes_the_chosen_modality_of_each_folder(tmp_path):
    _sustech_tree(tmp_path / "src")
    report = pp.preprocess(tmp_path / "src", tmp_path / "out", "sustech1k", size=32, workers=1, progress=False)
    assert report["files"] == 4 * 16 and report["sequences_kept"] == 4 and not report["skipped"]
    ds = PackedDataset(tmp_path / "out")
    assert sorted(set(ds.types)) == ["00-nm", "01-bg"] and ds.frames.shape[1:] == (32, 32)


def test_a_folder_without_the_modality_is_counted_and_named(tmp_path):
    _sustech_tree(tmp_path / "src", [m for m in SUSTECH1K_MODALITIES if m != "LiDAR-PCDs"])
    pp.preprocess(tmp_path / "src", tmp_path / "ok", "sustech1k", size=32, workers=1, progress=False)
    with pytest.raises(GaitflowError, match=r"no LiDAR-PCDs pickle in any of its 4 folders"):
        pp.preprocess(tmp_path / "src", tmp_path / "o", "sustech1k", workers=1, progress=False, modality="LiDAR-PCDs")
    with pytest.raises(GaitflowError, match="LiDAR"):  # an unknown modality names the known ones
        pp.preprocess(tmp_path / "src", tmp_path / "o", "sustech1k", workers=1, progress=False, modality="Lidar")
    missing = tmp_path / "src" / "SUSTech1K-Released-pkl" / "0002" / "01-bg" / "000"
    (missing / sustech1k_file_name("000", "Camera-Sils_aligned")).unlink()
    report = pp.preprocess(tmp_path / "src", tmp_path / "out", "sustech1k", size=32, workers=1, progress=False)
    skipped = report["skipped"][pp.NO_MODALITY]
    assert skipped["count"] == 1 and skipped["first"][0].endswith("0002/01-bg/000 (Camera-Sils_aligned)")
