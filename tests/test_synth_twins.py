"""The GREW, SUSTech1K and CCPG twins: every file in its release's tree and names, parsing back to the
sequence drawn, with the release's partition file; byte-identical whatever the number of workers."""

import json
import re
import zipfile
from collections import defaultdict

import numpy as np
import pytest

from gaitflow.data import synth
from gaitflow.data.layouts import (
    LAYOUTS,
    SUSTECH1K_DEFAULT_MODALITY,
    SUSTECH1K_MODALITIES,
    is_labelled,
    parse_pkl,
    parse_sustech1k_pkl,
    sustech1k_file_name,
)
from gaitflow.data.preprocess import load_array_pickle
from gaitflow.errors import GaitflowError


def _spec(tmp_path, layout, conditions, ids):
    return {
        "layout": layout,
        "protocol": layout,
        "raw": str(tmp_path / f"{layout}.zip"),
        "partition": str(tmp_path / f"{layout}.partition.json"),
        "synth": {
            "ids": ids,
            "conditions": conditions,
            "views": [0, 90],
            "frames": 6,
            "width": 160,
            "height": 120,
            "noise": 0.02,
        },
    }


def _draw(spec, out, workers=1):
    stats = synth.synthesize(spec, 0, out, "zip", workers=workers, progress=False, partition_out=spec["partition"])
    with zipfile.ZipFile(out) as zf:
        return zf.namelist(), stats


def _frames_are_numbered(names_by_key, pattern):
    for names in names_by_key.values():
        numbers = sorted(int(re.fullmatch(pattern, n.rsplit("/", 1)[1])[1]) for n in names)
        assert numbers == list(range(1, len(numbers) + 1))


# ------------------------------------------------------------------ GREW
GREW_SEQ = r"[0-9A-Za-z]{8}"


@pytest.fixture
def grew(tmp_path):
    spec = _spec(tmp_path, "grew", {"nm": 2}, ids=6)  # 4 sequences an identity; 4 train, 2 test identities
    names, stats = _draw(spec, tmp_path / "grew.zip")
    return spec, names, stats, synth.jobs_for(spec, 0)


def test_grew_twin_is_the_release_tree(grew):
    spec, names, stats, jobs = grew
    assert stats["sequences"] == 6 * 4 and stats["frames"] == len(names)
    forms = [
        rf"train/(\d{{5}})/{GREW_SEQ}/\d{{5}}\.png",
        rf"test/gallery/(\d{{5}})/{GREW_SEQ}/\d{{5}}\.png",
        rf"test/probe/{GREW_SEQ}/\d{{5}}\.png",
    ]
    assert all(any(re.fullmatch(f, n) for f in forms) for n in names)
    train = next(j.key for j in jobs if j.key.type == "train")
    probe = next(j.key for j in jobs if j.key.type == "probe")
    assert train.subject == "00001train" and f"train/00001/{train.view}/00001.png" in names
    assert f"test/probe/{probe.view}/00001.png" in names  # no identity in a probe's path
    lay = LAYOUTS["grew"]
    by_key = defaultdict(list)
    for n in names:
        by_key[lay.parse(n)].append(n)
    assert set(by_key) == {j.key for j in jobs} and len(by_key) == len(jobs)
    _frames_are_numbered(by_key, r"(\d{5})\.png")
    # sequence names: unique in the dataset, as the release's
    assert len({k.view for k in by_key}) == len(jobs)
    subjects = {k.subject for k in by_key}
    assert subjects == {"00001train", "00002train", "00003train", "00004train", "00001", "00002", "probe"}


def test_grew_probes_carry_no_identity_but_the_answer_key_has_it(grew, tmp_path):
    spec, names, _, jobs = grew
    assert json.loads((tmp_path / "grew.partition.json").read_text()) == {
        "TRAIN_SET": ["00001train", "00002train", "00003train", "00004train"],
        "TEST_SET": ["00001", "00002", "probe"],  # as OpenGait's GREW.json
    }
    probes = [j for j in jobs if j.key.type == "probe"]
    assert len(probes) == 2 * 2  # the second half of each test identity's four sequences
    assert all(not is_labelled(j.key) and j.key.subject == "probe" for j in probes)
    for n in names:
        if n.startswith("test/probe/"):
            assert len(n.split("/")) == 4  # test/probe/<seq>/<frame>
    truth = json.loads((tmp_path / "grew.partition.probe_ids.json").read_text())
    assert truth == synth.grew_probe_ids(jobs)
    assert set(truth) == {j.key.view for j in probes}
    assert sorted(truth.values()) == ["00001", "00001", "00002", "00002"]
    # the answer is the person: a probe's body is that of the gallery identity it names
    gallery_body = {j.key.subject: j.subject for j in jobs if j.key.type == "gallery"}
    assert all(gallery_body[truth[j.key.view]] == j.subject for j in probes)
    assert synth.probe_ids_path(tmp_path / "x" / "grew-syn.partition.json").name == "grew-syn.partition.probe_ids.json"


