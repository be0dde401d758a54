"""Loss recipes: a named composition of components, built into one callable.

params.yaml names recipes such as ``triplet``, ``triplet+drpl+gsam`` or
``circle+waveloss``; each maps component names to their parameters. The built
recipe is called as ``recipe(embeddings, logits, labels, t, T)`` and returns the
total loss and its named components (for logging).

Components (a new loss is one module and one line in ``COMPONENTS``):

=========  =======================================================================
triplet    batch-all triplet per part (replaced by DRPL when ``drpl`` is present)
ce         cross-entropy per part on the model's logits (BNNeck / classifier)
circle     circle loss per part on cosine similarity
drpl       GaitMPL's DRPL: L_BA + s_t * L_DRPL-BH, on the triplet's distances ("+D")
gsam       GaitMPL's memory: + gamma_t * (CE over memory logits + variance) ("+G")
waveloss   Waveloss part fusion of the per-part base losses: post, pre or norm, with
           the Dynamic Learning Process exponent l_t
=========  =======================================================================

Without ``waveloss`` the per-part losses are averaged over parts (post-fusion).
"""

from __future__ import annotations

import inspect

import torch
import torch.nn as nn

from gaitflow.errors import GaitflowError
from gaitflow.losses import base, fusion
from gaitflow.losses.drpl import DRPL
from gaitflow.losses.gsam import GSAM
from gaitflow.losses.schedules import dynamic_exponent, fusion_factor


class Waveloss(nn.Module):
    """Part fusion settings (FORMULATION.md, Waveloss eq. 4-7)."""

    def __init__(
        self,
        fusion: str = "norm",
        l_min: float = -1.0,
        l_max: float = 1.0,
        cycles: float = 1.0,
        formulation: str = "intended",
    ):
        super().__init__()
        if fusion not in ("post", "pre", "norm"):
            raise GaitflowError(f"waveloss.fusion = {fusion!r}: expected post, pre or norm")
        dynamic_exponent(0, 1, l_min, l_max, cycles, formulation)  # validates the formulation
        self.fusion, self.l_min, self.l_max, self.cycles, self.formulation = fusion, l_min, l_max, cycles, formulation

    def exponent(self, t: int, T: int) -> float:
        return dynamic_exponent(t, T, self.l_min, self.l_max, self.cycles, self.formulation)


class GSAMTerm(nn.Module):
    """GSAM with its fusion factor gamma_t (eq. 11); the memory is built when the recipe is."""

    def __init__(
        self,
        tau: float = 0.1,
        alpha: float = 0.9,
        beta: float = 0.9,
        update: str = "pu+au",
        element: str = "centroid",
        per_id: int = 8,
        variance_weight: float = 1.0,
        factor: str = "sine",
        formulation: str = "intended",
    ):
        super().__init__()
        fusion_factor(0, 1, factor)
        self.kwargs = dict(
            tau=tau,
            alpha=alpha,
            beta=beta,
            update=update,
            element=element,
            per_id=per_id,
            variance_weight=variance_weight,
            formulation=formulation,
        )
        self.factor = factor
        self.memory: GSAM | None = None

    def build(self, num_ids: int, dim: int) -> None:
        try:
            self.memory = GSAM(num_ids, dim, **self.kwargs)
        except ValueError as exc:
            raise GaitflowError(f"gsam: {exc}") from None


class Weighted(nn.Module):
    """A base loss with a weight in the total."""

    def __init__(self, loss: nn.Module, weight: float = 1.0):
        super().__init__()
        self.loss, self.weight = loss, weight


def _triplet(margin: float = 0.2, weight: float = 1.0):
    return Weighted(base.TripletBatchAll(margin), weight)


def _ce(scale: float = 16.0, label_smoothing: float = 0.1, weight: float = 1.0):
    return Weighted(base.CrossEntropy(scale, label_smoothing), weight)


def _circle(margin: float = 0.25, gamma: float = 64.0, weight: float = 1.0):
    return Weighted(base.Circle(margin, gamma), weight)


def _drpl(
    delta_min: float = 0.1,
    eps: float = 1.4,
    weighting: str = "softmax",
    formulation: str = "intended",
    batch_all: bool = True,
    smooth: bool = True,
    hard: str = "drpl",
):
    try:
        return DRPL(0.2, delta_min, eps, weighting, formulation, batch_all, smooth, hard)
    except ValueError as exc:
        raise GaitflowError(f"drpl: {exc}") from None


COMPONENTS = {
    "triplet": _triplet,
    "ce": _ce,
    "circle": _circle,
    "drpl": _drpl,
    "gsam": GSAMTerm,
    "waveloss": Waveloss,
}


