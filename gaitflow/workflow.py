"""What the two front ends (Snakefile and dvc.yaml) share: the grid of runs, the
paths of every step's outputs, the params sections each step reads and the
library code each step runs.

Snakemake imports this module to plan the DAG, so it must stay light: no torch,
no mlflow, nothing that takes more than a few milliseconds to import.

What reruns a Snakemake job. A job reruns when what determines its outputs
changes, and only then: the params sections it reads (``STEP_PARAMS``), the
gaitflow code it runs, or anything upstream of it. Snakemake sees edits to a
rule's own code, not to the package it imports, so ``code_digest`` hashes the
files ``module_closure`` finds by reading the imports of the step's modules
(``STEP_MODULES``), plus ``cli.py``. ``identity`` digests a job's settings, its
code digest and ``upstream``: the identities of the steps whose outputs it
reads, transitively (a real dataset's archive enters by path and size). Every
rule passes ``settings`` and ``identity`` as params, so Snakemake's params
trigger does the rest.

File times must play no part: ``dvc checkout`` and ``dvc pull`` rewrite them.
Dropping ``mtime`` from ``--rerun-triggers`` (workflow/profiles/default does) is
not enough: Snakemake 9's DAG code compares every input's time with its job's
oldest output whatever the triggers (a checksum spares only files up to
``--max-checksum-file-size``, 1 MB by default). So rules read upstream outputs
as ``ancient()``. But Snakemake does not pass a rerun on through ancient
inputs, so ``produced(pattern, step)`` in workflow/rules/common.smk marks an
input ancient only while its producer is current: when the file is missing, or
Snakemake's record shows it was made under another identity, the plain path
lets the rerun flow downstream in the same invocation. A later invocation
catches it too, since a downstream job's identity contains its upstream.

Adding a step, keep these true (tests/test_workflow.py checks the first and
last):

- ``STEP_PARAMS[step]``: the whole params sections it reads, and the same
  sections under its stage's ``params`` in dvc.yaml;
- ``STEP_MODULES[step]``: the gaitflow modules its subcommand runs;
- ``upstream()``: a branch for the step that digests the identities of the
  steps it reads from (it raises ``KeyError`` otherwise), and the branches of
  the steps that read its outputs include its identity;
- its rule (workflow/rules/<step>.smk, included by the Snakefile) has params
  ``file=PARAMS``, ``settings=settings(step)``, ``identity=identity(step)``,
  and reads every upstream output through ``produced(pattern, producing_step)``
  (``each="run"`` for one file per run of the dataset), a source file as
  ``ancient()``;
- params stay deterministic (no times, no temporary paths), or every
  invocation reruns the job;
- its output patterns are defined here and listed by ``outputs()``, and
  dvc.yaml has a stage with the same command and outputs, ``gaitflow`` among
  its deps.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
from functools import cache
from pathlib import Path

from gaitflow.sweeps import recipe_name

PACKAGE = Path(__file__).resolve().parent

# Paths, as patterns over the wildcards {dataset}, {backbone}, {recipe}: the one
# definition of the data/models/results layout (the CLI's defaults come from here).
METHOD = "{backbone}-{recipe}-s{seed}"  # a run's name: its folder under models/ and results/
BASELINE_METHOD = "gei-baseline"
METRICS_FILE = "metrics.json"
SUMMARY_FILE = "summary.json"  # beside metrics.json: numbers only, what `dvc metrics` and `dvc exp show` read
CURVE_FILE = "train_curve.tsv"  # the training log as a table: what `dvc plots` draws
VIEW_PLOT_FILE = "rank1_by_view.png"
RAW_DIR = "data/raw"  # real releases are placed here; dvc.yaml depends on the folder
SYNTH_RAW = RAW_DIR + "/{dataset}.zip"
SYNTH_PARTITION = RAW_DIR + "/{dataset}.json"  # a twin's partition file, drawn with it (as OpenGait names them)
PACKED = "data/processed/{dataset}"
MODELS = "models"
RUN = MODELS + "/{dataset}/" + METHOD
# A training job's checkpoints while it runs: outside its declared output, which Snakemake and
# DVC delete when a job fails, so a killed job resumes from here (gaitflow.train, --work); kept
# after the run is promoted until `gaitflow prune-work` (the Snakefile's onsuccess) removes it.
WORK_ROOT = MODELS + "/.in-progress"
WORK = WORK_ROOT + "/{dataset}/" + METHOD
RESULTS = "results/{dataset}"
METRICS = f"{RESULTS}/{METHOD}/{METRICS_FILE}"
VIEW_PLOT = f"{RESULTS}/{METHOD}/{VIEW_PLOT_FILE}"
SUMMARY = f"{RESULTS}/{METHOD}/{SUMMARY_FILE}"
CURVE = f"{RESULTS}/{METHOD}/{CURVE_FILE}"  # written by train, beside the run's evaluation
BASELINE = f"{RESULTS}/{BASELINE_METHOD}/{METRICS_FILE}"
TABLES = "results/tables/{dataset}"  # beside, not inside, results/{dataset}: it reads that folder
# Models trained elsewhere (params `imported`): imported once, evaluated on every dataset of the grid.
IMPORTED_RUN = "models/imported/{name}"
IMPORTED_METRICS = f"{RESULTS}/{{name}}/{METRICS_FILE}"
IMPORTED_VIEW_PLOT = f"{RESULTS}/{{name}}/{VIEW_PLOT_FILE}"
IMPORTED_SUMMARY = f"{RESULTS}/{{name}}/{SUMMARY_FILE}"

# The params each step reads: whole sections, so no key is missed. dvc.yaml
# lists the same sections (a test holds the two to this table).
STEP_PARAMS = {
    "synth": ("seed", "datasets.{dataset}"),
    "preprocess": ("preprocess", "protocols", "datasets.{dataset}"),
    "baseline": ("baseline", "protocols"),
    "train": ("seed", "train", "backbones.{backbone}", "recipes.{recipe}"),
    "evaluate": ("evaluate", "protocols"),
    "tables": ("grid", "recipes", "sweeps", "imported", "intervals"),
    "import": ("imported.{name}",),
}

# The library modules each step runs. A step depends on them, on every gaitflow
# module they import (see code_digest), and on cli.py, whose own imports are
# not followed (it imports every step).
STEP_MODULES = {
    "synth": ("gaitflow.data.synth",),
    "preprocess": ("gaitflow.data.preprocess",),
    "baseline": ("gaitflow.baseline",),
    "train": ("gaitflow.train", "gaitflow.tracking", "gaitflow.plots", "gaitflow.devices"),
    "evaluate": ("gaitflow.evaluate.run", "gaitflow.tracking", "gaitflow.plots", "gaitflow.devices"),
    "tables": ("gaitflow.tables",),
    "import": ("gaitflow.opengait",),
}


def runs(params: dict) -> list[dict]:
    """Every (dataset, backbone, recipe, seed) of the grid, in grid order: the product of its
    backbones and recipes, then ``grid.extra``'s, then each sweep's points on its backbones."""
    grid = params["grid"]
    pairs = [(b, r) for b in grid["backbones"] for r in grid["recipes"]]
    pairs += [(b, r) for b in grid["extra"]["backbones"] for r in grid["extra"]["recipes"]]
    for sweep in (params.get("sweeps") or {}).values():
        pairs += [(b, recipe_name(sweep, v)) for b in sweep["backbones"] for v in sweep["values"]]
    return [
        {"dataset": d, "backbone": b, "recipe": r, "seed": str(s)}
        for d in grid["datasets"]
        for b, r in pairs
        for s in grid["seeds"]
    ]


def imported(params: dict) -> list[dict]:
    """Every (dataset, imported model) pair: each model of params `imported` on each dataset of the grid."""
    return [{"dataset": d, "name": n} for d in params["grid"]["datasets"] for n in params["imported"]]


def partition_path(params: dict, dataset: str) -> str | None:
    """The release's partition file a dataset names, if any."""
    return params["datasets"][dataset].get("partition")


