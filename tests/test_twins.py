"""Every release layout has a synthetic twin, and every protocol runs on its twin end to end:
synth -> preprocess -> GEI baseline -> a few training iterations -> evaluate."""

import json
import zipfile

import numpy as np
import pytest
from conftest import as_sets

from gaitflow.cli import main
from gaitflow.data.dataset import PackedDataset
from gaitflow.evaluate.retrieval import PROBE_SCORES, record_figures

TRAIN = [
    "train.p=2",
    "train.k=2",
    "train.frames=4",
    "train.iterations=2",
    "train.width=0.25",
    "train.warmup=1",
    "train.milestones=[1]",
    "train.threads=1",
    "tracking.enabled=false",
    "preprocess.img_size=32",
    "synth.workers=1",
    "preprocess.workers=1",
]


def _tiny(name, conditions, views):
    return [
        f"datasets.{name}.synth.ids=6",
        f"datasets.{name}.synth.conditions={conditions}",
        f"datasets.{name}.synth.views={views}",
        f"datasets.{name}.synth.frames=8",
        f"datasets.{name}.synth.width=160",
        f"datasets.{name}.synth.height=120",
    ]


TWINS = {
    "casiab-syn": _tiny("casiab-syn", "{nm: 6, bg: 2, cl: 2}", "[0, 90]"),
    "oumvlp-syn": _tiny("oumvlp-syn", "{nm: 2}", "[0, 90]"),
    "gait3d-syn": _tiny("gait3d-syn", "{nm: 2, bg: 1}", "[0, 90]"),
    "grew-syn": _tiny("grew-syn", "{nm: 2, bg: 1, cl: 1}", "[0, 90]"),
    "sustech1k-syn": _tiny("sustech1k-syn", "{nm: 2, bg: 1, cl: 1, ub: 1}", "[0, 90]"),
    "ccpg-syn": _tiny("ccpg-syn", "{nm: 1, bg: 1, cl: 5}", "[0, 90]"),
}


def _run(project, name):
    args = [*as_sets([*TRAIN, *TWINS[name]]), "--dataset", name, "--quiet"]
    for step in (["synth"], ["preprocess"], ["baseline"]):
        assert main([*step, *args]) == 0, step
    for step in ("train", "evaluate"):
        assert main([step, "--backbone", "gaitset", "--recipe", "triplet", *args]) == 0, step
    baseline = json.loads((project / f"results/{name}/gei-baseline/metrics.json").read_text())
    trained = json.loads((project / f"results/{name}/gaitset-triplet-s0/metrics.json").read_text())
    return PackedDataset(project / f"data/processed/{name}"), baseline, trained


@pytest.mark.parametrize("name", ["casiab-syn", "oumvlp-syn"])
def test_cross_view_twins(project, name):
    data, baseline, trained = _run(project, name)
    conditions = ["NM", "BG", "CL"] if name == "casiab-syn" else ["NM"]
    for metrics in (baseline, trained):
        assert list(metrics["rank1"]) == conditions and metrics["identical_views"] == "exclude"
        assert metrics["partition"]["source"].startswith("rule ")
    if name == "oumvlp-syn":  # the official split: odd ids train
        assert data.partition["TRAIN_SET"] == ["00001", "00003", "00005"]


