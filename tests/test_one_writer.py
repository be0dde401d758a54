"""One writer per run (gaitflow.locks): a second training of a live run is refused, or under the
workflow waits and adopts; a kill at any finishing step costs neither a retrain nor a second
MLflow run. Real processes, a real SQLite MLflow store."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import pytest
import torch
from test_train import TRAIN

from gaitflow.cli import main
from gaitflow.locks import exclusive, lock_path
from gaitflow.train import load_checkpoint

LONGER = ["train.iterations=60", "train.checkpoint_every=10", "train.milestones=[50]", "tracking.enabled=true"]
SETS = [a for s in [*TRAIN, *LONGER] for a in ("--set", s)]
RUN = "gaitset-triplet-s0"


def _cmd(*extra, out="models/done", work="models/work"):
    cmd = [sys.executable, "-m", "gaitflow.cli", "train", "--quiet", "--backbone", "gaitset", "--recipe", "triplet"]
    return [*cmd, "--out", out, *(["--work", work] if work else []), *SETS, *extra]


@pytest.fixture
def store(project, monkeypatch):
    uri = f"sqlite:///{project / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    assert main(["synth", "--quiet", *SETS]) == 0
    assert main(["preprocess", "--quiet", *SETS]) == 0
    assert main(["init-tracking", "--quiet", *SETS]) == 0
    return uri


def _runs(uri):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("gaitflow-casiab-syn")
    runs = client.search_runs([experiment.experiment_id])
    models = client.search_logged_models([experiment.experiment_id])
    return [(r.info.run_name, r.info.status) for r in runs], [(m.source_run_id, m.status.name) for m in models], runs


def _same_weights(a, b):
    a, b = load_checkpoint(a)["model"], load_checkpoint(b)["model"]
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture
def alone(store, project):
    """The run trained alone, start to end: the weights every other way must end with."""
    done = subprocess.run(_cmd("--set", "tracking.enabled=false", out="models/alone", work=None), text=True)
    assert done.returncode == 0
    return project / "models/alone/checkpoint.pt"


def _started(proc, project, timeout=120):
    """Wait until ``proc`` holds the run's lock and has written its first checkpoint."""
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if lock_path(project / "models/work").exists() and (project / "models/work/checkpoint.pt").exists():
            return
        time.sleep(0.02)
    raise AssertionError(f"the first training did not start: {proc.communicate()[1][-2000:]}")


def test_a_lock_is_exclusive_names_its_holder_and_dies_with_it(tmp_path):
    target = tmp_path / "run"
    with exclusive(target, "train"):
        holder = subprocess.run(
            [
                sys.executable,
                "-c",
                f"from gaitflow.locks import exclusive\nwith exclusive({str(target)!r}, 'train'): pass",
            ],
            capture_output=True,
            text=True,
        )
        assert holder.returncode != 0 and f"pid {os.getpid()} on {socket.gethostname()}" in holder.stderr
    assert not lock_path(target).exists()  # removed on leaving
    with exclusive(tmp_path / "new" / "deeper" / "run", "preprocess"):
        assert lock_path(tmp_path / "new" / "deeper" / "run").exists()
    assert not (tmp_path / "new").exists()  # the folders made for the lock alone go with it
    # a holder killed with SIGKILL leaves a file but no lock
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import time\nfrom gaitflow.locks import exclusive\nwith exclusive({str(target)!r}, 'x'):"
            "\n    print('held', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.readline() == "held\n"
    proc.kill()
    proc.wait()
    assert lock_path(target).exists()
    with exclusive(target, "train"):  # at once: the kernel released it
        assert json.loads(lock_path(target).read_text())["pid"] == os.getpid()


