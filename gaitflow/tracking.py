"""The MLflow side channel.

Each train and evaluate call logs to the tracking URI (``MLFLOW_TRACKING_URI``
when set, else params ``tracking.uri``; by default a SQLite store in the
project, so ``mlflow ui`` shows it with no set-up). One experiment per dataset,
one run per ``<backbone>-<recipe>``; evaluate attaches its metrics to the
training run (its id is kept in the run folder, ``mlflow.json``).

The files on disk stay the source of truth: when the store cannot be reached,
the run goes on, writes its files, and says so in one warning. A fresh SQLite
store must be initialised once before several processes write to it
(``gaitflow init-tracking``): concurrent first writers race on its schema.
MLflow is imported only here and only when used, so planning a DAG stays fast.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

RUN_FILE = "mlflow.json"


def tracking_uri(params: dict) -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or params["tracking"]["uri"]


def _quiet_http() -> None:
    # A server that is down must cost seconds, not the client's default minutes of retries.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")


def experiment_name(dataset: str) -> str:
    return f"gaitflow-{dataset}"


def init_store(uri: str, experiments: list[str]) -> None:
    """Create the store's schema and the experiments once, before parallel writers."""
    _quiet_http()
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    for name in experiments:
        if client.get_experiment_by_name(name) is None:
            client.create_experiment(name)


def flatten(d: dict, prefix: str = "") -> dict[str, str]:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = json.dumps(v) if isinstance(v, (list, tuple)) else str(v)
    return out


def git_state() -> dict[str, str]:
    """The commit and whether the working tree differs from it."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
        return {"git_commit": commit or "unknown", "git_dirty": str(bool(dirty)).lower()}
    except (OSError, subprocess.SubprocessError):
        return {"git_commit": "unknown", "git_dirty": "unknown"}


def file_digest(path: Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def data_version(data_dir: Path) -> str:
    """A short fingerprint of a packed dataset (its index, report and frame file size)."""
    from gaitflow.data import packed

    h = hashlib.sha256()
    for name in (packed.INDEX_FILE, packed.REPORT_FILE, packed.PARTITION_FILE):
        p = Path(data_dir) / name
        if p.exists():
            h.update(p.read_bytes())
    frames = Path(data_dir) / packed.FRAMES_FILE
    h.update(str(frames.stat().st_size if frames.exists() else 0).encode())
    return h.hexdigest()[:16]


class Tracker:
    """Logs one run; after the first failure every call is a no-op and one warning was printed."""

    def __init__(self, uri: str, enabled: bool = True):
        self.uri, self.enabled = uri, enabled
        self.client = None
        self.run_id: str | None = None
        self.failed = False

    def _guard(self, action, *args, **kwargs):
        if not self.enabled or self.failed:
            return None
        try:
            return action(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - any tracking failure must not stop the run
            self.failed = True
            reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
            print(
                f"gaitflow: warning: MLflow tracking at {self.uri} is unavailable ({reason}); "
                "the run goes on and writes its files",
                file=sys.stderr,
            )
            return None

    def _client(self):
        if self.client is None:
            _quiet_http()
            from mlflow.tracking import MlflowClient

            self.client = MlflowClient(self.uri)
        return self.client

    def start(self, dataset: str, run_name: str, params: dict, tags: dict) -> str | None:
        def go():
            client = self._client()
            exp = client.get_experiment_by_name(experiment_name(dataset))
            exp_id = exp.experiment_id if exp else client.create_experiment(experiment_name(dataset))
            run = client.create_run(exp_id, run_name=run_name, tags=tags)
            self.run_id = run.info.run_id
            items = list(flatten(params).items())
            from mlflow.entities import Param

            for i in range(0, len(items), 100):
                client.log_batch(self.run_id, params=[Param(k, v[:6000]) for k, v in items[i : i + 100]])
            return self.run_id

        return self._guard(go)

    def attach(self, run_id: str) -> None:
        self.run_id = run_id

    def log_metrics(self, metrics: dict, step: int | None = None) -> None:
        def go():
            import time

            from mlflow.entities import Metric

            now = int(time.time() * 1000)
            batch = [
                Metric(k, float(v), now, step or 0)
                for k, v in metrics.items()
                if isinstance(v, (int, float)) and k != "iteration"
            ]
            self._client().log_batch(self.run_id, metrics=batch)

        if self.run_id:
            self._guard(go)

    def set_tags(self, tags: dict) -> None:
        if self.run_id:
            self._guard(lambda: [self._client().set_tag(self.run_id, k, str(v)) for k, v in tags.items()])

    def log_artifact(self, path: Path, folder: str | None = None) -> None:
        if self.run_id and Path(path).exists():
            self._guard(lambda: self._client().log_artifact(self.run_id, str(path), folder))

    def end(self, status: str = "FINISHED") -> None:
        if self.run_id:
            self._guard(lambda: self._client().set_terminated(self.run_id, status))

    def save(self, run_dir: Path) -> None:
        """Remember the run id in the run folder, for evaluate to attach to."""
        if self.run_id and not self.failed:
            (Path(run_dir) / RUN_FILE).write_text(json.dumps({"tracking_uri": self.uri, "run_id": self.run_id}) + "\n")


def saved_run(run_dir: Path) -> dict | None:
    p = Path(run_dir) / RUN_FILE
    return json.loads(p.read_text()) if p.exists() else None
