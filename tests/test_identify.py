"""gaitflow identify: a trained run ranks a gallery's identities for probe sequences, pretreating on the fly."""

import shutil
import zipfile

import numpy as np
import pytest
import torch
import yaml
from conftest import REPO, TINY

from gaitflow.cli import main
from gaitflow.config import load_params
from gaitflow.identify import group_sequences, pretreated
from gaitflow.runs import CHECKPOINT, CONFIG


@pytest.fixture
def scene(tmp_path, tiny_archive):
    """A GEI run (no weights, so no training), a gallery of NM#1-4 and two probes of NM#5 at view 090."""
    params = load_params(REPO / "params.yaml", TINY)
    run = tmp_path / "run"
    run.mkdir()
    config = {
        "dataset": "casiab-syn",
        "backbone": "gei",
        "recipe": "none",
        "train": params["train"],
        "backbone_params": {},
        "preprocess": params["preprocess"],
        "subjects": ["001", "002", "003", "004"],
        "frame_shape": [32, 22],
    }
    (run / CONFIG).write_text(yaml.safe_dump(config))
    torch.save({"model": {}, "iteration": 0}, run / CHECKPOINT)
    with zipfile.ZipFile(tiny_archive) as z:
        names = z.namelist()
        z.extractall(tmp_path / "all")
    gallery = tmp_path / "gallery"
    for n in names:
        if n.split("/")[1] in ("nm-01", "nm-02", "nm-03", "nm-04"):
            (gallery / n).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(tmp_path / "all" / n, gallery / n)
    return run, gallery, tmp_path / "all"


def test_the_true_identity_ranks_first(scene, tmp_path, capsys):
    run, gallery, everything = scene
    probes = [everything / s / "nm-05" / "090" for s in ("002", "004")]
    out = tmp_path / "ranks.csv"
    args = ["identify", "--run", str(run), "--gallery", str(gallery), "--top", "3", "--out", str(out)]
    assert main([*args, "--probe", str(probes[0]), "--probe", str(probes[1])]) == 0
    printed = capsys.readouterr().out
    assert "gallery: 48 sequences of 4 identities (casia-b layout)" in printed
    rows = out.read_text().splitlines()
    assert rows[0] == "probe,rank,identity,distance" and len(rows) == 1 + 2 * 3
    firsts = {r.split(",")[0]: r.split(",")[2] for r in rows[1:] if r.split(",")[1] == "1"}
    assert firsts == {str(probes[0]): "002", str(probes[1]): "004"}


def test_a_probe_without_a_usable_frame_is_one_line_and_the_others_are_ranked(scene, tmp_path, capsys):
    run, gallery, everything = scene
    blank = tmp_path / "blank"
    blank.mkdir()
    import cv2

    cv2.imwrite(str(blank / "0001.png"), np.zeros((120, 160), np.uint8))  # an empty frame: dropped
    args = ["identify", "--run", str(run), "--gallery", str(gallery)]
    assert main([*args, "--probe", str(blank), "--probe", str(everything / "003" / "nm-05" / "000")]) == 0
    captured = capsys.readouterr()
    assert captured.err.strip() == (
        f"gaitflow identify: warning: probe {blank}: no usable frame (none, or all dropped by the pretreatment); "
        "not ranked"
    )
    assert "nm-05/000: 1. 003" in captured.out
    assert main([*args, "--probe", str(blank)]) == 2
    assert "error: no probe has a usable frame; nothing to rank" in capsys.readouterr().err


def test_a_plain_tree_is_read_by_identity_and_sequence():
    names = ["top/7/walk1/0001.png", "top/7/walk1/0002.png", "top/9/a/x.png"]
    layout, groups = group_sequences(names)
    assert layout == "<id>/<seq>" and sorted(k.subject for k in groups) == ["7", "9"]
    casia = ["d/001/nm-01/000/001-nm-01-000-001.png", "d/001/nm-02/000/001-nm-02-000-002.png"]
    assert group_sequences(casia)[0] == "casia-b"  # one identity: still read by its layout
    assert group_sequences(["007/a/1.png", "007/b/1.png"])[1].keys() == {("007", "a", ""), ("007", "b", "")}
    opengait = ["root/001/walk-a/cam1/x.png", "root/002/walk-a/cam1/x.png"]
    assert group_sequences(opengait)[0] == "opengait"


def test_frames_are_pretreated_as_the_packed_data_is(tiny_archive, tmp_path):
    """The on-the-fly pretreatment gives what preprocess would: same frames, same cut."""
    from gaitflow.data import preprocess as pp
    from gaitflow.data.dataset import PackedDataset

    pp.preprocess(tiny_archive, tmp_path / "packed", "casia-b", size=32, workers=1, progress=False)
    ds = PackedDataset(tmp_path / "packed")
    with zipfile.ZipFile(tiny_archive) as z:
        seq = sorted(n for n in z.namelist() if n.startswith("001/nm-01/000/"))
        frames = pretreated([z.read(n) for n in seq], 32, 10000)
    i = int(np.flatnonzero((ds.subjects == "001") & (ds.types == "nm-01") & (ds.views == "000"))[0])
    assert np.array_equal(frames, ds.sequence(i))


def test_bad_gallery_is_one_line(scene, tmp_path, capsys):
    run, _, everything = scene
    args = ["identify", "--run", str(run), "--probe", str(everything / "001" / "nm-05" / "000")]
    assert main([*args, "--gallery", str(tmp_path / "missing")]) == 2
    assert "missing: not found" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main([*args, "--gallery", str(tmp_path / "empty")]) == 2
    assert "no PNG frames found" in capsys.readouterr().err
