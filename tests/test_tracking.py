"""The MLflow side channel: a real SQLite store and a real unreachable server."""

import json
import shlex
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from conftest import REPO
from test_train import TRAIN

from gaitflow import tracking
from gaitflow.cli import main
from gaitflow.tracking import Tracker

SETS = [a for s in [*TRAIN, "tracking.enabled=true"] for a in ("--set", s)]


@pytest.fixture
def store(project, monkeypatch):
    uri = f"sqlite:///{project / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    assert main(["init-tracking", *SETS]) == 0
    return uri


def _experiments(uri: str) -> dict[str, tuple[str, int]]:
    """Every experiment of the store, deleted ones too: name -> (lifecycle stage, runs)."""
    from mlflow.entities import ViewType
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    return {
        e.name: (e.lifecycle_stage, len(client.search_runs([e.experiment_id], run_view_type=ViewType.ALL)))
        for e in client.search_experiments(view_type=ViewType.ALL)
    }


def test_init_tracking_creates_the_grid_experiments_only(project, monkeypatch, capsys):
    """With the default params: the grid's one dataset, and MLflow's own Default, which every store has."""
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{project / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    assert main(["init-tracking", "--quiet"]) == 0
    assert capsys.readouterr().out == f"init-tracking: {uri} is ready (1 experiment: gaitflow-casiab-syn)\n"
    assert _experiments(uri) == {"Default": ("active", 0), "gaitflow-casiab-syn": ("active", 0)}
    kind = MlflowClient(uri).get_experiment_by_name("gaitflow-casiab-syn").tags["mlflow.experimentKind"]
    assert kind == "custom_model_development"
    # a second grid dataset, and --dataset, add theirs; a rerun keeps what is there
    grid = ["--set", "grid.datasets=[casiab-syn, oumvlp-syn]", "--set", "grid.synthetic=[casiab-syn, oumvlp-syn]"]
    assert main(["init-tracking", "--quiet", *grid, "--dataset", "gait3d-syn"]) == 0
    names = "gaitflow-casiab-syn, gaitflow-gait3d-syn, gaitflow-oumvlp-syn"
    assert capsys.readouterr().out == f"init-tracking: {uri} is ready (3 experiments: {names})\n"
    assert set(_experiments(uri)) == {"Default", *names.split(", ")}


def test_a_run_outside_the_grid_creates_its_experiment(project, store):
    """Runs on a dataset outside the grid, started at once by three processes on a store init-tracking
    made: the first to log creates the experiment, the others find it, and no run is lost."""
    assert "gaitflow-oumvlp-syn" not in _experiments(store)
    code = (
        "import sys\n"
        "from gaitflow.tracking import Tracker\n"
        "t = Tracker(sys.argv[1])\n"
        "t.start('oumvlp-syn', 'run-' + sys.argv[2], {'a': 1}, {})\n"
        "t.end()\n"
        "sys.exit(1 if t.failed or not t.run_id else 0)\n"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code, store, str(i)], stderr=subprocess.PIPE, text=True)
        for i in range(3)
    ]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    assert _experiments(store)["gaitflow-oumvlp-syn"] == ("active", 3)


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