def test_grew_twin_is_byte_identical_whatever_the_workers(grew, tmp_path):
    spec = grew[0]
    parts = [(tmp_path / f).read_bytes() for f in ("grew.partition.json", "grew.partition.probe_ids.json")]
    _draw(spec, tmp_path / "grew2.zip", workers=2)
    assert (tmp_path / "grew.zip").read_bytes() == (tmp_path / "grew2.zip").read_bytes()
    assert parts == [(tmp_path / f).read_bytes() for f in ("grew.partition.json", "grew.partition.probe_ids.json")]


# ------------------------------------------------------------------ SUSTech1K
def test_sustech1k_twin_is_the_release_tree(tmp_path):
    spec = _spec(tmp_path, "sustech1k", {"nm": 2, "bg": 1, "cl": 1}, ids=4)
    names, stats = _draw(spec, tmp_path / "sustech1k.zip")
    jobs = synth.jobs_for(spec, 0)
    assert len(jobs) == 4 * 4 * 2 and len(names) == 16 * len(jobs)
    assert all(n.startswith("SUSTech1K-Released-pkl/") for n in names)
    for example in [
        "SUSTech1K-Released-pkl/0000/00-nm/000/06-000-Camera-Sils_aligned.pkl",
        "SUSTech1K-Released-pkl/0000/01-nm/090/00-090-LiDAR-PCDs.pkl",
        "SUSTech1K-Released-pkl/0002/02-bg/000/04-000-Camera-Ratios-HW.pkl",
        "SUSTech1K-Released-pkl/0003/03-cl/090/14-sync-090-Camera-Sils_aligned.pkl",
    ]:
        assert example in names
    folders = defaultdict(list)
    for n in names:
        folders[n.rsplit("/", 1)[0]].append(n.rsplit("/", 1)[1])
    assert len(folders) == len(jobs)
    for folder, files in folders.items():
        view = folder.rsplit("/", 1)[1]
        assert files == [sustech1k_file_name(view, m) for m in SUSTECH1K_MODALITIES]  # 16, in file order
    # the default modality keys one pickle per sequence: exactly the sequences drawn
    keyed = [(parse_sustech1k_pkl(n), n) for n in names]
    aligned = [(k, n) for k, n in keyed if k is not None]
    assert sorted(k for k, _ in aligned) == sorted(j.key for j in jobs)
    assert all(n.endswith(sustech1k_file_name(k.view, SUSTECH1K_DEFAULT_MODALITY)) for k, n in aligned)
    assert {parse_pkl(n) for n in names} == {j.key for j in jobs}  # and the OpenGait import reads the same
    assert {k.type for k in (j.key for j in jobs)} == {"00-nm", "01-nm", "02-bg", "03-cl"}
    assert json.loads((tmp_path / "sustech1k.partition.json").read_text()) == {
        "TRAIN_SET": ["0000"],
        "TEST_SET": ["0001", "0002", "0003"],
    }

    with zipfile.ZipFile(tmp_path / "sustech1k.zip") as zf:
        frames = 0
        for key, name in aligned:
            folder = name.rsplit("/", 1)[0]
            arrays = {
                m: load_array_pickle(zf.read(f"{folder}/{sustech1k_file_name(key.view, m)}"))
                for m in SUSTECH1K_MODALITIES
            }
            sils = arrays["Camera-Sils_aligned"]
            assert sils.dtype == np.uint8 and sils.ndim == 3 and sils.shape[1:] == (64, 64) and len(sils) >= 1
            assert sils.max() == 255 and len(sils) <= len(arrays["Camera-Sils_raw"])
            n = len(arrays["Camera-Sils_raw"])
            frames += n
            n_lidar = len(range(0, n, 3))
            expected = {
                "LiDAR-PCDs": (np.float32, (n_lidar, 19, 3)),
                "LiDAR-PCDs_depths": (np.float32, (n_lidar, 32, 32)),
                "LiDAR-PCDs_sils": (np.uint8, (n_lidar, 64, 64)),
                "Camera-Pose": (np.float32, (n, 17, 2)),
                "Camera-Ratios-HW": (np.int64, (n, 2)),
                "Camera-RGB_raw": (np.uint8, (n, 32, 32, 3)),
                "Camera-Sils_raw": (np.uint8, (n, 64, 64)),
            }
            for m, (dtype, shape) in expected.items():
                assert arrays[m].dtype == dtype and arrays[m].shape == shape, m
                assert arrays[f"sync-{m}"].dtype == dtype and len(arrays[f"sync-{m}"]) == n_lidar, m
            assert len(arrays["sync-Camera-Sils_aligned"]) <= n_lidar
            assert np.array_equal(arrays["sync-Camera-Pose"], arrays["Camera-Pose"][::3])
    assert stats["frames"] == frames


