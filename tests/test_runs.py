"""Loading a trained run (gaitflow.runs): what evaluation and later steps share with training,
without importing the training loop or the losses."""

import subprocess
import sys

import pytest
import torch
import yaml
from conftest import REPO, TRAIN_TINY, as_sets

from gaitflow import workflow
from gaitflow.cli import main
from gaitflow.data.dataset import PackedDataset
from gaitflow.errors import GaitflowError
from gaitflow.runs import CHECKPOINT, CONFIG, embed, load_checkpoint, load_run

SETS = as_sets([*TRAIN_TINY, "train.iterations=2", "train.milestones=[1]"])


@pytest.fixture
def trained(project):
    for step in (["synth"], ["preprocess"], ["train", "--backbone", "gaitpart", "--recipe", "triplet+gsam"]):
        assert main([*step, "--quiet", *SETS]) == 0
    return project / "models/casiab-syn/gaitpart-triplet+gsam-s0"


def test_load_run_returns_the_trained_model_ready_to_embed(trained, project):
    model, config = load_run(trained)
    assert not model.training and config["backbone"] == "gaitpart" and config["iteration"] == 2
    saved = load_checkpoint(trained / CHECKPOINT)["model"]
    assert all(torch.equal(saved[k], v) for k, v in model.state_dict().items())
    data = PackedDataset(project / "data/processed/casiab-syn")
    test = data.split("TEST_SET")[:3]
    emb = embed(model, data, test, "cpu")
    assert emb.shape[0] == 3 and torch.isfinite(emb).all()
    assert torch.equal(emb, embed(model, data, test, "cpu", max_frames=1))  # batching does not change a sequence


def test_a_broken_run_is_one_line(trained):
    config = yaml.safe_load((trained / CONFIG).read_text())
    (trained / CONFIG).write_text(yaml.safe_dump({**config, "backbone": "gaitset"}))
    with pytest.raises(GaitflowError, match=r"checkpoint.pt: its weights do not fit gaitset"):
        load_run(trained)
    (trained / CONFIG).write_text("[1, 2]")
    with pytest.raises(GaitflowError, match=r"config.yaml: not a gaitflow run configuration"):
        load_run(trained)
    with pytest.raises(GaitflowError, match=r"config.yaml: not found; train this run first"):
        load_run(trained.parent / "missing")


def test_evaluation_imports_neither_the_training_loop_nor_the_losses():
    code = (
        "import sys, gaitflow.evaluate.run, gaitflow.runs;"
        "bad = sorted(m for m in sys.modules if m.startswith(('gaitflow.train', 'gaitflow.losses')));"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)


@pytest.mark.parametrize("backbone", ["gaitset", "mt3d"])
def test_an_edit_to_a_loss_reruns_training_but_not_evaluation(backbone):
    """The code digests Snakemake reruns by: the losses are in training's closure, not in evaluation's."""
    roots = workflow.STEP_MODULES
    static = ("gaitflow.models",)
    for step, has_losses in (("train", True), ("evaluate", False)):
        files = workflow.module_closure((*roots[step], f"gaitflow.models.{backbone}"), static)
        names = {p.relative_to(workflow.PACKAGE).as_posix() for p in files}
        assert ({"losses/drpl.py", "losses/gsam.py", "losses/fusion.py"} <= names) == has_losses, step
        assert ("train.py" in names) == has_losses and "runs.py" in names
        assert f"models/{backbone}.py" in names and "models/deepgaitv2.py" not in names
