"""The whole workflow on a tiny grid, with the real Snakemake, DVC and MLflow."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from conftest import WORKFLOW_TINY, make_workflow_project, mlflow_server, run

DATASET = "casiab-syn"
RUNS = [f"{b}-{r}-s0" for b in ("gaitpart", "gaitset") for r in ("triplet", "circle+waveloss")]
NO_ENV_URI = {"MLFLOW_TRACKING_URI": ""}  # the params file's store, not one from the environment


def _digests(root: Path, *folders: str) -> dict[str, str]:
    out = {}
    for folder in folders:
        for f in sorted((root / folder).rglob("*")):
            if f.is_file() and f.name != "mlflow.json":
                out[str(f.relative_to(root))] = hashlib.sha256(f.read_bytes()).hexdigest()
    return out


def _job_counts(dry_run_output: str) -> dict[str, int]:
    counts, inside = {}, False
    for line in dry_run_output.splitlines():
        if line.startswith("job ") and "count" in line:
            inside = True
            continue
        if inside:
            parts = line.split()
            if len(parts) != 2 or not parts[1].isdigit():
                if counts:
                    break
                continue
            if parts[0] != "total":
                counts[parts[0]] = int(parts[1])
    return counts


def _dvc_changed(root: Path) -> set[str]:
    return set(json.loads(run("dvc status --json", root).stdout or "{}"))


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A tiny project built once by `snakemake --cores 2` (tracking into its own SQLite store)."""
    root = make_workflow_project(tmp_path_factory.mktemp("wf") / "project")
    proc = run("snakemake --cores 2", root, env=NO_ENV_URI)
    return root, proc


def test_snakemake_builds_every_table_and_dvc_agrees(built):
    root, proc = built
    tables = root / "results" / "tables" / DATASET
    for name in ("per_view", "variants", "waveloss", "formulations"):
        for ext in ("md", "csv", "tex"):
            assert (tables / f"{name}.{ext}").stat().st_size > 0
    assert (tables / "rank1_by_view.png").stat().st_size > 0 and (tables / "ablation.png").stat().st_size > 0
    variants = (tables / "variants.md").read_text()
    assert "gei-baseline" in variants and "| gaitpart | triplet | base |" in variants
    assert "circle + norm-fusion (dynamic [-1, 1])" in (tables / "waveloss.md").read_text()
    for run_name in RUNS:  # logs and benchmark files for every job
        assert (root / f"logs/train/{DATASET}/{run_name}.log").exists()
        assert (root / f"logs/benchmarks/evaluate/{DATASET}/{run_name}.tsv").exists()
    # `dvc metrics show`: each run's summary, numbers only, one column per figure (no per-view entries)
    shown = json.loads(run("dvc metrics show --json", root).stdout)
    files = {path: entry["data"] for rev in shown.values() for path, entry in rev["data"].items()}
    assert sorted(files) == sorted(f"results/{DATASET}/{r}/summary.json" for r in RUNS)
    for data in files.values():
        assert {"rank1/NM", "rank1/BG", "rank1/CL", "rank1/mean"} <= set(data) and len(data) < 20
        assert all(isinstance(v, (int, float)) for v in data.values())
    # `dvc plots show`: every run's training curve, no file it cannot load
    plots = json.loads(run("dvc plots show --json", root).stdout)
    assert "errors" not in plots
    assert sorted(plots["data"]) == sorted(f"results/{DATASET}/{r}/train_curve.tsv" for r in RUNS)
    values = plots["data"][f"results/{DATASET}/gaitset-triplet-s0/train_curve.tsv"][0]["content"]["data"]["values"]
    assert [int(v["iteration"]) for v in values] == [1, 2, 3, 4] and all(float(v["total"]) >= 0 for v in values)
    # recorded in DVC at the end of the Snakemake run: nothing to reproduce
    assert _dvc_changed(root) == set()
    assert "Data and pipelines are up to date" in run("dvc repro --dry", root).stdout


