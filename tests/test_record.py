"""`gaitflow record` outside a git repository: it records where DVC can (``dvc init --no-scm``) and
elsewhere warns in one line and succeeds, so the Snakemake run that calls it is not failed."""

import json
import shutil

import pytest
import yaml
from conftest import REPO, TINY, run


def _outside_git(root):
    from dvc.scm import SCM, SCMError

    try:
        SCM(str(root)).close()
    except SCMError:
        return
    pytest.skip(f"{root} is inside a git repository")


def _project(root, overrides=()):
    """A project unpacked from an archive: params.yaml, dvc.yaml and the library, no .git."""
    from gaitflow.config import load_params

    root.mkdir()
    _outside_git(root)
    shutil.copy(REPO / "dvc.yaml", root / "dvc.yaml")
    shutil.copytree(REPO / "gaitflow", root / "gaitflow", ignore=shutil.ignore_patterns("__pycache__"))
    (root / "params.yaml").write_text(
        yaml.safe_dump(load_params(REPO / "params.yaml", list(overrides)), sort_keys=False)
    )
    return root


@pytest.mark.parametrize("dvc", ["set up for git", "not set up"])
def test_record_outside_git_warns_in_one_line_and_succeeds(tmp_path, dvc):
    root = _project(tmp_path / "project")
    if dvc == "set up for git":  # `dvc init` in a git repository, archived without .git
        run("git init -q && dvc init -q && rm -rf .git", root)
        assert (root / ".dvc").is_dir()
    done = run(["gaitflow", "record", "--quiet"], root, check=False)
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert lines[0].startswith("gaitflow record: warning: ")
    assert "is not in a git repository" in lines[0] and "nothing recorded in dvc.lock" in lines[0]
    fix = "dvc config core.no_scm true" if dvc == "set up for git" else "dvc init --no-scm"
    assert f"`{fix}`" in lines[0]
    assert not (root / "dvc.lock").exists()


def test_record_in_a_dvc_project_without_git_records_the_built_stages(tmp_path):
    root = _project(tmp_path / "project", TINY)
    run("dvc init -q --no-scm", root)
    # what the synth stage runs, as Snakemake would have run it
    stage = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]["synth"]["do"]["cmd"]
    run(stage.replace("${item}", "casiab-syn"), root)
    done = run(["gaitflow", "record", "--quiet"], root)
    assert "record: 1 stages recorded in dvc.lock" in done.stdout
    assert "gaitflow record: warning" not in done.stderr
    assert "synth@casiab-syn" in yaml.safe_load((root / "dvc.lock").read_text())["stages"]
    status = run(["dvc", "status", "--json", "synth@casiab-syn"], root)
    assert json.loads(status.stdout) == {}  # DVC agrees: built and recorded, nothing to reproduce