def _file_digest(path: str | None) -> str | None:
    """A small file's content digest (a partition file: editing it reruns what reads it)."""
    if path is None or not os.path.exists(path):
        return None
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def raw_path(params: dict, dataset: str) -> str:
    """Where a dataset's raw silhouettes are: drawn there by synth, or placed there by the user."""
    return params["datasets"][dataset]["raw"]


def outputs(params: dict) -> set[str]:
    """Every output of the whole DAG (what both front ends must produce)."""
    grid = params["grid"]
    out = {p.format(dataset=d) for d in grid["synthetic"] for p in (SYNTH_RAW, SYNTH_PARTITION)}
    for d in grid["datasets"]:
        out |= {PACKED.format(dataset=d), BASELINE.format(dataset=d), TABLES.format(dataset=d)}
    for run in runs(params):
        out |= {RUN.format(**run), METRICS.format(**run), VIEW_PLOT.format(**run), SUMMARY.format(**run)}
        out.add(CURVE.format(**run))
    out |= {IMPORTED_RUN.format(name=n) for n in params["imported"]}
    for pair in imported(params):
        out |= {IMPORTED_METRICS.format(**pair), IMPORTED_VIEW_PLOT.format(**pair), IMPORTED_SUMMARY.format(**pair)}
    return out


