"""The workflow on a real SLURM cluster through workflow/profiles/slurm.

Needs a running cluster, e.g. the one-node cluster of
``workflow/scripts/slurm-local.sh up``; skipped otherwise. Run with ``-s`` to see
the figures (jobs, wall time, the iteration a cancelled training resumed from).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import WORKFLOW_TINY, make_workflow_project, run
from test_shared_server import server  # noqa: F401 - the fixture

DATASET = "casiab-syn"
RUN = "gaitset-triplet-s0"
ITERATIONS = 200
# one run, long enough to be cancelled half-way; the one-node cluster has no GPU
OVERRIDES = WORKFLOW_TINY + [
    "grid.backbones=[gaitset]",
    "grid.recipes=[triplet]",
    f"train.iterations={ITERATIONS}",
    "train.checkpoint_every=10",
    "train.milestones=[150]",
    "train.device=cpu",
]
# the profile as it is, fitted to a small cluster: at most 2 jobs and 2 CPUs each, and
# preprocess's memory within the node's; SLURM logs kept as evidence, states checked often
SNAKEMAKE = [
    "snakemake",
    "--workflow-profile",
    "workflow/profiles/slurm",
    "--jobs",
    "2",
    "--max-threads",
    "2",
    "--set-resources",
    "preprocess:mem_mb=4000",
    "--slurm-keep-successful-logs",
    "--slurm-init-seconds-before-status-checks",
    "2",
]
RULES = {"synth", "preprocess", "baseline", "train", "evaluate", "tables"}
NO_ENV_URI = {"MLFLOW_TRACKING_URI": ""}  # the params file's store, not one from the environment


def _not_running() -> str | None:
    """Why SLURM cannot take jobs here, or None."""
    if shutil.which("sbatch") is None or shutil.which("squeue") is None:
        return "SLURM is not installed (no sbatch); workflow/scripts/slurm-local.sh up starts a one-node cluster"
    try:
        proc = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"SLURM is not running (sinfo: {exc}); workflow/scripts/slurm-local.sh up starts it"
    states = {s.strip() for s in proc.stdout.split()}
    if proc.returncode != 0 or not states & {"idle", "mix", "alloc"}:
        detail = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"node states {sorted(states)}"
        return f"SLURM is not running or has no usable node ({detail}); workflow/scripts/slurm-local.sh up starts it"
    return None


REASON = _not_running()
pytestmark = pytest.mark.skipif(REASON is not None, reason=REASON or "")


def _slurm_logs(root: Path) -> dict[str, list[Path]]:
    """The plugin's per-job SLURM logs (.snakemake/slurm_logs/rule_<rule>/<wildcards>/<job id>.log), by rule."""
    out: dict[str, list[Path]] = {}
    for log in sorted((root / ".snakemake" / "slurm_logs").glob("rule_*/**/*.log")):
        rule = log.relative_to(root / ".snakemake" / "slurm_logs").parts[0].removeprefix("rule_")
        out.setdefault(rule, []).append(log)
    return out


def _train_job_id() -> str | None:
    """The running SLURM job of the training rule (the plugin puts the rule in the job's comment)."""
    proc = subprocess.run(["squeue", "-h", "-t", "RUNNING", "-o", "%i|%k"], capture_output=True, text=True)
    for line in proc.stdout.splitlines():
        job, _, comment = line.partition("|")
        if comment.startswith("rule_train"):
            return job.strip()
    return None


def _start(root: Path, *extra: str) -> tuple[subprocess.Popen, Path]:
    """Snakemake with the profile, in the background; its output goes to a file (a pipe could fill up)."""
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    out = root.parent / "snakemake.out"
    with open(out, "w") as fh:
        proc = subprocess.Popen(
            [*SNAKEMAKE, *extra],
            cwd=root,
            env={**os.environ, "PATH": path, **NO_ENV_URI},
            stdout=fh,
            stderr=subprocess.STDOUT,
        )
    return proc, out


def _wait(proc: subprocess.Popen, out: Path, timeout: float) -> str:
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    return out.read_text()


