"""Shared fixtures: the repository's own params.yaml, shrunk to a tiny synthetic dataset."""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

try:  # Hypothesis keeps caches under .hypothesis/ of the working directory: kept out of the repository
    import tempfile

    from hypothesis.configuration import set_hypothesis_home_dir

    set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "gaitflow-hypothesis")
except ImportError:  # pragma: no cover - hypothesis is a dev dependency
    pass

# A dataset small enough to draw, pack and evaluate in about a second.
TINY = [
    "datasets.casiab-syn.synth.ids=4",
    "datasets.casiab-syn.synth.conditions={nm: 6, bg: 2, cl: 2}",
    "datasets.casiab-syn.synth.views=[0, 90, 180]",
    "datasets.casiab-syn.synth.frames=8",
    "datasets.casiab-syn.synth.width=160",
    "datasets.casiab-syn.synth.height=120",
    "preprocess.img_size=32",
    "synth.workers=1",
    "preprocess.workers=1",
]


# One tiny training run: a few iterations of a narrow model on the tiny dataset, no tracking.
TRAIN_TINY = TINY + [
    "datasets.casiab-syn.synth.ids=6",
    "train.p=2",
    "train.k=2",
    "train.frames=4",
    "train.iterations=4",
    "train.width=0.25",
    "train.log_every=1",
    "train.warmup=1",
    "train.milestones=[3]",
    "train.threads=1",
    "tracking.enabled=false",
]


def as_sets(overrides) -> list[str]:
    """Overrides as command-line arguments: --set a=b --set c=d ..."""
    return [arg for item in overrides for arg in ("--set", item)]


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A scratch project folder holding a copy of params.yaml; the working directory is set to it."""
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def tiny_params(project):
    from gaitflow.config import load_params

    return load_params(project / "params.yaml", TINY)


@pytest.fixture(scope="session")
def tiny_archive(tmp_path_factory):
    """The tiny synthetic dataset as a zip (drawn once per test session)."""
    from gaitflow.config import load_params
    from gaitflow.data.synth import synthesize

    params = load_params(REPO / "params.yaml", TINY)
    out = tmp_path_factory.mktemp("raw") / "tiny.zip"
    synthesize(params["datasets"]["casiab-syn"], params["seed"], out, "zip", workers=1, progress=False)
    return out


# A grid small enough to run end to end (real Snakemake, DVC, MLflow) in well under a minute.
WORKFLOW_TINY = TINY + [
    "datasets.casiab-syn.synth.ids=6",
    "train.p=2",
    "train.k=2",
    "train.frames=4",
    "train.iterations=4",
    "train.width=0.25",
    "train.checkpoint_every=2",
    "train.log_every=1",
    "train.warmup=1",
    "train.milestones=[3]",
    "grid.backbones=[gaitpart, gaitset]",
    "grid.recipes=[triplet, circle+waveloss]",
]


def run(cmd, cwd, env=None, check=True):
    """Run a command line in a project; on failure show its output."""
    import os
    import subprocess
    import sys

    # the interpreter's own bin folder first, so snakemake, dvc and gaitflow are the installed ones
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    proc = subprocess.run(
        cmd,
        cwd=cwd,
        shell=isinstance(cmd, str),
        capture_output=True,
        text=True,
        env={**os.environ, "PATH": path, **(env or {})},
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"{cmd} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def make_workflow_project(root: Path, overrides=WORKFLOW_TINY) -> Path:
    """A git + DVC project holding the repository's workflow and library and a tiny params.yaml."""
    import yaml

    from gaitflow.config import load_params

    root.mkdir(parents=True, exist_ok=True)
    for name in ("Snakefile", "dvc.yaml", ".dvcignore", ".gitignore"):
        shutil.copy(REPO / name, root / name)
    for name in ("workflow", "gaitflow"):
        shutil.copytree(REPO / name, root / name, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
    params = load_params(REPO / "params.yaml", overrides, sweeps=False)  # as written: sweeps unexpanded
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run("git init -q && dvc init -q && git add -A && git -c user.name=t -c user.email=t@t commit -qm init", root)
    return root


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def mlflow_server(folder: Path, *extra: str, env: dict | None = None, timeout: float = 90):
    """A real `mlflow server` on the loopback interface, its store and artifacts in ``folder``;
    yields its URI. ``extra``: more options (``--app-name basic-auth``), ``env``: its environment's
    additions. The caller's MLFLOW_TRACKING_* settings are not passed on."""
    import os
    import socket
    import subprocess
    import sys
    import time

    port = free_port()
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_TRACKING_")}
    server = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "mlflow"),
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--backend-store-uri",
            f"sqlite:///{folder / 'server.db'}",
            "--artifacts-destination",
            str(folder / "artifacts"),
            "--workers",
            "1",
            *extra,
        ],
        cwd=folder,
        env={**clean, **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=open(folder / "server.log", "wb"),  # noqa: SIM115 - kept for the server's lifetime
    )
    try:
        deadline = time.time() + timeout
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if server.poll() is not None or time.time() > deadline:
                    log = (folder / "server.log").read_text()[-2000:]
                    raise AssertionError(f"mlflow server did not start: {log}") from None
                time.sleep(0.5)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=30)
