"""Recording what Snakemake built in DVC's dvc.lock, so ``dvc status`` agrees with Snakemake.

``gaitflow record`` is the last step of the default DAG (the Snakefile's ``onsuccess``).
It commits every dvc.yaml stage whose outputs all exist, in one pass (see ``_commit_built``).
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

from gaitflow.errors import GaitflowError


def record(params_path: str, quiet: bool = False) -> int:
    """Commit every dvc.yaml stage whose outputs all exist: what Snakemake built, DVC now knows.

    DVC keeps dvc.lock in a git repository, or without one where it was set up so
    (``dvc init --no-scm``). Anywhere else nothing is recorded and one warning line says why
    and what to do; the outputs are built all the same, so the run that built them succeeds."""
    dvc_dir = Path(".dvc")
    if not Path("dvc.yaml").is_file():
        print("record: no dvc.yaml and .dvc/ here; nothing recorded")
        return 0
    import logging

    from dvc.config import Config
    from dvc.exceptions import DvcException
    from dvc.repo import Repo
    from dvc.scm import SCM, SCMError

    try:
        no_scm = dvc_dir.is_dir() and Config(dvc_dir=str(dvc_dir))["core"].get("no_scm", False)
    except DvcException as exc:
        raise GaitflowError(f"{dvc_dir / 'config'}: {exc}") from None
    if not no_scm:
        try:
            SCM(".").close()
        except SCMError:
            here = Path.cwd()
            if dvc_dir.is_dir():
                why = ".dvc/ was set up for one"
                fix = "run `dvc config core.no_scm true` (or `git init`) here"
            else:
                why = "DVC is not set up here"
                fix = "run `dvc init --no-scm` (or `git init && dvc init`) here"
            print(
                f"gaitflow record: warning: {here} is not in a git repository and {why}, so DVC cannot record; "
                f"nothing recorded in dvc.lock; to record the built stages, {fix} and rerun `gaitflow record`",
                file=sys.stderr,
            )
            return 0
    if not dvc_dir.is_dir():
        print("record: no dvc.yaml and .dvc/ here; nothing recorded")
        return 0
    if Path(params_path).resolve() != Path("params.yaml").resolve():
        print(f"record: dvc.yaml reads params.yaml, not {params_path}; nothing recorded in dvc.lock")
        return 0
    if quiet:
        logging.getLogger("dvc").setLevel(logging.WARNING)
    try:
        with Repo(".") as repo:
            stages = _commit_built(repo)
    except DvcException as exc:
        raise GaitflowError(f"dvc.yaml: recording the built stages failed: {exc}") from None
    print(f"record: {len(stages)} stages recorded in dvc.lock")
    return 0


@contextlib.contextmanager
def _params_parsed_once():
    """While it lasts, DVC parses each params file once, not three times for every stage that reads
    it (its hash, and twice for the run cache's key): 0.05 s each for params.yaml, 6 s on the
    default grid. A file that changes meanwhile (its size or time) is parsed again."""
    import copy
    import os

    from dvc.dependency import param

    load = getattr(param, "load_path", None)
    if load is None:  # not where this DVC reads params files: parse as DVC does
        yield
        return
    parsed: dict = {}

    def load_once(path, fs, **kwargs):
        try:
            st = os.stat(path)
        except OSError:  # not a local file: DVC reads it
            return load(path, fs, **kwargs)
        key = (path, st.st_size, st.st_mtime_ns, tuple(sorted(kwargs.items())))
        if key not in parsed:
            parsed[key] = load(path, fs, **kwargs)
        return copy.deepcopy(parsed[key])

    param.load_path = load_once
    try:
        yield
    finally:
        param.load_path = load


def _commit_built(repo) -> list:
    """``dvc commit --force`` of every stage whose outputs all exist, in one pass: what
    ``repo.commit(stage, force=True)`` does for each (hash its dependencies and outputs, store the
    outputs in the cache, and the run cache entry), with the stages read from dvc.yaml once and
    each dvc.lock written once. Committing stage by stage re-reads dvc.yaml and rewrites the whole
    dvc.lock per stage; on the default grid that is minutes of YAML parsing."""
    from dvc.repo import lock_repo

    with lock_repo(repo), _params_parsed_once():
        stages = [s for s in repo.index.stages if s.outs and all(o.exists for o in s.outs)]
        by_file: dict = {}
        for stage in stages:
            stage.save()
            stage.commit(relink=True)
            by_file.setdefault(stage.dvcfile.path, (stage.dvcfile, []))[1].append(stage)
        for dvcfile, done in by_file.values():
            if not _recorded_already(dvcfile, done):
                dvcfile.dump_stages(done, update_pipeline=False)
    return stages


def _recorded_already(dvcfile, stages) -> bool:
    """Whether a dvc.yaml's dvc.lock already holds these stages as they are now: then rewriting it
    would write the same bytes, after parsing it once more with its comments kept and dumping it
    (3 s on the default grid, against 1 s to read it)."""
    from dvc.dvcfile import ProjectFile
    from dvc.stage.serialize import to_lockfile

    if not isinstance(dvcfile, ProjectFile):
        return False
    recorded = dvcfile.lockfile_contents.get("stages") or {}
    return all(recorded.get(s.name) == to_lockfile(s)[s.name] for s in stages)
