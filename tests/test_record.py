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


def test_record_writes_what_committing_stage_by_stage_writes(tmp_path, monkeypatch):
    """Three stages built (synth, preprocess, baseline), the rest not: record commits the three in one
    pass, and dvc.lock and DVC's run cache come out as `dvc commit --force` writes them stage by stage."""
    root = _project(tmp_path / "project", TINY)
    run("dvc init -q --no-scm", root)
    stages = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]
    for name in ("synth", "preprocess", "baseline"):  # as Snakemake would have run them
        run(stages[name]["do"]["cmd"].replace("${item}", "casiab-syn"), root)
    built = ["synth@casiab-syn", "preprocess@casiab-syn", "baseline@casiab-syn"]
    by_stage = tmp_path / "by-stage"
    shutil.copytree(root, by_stage, symlinks=True)
    run(["dvc", "commit", "--force", "--quiet", *built], by_stage)

    done = run(["gaitflow", "record", "--quiet"], root)
    assert "record: 3 stages recorded in dvc.lock" in done.stdout
    assert (root / "dvc.lock").read_text() == (by_stage / "dvc.lock").read_text()
    assert list(yaml.safe_load((root / "dvc.lock").read_text())["stages"]) == built

    def run_cache(project):
        runs = project / ".dvc/cache/runs"
        return {str(f.relative_to(runs)): f.read_text() for f in runs.rglob("*") if f.is_file()}

    assert run_cache(root) == run_cache(by_stage) and len(run_cache(root)) == 3
    status = json.loads(run(["dvc", "status", "--json", *built], root).stdout)
    assert status == {}  # DVC agrees: built and recorded
    # a rerun finds everything recorded and leaves dvc.lock as it is; params.yaml is parsed once
    before = (root / "dvc.lock").stat()
    assert _record_counting(root, monkeypatch) == {"params parsed": 1, "dvc.lock written": 0}
    assert (root / "dvc.lock").stat().st_mtime_ns == before.st_mtime_ns
    # an output rebuilt differently since: its stage's entry is updated, and DVC agrees again
    metrics = root / "results/casiab-syn/gei-baseline/metrics.json"
    metrics.write_text(metrics.read_text() + "\n")
    assert set(json.loads(run(["dvc", "status", "--json", *built], root).stdout)) == {"baseline@casiab-syn"}
    assert _record_counting(root, monkeypatch) == {"params parsed": 1, "dvc.lock written": 1}
    lock = yaml.safe_load((root / "dvc.lock").read_text())["stages"]
    first = yaml.safe_load((by_stage / "dvc.lock").read_text())["stages"]
    assert lock["baseline@casiab-syn"] != first["baseline@casiab-syn"]
    assert {k: v for k, v in lock.items() if k != "baseline@casiab-syn"} == {
        k: v for k, v in first.items() if k != "baseline@casiab-syn"
    }
    assert json.loads(run(["dvc", "status", "--json", *built], root).stdout) == {}


def _record_counting(root, monkeypatch) -> dict[str, int]:
    """`gaitflow record` in this process, counting the parses of params files and the writes of dvc.lock."""
    from dvc.dependency import param
    from dvc.dvcfile import Lockfile

    from gaitflow.cli import main

    counts = {"params parsed": 0, "dvc.lock written": 0}
    load, dump = param.load_path, Lockfile.dump_stages

    def counted_load(*args, **kwargs):
        counts["params parsed"] += 1
        return load(*args, **kwargs)

    def counted_dump(*args, **kwargs):
        counts["dvc.lock written"] += 1
        return dump(*args, **kwargs)

    with monkeypatch.context() as m:
        m.chdir(root)
        m.setattr(param, "load_path", counted_load)
        m.setattr(Lockfile, "dump_stages", counted_dump)
        assert main(["record", "--quiet"]) == 0
        assert param.load_path is counted_load  # record put back what it found
    return counts
