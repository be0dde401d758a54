# Shared by every rule: the params file, its validation, the grid and the
# device each job runs on. Planning the DAG imports nothing heavy: gaitflow's
# workflow and devices modules only read files.
import math
import os
import re

import yaml
from snakemake.exceptions import WorkflowError
from snakemake.io import IOFile
from snakemake.utils import min_version

from gaitflow import workflow as gw
from gaitflow.config import validate as validate_params
from gaitflow.devices import visible_gpus
from gaitflow.errors import GaitflowError
from gaitflow.sweeps import expand as expand_sweeps

min_version("9.0")


configfile: "params.yaml"


# params.yaml is the config. `--configfile other.yaml` replaces it as a whole
# (a merge would mix two experiments); every CLI call reads the same file.
PARAMS = os.path.relpath(workflow.overwrite_configfiles[-1]) if workflow.overwrite_configfiles else "params.yaml"


class Untracked:
    """A value a command gets but Snakemake does not record as a param (it records only builtin
    values): the params file's *path*. What a job reads from the file is in its `settings` and
    `identity` params, so a profile that changes one recipe reruns that recipe's jobs, not every
    job because the path differs."""

    def __init__(self, value: str):
        self.value = value

    def __str__(self) -> str:
        return self.value


PARAMS_FILE = Untracked(PARAMS)
if workflow.config_settings.config:
    raise WorkflowError(
        "--config: gaitflow steps read their params file, so values given on the command line "
        "would not reach them; edit params.yaml or pass --configfile <params file>"
    )
if workflow.overwrite_configfiles:
    with open(PARAMS) as fh:
        config.clear()
        config.update(yaml.safe_load(fh) or {})
try:
    # the JSON Schema 2020-12 in workflow/schemas/params.schema.yaml, then the cross-references
    validate_params(config, PARAMS)
    config.update(expand_sweeps(config, PARAMS))  # each sweep's values become recipes of the grid
except GaitflowError as exc:
    raise WorkflowError(str(exc)) from None

GRID = config["grid"]
RUNS = gw.runs(config)
IMPORTED = gw.imported(config)
# Training and evaluation ask for a GPU each unless train.device is cpu: a
# counter for `--resources gpu=N` on a GPU machine (the CLI pins every job to
# a device of its own, gaitflow/devices.py), `sbatch --gpus=1` on a SLURM
# cluster, whose login node, where the jobs are planned, often has no GPU.
GPU = 1 if config["train"]["device"] != "cpu" else 0
MODEL_THREADS = 4 if GPU and visible_gpus() else 1  # CPU: one thread per job, jobs in parallel

# SLURM requests (workflow/profiles/slurm; local runs ignore them), from the
# params, for training and evaluation:
# - CPUs: train.threads, else what MODEL_THREADS will be on the node;
# - training's time limit: train.iterations x SECONDS_PER_ITERATION x SAFETY,
#   plus STARTUP_MINUTES (imports, data, MLflow);
# - memory: PEAK_MEMORY_MB x SAFETY, plus CUDA_HOST_MB on a GPU job (host
#   memory of the CUDA libraries; an allowance, not measured).
# Measured on one CPU core with the default params: the slowest run of the
# default grid (mt3d triplet) trains 400 iterations in 84 s, startup included;
# the largest peak resident memory is 680 MB (training; evaluation 550 MB). For
# other params or GPUs, measure (train.log has iterations_per_second) and
# change the figures here.
SECONDS_PER_ITERATION = 0.21
PEAK_MEMORY_MB = 700
SAFETY = 3
STARTUP_MINUTES = 5
CUDA_HOST_MB = 3000
SLURM_CPUS = config["train"]["threads"] or (4 if GPU else 1)
TRAIN_MINUTES = math.ceil(config["train"]["iterations"] * SECONDS_PER_ITERATION * SAFETY / 60) + STARTUP_MINUTES
SLURM_MEM_MB = PEAK_MEMORY_MB * SAFETY + (CUDA_HOST_MB if GPU else 0)


wildcard_constraints:
    dataset="|".join(map(re.escape, config["datasets"])),
    backbone="|".join(map(re.escape, config["backbones"])),
    recipe="|".join(map(re.escape, config["recipes"])),
    seed=r"\d+",
    name="|".join(map(re.escape, config["imported"])) or "(?!)",


def settings(step):
    """The params sections a step reads (Snakemake reruns its jobs when they change)."""
    return lambda wc: gw.step_params(config, step, **wc)


def identity(step):
    """A digest of a job's settings, library code and everything upstream (gaitflow.workflow.identity)."""
    return lambda wc: gw.identity(config, step, **wc)


def produced(pattern, step, each=None):
    """An input made by an upstream step, read as ancient() unless that step has changed.

    File times say nothing here: `dvc checkout` and `dvc pull` rewrite them. So
    an input is ancient (its time is ignored) while the job that made it is
    still current. When it is missing, or Snakemake's own record shows that it
    was made with another identity (a param or the library code it runs has
    changed), the job that makes it reruns and the plain input passes the rerun
    downstream in the same invocation. ``each``: "run" for the file of every
    run of the dataset, "imported" for that of every imported model.
    """
    pairs = {"run": RUNS, "imported": IMPORTED}

    def one(wc: dict):
        path = pattern.format(**wc)
        if not os.path.exists(path):
            return path  # made (again) in this run: its consumers follow
        recorded = workflow.persistence.params(IOFile(path))
        if recorded and not any(gw.identity(config, step, **wc) in str(p) for p in recorded):
            return path
        return ancient(path)

    def resolve(wc):
        if each:
            return [one(pair) for pair in pairs[each] if pair["dataset"] == wc.dataset]
        return one(dict(wc.items()))

    return resolve


def raw_input(wc):
    """A synthetic dataset is drawn by synth; a real one is a source file (its size is in the identity),
    with the release's partition file when it names one (its content is in the identity)."""
    partition = gw.partition_path(config, wc.dataset)
    if wc.dataset in GRID["synthetic"]:  # the twin's partition file is drawn with it
        made = [produced(gw.SYNTH_RAW, "synth")(wc)]
        return made + ([produced(gw.SYNTH_PARTITION, "synth")(wc)] if partition else [])
    return [ancient(gw.raw_path(config, wc.dataset))] + ([ancient(partition)] if partition else [])