def test_sustech1k_covariates_render_as_the_closest_condition(tmp_path):
    every = {c: 1 for c in ("nm", "bg", "cl", "cr", "ub", "uf", "oc", "nt")}
    jobs = synth.jobs_for(_spec(tmp_path, "sustech1k", every, ids=2), 0)
    rendered = {j.key.type: j.condition for j in jobs}
    assert rendered == {
        "00-nm": "nm",
        "01-bg": "bg",
        "02-cl": "cl",
        "03-cr": "bg",
        "04-ub": "bg",
        "05-uf": "cl",
        "06-oc": "nm",
        "07-nt": "nm",
    }
    # each sequence its own shot: no two share a generator seed
    seeds = [(j.subject, j.condition, j.number, j.view) for j in jobs]
    assert len(set(seeds)) == len(seeds)
    with pytest.raises(GaitflowError, match="sustech1k condition"):
        synth.jobs_for(_spec(tmp_path, "sustech1k", {"nm": 1, "rain": 1}, ids=2), 0)


def test_sustech1k_twin_is_byte_identical_whatever_the_workers(tmp_path):
    spec = _spec(tmp_path, "sustech1k", {"nm": 1, "ub": 1}, ids=3)
    _draw(spec, tmp_path / "a.zip", workers=1)
    _draw(spec, tmp_path / "b.zip", workers=2)
    assert (tmp_path / "a.zip").read_bytes() == (tmp_path / "b.zip").read_bytes()


# ------------------------------------------------------------------ CCPG
def test_ccpg_twin_is_the_release_tree(tmp_path):
    spec = _spec(tmp_path, "ccpg", {"nm": 1, "bg": 1, "cl": 6}, ids=4)
    names, stats = _draw(spec, tmp_path / "ccpg.zip")
    jobs = synth.jobs_for(spec, 0)
    assert len(jobs) == 4 * 8 * 2 and stats["frames"] == len(names)
    assert all(re.fullmatch(r"CCPG_G_SIL/\d{3}/U\d_D\d(_BG)?/\d{2}_\d/\d{5}\.png", n) for n in names)
    for example in [
        "CCPG_G_SIL/000/U0_D0/01_0/00001.png",
        "CCPG_G_SIL/003/U0_D0_BG/02_0/00001.png",
        "CCPG_G_SIL/001/U1_D0/02_1/00001.png",  # the sixth clothes change: U1_D0's second sequence
        "CCPG_G_SIL/002/U0_D3/01_0/00001.png",
    ]:
        assert example in names
    by_key = defaultdict(list)
    for n in names:
        by_key[LAYOUTS["ccpg"].parse(n)].append(n)
    assert set(by_key) == {j.key for j in jobs} and len(by_key) == len(jobs)
    _frames_are_numbered(by_key, r"(\d{5})\.png")
    assert {k.type for k in by_key} == {"U0_D0_BG", "U0_D0", "U1_D0", "U1_D1", "U2_D2", "U3_D3", "U0_D3"}
    assert {k.view for k in by_key} == {"01_0", "02_0", "01_1", "02_1"}
    rendered = {j.key.type: j.condition for j in jobs}
    assert rendered == {
        "U0_D0": "nm",
        "U0_D0_BG": "bg",
        **{s: "cl" for s in ("U1_D0", "U1_D1", "U2_D2", "U3_D3", "U0_D3")},
    }
    seeds = [(j.subject, j.condition, j.number, j.view) for j in jobs]
    assert len(set(seeds)) == len(seeds)  # the clothes changes are different shots
    assert json.loads((tmp_path / "ccpg.partition.json").read_text()) == {
        "TRAIN_SET": ["000", "001"],
        "TEST_SET": ["002", "003"],
    }


def test_ccpg_statuses_may_be_named_and_count_their_sequences(tmp_path):
    jobs = synth.jobs_for(_spec(tmp_path, "ccpg", {"cl": 2, "U1_D0": 1, "U0_D0_BG": 1}, ids=2), 0)
    keys = {(j.key.type, j.key.view, j.condition) for j in jobs if j.key.subject == "000"}
    assert keys == {
        ("U1_D0", "01_0", "cl"),
        ("U1_D0", "02_0", "cl"),
        ("U1_D1", "01_0", "cl"),
        ("U1_D1", "02_0", "cl"),
        ("U1_D0", "01_1", "cl"),  # named after cl's U1_D0: its second sequence
        ("U1_D0", "02_1", "cl"),
        ("U0_D0_BG", "01_0", "bg"),
        ("U0_D0_BG", "02_0", "bg"),
    }
    with pytest.raises(GaitflowError, match="ccpg condition"):
        synth.jobs_for(_spec(tmp_path, "ccpg", {"U9_D9": 1}, ids=2), 0)