def test_gait3d_twin_probes_are_exactly_its_probe_set(project):
    data, baseline, trained = _run(project, "gait3d-syn")
    names = zipfile.ZipFile(project / "data/raw/gait3d-syn.zip").namelist()
    assert "2D_Silhouettes/0001/camid0_videoid1/seq0/human_crop_f00001.png" in names
    assert "2D_Silhouettes/0001/camid1_videoid101/seq0/human_crop_f00008.png" in names  # bg: its own videos
    given = json.loads((project / "data/raw/gait3d-syn.json").read_text())
    assert given["TEST_SET"] == ["0005", "0006"]  # 4 of 6 train (as Gait3D: 3,000 of 4,000)
    assert len(given["PROBE_SET"]) == len(given["TEST_SET"]) and given["PROBE_SET"][0].count("-") == 2
    assert data.partition["PROBE_SET"] == sorted(given["PROBE_SET"])
    for metrics in (baseline, trained):
        assert "rank1" not in metrics and metrics["partition"]["source"] == "data/raw/gait3d-syn.json"
        r = metrics["retrieval"]
        assert r["probes"] == len(given["PROBE_SET"]) and {"rank1", "rank5", "rank10", "mAP", "mINP"} <= set(r)
        _probe_scores_give_the_figures(metrics, "retrieval")


def _probe_scores_give_the_figures(metrics, figures):
    """The per-probe scores the tables' bootstrap reweights give back the protocol's figures."""
    record = metrics[PROBE_SCORES]
    assert record["figures"] == figures and len(record["subjects"]) == metrics[figures]["probes"]
    got = record_figures(record, np.ones((1, len(record["subjects"]))))
    for name in ("rank1", "rank5", "mAP", "mINP"):
        assert got[name][0] == pytest.approx(metrics[figures][name], abs=0.01)


def test_grew_twin_writes_the_submission_file_and_a_labelled_proxy(project):
    data, baseline, trained = _run(project, "grew-syn")
    truth = json.loads((project / "data/raw/grew-syn.probe_ids.json").read_text())
    for method, metrics in (("gei-baseline", baseline), ("gaitset-triplet-s0", trained)):
        lines = (project / f"results/grew-syn/{method}/submission.csv").read_text().splitlines()
        places = min(20, int((data.types == "gallery").sum()))  # 20, fewer only in a gallery this small
        assert lines[0] == "videoId," + ",".join(f"rank{k}" for k in range(1, places + 1))
        rows = {line.split(",")[0]: line.split(",")[1:] for line in lines[1:]}
        assert set(rows) == set(truth) and metrics["submission"]["probes"] == len(truth)
        # every gallery identity once first (fewer than the places here), then the next sequences' ids
        n_ids = len({k for k in data.subjects if k != "probe" and not k.endswith("train")})
        for v, ids in rows.items():
            assert len(ids) == places and len(set(ids[:n_ids])) == n_ids and str(int(truth[v])) in ids
        assert "rank1" not in metrics and "retrieval" not in metrics
        assert metrics["retrieval_proxy"]["note"].startswith("proxy, not the official protocol")
        _probe_scores_give_the_figures(metrics, "retrieval_proxy")


def test_sustech1k_twin_reports_every_covariate_at_rank_1_and_5(project):
    data, baseline, trained = _run(project, "sustech1k-syn")
    assert sorted(set(data.types)) == ["00-nm", "01-nm", "02-bg", "03-cl", "04-ub"]
    for metrics in (baseline, trained):
        assert list(metrics["rank1"]) == ["NM", "BG", "CL", "UB", "Overall"]  # covariates the data has
        assert set(metrics["rank5"]) == set(metrics["rank1"])
        assert all(metrics["rank5"][c] >= metrics["rank1"][c] for c in metrics["rank1"])
        assert metrics["probes"]["Overall"] == sum(metrics["probes"][c] for c in ("NM", "BG", "CL", "UB"))


def test_ccpg_twin_scores_its_four_settings_with_their_own_galleries(project):
    data, baseline, trained = _run(project, "ccpg-syn")
    assert {v.split("_")[0] for v in data.views} == {"01", "02"}
    for metrics in (baseline, trained):
        assert list(metrics["rank1"]) == ["CL", "UP", "DN", "BG"] and metrics["views"] == ["01", "02"]
        by_probe = metrics["retrieval_by_probe"]
        assert set(by_probe) == {"CL", "UP", "DN", "BG"} and {"rank1", "mAP", "mINP"} <= set(by_probe["CL"])