def test_eight_concurrent_training_runs_lose_nothing(project, store):
    """Eight `gaitflow train` processes started at once on one fresh SQLite store (after init-tracking)
    each record their whole run: finished, every step of every metric, the params, the dataset
    input and the logged model. Runs of two iterations: the processes' start-up is most of the time."""
    from mlflow.entities import LoggedModelStatus
    from mlflow.tracking import MlflowClient

    for step in ("synth", "preprocess"):
        assert main([step, "--quiet", *SETS]) == 0
    short = [*SETS, "--set", "train.iterations=2", "--set", "train.milestones=[1]", "--set", "train.warmup=1"]
    gaitflow = str(Path(sys.executable).parent / "gaitflow")
    procs = [
        subprocess.Popen(
            [gaitflow, "train", "--quiet", "--backbone", "gaitset", "--recipe", "triplet", "--seed", str(seed), *short],
            cwd=project,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for seed in range(8)
    ]
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err
        assert "gaitflow: warning" not in err, err  # a tracking failure is a warning; the run still exits 0
    client = MlflowClient(store)
    exp = client.get_experiment_by_name("gaitflow-casiab-syn")
    runs = client.search_runs([exp.experiment_id])
    assert sorted(r.info.run_name for r in runs) == [f"gaitset-triplet-s{seed}" for seed in range(8)]
    keys = {k for k in runs[0].data.params}
    for seed in range(8):
        record = json.loads((project / f"models/casiab-syn/gaitset-triplet-s{seed}/mlflow.json").read_text())
        run = client.get_run(record["run_id"])
        assert run.info.status == "FINISHED"
        assert set(run.data.params) == keys and run.data.params["seed"] == str(seed)
        assert run.data.params["train.iterations"] == "2"
        trained = sorted(k for k in run.data.metrics if not k.startswith("system/"))
        assert {"total", "lr", "triplet"} <= set(trained)
        for key in trained:
            assert [m.step for m in client.get_metric_history(run.info.run_id, key)] == [1, 2], key
        [data] = run.inputs.dataset_inputs
        assert data.dataset.name == "casiab-syn" and [t.value for t in data.tags] == ["training"]
        model = client.get_logged_model(record["model_id"])
        assert model.source_run_id == run.info.run_id and model.status == LoggedModelStatus.READY
        assert [m.model_id for m in run.outputs.model_outputs] == [model.model_id]
        assert "MLmodel" in {a.path for a in client.list_logged_model_artifacts(model.model_id)}


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


# What the MLflow UI shows of a run: the experiment's kind, the dataset input, the source, system metrics.

# The training command of the module's run, as the gaitflow console script sees it; its --data (the default
# folder, named here) holds a "/", which MLflow's UI would cut a run's source at.
TRAIN_ARGV = ["train", "--quiet", "--backbone", "gaitset", "--recipe", "triplet", "--data", "data/processed/casiab-syn"]


def _monitors() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "SystemMetricsMonitor" and t.is_alive()]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tracked training run, started as `gaitflow train ...` from a shell starts it, with system
    metrics sampled every 0.05 s: the project folder, the store, and the run."""
    from mlflow.tracking import MlflowClient

    root = tmp_path_factory.mktemp("trained")
    shutil.copy(REPO / "params.yaml", root / "params.yaml")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        mp.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "0.05")
        for step in ("init-tracking", "synth", "preprocess"):
            assert main([step, *SETS] if step == "init-tracking" else [step, "--quiet", *SETS]) == 0
        mp.setattr(sys, "argv", [str(Path(sys.executable).parent / "gaitflow"), *TRAIN_ARGV, *SETS])
        assert main() == 0  # what the console script runs: the arguments come from sys.argv
    run_id = json.loads((root / "models/casiab-syn/gaitset-triplet-s0/mlflow.json").read_text())["run_id"]
    return root, uri, MlflowClient(uri).get_run(run_id)


def test_experiments_are_model_training_experiments(trained):
    from mlflow.tracking import MlflowClient

    _, uri, run = trained
    client = MlflowClient(uri)
    assert client.get_experiment(run.info.experiment_id).tags["mlflow.experimentKind"] == "custom_model_development"
    # init-tracking made the grid's experiment only; one outside the grid waits for its first run
    assert client.get_experiment_by_name("gaitflow-casia-b") is None
    # experiments that exist already: marked unless their kind was chosen (an inferred kind was not)
    client.create_experiment("gaitflow-plain")
    client.create_experiment("gaitflow-inferred", tags={"mlflow.experimentKind": "genai_development_inferred"})
    client.create_experiment("gaitflow-chosen", tags={"mlflow.experimentKind": "genai_development"})
    tracking.init_store(uri, ["gaitflow-plain", "gaitflow-inferred"])
    t = Tracker(uri)
    t.start("chosen", "r", {}, {})
    t.end()
    kinds = {
        n: client.get_experiment_by_name(f"gaitflow-{n}").tags["mlflow.experimentKind"]
        for n in ("plain", "inferred", "chosen")
    }
    assert kinds == {
        "plain": "custom_model_development",
        "inferred": "custom_model_development",
        "chosen": "genai_development",
    }


def test_a_training_run_lists_its_dataset_as_an_input(trained):
    from gaitflow.data.packed import INDEX_COLUMNS

    root, _, run = trained
    packed = root / "data/processed/casiab-syn"
    (entry,) = run.inputs.dataset_inputs
    ds = entry.dataset
    assert ds.name == "casiab-syn"
    assert ds.digest == tracking.data_version(packed) == run.data.tags["data_version"]
    assert ds.source_type == "local" and json.loads(ds.source) == {"uri": str(packed.resolve())}
    assert {t.key: t.value for t in entry.tags} == {"mlflow.data.context": "training"}
    # the index, one row per sequence, read from the index file only
    sequences = len((packed / "index.csv").read_text().splitlines()) - 1
    assert json.loads(ds.profile)["num_rows"] == sequences > 0
    assert [c["name"] for c in json.loads(ds.schema)["mlflow_colspec"]] == list(INDEX_COLUMNS)


def test_an_evaluation_in_its_own_run_lists_its_dataset_for_evaluation(trained, monkeypatch):
    from mlflow.tracking import MlflowClient

    root, uri, run = trained
    monkeypatch.chdir(root)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    untracked = root / "models/casiab-syn/untracked"  # a trained run that MLflow never saw
    shutil.copytree(
        root / "models/casiab-syn/gaitset-triplet-s0", untracked, ignore=shutil.ignore_patterns("mlflow.json")
    )
    argv = ["evaluate", "--quiet", "--backbone", "gaitset", "--recipe", "triplet", "--run", str(untracked)]
    assert main([*argv, "--out", str(root / "results/untracked/metrics.json"), *SETS]) == 0
    client = MlflowClient(uri)
    (own,) = client.search_runs([run.info.experiment_id], filter_string="tags.evaluated_only = 'true'")
    (entry,) = own.inputs.dataset_inputs
    assert (entry.dataset.name, entry.dataset.digest) == (
        "casiab-syn",
        tracking.data_version(root / "data/processed/casiab-syn"),
    )
    assert {t.key: t.value for t in entry.tags} == {"mlflow.data.context": "evaluation"}
    assert not [k for k in own.data.metrics if k.startswith("system/")]  # system metrics are for training runs


def test_the_source_of_a_run_is_its_gaitflow_command(trained):
    _, _, run = trained
    tags = run.data.tags
    # the command as typed, less the path (the UI shows a local source from its last "/" on)
    expected = ["gaitflow", "train", "--quiet", "--backbone", "gaitset", "--recipe", "triplet", *SETS]
    assert tags["mlflow.source.name"] == shlex.join(expected)
    assert tags["mlflow.source.type"] == "LOCAL"
    assert tags["command"] == shlex.join(["gaitflow", *TRAIN_ARGV, *SETS])  # the whole command line


def test_command_lines_and_the_sources_made_of_them():
    venv = "/home/me/.venv/bin"
    assert tracking.command_line([f"{venv}/gaitflow", "train", "--dataset", "x"]) == [
        "gaitflow",
        "train",
        "--dataset",
        "x",
    ]
    assert tracking.command_line(["/src/gaitflow/cli.py", "evaluate"]) == [
        "gaitflow",
        "evaluate",
    ]  # python -m gaitflow.cli
    assert tracking.command_line(["/lib/python3/site-packages/pytest/__main__.py", "-q"]) == ["pytest", "-q"]
    cmd = [
        "gaitflow",
        "train",
        "--params",
        "params.yaml",
        "--data",
        "data/processed/x",
        "--out=models/x/y",
        "--set",
        "tracking.uri=sqlite:////tmp/m.db",
        "--set",
        "train.p=2",
        "--set",
        "a={b: 1}",
        "--restart",
    ]
    assert tracking.source_name(cmd) == "gaitflow train --params params.yaml --set train.p=2 --set 'a={b: 1}' --restart"


def test_a_training_run_records_system_metrics_and_stops_sampling(trained):
    from mlflow.tracking import MlflowClient

    _, uri, run = trained
    system = {k for k in run.data.metrics if k.startswith("system/")}
    assert {"system/cpu_utilization_percentage", "system/system_memory_usage_megabytes"} <= system
    history = MlflowClient(uri).get_metric_history(run.info.run_id, "system/cpu_utilization_percentage")
    assert [m.step for m in history] == list(range(len(history)))  # one step per sample, from 0
    assert not _monitors()  # the sampling thread ended with the run


def test_system_metrics_cost_a_short_run_no_wait(trained, monkeypatch):
    """At the default interval a run shorter than it has no sample, and ending it does not wait for one."""
    from mlflow.tracking import MlflowClient

    _, uri, _ = trained
    monkeypatch.delenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", raising=False)
    t = Tracker(uri)
    t.start("casiab-syn", "short", {}, {})
    t.monitor_system()
    assert t.monitor is not None and t.monitor.sampling_interval == tracking.SYSTEM_METRICS_INTERVAL >= 5
    assert _monitors()
    t.end()
    assert not _monitors()  # the sampling thread is gone
    # ending did not wait for a sample: had it waited one interval, the run would hold one
    assert not [k for k in MlflowClient(uri).get_run(t.run_id).data.metrics if k.startswith("system/")]
