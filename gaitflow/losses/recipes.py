"""Loss recipes: a named composition of components, built into one callable.

params.yaml names recipes such as ``triplet``, ``triplet+drpl+gsam`` or
``circle+waveloss``; each maps component names (``gaitflow.losses.registry``) to
their parameters. The built recipe is called as
``recipe(embeddings, logits, labels, t, T)`` and returns the total loss and its
named terms (for logging).

The recipe knows no component by name: it reads what each one declares
(:mod:`gaitflow.losses.component`): what it consumes, and whether it is a base
loss per part, a reweighting of another component, the part fusion, or an extra
term with its own schedule (docs/losses.md#recipes-composing-components)::

    total = fuse({terms of every part / reweight component}) + sum_extra weight(t, T) * sum(terms)

Built-in components: ``triplet``, ``ce`` and ``circle`` (base losses), ``drpl``
(GaitMPL's DRPL, reweights the triplet: "+D"), ``gsam`` (GaitMPL's memory, an extra
term: "+G"), ``waveloss`` (Waveloss's part fusion). Without a fusion component the
per-part losses are averaged over parts (post-fusion).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from gaitflow.errors import GaitflowError
from gaitflow.losses import base, registry
from gaitflow.losses.component import Component, Context, TrainingData, post_fuse
from gaitflow.losses.registry import COMPONENTS  # noqa: F401  (the one list, re-exported for callers)


def component_parameters(name: str) -> list[str]:
    return list(registry.parameters(name))


class Recipe(nn.Module):
    """One callable loss: ``recipe(embeddings, logits, labels, t, T) -> (total, terms)``."""

    def __init__(self, name: str, components: dict[str, Component]):
        super().__init__()
        self.name = name
        self.parts = nn.ModuleDict(components)
        replaced = {c.target for c in components.values() if c.role == "reweight"}
        self.terms = [n for n, c in components.items() if c.role in ("part", "reweight") and n not in replaced]
        self.extras = [n for n, c in components.items() if c.role == "extra"]
        self.fusion = next((n for n, c in components.items() if c.role == "fusion"), None)

    def prepare(self, model: nn.Module, data: TrainingData) -> None:
        """Give every component the training data once, before the first iteration of a fresh run."""
        for component in self.parts.values():
            component.prepare(model, data)

    def _source(self, kind: str, name: str, embeddings, logits) -> torch.Tensor:
        if kind == "distances":
            return base.part_distances(embeddings)
        if kind == "similarities":
            return base.part_similarities(embeddings)
        if kind == "logits":
            if logits is None:
                raise GaitflowError(
                    f"recipe {self.name!r}: the {name} component needs a model with a classification head"
                )
            return logits
        return embeddings

    def forward(
        self,
        embeddings: torch.Tensor,
        logits: torch.Tensor | None,
        labels: torch.Tensor,
        t: int = 0,
        T: int = 1,
        grad_norms: bool = False,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """``grad_norms``: also log, per component, ``loss/<name>`` (its own loss: the mean over
        parts of its terms, times its weight for an extra term) and ``grad_norm/<name>``, the norm
        of that loss's gradient with respect to the embeddings (one extra backward each), so the
        balance between components shows (docs/losses.md#seeing-the-balance-of-components)."""
        fusion = self.parts[self.fusion] if self.fusion else None
        inputs: dict[str, torch.Tensor] = {}  # each input computed once, fused once

        def source(name: str) -> torch.Tensor:
            kind = self.parts[name].consumes
            if kind not in inputs:
                x = self._source(kind, name, embeddings, logits)
                inputs[kind] = fusion.fuse_input(x, kind) if fusion is not None else x
            return inputs[kind]

        part_losses: dict[str, torch.Tensor] = {}
        own: dict[str, torch.Tensor] = {}  # each component's own loss, for the balance log
        for name in self.terms:
            terms = self.parts[name](source(name), labels, t, T)
            part_losses.update(terms)
            own[name] = sum(v.mean() for v in terms.values())
        logged = {k: float(v.detach().mean()) for k, v in part_losses.items()}
        if fusion is not None:
            total, fusion_log = fusion.fuse(part_losses, t, T)
            logged.update(fusion_log)
        else:
            total = post_fuse(part_losses)
        for name in self.extras:  # extra terms see the unfused inputs
            component = self.parts[name]
            x = self._source(component.consumes, name, embeddings, logits)
            weight = component.weight(t, T)
            terms = component(x, labels, t, T)
            total = total + weight * sum(terms.values())
            own[name] = weight * sum(v.mean() for v in terms.values())
            logged.update({k: float(v.detach().mean()) for k, v in terms.items()})
            logged[f"{name}_{component.weight_name}"] = weight
        logged["total"] = float(total.detach())
        if grad_norms and embeddings.requires_grad:
            for name, loss in own.items():
                logged[f"loss/{name}"] = float(loss.detach())
                grad = torch.autograd.grad(loss, embeddings, retain_graph=True, allow_unused=True)[0]
                logged[f"grad_norm/{name}"] = 0.0 if grad is None else float(grad.norm())
        return total, logged


def build_recipe(name: str, spec: dict, num_ids: int, parts: int, channels: int) -> Recipe:
    """Build the recipe `name` from its params.yaml entry {component: {param: value}}.

    Every component is built as ``cls(ctx, **params)``; those that need another
    component of the recipe (a reweight's target, or ``needs``) are built after it.
    """
    if not isinstance(spec, dict) or not spec:
        raise GaitflowError(f"recipes.{name}: expected a mapping of components to their parameters")
    classes = {}
    for comp, params in spec.items():
        if comp not in registry.COMPONENTS:
            raise GaitflowError(
                f"recipes.{name}.{comp}: unknown component; expected one of: {', '.join(registry.names())}"
            )
        valid = component_parameters(comp)
        unknown = sorted(set(params or {}) - set(valid))
        if unknown:
            raise GaitflowError(
                f"recipes.{name}.{comp}.{unknown[0]}: unknown parameter; expected one of: {', '.join(valid)}"
            )
        classes[comp] = registry.load(comp)
    ctx = Context(num_ids, parts, channels)
    pending = list(spec)
    while pending:
        for comp in pending:
            cls = classes[comp]
            needs = (*((cls.target,) if cls.role == "reweight" else ()), *cls.needs)
            for need in needs:
                if need not in spec:
                    what = f"reweights the {need} loss" if need == cls.target else f"needs the {need} component"
                    raise GaitflowError(f"recipes.{name}: {comp} {what}; add a {need} component")
            if all(n in ctx.components for n in needs):
                try:
                    ctx.components[comp] = cls(ctx, **(spec[comp] or {}))
                except (ValueError, TypeError) as exc:
                    raise GaitflowError(f"recipes.{name}.{comp}: {exc}") from None
                pending.remove(comp)
                break
        else:
            raise GaitflowError(f"recipes.{name}: its components need each other ({', '.join(pending)})")
    if not any(c.role == "part" for c in ctx.components.values()):
        bases = [n for n in registry.names() if registry.load(n).role == "part"]
        raise GaitflowError(f"recipes.{name}: no base loss; expected at least one of: {', '.join(bases)}")
    fusions = [n for n, c in ctx.components.items() if c.role == "fusion"]
    if len(fusions) > 1:
        raise GaitflowError(f"recipes.{name}: {' and '.join(fusions)} are both part fusions; keep one")
    return Recipe(name, {comp: ctx.components[comp] for comp in spec})