def test_the_report_holds_the_tables_and_plots(built):
    root, _ = built
    run("snakemake --report report.html", root)
    html = (root / "report.html").read_text(errors="replace")
    assert "variants.csv" in html and "ablation.png" in html and "rank1_by_view.png" in html


def test_every_run_is_in_mlflow_and_linked_from_the_tables(built):
    from mlflow.tracking import MlflowClient

    root, _ = built
    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(f"gaitflow-{DATASET}")
    runs = client.search_runs([experiment.experiment_id])
    by_name = {r.info.run_name: r for r in runs}
    assert sorted(by_name) == sorted(RUNS)
    for r in runs:
        assert r.info.status == "FINISHED"
        assert {f"{DATASET}/rank1/NM", f"{DATASET}/rank1/BG", f"{DATASET}/rank1/CL"} <= set(r.data.metrics)
    linked = {
        line.rsplit(",", 1)[1]
        for line in (root / f"results/tables/{DATASET}/variants.csv").read_text().splitlines()[1:]
    }
    assert {by_name["gaitpart-triplet-s0"].info.run_id, by_name["gaitset-triplet-s0"].info.run_id} <= linked


def test_nothing_reruns_after_times_change_or_a_dvc_pull(built, tmp_path):
    root, _ = built
    assert "Nothing to be done" in run("snakemake -n --cores 2", root).stdout
    # `dvc checkout` rewrites file times: Snakemake must not care
    later = time.time() + 100
    for folder in ("data", "models", "results"):
        for f in (root / folder).rglob("*"):
            os.utime(f, (later, later))
    assert "Nothing to be done" in run("snakemake -n --cores 2", root).stdout
    # a local remote: push, delete everything built, pull, same bytes, still nothing to do
    before = _digests(root, "data", "models", "results")
    run(f"dvc remote add -d local {tmp_path / 'remote'} && dvc push -q", root)
    for folder in ("data", "models", "results"):
        shutil.rmtree(root / folder)
    run("dvc pull -q", root)
    assert _digests(root, "data", "models", "results") == before
    assert _dvc_changed(root) == set()
    assert "Nothing to be done" in run("snakemake -n --cores 2", root).stdout


def test_an_edit_to_a_tables_module_reruns_only_the_tables_in_both_front_ends(built):
    root, _ = built
    module = root / "gaitflow" / "tables" / "papers.py"
    original = module.read_text()
    module.write_text(original + "\n# an edit\n")
    try:
        assert _job_counts(run("snakemake -n --cores 2", root).stdout) == {"tables": 1, "all": 1}
        assert _dvc_changed(root) == {f"tables@{DATASET}"}
    finally:
        module.write_text(original)
    assert _dvc_changed(root) == set()


