"""A new loss is one class and one registry line, and trains through the same params
validation, CLI and training loop as any recipe a user writes in params.yaml."""

import json

import pytest
import torch
import torch.nn.functional as F
import yaml
from conftest import TRAIN_TINY, as_sets

from gaitflow.cli import main
from gaitflow.losses import registry
from gaitflow.losses.base import pair_masks
from gaitflow.losses.component import Component
from gaitflow.runs import load_checkpoint

SETS = as_sets(TRAIN_TINY)


class Contrastive(Component):
    """Contrastive loss per part (Hadsell et al. 2006): d^2 for positive pairs, [m - d]_+^2 for negative ones."""

    consumes, role = "distances", "part"

    def __init__(self, ctx, margin: float = 1.0, weight: float = 1.0):
        super().__init__(ctx)
        self.margin, self.weight = margin, weight

    def forward(self, dist, labels, t, T):
        pos, neg = pair_masks(labels)
        terms = torch.where(pos, dist**2, torch.where(neg, F.relu(self.margin - dist) ** 2, torch.zeros_like(dist)))
        return {"contrastive": self.weight * terms.sum((1, 2)) / (pos | neg).sum()}


@pytest.fixture
def own_registry(monkeypatch):
    """Registrations made by a test end with it."""
    monkeypatch.setattr(registry, "COMPONENTS", dict(registry.COMPONENTS))


def _add_recipe(project, name, spec):
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["recipes"][name] = spec
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def test_a_registered_loss_trains_from_a_params_recipe(project, own_registry):
    registry.register("contrastive", Contrastive)
    _add_recipe(project, "triplet+contrastive", {"triplet": {"margin": 0.2}, "contrastive": {"margin": 0.5}})
    assert main(["synth", "--quiet", *SETS]) == 0
    assert main(["preprocess", "--quiet", *SETS]) == 0
    for recipe in ("triplet", "triplet+contrastive"):
        assert main(["train", "--quiet", "--backbone", "gaitset", "--recipe", recipe, *SETS]) == 0
    run = project / "models/casiab-syn/gaitset-triplet+contrastive-s0"
    log = [json.loads(line) for line in (run / "train.log").read_text().splitlines()]
    assert [r["iteration"] for r in log] == [1, 2, 3, 4]
    for r in log:  # both terms are logged, and the total is their sum (post-fusion)
        assert r["contrastive"] > 0 and r["total"] == pytest.approx(r["triplet"] + r["contrastive"], rel=1e-5)
    assert yaml.safe_load((run / "config.yaml").read_text())["recipe_params"]["contrastive"] == {"margin": 0.5}
    alone = load_checkpoint(project / "models/casiab-syn/gaitset-triplet-s0/checkpoint.pt")["model"]
    both = load_checkpoint(run / "checkpoint.pt")["model"]
    assert any(not torch.equal(alone[k], both[k]) for k in alone)  # its gradient reached the model


def test_its_parameters_are_validated_like_the_built_in_ones(project, own_registry, capsys):
    registry.register("contrastive", Contrastive)
    _add_recipe(project, "c", {"contrastive": {"margin": "wide"}})
    assert main(["train", "--quiet", "--backbone", "gaitset", "--recipe", "c", *SETS]) == 2
    assert "recipes.c.contrastive.margin = 'wide': expected number" in capsys.readouterr().err
    _add_recipe(project, "c", {"contrastive": {"margn": 1}})
    assert main(["train", "--quiet", "--backbone", "gaitset", "--recipe", "c", *SETS]) == 2
    assert "recipes.c.contrastive.margn: unknown key; expected one of: margin, weight" in capsys.readouterr().err


def test_an_unregistered_component_is_one_line(project, capsys):
    _add_recipe(project, "c", {"contrastive": {}})
    assert main(["train", "--quiet", "--backbone", "gaitset", "--recipe", "c", *SETS]) == 2
    err = capsys.readouterr().err
    assert "recipes.c.contrastive: unknown key; expected one of: ce, circle, drpl, gsam, triplet, waveloss" in err
    assert len(err.strip().splitlines()) == 1


def test_a_class_that_breaks_the_contract_is_refused(own_registry):
    class NoRole(Component):
        consumes = "distances"

    with pytest.raises(TypeError, match="role = ''"):
        registry.register("norole", NoRole)
    with pytest.raises(TypeError, match="subclass of gaitflow.losses.component.Component"):
        registry.register("plain", torch.nn.Module)
    assert "norole" not in registry.COMPONENTS
