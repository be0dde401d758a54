"""Shared fixtures: the repository's own params.yaml, shrunk to a tiny synthetic dataset."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

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
