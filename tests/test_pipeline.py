"""A tiny synth -> preprocess -> read -> baseline run through the command line."""

import json
import subprocess
import sys

from conftest import TINY

from gaitflow.cli import main
from gaitflow.data.dataset import PackedDataset


def test_tiny_run_end_to_end(project, capsys):
    sets = [a for s in TINY for a in ("--set", s)]
    assert main(["synth", "--quiet", *sets]) == 0
    assert (project / "data/raw/casiab-syn.zip").exists()
    assert main(["preprocess", "--quiet", *sets]) == 0
    data = project / "data/processed/casiab-syn"
    ds = PackedDataset(data)
    assert len(ds) == 4 * 10 * 3 and ds.frame_shape == (32, 22)
    assert main(["baseline", "--quiet", *sets]) == 0
    metrics = json.loads((project / "results/casiab-syn/gei-baseline/metrics.json").read_text())
    assert set(metrics["rank1"]) == {"NM", "BG", "CL"}
    assert all(0 <= v <= 100 for v in metrics["rank1"].values())
    assert metrics["views"] == ["000", "090", "180"]
    out = capsys.readouterr().out
    assert "synth casiab-syn:" in out and "preprocess casiab-syn:" in out and "baseline casiab-syn: rank-1 NM" in out


def test_console_script_reports_bad_input_in_one_line(project):
    run = subprocess.run(
        [sys.executable, "-m", "gaitflow.cli", "preprocess", "--input", "missing.zip"], capture_output=True, text=True
    )
    assert run.returncode == 2
    assert run.stderr.strip() == (
        "gaitflow preprocess: error: missing.zip: not found; "
        "expected a folder or a .zip/.tar/.tar.gz archive of silhouette PNGs"
    )


def test_ou_mvlp_preset_runs_through_its_protocol(project):
    sets = [
        "datasets.oumvlp-syn.synth.ids=6",
        "datasets.oumvlp-syn.synth.views=[0, 30, 90]",
        "datasets.oumvlp-syn.synth.frames=8",
        "datasets.oumvlp-syn.synth.width=160",
        "datasets.oumvlp-syn.synth.height=120",
        "preprocess.img_size=32",
        "synth.workers=1",
    ]
    args = [a for s in sets for a in ("--set", s)] + ["--dataset", "oumvlp-syn", "--quiet"]
    for step in ("synth", "preprocess", "baseline"):
        assert main([step, *args]) == 0
    ds = PackedDataset(project / "data/processed/oumvlp-syn")
    assert set(ds.types) == {"00", "01"} and set(ds.views) == {"000", "030", "090"}
    # the official split: odd ids train, even ids test
    assert ds.partition["TRAIN_SET"] == ["00001", "00003", "00005"]
    assert ds.partition["TEST_SET"] == ["00002", "00004", "00006"]
    metrics = json.loads((project / "results/oumvlp-syn/gei-baseline/metrics.json").read_text())
    assert list(metrics["rank1"]) == ["NM"] and metrics["no_gallery"] == "error"
    assert len(metrics["matrix"]["NM"]) == 3