def section(params: dict, key: str):
    """The value at a dotted key (``recipes.triplet+drpl``): a section, or an entry of one, whose
    name may hold dots (a sweep's recipe, ``recipes.triplet+gsam~tau=0.05``)."""
    value = params
    for part in key.split(".", 1):
        value = value[part]
    return value


def step_params(params: dict, step: str, **wildcards: str) -> dict:
    """The params sections a step reads, keyed by their dotted names (tracked by Snakemake)."""
    keys = (k.format(**wildcards) for k in STEP_PARAMS[step])
    return {k: section(params, k) for k in keys}


def _module_file(name: str) -> Path | None:
    parts = name.split(".")
    if parts[0] != "gaitflow":
        return None
    base = PACKAGE.joinpath(*parts[1:])
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


@cache
def _imports(path: Path, name: str) -> tuple[frozenset[str], bool]:
    """Module names a file imports (including imports inside functions), and
    whether it also imports modules by computed name (``import_module``)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found, dynamic = set(), False
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.Call) and getattr(node.func, "id", None) == "import_module":
            dynamic = True
    return frozenset(found), dynamic


def module_closure(roots: tuple[str, ...], static: tuple[str, ...] = ()) -> list[Path]:
    """The files of the gaitflow modules reachable from ``roots`` by imports (and their packages).

    A module that imports by computed name (the model and loss registries) is
    taken to import every module of its package, except in the packages named in
    ``static`` (the caller then names the modules it needs among the roots).
    """
    seen: dict[str, Path] = {}
    stack = list(roots)
    while stack:
        name = stack.pop()
        # importing a.b.c runs a/__init__ and a/b/__init__ as well
        parents = [".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)]
        for mod in [name, *parents]:
            if mod in seen or (path := _module_file(mod)) is None:
                continue
            seen[mod] = path
            found, computed = _imports(path, mod)
            stack.extend(found)
            package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
            if computed and package not in static:
                stack.extend(f"{package}.{f.stem}" for f in path.parent.glob("*.py") if f.stem != "__init__")
    return sorted(set(seen.values()))


def component_modules(components) -> tuple[str, ...]:
    """The modules that implement a recipe's loss components (read from the registry, nothing imported)."""
    from gaitflow.losses import registry

    found = set()
    for name in components:
        entry = registry.COMPONENTS.get(name)
        if entry is not None:
            found.add(entry.partition(":")[0] if isinstance(entry, str) else entry.__module__)
    return tuple(sorted(found))


def code_files(step: str, backbone: str | None = None, components: tuple[str, ...] = ()) -> list[Path]:
    """The library files a step runs (with a backbone: only its module among the models; with a
    recipe's components: only their modules among the losses), plus cli.py."""
    roots = STEP_MODULES[step] + ((f"gaitflow.models.{backbone}",) if backbone else ()) + component_modules(components)
    return sorted(set(module_closure(roots, static_packages(step))) | {PACKAGE / "cli.py"})


def static_packages(step: str) -> tuple[str, ...]:
    """The registry packages whose computed imports a step's closure does not follow: a step
    counts only the backbone and loss modules it names. The tables read the loss components'
    defaults through the registry, so every loss module counts for them."""
    return ("gaitflow.models",) + (() if step == "tables" else ("gaitflow.losses",))