def test_a_second_training_of_a_live_run_is_refused_and_the_first_is_unharmed(store, project, alone):
    first = subprocess.Popen(_cmd(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _started(first, project)
    second = subprocess.run(_cmd(), capture_output=True, text=True, timeout=120)
    out, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    assert second.returncode == 2 and second.stderr.count("\n") == 1, second.stderr
    assert f"pid {first.pid} on {socket.gethostname()}" in second.stderr and "models/work" in second.stderr
    assert _same_weights(project / "models/done/checkpoint.pt", alone)
    runs, models, found = _runs(store)
    assert runs == [(RUN, "FINISHED")] and models == [(found[0].info.run_id, "READY")]


def test_a_waiting_second_training_adopts_the_finished_run(store, project, alone):
    """What the workflow's jobs do (--wait): the rerun waits for the live one, then trains nothing."""
    first = subprocess.Popen(_cmd(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _started(first, project)
    second = subprocess.run(_cmd("--wait"), capture_output=True, text=True, timeout=300)
    assert first.wait(timeout=60) == 0
    assert second.returncode == 0, second.stderr
    assert f"waiting for pid {first.pid}" in second.stderr and "resumed from iteration 60" in second.stdout
    assert _same_weights(project / "models/done/checkpoint.pt", alone)
    runs, models, _ = _runs(store)
    assert runs == [(RUN, "FINISHED")] and len(models) == 1 and models[0][1] == "READY"


# The finishing steps in order, and where a SIGKILL lands in each (after the step's own work).
FINISHING = {
    "promoted": "gaitflow.train.promote",
    "tagged": "gaitflow.tracking.Tracker.set_tags",
    "curve written": "gaitflow.data.packed.write_text_atomic",
    "model logged": "gaitflow.tracking.Tracker._log_model",
    "run ended": "gaitflow.tracking.Tracker.end",
}
KILLER = """
import os, signal, sys, importlib
from gaitflow.cli import main
module, _, name = {target!r}.rpartition(".")
try:
    owner = importlib.import_module(module)
except ModuleNotFoundError:
    mod, _, cls = module.rpartition(".")
    owner = getattr(importlib.import_module(mod), cls)
original = getattr(owner, name)
def killed(*args, **kwargs):
    result = original(*args, **kwargs)
    os.kill(os.getpid(), signal.SIGKILL)
    return result
setattr(owner, name, killed)
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize("step", list(FINISHING))
def test_a_kill_at_any_finishing_step_costs_no_retrain_and_no_second_run(store, project, alone, step):
    script = textwrap.dedent(KILLER.format(target=FINISHING[step]))
    killed = subprocess.run([sys.executable, "-c", script, *_cmd()[3:], "--curve", "results/curve.tsv"], text=True)
    assert killed.returncode == -signal.SIGKILL
    subprocess.run(["rm", "-rf", "models/done", "results/curve.tsv"], check=True)  # what Snakemake does next
    rerun = subprocess.run([*_cmd(), "--curve", "results/curve.tsv"], capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    assert "resumed from iteration 60" in rerun.stdout  # nothing trained again
    assert _same_weights(project / "models/done/checkpoint.pt", alone)
    assert (project / "results/curve.tsv").read_text().count("\n") == 61  # header + 60 iterations
    runs, models, found = _runs(store)
    assert runs == [(RUN, "FINISHED")], runs
    assert models == [(found[0].info.run_id, "READY")], models
    saved = json.loads((project / "models/done/mlflow.json").read_text())
    assert saved["run_id"] == found[0].info.run_id and saved["model_id"]


def test_prune_work_removes_only_finished_work_folders(store, project):
    done = subprocess.run(_cmd("--set", "tracking.enabled=false"), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    os.makedirs("models/.in-progress/casiab-syn", exist_ok=True)
    os.replace("models/work", f"models/.in-progress/casiab-syn/{RUN}")
    os.makedirs("models/casiab-syn", exist_ok=True)
    os.replace("models/done", f"models/casiab-syn/{RUN}")
    unfinished = project / "models/.in-progress/casiab-syn/gaitset-circle-s0"
    unfinished.mkdir()
    (unfinished / "checkpoint.pt").write_bytes(b"not promoted")
    assert main(["prune-work"]) == 0
    assert not (project / f"models/.in-progress/casiab-syn/{RUN}").exists()
    assert (unfinished / "checkpoint.pt").exists() and (project / f"models/casiab-syn/{RUN}/checkpoint.pt").exists()
