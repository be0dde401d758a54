"""A shared tracking server with MLflow's authentication (``mlflow server --app-name basic-auth``),
real, on the loopback interface: jobs authenticate from the environment, the password is written
nowhere, and a job the server would refuse is refused in one line before any work."""

from __future__ import annotations

import contextlib
import io
import json
import secrets
import tempfile
import textwrap
from pathlib import Path

import pytest
from conftest import TRAIN_TINY, WORKFLOW_TINY, as_sets, make_workflow_project, mlflow_server, run

from gaitflow.cli import main

DATASET = "casiab-syn"
EXPERIMENT = f"gaitflow-{DATASET}"
# Each user's password is drawn per session: a fixed one could be in a file by chance.
USERS = {name: f"{name}-{secrets.token_hex(12)}" for name in ("alice", "bob", "carol")}
GRANTS = {"alice": "EDIT", "bob": "READ"}  # carol: none
ADMIN_PASSWORD = f"admin-{secrets.token_hex(12)}"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A basic-auth server set up as the README's recipe does: its own auth config (no permission
    by default), an admin password of our own, one user per researcher, a grant per experiment."""
    folder = tmp_path_factory.mktemp("server")
    (folder / "auth.ini").write_text(
        textwrap.dedent(
            f"""\
            [mlflow]
            default_permission = NO_PERMISSIONS
            database_uri = sqlite:///{folder / "auth.db"}
            admin_username = admin
            authorization_function = mlflow.server.auth:authenticate_request_basic_auth
            """
        )
    )
    env = {
        "MLFLOW_AUTH_CONFIG_PATH": str(folder / "auth.ini"),
        "MLFLOW_AUTH_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_hex(16),
    }
    with mlflow_server(folder, "--app-name", "basic-auth", env=env) as uri:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("MLFLOW_TRACKING_USERNAME", "admin")
            mp.setenv("MLFLOW_TRACKING_PASSWORD", ADMIN_PASSWORD)
            from mlflow.server import get_app_client
            from mlflow.tracking import MlflowClient

            auth = get_app_client("basic-auth", tracking_uri=uri)
            for name, password in USERS.items():
                auth.create_user(name, password)
            params = str(Path(__file__).resolve().parents[1] / "params.yaml")
            mp.setenv("MLFLOW_TRACKING_URI", uri)
            assert main(["init-tracking", "--params", params]) == 0  # the grid's experiments, by the admin
            experiment = MlflowClient(uri).get_experiment_by_name(EXPERIMENT).experiment_id
            for name, permission in GRANTS.items():
                auth.grant_user_permission(name, "experiment", experiment, permission)
        yield uri, folder


def _as(monkeypatch, uri: str, user: str | None, password: str | None = None, home: Path | None = None) -> None:
    """This process as ``user`` of the server at ``uri``; ``home``: where ~/.mlflow/credentials is
    looked for (by default a folder that has none)."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("HOME", str(home or Path(tempfile.gettempdir()) / "gaitflow-no-credentials"))
    for key, value in (("MLFLOW_TRACKING_USERNAME", user), ("MLFLOW_TRACKING_PASSWORD", password)):
        if value is None:
            monkeypatch.delenv(key, raising=False)
        else:
            monkeypatch.setenv(key, value)
    monkeypatch.delenv("MLFLOW_TRACKING_TOKEN", raising=False)


def _cli(*argv: str) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, err.getvalue()


def _files(*roots: Path):
    for root in roots:
        yield from (f for f in root.rglob("*") if f.is_file())


def _holding(secret: str, *roots: Path) -> list[str]:
    needle = secret.encode()
    return [str(f) for f in _files(*roots) if needle in f.read_bytes()]


@pytest.fixture(scope="module")
def grid(server, tmp_path_factory):
    """The workflow run against the server as alice, then its HTML report built."""
    uri, _ = server
    root = make_workflow_project(
        tmp_path_factory.mktemp("grid") / "project",
        WORKFLOW_TINY + ["grid.backbones=[gaitpart]", "grid.recipes=[triplet]"],
    )
    env = {"MLFLOW_TRACKING_URI": uri, "MLFLOW_TRACKING_USERNAME": "alice", "MLFLOW_TRACKING_PASSWORD": USERS["alice"]}
    run("snakemake --cores 2", root, env=env)
    run("snakemake --report report.html", root, env=env)
    return root


def test_a_grid_logs_to_an_authenticating_server_as_its_user(server, grid, monkeypatch):
    uri, _ = server
    _as(monkeypatch, uri, "alice", USERS["alice"])
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    (r,) = client.search_runs([client.get_experiment_by_name(EXPERIMENT).experiment_id])
    assert r.info.run_name == "gaitpart-triplet-s0" and r.info.status == "FINISHED"
    assert f"{DATASET}/rank1/NM" in r.data.metrics and "loss_curve.png" in {
        a.path for a in client.list_artifacts(r.info.run_id)
    }
    assert client.search_logged_models([r.info.experiment_id])  # the logged model went through the proxy too
    assert not (grid / "mlflow.db").exists()


def test_the_password_is_in_no_file_the_grid_or_the_server_wrote(server, grid):
    _, folder = server
    produced = list(_files(grid))
    names = {str(f.relative_to(grid)) for f in produced}
    # what is searched: the project's every file (logs, models, results, dvc.lock, the report,
    # Snakemake's own logs) and the server's (tracking store, artifacts, user database)
    assert {"dvc.lock", "report.html", f"results/{DATASET}/gaitpart-triplet-s0/metrics.json"} <= names
    assert any(n.startswith(".snakemake/log/") for n in names) and any(n.startswith("logs/train/") for n in names)
    assert (folder / "server.db").exists() and any((folder / "artifacts").rglob("*.png"))
    run_id = json.loads((grid / f"models/{DATASET}/gaitpart-triplet-s0/mlflow.json").read_text())["run_id"]
    assert _holding(run_id, folder), "the search does not reach the tracking store"
    for secret in (USERS["alice"], ADMIN_PASSWORD):
        assert _holding(secret, grid, folder) == []
    assert len(produced) > 50  # a real search, not an empty folder