def _when_training_passes(proc: subprocess.Popen, checkpoint: Path, iteration: int, action) -> tuple[int, str]:
    """Poll the work folder's checkpoint; once it holds `iteration`, call action(job id) on the training job.
    Returns (the checkpoint's iteration then, the job id)."""
    from gaitflow.runs import load_checkpoint

    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and proc.poll() is None:
        if checkpoint.exists():
            try:
                done = int(load_checkpoint(checkpoint)["iteration"])
            except Exception:  # noqa: BLE001 - being replaced at this moment
                done = None
            if done is not None and done >= iteration:
                job = _train_job_id()
                if job is not None:
                    action(job)
                    return done, job
        time.sleep(0.1)
    raise AssertionError(f"the training job was never seen running past iteration {iteration}")


def test_every_job_of_the_workflow_runs_as_a_slurm_job(tmp_path):
    root = make_workflow_project(tmp_path / "project", OVERRIDES)
    start = time.monotonic()
    out = run(SNAKEMAKE, root, env=NO_ENV_URI)
    wall = time.monotonic() - start
    logs = _slurm_logs(root)
    assert set(logs) == RULES, sorted(logs)
    assert all(len(found) == 1 for found in logs.values()), logs
    job_ids = {log.stem for found in logs.values() for log in found}
    assert all(job.isdigit() for job in job_ids) and len(job_ids) == len(RULES)
    for job in job_ids:  # what Snakemake said it submitted
        assert f"SLURM jobid {job}" in out.stdout + out.stderr, job
    assert (root / "results" / DATASET / RUN / "metrics.json").exists()
    assert (root / "results" / "tables" / DATASET / "tables.md").exists()
    log = (root / f"logs/train/{DATASET}/{RUN}.log").read_text()
    assert f"{ITERATIONS} iterations on cpu" in log and "resumed" not in log
    print(f"\nSLURM: {len(job_ids)} jobs ({', '.join(sorted(logs))}), wall {wall:.0f} s")


def test_a_cancelled_training_job_resumes_from_its_checkpoint_when_the_workflow_reruns(tmp_path):
    from gaitflow.runs import load_checkpoint

    root = make_workflow_project(tmp_path / "project", OVERRIDES)
    work = root / "models" / ".in-progress" / DATASET / RUN / "checkpoint.pt"
    start = time.monotonic()
    # no retry: the cancelled job fails the run, as it would without the profile's retries
    proc, out = _start(root, "--retries", "0")
    cancelled_at, job = _when_training_passes(proc, work, 20, lambda job: run(["scancel", job], root))
    output = _wait(proc, out, 600)
    first = time.monotonic() - start
    assert proc.returncode != 0, f"the workflow should have failed with the cancelled job:\n{output[-3000:]}"
    assert cancelled_at < ITERATIONS and work.exists()  # the checkpoint outlived the cancelled job
    assert not (root / "models" / DATASET / RUN).exists()

    start = time.monotonic()
    run(SNAKEMAKE, root, env=NO_ENV_URI)
    second = time.monotonic() - start
    log = (root / f"logs/train/{DATASET}/{RUN}.log").read_text()
    assert "resumed from iteration" in log, log[-500:]
    resumed = int(log.split("resumed from iteration ")[1].split(")")[0])
    assert cancelled_at <= resumed < ITERATIONS
    assert int(load_checkpoint(root / "models" / DATASET / RUN / "checkpoint.pt")["iteration"]) == ITERATIONS
    assert not work.parent.exists()  # promoted, then cleaned up
    assert (root / "results" / "tables" / DATASET / "tables.md").exists()
    print(
        f"\nSLURM: training job {job} cancelled after its checkpoint at iteration {cancelled_at} (run {first:.0f} s); "
        f"the rerun resumed from iteration {resumed} and finished ({second:.0f} s)"
    )


