"""Recipes: every recipe in params.yaml builds one callable, and a toy model trains on it."""

from pathlib import Path

import pytest
import torch
import torch.nn as nn

from gaitflow.config import load_params, schema
from gaitflow.errors import GaitflowError
from gaitflow.losses.recipes import COMPONENTS, build_recipe, component_parameters

REPO = Path(__file__).resolve().parents[1]
RECIPES = load_params(REPO / "params.yaml")["recipes"]
IDS, PARTS, CHANNELS = 4, 3, 8


class Toy(nn.Module):
    """Features -> part embeddings [N, P, C] and logits [N, P, K]."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Linear(10, PARTS * CHANNELS)
        self.classify = nn.Linear(CHANNELS, IDS, bias=False)

    def forward(self, x):
        emb = self.embed(x).reshape(len(x), PARTS, CHANNELS)
        return emb, self.classify(emb)


class ToyData:
    """The training set as a component's prepare() sees it."""

    def __init__(self, x, labels):
        self.x, self.labels = x, labels

    @torch.no_grad()
    def embed(self, model):
        return model(self.x)[0]


def _data():
    gen = torch.Generator().manual_seed(0)
    centres = torch.randn(IDS, 10, generator=gen)
    labels = torch.arange(IDS).repeat_interleave(4)
    return centres[labels] + 1.5 * torch.randn(len(labels), 10, generator=gen), labels


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_every_recipe_builds_and_a_toy_model_learns(name):
    torch.manual_seed(0)
    recipe = build_recipe(name, RECIPES[name], IDS, PARTS, CHANNELS)
    model = Toy()
    x, labels = _data()
    recipe.prepare(model, ToyData(x, labels))  # GSAM fills its memory from the untrained model
    recipe.train()
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    T = 60
    first = None
    for t in range(T):
        emb, logits = model(x)
        total, parts = recipe(emb, logits, labels, t, T)
        assert set(parts) >= {"total"} and parts["total"] == pytest.approx(total.item())
        first = total.item() if first is None else first
        opt.zero_grad()
        total.backward()
        opt.step()
    with torch.no_grad():
        emb, logits = model(x)
        recipe.eval()
        final, _ = recipe(emb, logits, labels, 0, T)  # same schedule point as the first step
    assert final.item() < first


def test_unknown_component_and_parameter_list_the_valid_ones():
    with pytest.raises(
        GaitflowError, match=r"recipes.x.arcface: unknown component; expected one of: triplet, ce, circle"
    ):
        build_recipe("x", {"triplet": {}, "arcface": {}}, IDS, PARTS, CHANNELS)
    with pytest.raises(
        GaitflowError, match=r"recipes.x.triplet.margn: unknown parameter; expected one of: margin, weight"
    ):
        build_recipe("x", {"triplet": {"margn": 1}}, IDS, PARTS, CHANNELS)
    with pytest.raises(GaitflowError, match="drpl reweights the triplet loss"):
        build_recipe("x", {"circle": {}, "drpl": {}}, IDS, PARTS, CHANNELS)
    with pytest.raises(GaitflowError, match="no base loss"):
        build_recipe("x", {"waveloss": {}}, IDS, PARTS, CHANNELS)
    with pytest.raises(GaitflowError, match="ce component needs a model with a classification head"):
        build_recipe("x", {"ce": {}}, IDS, PARTS, CHANNELS)(torch.randn(4, 3, 8), None, torch.tensor([0, 0, 1, 1]))


def test_waveloss_fusions():
    emb = torch.randn(8, PARTS, CHANNELS)
    labels = torch.arange(4).repeat_interleave(2)
    post = build_recipe("c", {"circle": {}}, IDS, PARTS, CHANNELS)(emb, None, labels)[0]
    norm = build_recipe("w", {"circle": {}, "waveloss": {"fusion": "norm"}}, IDS, PARTS, CHANNELS)
    value, parts = norm(emb, None, labels, 30, 100)
    assert value.item() == pytest.approx(post.item(), rel=1e-5) and "waveloss_l" in parts
    pre = build_recipe("p", {"circle": {}, "waveloss": {"fusion": "pre"}}, IDS, PARTS, CHANNELS)(emb, None, labels)[0]
    assert pre.item() != pytest.approx(post.item())


