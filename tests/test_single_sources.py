"""One home for every name, path and default: the lists that must agree are held to their source."""

import ast
import inspect
import subprocess
import sys
from pathlib import Path

import pytest

from gaitflow.config import load_params, schema
from gaitflow.errors import GaitflowError
from gaitflow.losses import registry
from gaitflow.models import _REGISTRY, available

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "gaitflow"

# Each name of the on-disk layout, and the one module allowed to spell it.
HOMES = {
    "data/processed": "workflow.py",
    "data/raw": "workflow.py",
    "models/": "workflow.py",
    "results/": "workflow.py",
    "metrics.json": "workflow.py",
    "rank1_by_view.png": "workflow.py",
    "gei-baseline": "workflow.py",
    "checkpoint.pt": "runs.py",
    "config.yaml": "runs.py",
    "train.log": "runs.py",
    "silhouettes.npy": "data/packed.py",
    "index.csv": "data/packed.py",
    "partition.json": "data/packed.py",
    "report.json": "data/packed.py",
    "mlflow.json": "tracking.py",
}


def _string_constants(path: Path):
    """Every string literal of a module that is not a docstring (messages and help texts count)."""
    tree = ast.parse(path.read_text())
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            yield node.lineno, node.value


def test_every_layout_name_is_spelled_in_its_home_only():
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        for line, text in _string_constants(path):
            for name, home in HOMES.items():
                if name in text and rel != home:
                    found.append(f"gaitflow/{rel}:{line}: {name!r} (its home is gaitflow/{home})")
    assert not found, "\n".join(found)


def test_the_schema_lists_the_registered_backbones():
    assert set(schema()["properties"]["backbones"]["propertyNames"]["enum"]) == set(available())


def test_the_schema_describes_exactly_the_backbones_parameters():
    given_by_the_data = {"self", "frame_shape", "num_classes", "width"}  # and train.width
    accepted = set()
    for cls in _REGISTRY.values():
        accepted |= set(inspect.signature(cls).parameters) - given_by_the_data
    declared = set(schema()["properties"]["backbones"]["additionalProperties"]["properties"])
    assert declared == accepted


def test_width_has_one_home(project):
    with pytest.raises(GaitflowError, match=r"backbones.gaitset.width: unknown key"):
        load_params(project / "params.yaml", ["backbones.gaitset.width=0.5"])


def test_the_schema_describes_exactly_the_built_in_loss_components():
    declared = schema()["$defs"]["recipe"]["properties"]
    assert list(declared) == registry.names()
    for name, spec in declared.items():
        assert set(spec["properties"]) == set(registry.parameters(name)), name


def test_train_fraction_has_one_default(project):
    """A protocol without a section (retrieval) splits by the library's one default, as preprocess() does."""
    import json

    from conftest import TINY

    from gaitflow.cli import main
    from gaitflow.data import preprocess

    assert inspect.signature(preprocess.preprocess).parameters["train_fraction"].default == (
        preprocess.DEFAULT_TRAIN_FRACTION
    )
    sets = [
        a
        for s in [*TINY, "datasets.casiab-syn.synth.ids=6", "datasets.casiab-syn.protocol=retrieval"]
        for a in ("--set", s)
    ]
    assert main(["synth", "--quiet", *sets]) == 0 and main(["preprocess", "--quiet", *sets]) == 0
    split = json.loads((project / "data/processed/casiab-syn/partition.json").read_text())
    assert len(split["TRAIN_SET"]) == round(6 * preprocess.DEFAULT_TRAIN_FRACTION) == 4


def test_params_validation_stays_light():
    """Snakemake validates params.yaml while it plans: that must not import torch."""
    code = (
        "import sys; from gaitflow.config import load_params; load_params('params.yaml');"
        "import gaitflow.workflow; assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)


def test_the_schema_names_the_conditions_each_twin_draws():
    from gaitflow.data import synth, walker

    defs = schema()["$defs"]
    assert set(defs["conditions_walk"]["properties"]) == set(walker.CONDITION_CODES)
    assert tuple(defs["conditions_sustech1k"]["properties"]) == synth.SUSTECH1K_COVARIATES
    assert set(defs["conditions_ccpg"]["properties"]) == set(walker.CONDITION_CODES) | set(synth.CCPG_STATUSES)