def component_parameters(name: str) -> list[str]:
    return list(inspect.signature(COMPONENTS[name]).parameters)


class Recipe(nn.Module):
    """One callable loss: ``recipe(embeddings, logits, labels, t, T) -> (total, components)``."""

    def __init__(self, name: str, parts: dict[str, nn.Module]):
        super().__init__()
        self.name = name
        self.parts = nn.ModuleDict(parts)

    @property
    def gsam(self) -> GSAM | None:
        return self.parts["gsam"].memory if "gsam" in self.parts else None

    @property
    def needs_logits(self) -> bool:
        return "ce" in self.parts

    def _part_losses(self, emb, logits, labels, t, T, pre: bool) -> dict[str, torch.Tensor]:
        """Named per-part loss vectors (one-element vectors under pre-fusion)."""
        out = {}
        p = self.parts
        if "triplet" in p or "drpl" in p:
            dist = base.part_distances(emb)
            if pre:
                dist = fusion.pre_fuse(dist)
            if "drpl" in p:
                w = p["triplet"].weight
                out.update({k: w * v for k, v in p["drpl"].components(dist, labels, t, T).items()})
            else:
                out["triplet"] = p["triplet"].weight * p["triplet"].loss(dist, labels)
        if "circle" in p:
            sim = base.part_similarities(emb)
            out["circle"] = p["circle"].weight * p["circle"].loss(fusion.pre_fuse(sim) if pre else sim, labels)
        if "ce" in p:
            if logits is None:
                raise GaitflowError(f"recipe {self.name!r}: the ce component needs a model with a classification head")
            lg = logits.mean(1, keepdim=True) if pre else logits
            out["ce"] = p["ce"].weight * p["ce"].loss(lg, labels)
        return out

    def forward(
        self, embeddings: torch.Tensor, logits: torch.Tensor | None, labels: torch.Tensor, t: int = 0, T: int = 1
    ) -> tuple[torch.Tensor, dict[str, float]]:
        wave = self.parts["waveloss"] if "waveloss" in self.parts else None
        per_part = self._part_losses(embeddings, logits, labels, t, T, pre=wave is not None and wave.fusion == "pre")
        logged: dict[str, float] = {k: float(v.detach().mean()) for k, v in per_part.items()}
        if wave is not None and wave.fusion == "norm" and per_part:
            exponent = wave.exponent(t, T)
            total = fusion.norm_fusion(sum(per_part.values()), exponent)
            logged["waveloss_l"] = exponent
        else:
            total = sum(v.mean() for v in per_part.values()) if per_part else embeddings.sum() * 0
        if "gsam" in self.parts:
            term = self.parts["gsam"]
            gamma = fusion_factor(t, T, term.factor)
            parts = term.memory.components(embeddings, labels)
            total = total + gamma * sum(parts.values())
            logged.update({k: float(v.detach()) for k, v in parts.items()})
            logged["gsam_gamma"] = gamma
        logged["total"] = float(total.detach())
        return total, logged


def build_recipe(name: str, spec: dict, num_ids: int, parts: int, channels: int) -> Recipe:
    """Build the recipe `name` from its params.yaml entry {component: {param: value}}."""
    if not isinstance(spec, dict) or not spec:
        raise GaitflowError(f"recipes.{name}: expected a mapping of components to their parameters")
    built = {}
    for comp, params in spec.items():
        if comp not in COMPONENTS:
            raise GaitflowError(f"recipes.{name}.{comp}: unknown component; expected one of: {', '.join(COMPONENTS)}")
        params = params or {}
        valid = component_parameters(comp)
        unknown = sorted(set(params) - set(valid))
        if unknown:
            raise GaitflowError(
                f"recipes.{name}.{comp}.{unknown[0]}: unknown parameter; expected one of: {', '.join(valid)}"
            )
        try:
            built[comp] = COMPONENTS[comp](**params)
        except (ValueError, TypeError) as exc:
            raise GaitflowError(f"recipes.{name}.{comp}: {exc}") from None
    if "drpl" in built and "triplet" not in built:
        raise GaitflowError(f"recipes.{name}: drpl reweights the triplet loss; add a triplet component")
    if not ({"triplet", "circle", "ce"} & set(built)):
        raise GaitflowError(f"recipes.{name}: no base loss; expected at least one of: triplet, ce, circle")
    if "drpl" in built:  # DRPL reweights the recipe's triplet: one margin for all its terms
        built["drpl"].set_margin(built["triplet"].loss.margin)
    if "gsam" in built:
        built["gsam"].build(num_ids, parts * channels)
    return Recipe(name, built)
