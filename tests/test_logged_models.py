"""A trained run's model as an MLflow logged model: linked to its run, loadable, registrable, and the
target of evaluation metrics; a real SQLite store and a real unreachable server."""

import json
import subprocess
import sys

import pytest
import torch
import yaml
from conftest import REPO

from gaitflow.models import create_model
from gaitflow.runs import CHECKPOINT, CONFIG, load_run
from gaitflow.tracking import RUN_FILE, Tracker, example_silhouettes

FRAME_SHAPE = (32, 22)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One store for the module (creating a SQLite store's schema takes seconds), its artifacts beside it."""
    from mlflow.tracking import MlflowClient

    root = tmp_path_factory.mktemp("store")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    MlflowClient(uri).create_experiment("gaitflow-casiab-syn", artifact_location=str(root / "artifacts"))
    return uri


@pytest.fixture
def run_dir(tmp_path):
    """A run folder as training leaves it: a narrow gaitset's checkpoint after 2 iterations, its config."""
    model = create_model("gaitset", frame_shape=FRAME_SHAPE, width=0.25, num_classes=4)
    out = tmp_path / "gaitset-triplet"
    out.mkdir()
    torch.save({"model": model.state_dict(), "iteration": 2}, out / CHECKPOINT)
    config = {
        "dataset": "casiab-syn",
        "backbone": "gaitset",
        "recipe": "triplet",
        "train": {"width": 0.25},
        "backbone_params": {},
        "subjects": ["001", "002", "003", "004"],
        "frame_shape": list(FRAME_SHAPE),
    }
    (out / CONFIG).write_text(yaml.safe_dump(config))
    return out


def tracked(uri, run_dir):
    """A training run in the store, with its loss logged at the last iteration and its id in the folder."""
    t = Tracker(uri)
    t.start("casiab-syn", "gaitset-triplet", {"train": {"width": 0.25}}, {"backbone": "gaitset"})
    t.log_metrics({"total": 0.5, "iteration": 2}, 2)
    t.save(run_dir)
    return t


def test_the_model_is_logged_for_its_run_and_loads_back(store, run_dir, monkeypatch):
    import mlflow.pytorch
    from mlflow.entities import LoggedModelStatus
    from mlflow.models import Model
    from mlflow.tracking import MlflowClient

    t = tracked(store, run_dir)
    model_id = t.log_model(run_dir)
    t.end()
    assert model_id and not t.failed and t.model_id == model_id
    client = MlflowClient(store)
    run = client.get_run(t.run_id)
    assert [m.model_id for m in run.outputs.model_outputs] == [model_id]
    assert run.outputs.model_outputs[0].step == 2
    found = client.search_logged_models([run.info.experiment_id], filter_string=f"source_run_id = '{t.run_id}'")
    assert [m.model_id for m in found] == [model_id]  # in the run's experiment, not the default one
    logged = found[0]
    assert logged.name == "gaitset-triplet" and logged.status == LoggedModelStatus.READY
    assert logged.tags["checkpoint_sha256"] and logged.tags["iteration"] == "2"
    assert logged.params["train.width"] == "0.25"
    assert [(m.key, m.value, m.step) for m in logged.metrics] == [("total", 0.5, 2)]  # training's last loss
    assert json.loads((run_dir / RUN_FILE).read_text())["model_id"] == model_id

    eager, _ = load_run(run_dir)
    x = torch.rand(3, 5, *FRAME_SHAPE)  # any batch and sequence length
    with torch.no_grad():
        expected = eager(x).embeddings
    monkeypatch.setattr(sys, "path", list(sys.path))  # loading puts the model's gaitflow copy first
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    mlmodel = Model.load(f"models:/{model_id}")
    example = mlmodel.load_input_example(mlflow.artifacts.download_artifacts(f"models:/{model_id}"))
    loaded = mlflow.pytorch.load_model(f"models:/{model_id}")
    (inputs,), (outputs,) = mlmodel.signature.inputs.inputs, mlmodel.signature.outputs.inputs
    assert inputs.shape == (-1, -1, *FRAME_SHAPE) and str(inputs.type) == "float32"
    assert outputs.shape == (-1, *expected.shape[1:])
    assert example.shape == (1, 8, *FRAME_SHAPE) and (example == example_silhouettes(FRAME_SHAPE)).all()
    with torch.no_grad():
        assert torch.equal(loaded(x), expected)
        assert loaded(torch.from_numpy(example)).shape == (1, *expected.shape[1:])


def test_register_makes_the_first_version(store, run_dir):
    from mlflow.tracking import MlflowClient

    t = tracked(store, run_dir)
    model_id = t.log_model(run_dir, register="gaitflow-gaitset")
    t.end()
    versions = MlflowClient(store, registry_uri=store).search_model_versions("name = 'gaitflow-gaitset'")
    assert [(int(v.version), v.source, v.run_id) for v in versions] == [(1, f"models:/{model_id}", t.run_id)]
    assert versions[0].tags["backbone"] == "gaitset"
    saved = json.loads((run_dir / RUN_FILE).read_text())
    assert saved["registered_model"] == {"name": "gaitflow-gaitset", "version": 1}


def test_evaluation_metrics_land_on_the_model(store, run_dir):
    from mlflow.tracking import MlflowClient

    t = tracked(store, run_dir)
    model_id = t.log_model(run_dir)
    t.log_metrics({"casiab-syn/rank1/NM": 0.9, "casiab-syn/retrieval/mAP": 0.7}, model_id=model_id)
    t.end()
    client = MlflowClient(store)
    on_model = {m.key: m.value for m in client.get_logged_model(model_id).metrics}
    assert on_model == {"total": 0.5, "casiab-syn/rank1/NM": 0.9, "casiab-syn/retrieval/mAP": 0.7}
    assert client.get_run(t.run_id).data.metrics["casiab-syn/rank1/NM"] == 0.9  # still the run's too
    assert not client.get_run(t.run_id).inputs.model_inputs  # already the run's output

    # evaluated by a run of its own: that run lists the model among its inputs
    other = Tracker(store)
    other.start("casiab-syn", "gaitset-triplet", {}, {"evaluated_only": "true"})
    other.log_metrics({"oumvlp/rank1": 0.4}, model_id=model_id)
    other.end()
    assert [m.model_id for m in client.get_run(other.run_id).inputs.model_inputs] == [model_id]
    assert {m.key for m in client.get_logged_model(model_id).metrics} >= {"oumvlp/rank1"}


def test_a_model_that_cannot_be_logged_is_one_warning_and_the_run_goes_on(store, run_dir, capsys):
    from mlflow.tracking import MlflowClient

    t = tracked(store, run_dir)
    (run_dir / CHECKPOINT).unlink()
    assert t.log_model(run_dir) is None
    t.end()
    err = capsys.readouterr().err
    assert err.count("warning:") == 1 and f"the model of {run_dir} was not logged" in err
    assert MlflowClient(store).get_run(t.run_id).info.status == "FINISHED"  # the tracker still works
    assert "model_id" not in json.loads((run_dir / RUN_FILE).read_text())


def test_unreachable_store_warns_once(run_dir, monkeypatch, capsys):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    t = Tracker("http://127.0.0.1:9")
    t.attach("0" * 32)  # a run id remembered from an earlier, reachable session
    assert t.log_model(run_dir, register="gaitflow-gaitset") is None
    t.log_metrics({"casiab-syn/rank1/NM": 0.9}, model_id="m-0")
    t.end()
    err = capsys.readouterr().err
    assert err.count("warning:") == 1 and "MLflow tracking at http://127.0.0.1:9 is unavailable" in err
    assert t.failed and not (run_dir / RUN_FILE).exists()


def test_disabled_tracking_logs_no_model(run_dir):
    assert Tracker("sqlite:///nowhere/at/all.db", enabled=False).log_model(run_dir) is None


def test_importing_tracking_stays_light():
    """Torch and MLflow come when something is logged, not with the module."""
    code = "import sys, gaitflow.tracking; assert not {'torch', 'mlflow'} & set(sys.modules), 'imported'"
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)
