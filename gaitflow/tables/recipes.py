"""What a recipe *is*, read from its components in params.yaml (never from its name): its base
loss, +DRPL, +GSAM (centred or not), Waveloss fusion and exponent schedule, formulation, and
the words the papers' tables use for it."""

from __future__ import annotations

import json

from gaitflow.losses import registry
from gaitflow.tables.results import Result

VARIANTS = ("base", "+D", "+G", "++")


def base_losses() -> list[str]:
    """The registered components that are base losses (role ``part``), in registry order."""
    return [name for name in registry.names() if registry.load(name).role == "part"]


def base_loss(recipe: dict) -> str:
    return "+".join(c for c in base_losses() if c in recipe) or "none"


def _waveloss(recipe: dict) -> dict | None:
    """The recipe's waveloss parameters with the component's defaults filled in."""
    return registry.resolve({"waveloss": recipe["waveloss"]})["waveloss"] if "waveloss" in recipe else None


def centred_gsam(recipe: dict) -> bool:
    """GSAM on centred features: an addition of ours, not the paper's (gsam ``center``)."""
    return bool((recipe.get("gsam") or {}).get("center"))


def variant_label(recipe: dict) -> str:
    """+D, +G, ++ (GaitMPL table III), marked where the recipe carries an addition of ours."""
    return gaitmpl_variant(recipe) + (" centred (ours)" if centred_gsam(recipe) else "")


def gaitmpl_variant(recipe: dict) -> str:
    return {(False, False): "base", (True, False): "+D", (False, True): "+G", (True, True): "++"}[
        ("drpl" in recipe, "gsam" in recipe)
    ]


def formulation(recipe: dict) -> str:
    printed = any(isinstance(p, dict) and p.get("formulation") == "as_printed" for p in recipe.values())
    return "as_printed" if printed else "intended"


def waveloss_fusion(recipe: dict) -> str:
    w = _waveloss(recipe)
    return w["fusion"] if w else "post"


def l_schedule(recipe: dict) -> str:
    """``static l=1`` or ``dynamic [-1, 1]`` (the Dynamic Learning Process), as Waveloss table 4 names them."""
    w = _waveloss(recipe)
    if w is None or w["fusion"] != "norm":
        return "-"
    lo, hi = w["l_min"], w["l_max"]
    return f"static l={lo:g}" if lo == hi else f"dynamic [{lo:g}, {hi:g}]"


def loss_label(recipe: dict) -> str:
    """A description of a recipe in the words of Waveloss table 6 and GaitMPL table III."""
    label = {"ce": "softmax"}.get(base_loss(recipe), base_loss(recipe))
    if "drpl" in recipe:
        label += " + DRPL"
    if "gsam" in recipe:
        label += " + GSAM" + (" (centred, ours)" if centred_gsam(recipe) else "")
    if "waveloss" in recipe:
        fusion = waveloss_fusion(recipe)
        label += f" + {fusion}-fusion"
        if fusion == "norm":
            label += f" ({l_schedule(recipe)})"
    return label


def _without_formulation(recipe: dict) -> str:
    return json.dumps(
        {
            k: {a: b for a, b in p.items() if a != "formulation"} if isinstance(p, dict) else p
            for k, p in recipe.items()
        },
        sort_keys=True,
    )


def _kind(spec: dict) -> dict:
    """What a recipe is, for pairing variants with their base: base loss, +DRPL, +GSAM, fusion, l."""
    return {
        "base": base_loss(spec),
        "drpl": "drpl" in spec,
        "gsam": "gsam" in spec,
        "fusion": waveloss_fusion(spec),
        "l": l_schedule(spec),
        "plain": all(c in base_losses() for c in spec),
        "ours": centred_gsam(spec),
    }


def _trained(results: list[Result], recipes: dict) -> list[tuple[Result, dict]]:
    return [
        (r, _kind(recipes[r.recipe]))
        for r in results
        if r.recipe in recipes and formulation(recipes[r.recipe]) == "intended"
    ]
