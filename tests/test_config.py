"""params.yaml validation: every error names the key path, the value and what is expected."""

import pytest

from gaitflow.cli import main
from gaitflow.config import apply_overrides, load_params
from gaitflow.errors import GaitflowError


def test_repository_params_are_valid(project):
    params = load_params("params.yaml")
    assert params["dataset"] in params["datasets"]


@pytest.mark.parametrize(
    "override, expected",
    [
        ("preprocess.img_sise=32", "preprocess.img_sise: unknown key; expected one of: img_size"),
        ("preprocess.img_size=abc", "preprocess.img_size = 'abc': expected integer"),
        ("preprocess.img_size=8", "preprocess.img_size = 8: expected a value >= 16"),
        ("synth.archive=rar", "synth.archive = 'rar': expected one of: zip, tar, folder"),
        ("datasets.casiab-syn.synth.noise=2", "datasets.casiab-syn.synth.noise = 2: expected a value <= 1"),
        ("datasets.casiab-syn.synth.conditions.xx=1", "datasets.casiab-syn.synth.conditions.xx: unknown key"),
        ("dataset=nope", "dataset = 'nope': expected one of the datasets"),
        ("baseline.metric=manhattan", "baseline.metric = 'manhattan': expected one of: euclidean, cosine"),
    ],
)
def test_bad_values_name_the_key(project, override, expected):
    with pytest.raises(GaitflowError) as err:
        load_params("params.yaml", [override])
    assert expected in str(err.value)
    assert str(err.value).startswith("params.yaml: ")


def test_missing_key_is_named(project):
    text = (project / "params.yaml").read_text().replace("  min_frames: 5", "")
    (project / "params.yaml").write_text(text)
    with pytest.raises(GaitflowError, match=r"preprocess.min_frames: missing"):
        load_params("params.yaml")


def test_yaml_syntax_error_names_file_and_line(project):
    (project / "params.yaml").write_text("seed: [1,\n")
    with pytest.raises(GaitflowError, match=r"params.yaml: line \d+: not valid YAML"):
        load_params("params.yaml")


def test_override_parses_yaml_values():
    out = apply_overrides({"a": {"b": 1}}, ["a.b=[1, 2]", "a.c=true", "d.e=x"])
    assert out == {"a": {"b": [1, 2], "c": True}, "d": {"e": "x"}}


def test_override_without_equals_is_rejected():
    with pytest.raises(GaitflowError, match="expected KEY.PATH=VALUE"):
        apply_overrides({}, ["preprocess.img_size"])


def test_cli_reports_one_line_and_nonzero_exit(project, capsys):
    rc = main(["preprocess", "--set", "preprocess.workers=-1"])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.strip().count("\n") == 0
    assert "preprocess.workers = -1: expected a value >= 0" in err
    assert "Traceback" not in err


def test_cli_missing_params_file(project, capsys):
    rc = main(["synth", "--params", "nothere.yaml"])
    assert rc == 2
    assert "nothere.yaml: file not found" in capsys.readouterr().err
