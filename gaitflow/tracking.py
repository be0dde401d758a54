"""The MLflow side channel.

Each train and evaluate call logs to the tracking URI (``MLFLOW_TRACKING_URI``
when set, else params ``tracking.uri``; by default a SQLite store in the
project, so ``mlflow ui`` shows it with no set-up). One experiment per dataset,
one run per ``<backbone>-<recipe>``; evaluate attaches its metrics to the
training run (its id is kept in the run folder, ``mlflow.json``).

A trained run's model can be logged as an MLflow logged model of its run
(:meth:`Tracker.log_model`): the ``mlflow ui`` lists it under the run, with a
signature (silhouettes ``[N, S, H, W]`` in, embeddings ``[N, P, C]`` out), an
input example, the library code it was built from, and optionally a version in
the model registry. Its id joins the run's in ``mlflow.json``, so evaluation
metrics can be logged against the model as well as the run
(``log_metrics(..., model_id=...)``).

``mlflow ui`` shows the runs as it shows other MLflow 3 training code: the experiments are
marked as model-training experiments (the ``mlflow.experimentKind`` tag), each
run names the gaitflow command that ran as its source (:func:`source_name`; the
whole command line is its ``command`` tag), lists the packed dataset it read
among its inputs (named after the dataset, the data version as
its digest, context ``training`` or ``evaluation``), and a training run records
system metrics (CPU, memory, disk, network, and GPUs where NVIDIA's library is
there) every ``SYSTEM_METRICS_INTERVAL`` seconds.

The files on disk stay the source of truth: when the store cannot be reached,
the run goes on, writes its files, and says so in one warning. A fresh SQLite
store must be initialised once before several processes write to it
(``gaitflow init-tracking``): concurrent first writers race on its schema.
MLflow is imported only here and only when used, so planning a DAG stays fast.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shlex
import subprocess
import sys
import warnings
from pathlib import Path
from urllib.parse import urlsplit

RUN_FILE = "mlflow.json"
EXAMPLE_FRAMES = 8  # frames of the logged model's input example
# The characters a logged model's name cannot hold (MLflow's rule), and what stands in for them.
_BAD_NAME_CHARS = "/:.%\"'"
# The experiment tag MLflow's UI reads for what an experiment is for, and the kind of gaitflow's.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"
# Seconds between two samples of a training run's system metrics (MLflow's own default); the
# environment variable MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL, when set, wins.
SYSTEM_METRICS_INTERVAL = 10.0
_TAG_CHARS = 8000  # the longest tag value MLflow keeps


# The user and password of a URI (``http://<user>:<password>@host``), which are never written.
_USERINFO = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^/@\s:]*):[^/@\s]*@")
# MLflow's permissions that let a user write runs into an experiment (``can_update``).
WRITE_PERMISSIONS = ("EDIT", "MANAGE")
CREDENTIALS = "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (or MLFLOW_TRACKING_TOKEN)"
CREDENTIALS_FILE = "~/.mlflow/credentials"  # MLflow's own file of them, read when the environment has none


def tracking_uri(params: dict) -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or params["tracking"]["uri"]


def redact(text: str) -> str:
    """``text`` with the password of every URI in it replaced by ``***``: a URI that carries its
    credentials (``http://alice:secret@host``) is shown and stored without them."""
    return _USERINFO.sub(r"\g<head>:***@", text)


def check_access(uri: str, experiment: str) -> None:
    """Refuse, before any work, a job whose writes a tracking server would refuse.

    A server started with MLflow's authentication (``mlflow server --app-name basic-auth``) answers
    every request of a client with no credentials, a wrong password or no permission with 401 or
    403; the run would then go on untracked, one warning in its log. Raises :class:`GaitflowError`
    in one line instead: no credentials in the environment (:data:`CREDENTIALS`), credentials the
    server refuses, or a user who may not write runs into ``experiment`` (EDIT or MANAGE). An
    experiment that does not exist yet is created, as the job's first run would. A local store, a
    server without authentication, and a server that cannot be reached pass (the latter is one
    warning later, and the run goes on)."""
    if not uri.startswith(("http://", "https://")):
        return
    _quiet_http()
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient
    from mlflow.utils.credentials import get_default_host_creds
    from mlflow.utils.rest_utils import http_request

    from gaitflow.errors import GaitflowError

    shown = redact(uri)
    creds = get_default_host_creds(uri)
    username = creds.username or urlsplit(uri).username
    try:
        who = http_request(creds, "/api/2.0/mlflow/users/current", "GET", max_retries=0)
    except Exception:  # noqa: BLE001 - unreachable: the tracker warns, the run goes on
        return
    if who.status_code == 404:  # a server without authentication
        return
    if who.status_code == 401:
        if not (username or creds.token):
            raise GaitflowError(
                f"the tracking server {shown} asks who you are: set {CREDENTIALS} in this job's environment "
                f"or in {CREDENTIALS_FILE}"
            )
        named = f"user {username!r}" if username else "the token in MLFLOW_TRACKING_TOKEN"
        raise GaitflowError(
            f"the tracking server {shown} refused the credentials of {named}: wrong password or no such "
            "user (MLFLOW_TRACKING_USERNAME, MLFLOW_TRACKING_PASSWORD)"
        )
    if who.status_code != 200:
        return
    user = who.json().get("user", {})
    if user.get("is_admin"):
        return
    name = user.get("username", username)
    client, step = MlflowClient(uri), "read"
    try:
        exp = client.get_experiment_by_name(experiment)
        step = "create"
        exp_id = exp.experiment_id if exp else client.create_experiment(experiment)
    except MlflowException as exc:
        if exc.get_http_status_code() != 403:
            return  # not a refusal: the tracker reports it
        ask = "grant you EDIT on it" if step == "read" else "create it and grant you EDIT"
        raise GaitflowError(
            f"user {name!r} may not {step} experiment {experiment!r} at {shown}: ask the server's admin to {ask}"
        ) from None
    perm = http_request(
        creds,
        "/api/3.0/mlflow/users/permissions/get",
        "GET",
        max_retries=0,
        params={"username": name, "resource_type": "experiment", "resource_id": exp_id},
    )
    granted = perm.json().get("permission", "NO_PERMISSIONS") if perm.status_code == 200 else None
    if granted is not None and granted not in WRITE_PERMISSIONS:
        raise GaitflowError(
            f"user {name!r} has {granted} permission on experiment {experiment!r} at {shown}; this job "
            "writes runs into it and needs EDIT: ask the server's admin to grant it"
        )


def _quiet_http() -> None:
    # A server that is down must cost seconds, not the client's default minutes of retries.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")


def experiment_name(dataset: str) -> str:
    return f"gaitflow-{dataset}"


def grid_experiments(params: dict) -> list[str]:
    """The experiments the grid's jobs log to: one per training dataset of the grid. A training run
    logs to its dataset's; its evaluations log into that run; an evaluation with no training run of
    its own (an imported model, on each dataset of the grid) starts one under the dataset it is run
    with, a dataset of the grid too."""
    return [experiment_name(d) for d in dict.fromkeys(params["grid"]["datasets"])]


def init_store(uri: str, experiments: list[str]) -> None:
    """Create the store's schema and the experiments once, before parallel writers.

    Parallel writers race on a fresh SQLite store's schema, not on an experiment: one that is not
    created here is created by the first run that logs to it (:meth:`Tracker.start`, through
    :func:`ensure_experiment`, which a concurrent creator cannot fail). MLflow's own experiment
    ``Default`` (id 0) stays: MLflow makes it in every store, and runs and traces logged with no
    experiment chosen go there (they fail once it is deleted)."""
    _quiet_http()
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    for name in experiments:
        ensure_experiment(client, name)


def ensure_experiment(client, name: str) -> str:
    """The id of experiment ``name``, created if need be, marked as a model-training experiment.

    An experiment that already exists is marked too, unless someone chose its kind (a kind the UI
    only inferred does not count as a choice)."""
    from mlflow.exceptions import MlflowException

    exp = client.get_experiment_by_name(name)
    if exp is None:
        try:
            return client.create_experiment(name, tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND})
        except MlflowException:  # created meanwhile by a concurrent writer
            exp = client.get_experiment_by_name(name)
            if exp is None:
                raise
    kind = exp.tags.get(EXPERIMENT_KIND_TAG, "")
    if not kind or "inferred" in kind:
        client.set_experiment_tag(exp.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
    return exp.experiment_id


def command_line(argv: list[str] | None = None) -> list[str]:
    """The command line of this process as it was typed: ``gaitflow train --dataset ...`` for the
    gaitflow command (or ``python -m gaitflow.cli``), else the program's name and its arguments."""
    argv = list(sys.argv if argv is None else argv) or [""]
    program = Path(argv[0])
    if program.name == "__main__.py":  # python -m <package>
        program = program.parent
    if program.stem == "gaitflow" or (program.name == "cli.py" and program.parent.name == "gaitflow"):
        name = "gaitflow"
    else:
        name = program.name or "python"
    return [name, *argv[1:]]


def source_name(command: list[str]) -> str:
    """A run's source as MLflow's UI can show it: the command line less the arguments that hold a
    ``/`` (paths and URIs: the options' values, with their options). The UI shows a local source's
    name from its last ``/`` on, as a file's base name; the whole command line is the ``command`` tag.
    gaitflow's commands take no positional arguments, so a ``/`` after an option is its value."""
    kept: list[str] = []
    for arg in command[1:]:
        if "/" not in arg:
            kept.append(arg)
        elif not arg.startswith("-") and kept and kept[-1].startswith("-") and "=" not in kept[-1]:
            kept.pop()  # the option whose value this is
    return shlex.join([command[0], *kept])


def dataset_input(name: str, data_dir: Path, version: str | None = None):
    """A packed dataset as an ``mlflow.data`` dataset, to log as a run's input: its index (one row
    per sequence: subject, type, view, condition, offset, frame count; the frames are not read)
    as a pandas dataset, named ``name``, with the data version (:func:`data_version`) as its digest
    and the packed folder as its source."""
    import mlflow.data
    import pandas as pd
    from mlflow.types import ColSpec, Schema

    from gaitflow.data import packed

    data_dir = Path(data_dir).resolve()
    index = pd.DataFrame(packed.read_index(data_dir / packed.INDEX_FILE))
    # Without MLflow's note that a local folder could be either of its two local sources (the same).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        ds = mlflow.data.from_pandas(index, source=str(data_dir), name=name, digest=version or data_version(data_dir))
    # The index's schema is known (names as strings, offsets and counts as int64): inferring it would
    # scan every row (2 s for OU-MVLP's 288,000 sequences).
    ds.schema = Schema([ColSpec("string" if i < 4 else "long", c) for i, c in enumerate(packed.INDEX_COLUMNS)])
    return ds


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
        self.model_id: str | None = None
        self.failed = False
        self.monitor = None  # the system metrics monitor of a training run
        self.attached = False

    def _unavailable(self, exc: Exception) -> None:
        self.failed = True
        print(
            f"gaitflow: warning: MLflow tracking at {redact(self.uri)} is unavailable ({_reason(exc)}); "
            "the run goes on and writes its files",
            file=sys.stderr,
        )

    def _guard(self, action, *args, **kwargs):
        if not self.enabled or self.failed:
            return None
        try:
            return action(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - any tracking failure must not stop the run
            self._unavailable(exc)
            return None

    def _client(self):
        if self.client is None:
            _quiet_http()
            from mlflow.tracking import MlflowClient

            self.client = MlflowClient(self.uri)
        return self.client

    def start(self, dataset: str, run_name: str, params: dict, tags: dict) -> str | None:
        """A new run in the dataset's experiment, its source the command line that runs."""

        def go():
            client = self._client()
            exp_id = ensure_experiment(client, experiment_name(dataset))
            run = client.create_run(exp_id, run_name=run_name, tags={**source_tags(tags), **tags})
            self.run_id = run.info.run_id
            items = list(flatten(params).items())
            from mlflow.entities import Param

            for i in range(0, len(items), 100):
                client.log_batch(self.run_id, params=[Param(k, redact(v)[:6000]) for k, v in items[i : i + 100]])
            return self.run_id

        return self._guard(go)

    def attach(self, run_id: str) -> None:
        self.run_id = run_id
        self.attached = True  # an earlier process's run: it may already hold this run's model

    def last_step(self, key: str = "total") -> int:
        """The last step of a metric this run holds (0: none), so a resumed run can send what a
        kill kept from reaching MLflow, and nothing twice."""
        if not (self.enabled and not self.failed and self.run_id):
            return 0
        steps = self._guard(lambda: [m.step for m in self._client().get_metric_history(self.run_id, key)])
        return max(steps or [0])

    def log_dataset(self, name: str, data_dir: Path, context: str) -> None:
        """The packed dataset in ``data_dir`` as an input of the run (see :func:`dataset_input`), used
        in ``context`` ("training", "evaluation"); the UI's Dataset column shows it. A folder that
        cannot be read as a packed dataset is one warning, and tracking goes on."""
        if not (self.enabled and not self.failed and self.run_id):
            return
        try:
            ds = dataset_input(name, data_dir)
        except Exception as exc:  # noqa: BLE001 - an unreadable index costs the input, not the run
            print(
                f"gaitflow: warning: the dataset {data_dir} is not logged to MLflow ({_reason(exc)})", file=sys.stderr
            )
            return

        def go():
            from mlflow.entities import DatasetInput, InputTag
            from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

            entry = DatasetInput(ds._to_mlflow_entity(), tags=[InputTag(MLFLOW_DATASET_CONTEXT, context)])
            for attempt in range(_CONFLICT_TRIES):
                try:
                    return self._client().log_inputs(self.run_id, datasets=[entry])
                except Exception as exc:
                    # Runs that log the same new dataset at once race to add it to the store: the later
                    # insert fails on the dataset's unique key, and its next try finds the dataset there.
                    if attempt + 1 == _CONFLICT_TRIES or not _unique_conflict(exc):
                        raise

        self._guard(go)

    def monitor_system(self, resume: bool = False) -> None:
        """Log the machine's system metrics to the run until :meth:`end`: CPU, memory, disk and network
        (psutil), and GPUs when NVIDIA's management library (nvidia-ml-py) finds any; MLflow's
        ``system/...`` metrics, as ``mlflow.start_run(log_system_metrics=True)`` logs them, one sample
        every ``SYSTEM_METRICS_INTERVAL`` seconds (a run shorter than that has none). ``resume``: the
        run's earlier process logged some already; the steps go on from there.
        ``MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING=false`` turns them off."""
        if not (self.enabled and not self.failed and self.run_id) or self.monitor is not None:
            return
        if os.environ.get("MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING", "").strip().lower() in ("false", "0"):
            return
        try:
            with _system_notices_off():
                from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

                monitor = SystemMetricsMonitor(
                    self.run_id, SYSTEM_METRICS_INTERVAL, resume_logging=resume, tracking_uri=self.uri
                )
                monitor.start()
        except Exception as exc:  # noqa: BLE001 - the run goes on without them (psutil missing, ...)
            print(f"gaitflow: warning: system metrics are not logged to MLflow ({_reason(exc)})", file=sys.stderr)
            return
        self.monitor = monitor

    def log_metrics(self, metrics: dict, step: int | None = None, model_id: str | None = None) -> None:
        """Numeric metrics of the run; with ``model_id`` (a logged model's id, see :meth:`log_model`) they
        are the model's metrics as well: the ``mlflow ui`` shows them on the model, and the run lists the
        model among its inputs when it is not one of its outputs (a model evaluated by another run)."""

        def go():
            import time

            from mlflow.entities import LoggedModelInput, Metric

            client = self._client()
            if model_id:
                run = client.get_run(self.run_id)
                linked = {m.model_id for m in (run.inputs.model_inputs if run.inputs else [])}
                linked |= {m.model_id for m in (run.outputs.model_outputs if run.outputs else [])}
                if model_id not in linked:
                    client.log_inputs(self.run_id, models=[LoggedModelInput(model_id)])
            now = int(time.time() * 1000)
            batch = [
                Metric(k, float(v), now, step or 0, model_id=model_id)
                for k, v in metrics.items()
                if isinstance(v, (int, float)) and k != "iteration"
            ]
            for i in range(0, len(batch), 1000):  # MLflow's limit per batch
                client.log_batch(self.run_id, metrics=batch[i : i + 1000])

        if self.run_id:
            self._guard(go)

    def set_tags(self, tags: dict) -> None:
        if self.run_id:
            self._guard(lambda: [self._client().set_tag(self.run_id, k, str(v)) for k, v in tags.items()])

    def log_artifact(self, path: Path, folder: str | None = None) -> None:
        if self.run_id and Path(path).exists():
            self._guard(lambda: self._client().log_artifact(self.run_id, str(path), folder))

    def end(self, status: str = "FINISHED") -> None:
        self._stop_monitor()
        if self.run_id:
            self._guard(lambda: self._client().set_terminated(self.run_id, status))

    def _stop_monitor(self) -> None:
        """Stop sampling system metrics and write the samples still queued (before the run ends)."""
        monitor, self.monitor = self.monitor, None
        if monitor is not None:
            with _system_notices_off():
                monitor.finish()

    def save(self, run_dir: Path) -> None:
        """Remember the run id in the run folder, for evaluate to attach to."""
        if self.run_id and not self.failed:
            record = {"tracking_uri": redact(self.uri), "run_id": self.run_id}
            (Path(run_dir) / RUN_FILE).write_text(json.dumps(record) + "\n")

    def log_model(self, run_dir: Path, register: str | None = None) -> str | None:
        """Log the trained model of ``run_dir`` as an MLflow logged model of this run; returns its id.

        The model is the run's backbone with its checkpoint's weights, on the CPU, wrapped so that its
        forward returns the embeddings ``[N, P, C]`` of silhouettes ``[N, S, H, W]`` (float32 in [0, 1],
        any N and S, the run's frame shape). It is logged with that signature, an input example of
        ``EXAMPLE_FRAMES`` frames, the gaitflow package it was built with (so ``mlflow.pytorch.load_model``
        needs no gaitflow install of its own) and tags naming the run and its checkpoint; the run's
        metrics at the checkpoint's iteration are attached to it. With ``register``, it also becomes
        the next version of that registered model. The id is kept in the run folder (``mlflow.json``),
        for evaluation to log its metrics against the model.

        A model that cannot be logged is one warning and None; when the store itself is unreachable,
        later calls are no-ops, as after any tracking failure.
        """
        if not self.enabled or self.failed or not self.run_id:
            return None
        run_dir = Path(run_dir)
        adopted = None
        if self.attached:  # a rerun after a kill while finishing: the model this run already logged
            try:
                adopted = self._adopt_model(run_dir)
            except Exception:  # noqa: BLE001 - none to adopt; logging it says what is wrong, if anything
                adopted = None
        if adopted:
            return adopted
        try:
            info = self._log_model(run_dir, register)
        except Exception as exc:  # noqa: BLE001 - a model that is not logged must not stop the run
            if not self._reachable():
                self._unavailable(exc)
                return None
            print(
                f"gaitflow: warning: the model of {run_dir} was not logged to MLflow at {redact(self.uri)} "
                f"({_reason(exc)}); the run goes on",
                file=sys.stderr,
            )
            return None
        self.model_id = info.model_id
        saved = saved_run(run_dir)
        if saved and saved.get("run_id") == self.run_id:
            record = {**saved, "model_id": info.model_id}
            if register:
                record["registered_model"] = {"name": register, "version": int(info.registered_model_version)}
            (run_dir / RUN_FILE).write_text(json.dumps(record) + "\n")
        return info.model_id

    def _adopt_model(self, run_dir: Path) -> str | None:
        """The model this run already logged from this checkpoint (a rerun after a kill while
        finishing): its id, kept in ``mlflow.json``, so a run never holds two copies of one model.
        A model the kill left half-logged (PENDING) is deleted; it is logged again."""
        from mlflow.entities import LoggedModelStatus

        from gaitflow.runs import CHECKPOINT

        client = self._client()
        sha = file_digest(run_dir / CHECKPOINT)
        experiment = client.get_run(self.run_id).info.experiment_id
        found = None
        for model in client.search_logged_models([experiment], filter_string=f"source_run_id = '{self.run_id}'"):
            if model.tags.get("checkpoint_sha256") != sha:
                continue
            if model.status == LoggedModelStatus.READY and found is None:
                found = model.model_id
            elif model.status != LoggedModelStatus.READY:
                client.delete_logged_model(model.model_id)
        if found:
            self.model_id = found
            saved = saved_run(run_dir)
            if saved and saved.get("run_id") == self.run_id and saved.get("model_id") != found:
                (run_dir / RUN_FILE).write_text(json.dumps({**saved, "model_id": found}) + "\n")
        return found

    def _log_model(self, run_dir: Path, register: str | None):
        import mlflow.pytorch
        import numpy as np
        import torch
        from mlflow.models import ModelSignature
        from mlflow.tracking._tracking_service.utils import _use_tracking_uri
        from mlflow.types import Schema, TensorSpec

        import gaitflow
        from gaitflow.runs import CHECKPOINT, load_run

        client = self._client()
        model, config = load_run(run_dir, "cpu")
        net = embedding_model_class()(model).eval()
        example = example_silhouettes(config["frame_shape"])
        with torch.no_grad():
            out = net(torch.from_numpy(example))
        f32 = np.dtype(np.float32)
        signature = ModelSignature(
            inputs=Schema([TensorSpec(f32, (-1, -1, *example.shape[2:]))]),
            outputs=Schema([TensorSpec(f32, (-1, *out.shape[1:]))]),
        )
        name = "".join("-" if c in _BAD_NAME_CHARS else c for c in f"{config['backbone']}-{config['recipe']}")
        tags = {
            "dataset": config["dataset"],
            "backbone": config["backbone"],
            "recipe": config["recipe"],
            "iteration": config["iteration"],
            "width": config["train"]["width"],
            "frame_shape": "x".join(map(str, config["frame_shape"])),
            "checkpoint_sha256": file_digest(run_dir / CHECKPOINT),
        }
        tags = {k: str(v) for k, v in tags.items()}
        # Created here, in the run's experiment: log_model without an active run would put it in
        # the default experiment; it carries the run's parameters, as log_model's own would.
        run = client.get_run(self.run_id)
        logged = client.create_logged_model(
            run.info.experiment_id, name=name, source_run_id=self.run_id, tags=tags, params=run.data.params
        )
        # MLflow's logging (and its SQL registry, to find the model) reads the global tracking URI.
        with _use_tracking_uri(self.uri), _pickle_notice_off():
            return mlflow.pytorch.log_model(
                net,
                name=name,
                model_id=logged.model_id,
                run_id=self.run_id,
                step=config["iteration"],
                signature=signature,
                input_example=example,
                # Pickled, with the package: torch.export (MLflow's "pt2" default) fixes the frame count
                # of some backbones (gaitpart) and cannot export others (gaitgl, mt3d: shapes that
                # depend on the sequence lengths).
                serialization_format="pickle",
                code_paths=[str(Path(gaitflow.__file__).parent)],
                # Given, not inferred: inference loads the model again in a subprocess (seconds).
                pip_requirements=_requirements(),
                tags=tags,  # the registered version's
                registered_model_name=register,
            )

    def _reachable(self) -> bool:
        try:
            self._client().get_run(self.run_id)
            return True
        except Exception:  # noqa: BLE001 - whatever the store raises, it is not reachable
            return False


def source_tags(tags: dict | None = None) -> dict[str, str]:
    """The source tags of a run that this process starts: MLflow's (the UI's Source: the gaitflow
    command that runs, see :func:`source_name`; a local source; the user; the git commit when
    ``tags`` know it, ``git_commit``) and ``command``, the whole command line."""
    import getpass

    from mlflow.utils.mlflow_tags import MLFLOW_GIT_COMMIT, MLFLOW_SOURCE_NAME, MLFLOW_SOURCE_TYPE, MLFLOW_USER

    command = command_line()
    out = {
        MLFLOW_SOURCE_NAME: redact(source_name(command))[:_TAG_CHARS],
        MLFLOW_SOURCE_TYPE: "LOCAL",
        "command": redact(shlex.join(command))[:_TAG_CHARS],
    }
    with contextlib.suppress(Exception):  # no user name to be had (no passwd entry, no USER)
        out[MLFLOW_USER] = getpass.getuser()
    commit = (tags or {}).get("git_commit")
    if commit and commit != "unknown":
        out[MLFLOW_GIT_COMMIT] = commit
    return out


@contextlib.contextmanager
def _system_notices_off():
    """Keep MLflow's notices that system metrics start, stop, or skip the GPUs off the terminal;
    its warnings still show."""
    logger = logging.getLogger("mlflow.system_metrics.system_metrics_monitor")
    level = logger.level
    logger.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        logger.setLevel(level)


def _requirements() -> list[str]:
    """What loading a logged model needs besides MLflow (which MLflow pins itself): torch, as PyPI
    names it (no local label such as +cpu), and cloudpickle, MLflow's pickler."""
    from importlib.metadata import version

    return [f"torch=={version('torch').split('+')[0]}", f"cloudpickle=={version('cloudpickle')}"]


def _reason(exc: Exception) -> str:
    return redact(str(exc).splitlines()[0][:200]) if str(exc) else type(exc).__name__


_CONFLICT_TRIES = 3  # tries of a store write that a concurrent writer can beat to a unique key


def _unique_conflict(exc: BaseException | None) -> bool:
    """Whether a store call failed on a unique key that a concurrent writer filled first: the SQL
    store's IntegrityError, raised here or named in a tracking server's error message."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if "IntegrityError" in type(exc).__name__ or "IntegrityError" in str(exc):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def example_silhouettes(frame_shape, frames: int = EXAMPLE_FRAMES):
    """A small silhouette batch ``[1, frames, H, W]`` (float32, 0 or 1): an upright ellipse that sways
    a little from frame to frame; the logged model's input example."""
    import numpy as np

    h, w = (int(v) for v in frame_shape)
    y, x = np.mgrid[:h, :w].astype(np.float32)
    clip = np.zeros((1, frames, h, w), np.float32)
    for t in range(frames):
        cx = w / 2 + (w / 16) * np.sin(2 * np.pi * t / frames)
        clip[0, t] = ((y - h / 2) / (0.42 * h)) ** 2 + ((x - cx) / (0.2 * w)) ** 2 <= 1
    return clip


def embedding_model_class():
    """``EmbeddingModel``: a gait model whose forward returns its embeddings ``[N, P, C]`` only, the
    one tensor MLflow's PyTorch flavour serves. Built on first use (it needs torch, which importing
    this module does not); pickled models find it as ``gaitflow.tracking.EmbeddingModel``."""
    cls = globals().get("EmbeddingModel")
    if cls is None:
        import torch

        class EmbeddingModel(torch.nn.Module):
            def __init__(self, model: torch.nn.Module):
                super().__init__()
                self.model = model

            def forward(self, sils: torch.Tensor) -> torch.Tensor:
                return self.model(sils).embeddings

        EmbeddingModel.__qualname__ = "EmbeddingModel"
        globals()["EmbeddingModel"] = cls = EmbeddingModel
    return cls


def __getattr__(name: str):
    if name == "EmbeddingModel":
        return embedding_model_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class _PickleNotice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Saving pytorch model by Pickle")


@contextlib.contextmanager
def _pickle_notice_off():
    """Drop MLflow's notice that a pickled model runs code when loaded: the pickle is the choice here."""
    logger, notice = logging.getLogger("mlflow.pytorch"), _PickleNotice()
    logger.addFilter(notice)
    try:
        yield
    finally:
        logger.removeFilter(notice)


def saved_run(run_dir: Path) -> dict | None:
    p = Path(run_dir) / RUN_FILE
    return json.loads(p.read_text()) if p.exists() else None