def test_a_password_in_the_uri_is_used_but_never_written(server, project, monkeypatch):
    uri, folder = server
    password = USERS["alice"]
    _as(monkeypatch, uri.replace("http://", f"http://alice:{password}@"), None)
    sets = as_sets([*TRAIN_TINY, "tracking.enabled=true"])
    assert main(["synth", "--quiet", *sets]) == 0 and main(["preprocess", "--quiet", *sets]) == 0
    out = project / "models" / "uri"
    assert main(["train", "--quiet", "--backbone", "gaitset", "--recipe", "triplet", "--out", str(out), *sets]) == 0
    saved = json.loads((out / "mlflow.json").read_text())
    assert saved["tracking_uri"] == uri.replace("http://", "http://alice:***@")
    _as(monkeypatch, uri, "alice", password)
    from mlflow.tracking import MlflowClient

    r = MlflowClient(uri).get_run(saved["run_id"])
    assert r.info.status == "FINISHED"
    assert password not in json.dumps([r.data.params, r.data.tags])
    assert _holding(password, project, folder) == []


REFUSALS = {
    "no credentials": (None, None, "asks who you are: set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD"),
    "wrong password": ("alice", "not-" + USERS["alice"], "refused the credentials of user 'alice': wrong password"),
    "read permission only": ("bob", USERS["bob"], f"user 'bob' has READ permission on experiment '{EXPERIMENT}'"),
    "no permission": ("carol", USERS["carol"], f"user 'carol' may not read experiment '{EXPERIMENT}'"),
}


@pytest.fixture(scope="module")
def packed(tmp_path_factory):
    """The tiny dataset, drawn and packed once, and a run trained on it without tracking."""
    import os

    root = tmp_path_factory.mktemp("packed")
    here = os.getcwd()
    (root / "params.yaml").write_text((Path(__file__).resolve().parents[1] / "params.yaml").read_text())
    os.chdir(root)
    try:
        sets = as_sets(TRAIN_TINY)
        assert main(["synth", "--quiet", *sets]) == 0 and main(["preprocess", "--quiet", *sets]) == 0
        assert main(["train", "--quiet", "--backbone", "gaitset", "--recipe", "triplet", *sets]) == 0
    finally:
        os.chdir(here)
    return root


@pytest.mark.parametrize("case", list(REFUSALS))
def test_a_job_the_server_would_refuse_is_refused_in_one_line_before_any_work(case, server, packed, monkeypatch):
    uri, _ = server
    user, password, expected = REFUSALS[case]
    _as(monkeypatch, uri, user, password)
    monkeypatch.chdir(packed)
    sets = as_sets([*TRAIN_TINY, "tracking.enabled=true"])
    out, work = packed / "models" / case, packed / "work" / case
    train = ["train", "--quiet", "--backbone", "gaitset", "--recipe", "triplet", "--out", str(out), "--work", str(work)]
    code, err = _cli(*train, *sets)
    assert code == 2 and err.count("\n") == 1 and err.startswith("gaitflow train: error: "), err
    assert expected in err and "Traceback" not in err
    assert not out.exists() and not work.exists()  # nothing trained, nothing left
    metrics = packed / "results" / case / "metrics.json"
    evaluate = ["evaluate", "--quiet", "--backbone", "gaitset", "--recipe", "triplet", "--out", str(metrics)]
    code, err = _cli(*evaluate, *sets)
    assert code == 2 and err.count("\n") == 1 and err.startswith("gaitflow evaluate: error: ") and expected in err
    assert not metrics.parent.exists()  # refused before the evaluation
    code, err = _cli("init-tracking", *sets)
    assert code == 2 and err.startswith("gaitflow init-tracking: error: ") and expected in err


def test_the_credentials_file_is_read_when_the_environment_has_none(server, tmp_path, monkeypatch):
    from gaitflow.errors import GaitflowError
    from gaitflow.tracking import check_access

    uri, _ = server
    _as(monkeypatch, uri, None, home=tmp_path)
    with pytest.raises(GaitflowError, match="asks who you are"):
        check_access(uri, EXPERIMENT)
    (tmp_path / ".mlflow").mkdir()
    (tmp_path / ".mlflow" / "credentials").write_text(
        f"[mlflow]\nmlflow_tracking_username = alice\nmlflow_tracking_password = {USERS['alice']}\n"
    )
    check_access(uri, EXPERIMENT)  # alice, EDIT: passes
    (tmp_path / ".mlflow" / "credentials").write_text(
        f"[mlflow]\nmlflow_tracking_username = bob\nmlflow_tracking_password = {USERS['bob']}\n"
    )
    with pytest.raises(GaitflowError, match="'bob' has READ permission"):
        check_access(uri, EXPERIMENT)


def test_a_store_without_authentication_passes_the_check(tmp_path):
    from gaitflow.tracking import check_access, redact

    check_access(f"sqlite:///{tmp_path / 'mlflow.db'}", EXPERIMENT)  # a local store: nothing asked
    check_access("http://127.0.0.1:9", EXPERIMENT)  # nothing listening: the tracker warns later
    assert not (tmp_path / "mlflow.db").exists()
    assert (
        redact("see http://alice:s3cret@host:5000/x and https://h/y")
        == "see http://alice:***@host:5000/x and https://h/y"
    )