def test_a_requeued_training_job_resumes_from_its_checkpoint_in_the_same_run(tmp_path):
    """What preemption does to a job submitted with --requeue (the profile's slurm-requeue): SIGTERM, back
    to the queue under the same job id, run again; Snakemake keeps waiting and the training resumes."""
    from gaitflow.runs import load_checkpoint

    root = make_workflow_project(tmp_path / "project", OVERRIDES)
    work = root / "models" / ".in-progress" / DATASET / RUN / "checkpoint.pt"
    start = time.monotonic()
    # no retry: only SLURM's requeue can finish the training
    proc, out = _start(root, "--retries", "0")
    requeued_at, job = _when_training_passes(proc, work, 20, lambda job: run(["scontrol", "requeue", job], root))
    # a requeued job waits for its begin time (two minutes); let it start as soon as it can
    for _ in range(100):
        state = run(["squeue", "-h", "-j", job, "-o", "%T"], root, check=False).stdout.strip()
        if state == "PENDING":
            run(["scontrol", "update", f"JobId={job}", "StartTime=now"], root)
            break
        time.sleep(0.2)
    output = _wait(proc, out, 900)
    wall = time.monotonic() - start
    assert proc.returncode == 0, output[-3000:]
    log = (root / f"logs/train/{DATASET}/{RUN}.log").read_text()
    assert "resumed from iteration" in log, log[-500:]
    resumed = int(log.split("resumed from iteration ")[1].split(")")[0])
    assert requeued_at <= resumed < ITERATIONS
    assert int(load_checkpoint(root / "models" / DATASET / RUN / "checkpoint.pt")["iteration"]) == ITERATIONS
    assert (root / "results" / "tables" / DATASET / "tables.md").exists()
    assert [log.stem for log in _slurm_logs(root)["train"]] == [job]  # one SLURM job, run twice
    print(
        f"\nSLURM: training job {job} requeued after its checkpoint at iteration {requeued_at}, "
        f"resumed from {resumed} in the same run, wall {wall:.0f} s"
    )


def test_slurm_jobs_authenticate_and_the_password_is_on_no_command_line_and_in_no_log(tmp_path, server):  # noqa: F811
    """The credentials reach every SLURM job through what the plugin exports (``--export=ALL``:
    the environment, HOME and so its ``~/.mlflow/credentials``), never through a command line: the
    password is in no job script, no SLURM or Snakemake log, no file of the project and nothing the
    server stored. Exported as variables, they are kept by slurmctld in each job's ``environment``
    file of its state folder (mode 600, gone when the job is purged)."""
    from mlflow.tracking import MlflowClient
    from test_shared_server import USERS

    uri, folder = server
    root = make_workflow_project(tmp_path / "project", [*OVERRIDES, "train.iterations=20", "train.milestones=[15]"])
    password, home = USERS["alice"], tmp_path / "home"
    (home / ".mlflow").mkdir(parents=True)
    env = {"MLFLOW_TRACKING_USERNAME": "alice", "MLFLOW_TRACKING_PASSWORD": password}
    run(SNAKEMAKE, root, env={"MLFLOW_TRACKING_URI": uri, "HOME": str(home), **env})
    assert set(_slurm_logs(root)) == RULES
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        mp.setenv("MLFLOW_TRACKING_USERNAME", "alice")
        mp.setenv("MLFLOW_TRACKING_PASSWORD", password)
        client = MlflowClient(uri)
        experiment = client.get_experiment_by_name(f"gaitflow-{DATASET}").experiment_id
        runs = client.search_runs([experiment], filter_string=f"attributes.run_name = '{RUN}'")
    assert runs and all(r.info.status == "FINISHED" for r in runs)
    assert str(root) in runs[0].data.tags.get("checkpoint", "")  # this grid's run, logged from a SLURM job
    # SLURM's own state (job scripts, the environments it keeps), its daemons' logs, Snakemake's, ours
    slurm = Path(os.environ.get("GAITFLOW_SLURM_PREFIX", "/tmp/gaitflow-slurm"))
    needle = password.encode()
    holding = [
        f
        for base in (root, folder, slurm, home)
        if base.is_dir()
        for f in base.rglob("*")
        if f.is_file() and not f.is_symlink() and needle in f.read_bytes()
    ]
    scripts = [f for f in slurm.rglob("script") if f.is_file()]
    assert scripts and not [f for f in scripts if needle in f.read_bytes()]  # no job's command line
    assert holding and all(f.name == "environment" and f.stat().st_mode & 0o077 == 0 for f in holding), holding