def test_schema_and_builder_agree_on_parameters():
    declared = schema()["$defs"]["recipe"]["properties"]
    assert set(declared) == set(COMPONENTS)
    for comp, spec in declared.items():
        assert set(spec["properties"]) <= set(component_parameters(comp)), comp


def test_gsam_state_is_part_of_the_recipe_state():
    recipe = build_recipe("g", RECIPES["triplet+drpl+gsam"], IDS, PARTS, CHANNELS)
    assert "parts.gsam.memory.memory" in recipe.state_dict()


def test_drpl_takes_the_triplet_margin():
    recipe = build_recipe("d", {"triplet": {"margin": 0.5}, "drpl": {"hard": "vanilla"}}, IDS, PARTS, CHANNELS)
    drpl = recipe.parts["drpl"]
    assert drpl.margin == drpl.ba.margin == drpl.vanilla.margin == 0.5


def _gsam_recipe():
    torch.manual_seed(0)
    recipe = build_recipe("g", {"triplet": {}, "gsam": {"factor": "sine"}}, IDS, PARTS, CHANNELS)
    x, labels = _data()
    recipe.prepare(Toy(), ToyData(x, labels))
    return recipe, torch.randn(len(labels), PARTS, CHANNELS), labels


def test_gsam_enters_the_total_after_fusion_times_gamma_t():
    from gaitflow.losses.schedules import fusion_factor

    recipe, emb, labels = _gsam_recipe()
    recipe.eval()  # no memory update: the terms can be recomputed
    t, T = 30, 100
    total, logged = recipe(emb, None, labels, t, T)
    triplet = build_recipe("t", {"triplet": {}}, IDS, PARTS, CHANNELS)(emb, None, labels, t, T)[0]
    terms = recipe.parts["gsam"].memory.components(emb, labels, update=False)
    gamma = fusion_factor(t, T, "sine")
    assert logged["gsam_gamma"] == pytest.approx(gamma) and 0 < gamma < 1
    assert total.item() == pytest.approx((triplet + gamma * sum(terms.values())).item(), rel=1e-6)


def test_gsam_updates_its_memory_before_its_loss():
    recipe, emb, labels = _gsam_recipe()
    memory = recipe.parts["gsam"].memory
    before = memory.memory.clone()
    old = memory.components(emb, labels, update=False)["gsam_ce"].item()
    recipe.train()
    _, logged = recipe(emb, None, labels, 10, 100)
    assert not torch.equal(before, memory.memory)  # the step moved the memory ...
    new = memory.components(emb, labels, update=False)["gsam_ce"].item()
    assert logged["gsam_ce"] == pytest.approx(new, rel=1e-6) and new != pytest.approx(old, rel=1e-6)  # ... first


def test_each_components_loss_and_gradient_norm_are_logged_when_asked():
    recipe, emb, labels = _gsam_recipe()
    recipe.eval()  # no memory update: the same loss can be recomputed
    t, T = 30, 100
    emb = emb.clone().requires_grad_()
    _, quiet = recipe(emb, None, labels, t, T)
    assert not any("/" in k for k in quiet)  # only on logging iterations
    total, logged = recipe(emb, None, labels, t, T, grad_norms=True)
    assert {"loss/triplet", "grad_norm/triplet", "loss/gsam", "grad_norm/gsam"} <= set(logged)
    # the triplet's own gradient, recomputed alone
    alone = build_recipe("t", {"triplet": {}}, IDS, PARTS, CHANNELS)(emb, None, labels, t, T)[0]
    (grad,) = torch.autograd.grad(alone, emb)
    assert logged["loss/triplet"] == pytest.approx(alone.item(), rel=1e-6)
    assert logged["grad_norm/triplet"] == pytest.approx(grad.norm().item(), rel=1e-5)
    # gsam's weighted term: the total minus the triplet
    assert logged["loss/gsam"] == pytest.approx(total.item() - alone.item(), rel=1e-5, abs=1e-6)
    assert logged["grad_norm/gsam"] > 0
    total.backward()  # the graph is still there for the step's own backward
    assert emb.grad is not None
