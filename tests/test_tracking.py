"""The MLflow side channel: a real SQLite store and a real unreachable server."""

import json
import subprocess
import sys

import pytest
from test_train import TRAIN

from gaitflow.cli import main
from gaitflow.tracking import Tracker

SETS = [a for s in [*TRAIN, "tracking.enabled=true"] for a in ("--set", s)]


@pytest.fixture
def store(project, monkeypatch):
    uri = f"sqlite:///{project / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    assert main(["init-tracking", *SETS]) == 0
    return uri


def test_train_and_evaluate_land_in_one_run(project, store):
    from mlflow.tracking import MlflowClient

    for step in ("synth", "preprocess"):
        assert main([step, "--quiet", *SETS]) == 0
    assert main(["train", "--quiet", "--backbone", "gaitset", "--recipe", "triplet+gsam", *SETS]) == 0
    assert main(["evaluate", "--quiet", "--backbone", "gaitset", "--recipe", "triplet+gsam", *SETS]) == 0
    run_dir = project / "models/casiab-syn/gaitset-triplet+gsam-s0"
    run_id = json.loads((run_dir / "mlflow.json").read_text())["run_id"]
    client = MlflowClient(store)
    run = client.get_run(run_id)
    assert run.info.run_name == "gaitset-triplet+gsam-s0" and run.info.status == "FINISHED"
    assert client.get_experiment(run.info.experiment_id).name == "gaitflow-casiab-syn"
    assert run.data.params["train.iterations"] == "6" and run.data.params["recipe_params.gsam.tau"] == "0.1"
    # the trained model is a logged model of the run, and its evaluation shows on it
    model_id = json.loads((run_dir / "mlflow.json").read_text())["model_id"]
    model = client.get_logged_model(model_id)
    assert model.source_run_id == run_id and model.name == "gaitset-triplet+gsam"
    assert {"casiab-syn/rank1/NM", "casiab-syn/retrieval/mAP"} <= {m.key for m in model.metrics}
    # the split the run trained on is part of its record
    assert run.data.params["partition.source"] == "rule first 0.5968" and run.data.params["partition.train_set"] == "4"
    tags = run.data.tags
    assert {"git_commit", "git_dirty", "data_version", "backbone", "recipe", "device", "checkpoint_sha256"} <= set(tags)
    history = client.get_metric_history(run_id, "total")
    assert [m.step for m in history] == [1, 2, 3, 4, 5, 6]
    assert {"gsam_ce", "lr", "iterations_per_second"} <= set(run.data.metrics)
    assert {"casiab-syn/rank1/NM", "casiab-syn/rank1/CL", "casiab-syn/retrieval/mAP"} <= set(run.data.metrics)
    artifacts = {a.path for a in client.list_artifacts(run_id)}
    assert {"loss_curve.png", "config.yaml", "train.log", "evaluation"} <= artifacts
    evaluation = {a.path for a in client.list_artifacts(run_id, "evaluation/casiab-syn")}
    assert {"evaluation/casiab-syn/metrics.json", "evaluation/casiab-syn/rank1_by_view.png"} <= evaluation


def test_parallel_writers_lose_nothing(project, store):
    from mlflow.tracking import MlflowClient

    code = (
        "import sys\n"
        "from gaitflow.tracking import Tracker\n"
        "t = Tracker(sys.argv[1])\n"
        "t.start('casiab-syn', f'writer-{sys.argv[2]}', {'writer': sys.argv[2]}, {'writer': sys.argv[2]})\n"
        "for step in range(20):\n"
        "    t.log_metrics({'loss': step / 10, 'acc': step}, step)\n"
        "t.end()\n"
        "assert not t.failed\n"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code, store, str(i)], stderr=subprocess.PIPE, text=True)
        for i in range(5)
    ]
    for p in procs:
        assert p.wait(timeout=240) == 0, p.stderr.read()
    client = MlflowClient(store)
    exp = client.get_experiment_by_name("gaitflow-casiab-syn")
    runs = client.search_runs([exp.experiment_id], filter_string="tags.writer != ''")
    assert sorted(r.data.tags["writer"] for r in runs) == ["0", "1", "2", "3", "4"]
    for r in runs:
        assert len(client.get_metric_history(r.info.run_id, "loss")) == 20
        assert r.info.status == "FINISHED"


def test_unreachable_store_warns_once_and_the_run_completes(project, monkeypatch, capsys):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    for step in ("synth", "preprocess"):
        assert main([step, "--quiet", *SETS]) == 0
    assert main(["train", "--quiet", "--backbone", "gaitset", "--recipe", "triplet", *SETS]) == 0
    err = capsys.readouterr().err
    assert err.count("warning: MLflow tracking at http://127.0.0.1:9 is unavailable") == 1
    assert (project / "models/casiab-syn/gaitset-triplet-s0/checkpoint.pt").exists()
    assert not (project / "models/casiab-syn/gaitset-triplet-s0/mlflow.json").exists()


def test_disabled_tracking_does_nothing():
    t = Tracker("sqlite:///nowhere/at/all.db", enabled=False)
    assert t.start("d", "r", {}, {}) is None and not t.failed
