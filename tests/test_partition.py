"""Partitions: the protocols' rules, a release's partition file, and what did not match, counted."""

import json

import numpy as np
import pytest
from conftest import TINY, as_sets

from gaitflow.cli import main
from gaitflow.data import partition
from gaitflow.errors import GaitflowError
from gaitflow.evaluate.protocols import cross_view_rank1


def test_rules():
    ids = [f"{i:05d}" for i in range(1, 11)]
    odd_even = partition.by_rule(ids, "odd-even")
    assert odd_even["TRAIN_SET"] == ["00001", "00003", "00005", "00007", "00009"]
    assert odd_even["TEST_SET"] == ["00002", "00004", "00006", "00008", "00010"]
    casia = partition.by_rule([f"{i:03d}" for i in range(1, 125)], "first", 0.5968)
    assert casia["TRAIN_SET"][-1] == "074" and casia["TEST_SET"][0] == "075"
    with pytest.raises(GaitflowError, match="numeric identity names"):
        partition.by_rule(["a", "b"], "odd-even")


@pytest.mark.parametrize(
    "text, message",
    [
        ("{not json", r"bad.json: not valid JSON \(line 1"),
        ("[1, 2]", "bad.json: expected a JSON object with TRAIN_SET and TEST_SET"),
        ('{"TRAIN_SET": ["001"]}', "bad.json: no TEST_SET; expected a partition file"),
        ('{"TRAIN_SET": "001", "TEST_SET": []}', "bad.json: TRAIN_SET is not a list of names"),
    ],
)
def test_a_bad_partition_file_is_one_line(tmp_path, text, message):
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(GaitflowError, match=message):
        partition.load(path)


def test_restrict_counts_what_does_not_match():
    given = {"TRAIN_SET": ["001", "002", "009"], "TEST_SET": ["003"], "PROBE_SET": ["003-nm-01-000", "008-x-y"]}
    part, stats = partition.restrict(given, ["001", "002", "003", "004"], ["003-nm-01-000"], "p.json")
    assert part == {"TRAIN_SET": ["001", "002"], "TEST_SET": ["003"], "PROBE_SET": ["003-nm-01-000"]}
    assert stats["listed_absent"] == {"count": 1, "first": ["009"]}
    assert stats["unassigned"] == {"count": 1, "first": ["004"]}
    assert stats["probe_set_absent"]["count"] == 1
    with pytest.raises(GaitflowError, match="p.json: names no identity present in the data"):
        partition.restrict({"TRAIN_SET": ["x"], "TEST_SET": ["y"]}, ["001"], [], "p.json")


def test_a_partition_file_replaces_the_rule_and_is_reported(project, capsys):
    sets = as_sets([*TINY, "datasets.casiab-syn.partition=data/raw/casiab-syn.json"])
    assert main(["synth", "--quiet", *sets]) == 0  # a synthetic dataset's partition file is drawn by synth ...
    given = json.loads((project / "data/raw/casiab-syn.json").read_text())
    assert given == {"TRAIN_SET": ["001", "002"], "TEST_SET": ["003", "004"]}  # OpenGait's rule: the first 74/124
    # ... and here replaced by a hand-written one, as a user places a release's file
    (project / "data/raw/casiab-syn.json").write_text(
        json.dumps({"TRAIN_SET": ["001", "003"], "TEST_SET": ["002", "099"]})
    )
    assert main(["preprocess", "--quiet", *sets]) == 0
    out = capsys.readouterr().out
    assert "1 identities the partition file lists are absent from the data: 099" in out
    assert "1 identities in the data are in no set of the partition file (not used): 004" in out
    packed = project / "data/processed/casiab-syn"
    assert json.loads((packed / "partition.json").read_text()) == {"TRAIN_SET": ["001", "003"], "TEST_SET": ["002"]}
    report = json.loads((packed / "report.json").read_text())["partition"]
    assert report["source"] == "data/raw/casiab-syn.json" and report["listed_absent"] == 1 and report["unassigned"] == 1


def test_a_bad_partition_file_stops_preprocess_before_any_work(project, capsys):
    sets = as_sets([*TINY, "datasets.casiab-syn.partition=data/raw/casiab-syn.json"])
    assert main(["synth", "--quiet", *sets]) == 0
    (project / "data/raw/casiab-syn.json").write_text('{"TRAIN_SET": []')
    assert main(["preprocess", "--quiet", *sets]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("gaitflow preprocess: error: data/raw/casiab-syn.json: not valid JSON") and "\n" not in err
    assert not (project / "data/processed").exists()


def test_a_protocol_that_needs_a_file_says_so(project, capsys):
    sets = as_sets([*TINY, "datasets.casiab-syn.protocol=gait3d"])
    assert main(["preprocess", "--quiet", *sets]) == 2
    assert "protocol 'gait3d' takes its split from the release's partition file" in capsys.readouterr().err


def test_identical_views_can_be_included():
    # two subjects, views a and b; the gallery at each view; probes match only at their own view
    subjects = np.array(["1", "2", "1", "2", "1", "2", "1", "2"])
    types = np.array(["g", "g", "g", "g", "p", "p", "p", "p"])
    views = np.array(["a", "a", "b", "b", "a", "a", "b", "b"])
    emb = np.array([[0.0], [10], [10], [0], [0], [10], [10], [0]])[:, None, :]  # right at its view, wrong across
    args = (emb, subjects, types, views, ["g"], {"P": ["p"]})
    excluded = cross_view_rank1(*args)
    included = cross_view_rank1(*args, identical_views="include")
    assert excluded["rank1"]["P"] == 0.0 and included["rank1"]["P"] == 50.0
    assert included["identical_views"] == "include"