# The backbone module of a DVC stage whose item names one (a template dvc.yaml fills in per item).
DVC_BACKBONE = "gaitflow/models/${item.backbone}.py"


def dvc_code_deps(step: str, per_backbone: bool = True) -> list[str]:
    """A DVC stage's code dependencies: the files ``code_digest`` hashes for its step, so that
    ``dvc repro`` reruns what Snakemake reruns. With ``per_backbone``, the stage's own backbone
    module (``DVC_BACKBONE``) stands for the models; without, every backbone module counts.
    Training counts every loss module: a DVC stage cannot list a recipe's components."""
    from gaitflow.losses import registry

    components = tuple(registry.names()) if step == "train" else ()
    names = [f.relative_to(PACKAGE.parent).as_posix() for f in code_files(step, None, components)]
    if step not in ("train", "evaluate", "import"):
        return names
    if per_backbone:
        return names + [DVC_BACKBONE]
    backbones = [f"gaitflow/models/{f.name}" for f in sorted((PACKAGE / "models").glob("*.py")) if f.stem != "__init__"]
    return sorted(set(names) | set(backbones))


@cache
def code_digest(step: str, backbone: str | None = None, components: tuple[str, ...] = ()) -> str:
    """A digest of the library code a step runs: it changes when that code changes.

    Snakemake does not see edits to an imported package (only to a rule's own
    code), so the Snakefile passes this digest as a param of every rule. With a
    ``backbone``, only that backbone's module counts among the models: an edit to
    ``gaitflow/models/gaitset.py`` reruns the GaitSet runs and nothing else; an
    edit to a module of ``gaitflow/tables/`` reruns only the tables. With a recipe's
    ``components``, likewise only their modules count among the losses: an edit
    to ``gaitflow/losses/gsam.py`` reruns the runs whose recipe has ``gsam``.
    """
    digest = hashlib.sha256()
    for path in code_files(step, backbone, components):
        digest.update(path.relative_to(PACKAGE).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def _digest(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def upstream(params: dict, step: str, **wc: str) -> str:
    """A digest of everything upstream of a job: the settings and code of every
    step whose outputs it reads, transitively.

    Snakemake ignores the file times of inputs whose producer is current
    (``dvc checkout`` and ``dvc pull`` rewrite them) and reruns a job when this
    digest, part of its identity, changes: a change anywhere upstream reruns
    it, and only such a change does. Real datasets enter by name and size:
    replacing the archive at ``raw`` reruns everything that reads it.
    """
    if step == "synth":
        return _digest()
    if step == "import":  # a checkpoint file enters by path and size, as a real dataset does
        path = params["imported"][wc["name"]]["checkpoint"]
        return _digest(path, os.path.getsize(path) if os.path.exists(path) else None)
    d = wc["dataset"]
    if step == "preprocess":
        if d in params["grid"]["synthetic"]:
            return identity(params, "synth", dataset=d)
        raw = raw_path(params, d)
        return _digest(
            raw, os.path.getsize(raw) if os.path.exists(raw) else None, _file_digest(partition_path(params, d))
        )
    if step in ("baseline", "train"):
        return identity(params, "preprocess", dataset=d)
    if step == "evaluate" and "name" in wc:  # an imported model on a dataset
        return _digest(identity(params, "import", name=wc["name"]), identity(params, "preprocess", dataset=d))
    if step == "evaluate":
        return identity(params, "train", **wc)
    if step == "tables":
        return _digest(
            identity(params, "baseline", dataset=d),
            [identity(params, "evaluate", **r) for r in runs(params) if r["dataset"] == d],
            [identity(params, "evaluate", **r) for r in imported(params) if r["dataset"] == d],
        )
    raise KeyError(step)


def identity(params: dict, step: str, **wc: str) -> str:
    """What determines a job's outputs: its settings, its code and its upstream."""
    backbone = wc.get("backbone") if step in ("train", "evaluate") else None
    if "name" in wc and step in ("import", "evaluate"):
        backbone = params["imported"][wc["name"]]["backbone"]
    components = tuple(sorted(params["recipes"][wc["recipe"]])) if step == "train" else ()
    code = code_digest(step, backbone, components)
    return _digest(step_params(params, step, **wc), code, upstream(params, step, **wc))