def test_another_params_file_reruns_only_what_it_changes(built):
    """A profile (--configfile) identical to params.yaml reruns nothing; one with a recipe more in
    the grid trains and evaluates only that recipe's runs and rebuilds the tables."""
    root, _ = built
    params = yaml.safe_load((root / "params.yaml").read_text())
    (root / "same.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    assert "Nothing to be done" in run("snakemake -n --cores 2 --configfile same.yaml", root).stdout
    params["grid"]["recipes"] = [*params["grid"]["recipes"], "triplet+drpl"]
    (root / "more.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    counts = _job_counts(run("snakemake -n --cores 2 --configfile more.yaml", root).stdout)
    assert counts == {"train": 2, "evaluate": 2, "tables": 1, "all": 1}


def test_a_recipe_change_reruns_that_recipe_only_in_both_front_ends(built):
    """Last of the tests on the built project: it changes params.yaml for good."""
    root, _ = built
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["recipes"]["circle+waveloss"]["circle"]["margin"] = 0.3
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    counts = _job_counts(run("snakemake -n --cores 2", root).stdout)
    assert counts == {"train": 2, "evaluate": 2, "tables": 1, "all": 1}
    changed = {f"train@{DATASET}-{b}-circle+waveloss-0" for b in ("gaitpart", "gaitset")}
    assert {s for s in _dvc_changed(root) if not s.startswith("tables@")} == changed
    # a real `dvc repro` runs exactly those stages and what follows from them
    out = run("dvc repro", root, env=NO_ENV_URI).stdout
    ran = {line.split("'")[1] for line in out.splitlines() if line.startswith("Running stage")}
    assert ran == changed | {s.replace("train@", "evaluate@") for s in changed} | {f"tables@{DATASET}"}
    # Snakemake adopts what DVC built without rebuilding it
    assert _job_counts(run("snakemake -n --cores 2", root).stdout)["train"] == 2
    run("snakemake --touch --cores 2", root, env=NO_ENV_URI)
    assert "Nothing to be done" in run("snakemake -n --cores 2", root).stdout
    assert _dvc_changed(root) == set()


def test_runs_reach_a_real_mlflow_server(tmp_path):
    from mlflow.tracking import MlflowClient

    root = make_workflow_project(
        tmp_path / "project", WORKFLOW_TINY + ["grid.backbones=[gaitpart]", "grid.recipes=[triplet]"]
    )
    with mlflow_server(tmp_path) as uri:
        run("snakemake --cores 2", root, env={"MLFLOW_TRACKING_URI": uri})
        client = MlflowClient(uri)
        runs = client.search_runs([client.get_experiment_by_name(f"gaitflow-{DATASET}").experiment_id])
        assert sorted(r.info.run_name for r in runs) == ["gaitpart-triplet-s0"]
        (r,) = runs
        assert r.info.status == "FINISHED" and f"{DATASET}/rank1/NM" in r.data.metrics
        assert {"total", "lr"} <= set(r.data.metrics)  # the training curve arrived too
        artifacts = {a.path for a in client.list_artifacts(r.info.run_id)}
        assert "loss_curve.png" in artifacts
        assert not (root / "mlflow.db").exists()  # nothing went to the local store


def test_an_imported_checkpoint_is_evaluated_and_tabled_by_both_front_ends(tmp_path):
    """A reference checkpoint in params `imported` goes through import -> evaluate -> tables."""
    zoo = {
        "gaitset-zoo": {
            "label": "GaitSet (OpenGait zoo)",
            "format": "opengait",
            "checkpoint": "data/zoo/gaitset.pt",
            "backbone": "gaitset",
        }
    }
    overrides = WORKFLOW_TINY + [
        "preprocess.img_size=64",  # the fixture's frames: 64 x 44
        "train.width=0.125",
        "grid.backbones=[gaitset]",
        "grid.recipes=[triplet]",
        "tracking.enabled=false",
        f"imported={json.dumps(zoo)}",
    ]
    root = make_workflow_project(tmp_path / "project", overrides)
    (root / "data" / "zoo").mkdir(parents=True)
    shutil.copy(Path(__file__).parent / "fixtures" / "opengait" / "gaitset.pt", root / "data" / "zoo" / "gaitset.pt")
    run("snakemake --cores 2", root, env=NO_ENV_URI)
    variants = (root / f"results/tables/{DATASET}/variants.md").read_text()
    assert "| GaitSet (OpenGait zoo) | - | imported |" in variants and "| gaitset | triplet | base |" in variants
    assert "GaitSet (OpenGait zoo)" in (root / f"results/tables/{DATASET}/per_view.md").read_text()
    metrics = json.loads((root / f"results/{DATASET}/gaitset-zoo/metrics.json").read_text())
    assert metrics["imported"]["sha256"] and metrics["label"] == "GaitSet (OpenGait zoo)"
    assert _dvc_changed(root) == set()  # recorded: DVC agrees
    # replacing the checkpoint reruns its import, its evaluation and the tables, nothing else
    ckpt = torch.load(root / "data" / "zoo" / "gaitset.pt", weights_only=True)
    ckpt["iteration"] = 4
    ckpt["model"]["Head.fc_bin"] = torch.cat([ckpt["model"]["Head.fc_bin"]] * 2)[:62]  # grows the file
    torch.save({**ckpt, "note": "x" * 100}, root / "data" / "zoo" / "gaitset.pt")
    counts = _job_counts(run("snakemake -n --cores 2", root).stdout)
    assert counts == {"import_checkpoint": 1, "evaluate_imported": 1, "tables": 1, "all": 1}
    assert {s for s in _dvc_changed(root) if not s.startswith("tables@")} == {"import@gaitset-zoo"}
    out = run("dvc repro", root, env=NO_ENV_URI).stdout
    ran = {line.split("'")[1] for line in out.splitlines() if line.startswith("Running stage")}
    assert ran == {"import@gaitset-zoo", f"evaluate-imported@{DATASET}-gaitset-zoo", f"tables@{DATASET}"}


def _training_process(snakemake: subprocess.Popen):
    import psutil

    for child in psutil.Process(snakemake.pid).children(recursive=True):
        try:
            cmd = child.cmdline()
        except psutil.Error:
            continue
        if "train" in cmd and any(part.endswith("gaitflow") for part in cmd):
            return child
    return None


def test_a_killed_training_job_resumes_under_snakemake_to_the_same_weights(tmp_path):
    """SIGKILL the training process mid-run: the next `snakemake` resumes from the work folder's
    checkpoint and ends with the weights of an uninterrupted run, in one MLflow run."""
    from mlflow.tracking import MlflowClient

    from gaitflow.runs import load_checkpoint

    overrides = WORKFLOW_TINY + [
        "grid.backbones=[gaitset]",
        "grid.recipes=[triplet]",
        "train.iterations=120",
        "train.checkpoint_every=10",
        "train.milestones=[100]",
    ]
    reference = make_workflow_project(tmp_path / "reference", overrides)
    run("snakemake --cores 1", reference, env=NO_ENV_URI)
    root = make_workflow_project(tmp_path / "project", overrides)
    name = "gaitset-triplet-s0"
    work = root / "models" / ".in-progress" / DATASET / name / "checkpoint.pt"
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    snakemake = subprocess.Popen(
        ["snakemake", "--cores", "1"],
        cwd=root,
        env={**os.environ, "PATH": path, **NO_ENV_URI},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    killed_at = None
    deadline = time.time() + 300
    while time.time() < deadline and snakemake.poll() is None:
        if work.exists():
            try:
                killed_at = int(load_checkpoint(work)["iteration"])
            except Exception:  # noqa: BLE001 - being replaced at this moment
                killed_at = None
            if killed_at and killed_at >= 30:
                trainer = _training_process(snakemake)
                if trainer is not None:
                    trainer.kill()  # SIGKILL: no chance to clean up
                    break
        time.sleep(0.05)
    assert snakemake.wait(timeout=120) != 0, "the job should have failed"
    assert killed_at and killed_at < 120 and work.exists()  # the checkpoint outlived the failed job
    assert not (root / "models" / DATASET / name).exists()  # Snakemake removed the failed output
    run("snakemake --cores 1", root, env=NO_ENV_URI)
    log = (root / f"logs/train/{DATASET}/{name}.log").read_text()
    assert "resumed from iteration" in log, log[-500:]
    resumed = int(log.split("resumed from iteration ")[1].split(")")[0])
    assert resumed >= killed_at
    ours = load_checkpoint(root / "models" / DATASET / name / "checkpoint.pt")
    theirs = load_checkpoint(reference / "models" / DATASET / name / "checkpoint.pt")
    assert ours["iteration"] == theirs["iteration"] == 120
    assert all(torch.equal(ours["model"][k], theirs["model"][k]) for k in theirs["model"])
    assert not work.parent.exists()  # promoted, then cleaned up
    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(f"gaitflow-{DATASET}")
    runs = client.search_runs([experiment.experiment_id])
    assert [r.info.run_name for r in runs] == [name] and runs[0].info.status == "FINISHED"
    steps = [m.step for m in client.get_metric_history(runs[0].info.run_id, "total")]
    assert steps == list(range(1, 121))  # no step twice, none missing
    print(f"killed at iteration {killed_at}, resumed from {resumed}")  # a figure, reported by -s


def test_a_rerun_after_snakemake_is_killed_waits_for_the_orphaned_training_and_adopts_it(tmp_path):
    """SIGKILL `snakemake` itself mid-training: its training job lives on, orphaned. `snakemake
    --unlock` and `--rerun-incomplete` then start the same training again; it waits for the live
    one (its lock, named in the job's log) instead of writing beside it, and adopts what it
    finished: nothing is trained twice, one MLflow run holds every step once. Waiting, not
    refusing: a refused job fails, and Snakemake then deletes the output the live one writes."""
    import psutil
    from mlflow.tracking import MlflowClient

    from gaitflow.runs import load_checkpoint

    overrides = WORKFLOW_TINY + [
        "grid.backbones=[gaitset]",
        "grid.recipes=[triplet]",
        "train.iterations=150",
        "train.checkpoint_every=10",
        "train.milestones=[120]",
    ]
    root = make_workflow_project(tmp_path / "project", overrides)
    name = "gaitset-triplet-s0"
    work = root / "models" / ".in-progress" / DATASET / name / "checkpoint.pt"
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    env = {**os.environ, "PATH": path, **NO_ENV_URI}
    snakemake = subprocess.Popen(
        ["snakemake", "--cores", "1"], cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    orphan, deadline = None, time.time() + 300
    while time.time() < deadline and snakemake.poll() is None and orphan is None:
        try:
            iteration = int(load_checkpoint(work)["iteration"]) if work.exists() else 0
        except Exception:  # noqa: BLE001 - being replaced at this moment
            iteration = 0
        if 20 <= iteration < 100:
            orphan = _training_process(snakemake)
            if orphan is not None:
                snakemake.kill()  # SIGKILL to Snakemake alone: its jobs are not told
        time.sleep(0.05)
    assert orphan is not None, "training was not caught in flight"
    snakemake.wait(timeout=60)
    assert orphan.is_running() and orphan.status() != psutil.STATUS_ZOMBIE  # the orphan lives on
    orphan.suspend()  # held still (its lock too) until the rerun has reached it, however fast it trains
    run("snakemake --unlock", root, env=NO_ENV_URI)
    rerun = subprocess.Popen(
        ["snakemake", "--cores", "1", "--rerun-incomplete"],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    log_file = root / f"logs/train/{DATASET}/{name}.log"
    deadline = time.time() + 120
    while f"waiting for pid {orphan.pid}" not in (log_file.read_text(errors="replace") if log_file.exists() else ""):
        assert rerun.poll() is None and time.time() < deadline, "the rerun did not wait for the orphan"
        time.sleep(0.1)
    orphan.resume()
    output = rerun.communicate(timeout=300)[0]
    assert rerun.returncode == 0, output[-3000:]
    assert not orphan.is_running() or orphan.status() == psutil.STATUS_ZOMBIE
    log = log_file.read_text(errors="replace")
    assert "resumed from iteration 150" in log, log[-1000:]  # adopted: not one iteration trained again
    assert load_checkpoint(root / "models" / DATASET / name / "checkpoint.pt")["iteration"] == 150
    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(f"gaitflow-{DATASET}")
    runs = client.search_runs([experiment.experiment_id])
    assert [(r.info.run_name, r.info.status) for r in runs] == [(name, "FINISHED")]
    steps = [m.step for m in client.get_metric_history(runs[0].info.run_id, "total")]
    assert steps == list(range(1, 151))  # every step once
    models = client.search_logged_models([experiment.experiment_id])
    assert [m.status.name for m in models] == ["READY"]
    assert _dvc_changed(root) == set()  # recorded as if it had run once
