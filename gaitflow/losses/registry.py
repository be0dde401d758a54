"""The one list of loss components a recipe can name.

``COMPONENTS`` maps each name used in params.yaml recipes to the class that
implements it, as ``"module:Class"`` so that this module stays light: params
validation (which runs while Snakemake plans the DAG) reads the names without
importing torch. A new loss is one module with a :class:`~gaitflow.losses.component.Component`
subclass and one line here, or, from outside the package, one call::

    register("contrastive", Contrastive)

Each component's parameters are its constructor's keyword arguments (after the
recipe context); their schema is the component's ``params_schema`` where it
declares one, else derived from the defaults' types. The built-in components
are also described in ``gaitflow/schemas/params.schema.yaml`` with ranges and
choices (a test holds the two to the same names and parameters).
"""

from __future__ import annotations

import inspect
from importlib import import_module

COMPONENTS: dict[str, str | type] = {
    "triplet": "gaitflow.losses.base:TripletComponent",
    "ce": "gaitflow.losses.base:CrossEntropyComponent",
    "circle": "gaitflow.losses.base:CircleComponent",
    "drpl": "gaitflow.losses.drpl:DRPLComponent",
    "gsam": "gaitflow.losses.gsam:GSAMComponent",
    "waveloss": "gaitflow.losses.fusion:WavelossComponent",
}

# JSON Schema types of a parameter, from the type of its default value.
_TYPES = {bool: "boolean", int: "number", float: "number", str: "string"}


def register(name: str, cls: type | None = None):
    """Add a component under ``name``; usable as ``register(name, cls)`` or as a class decorator."""

    def add(component: type) -> type:
        from gaitflow.losses.component import check_declaration

        check_declaration(name, component)
        COMPONENTS[name] = component
        return component

    return add(cls) if cls is not None else add


def names() -> list[str]:
    return list(COMPONENTS)


def load(name: str) -> type:
    """The class of a registered component (importing its module on first use)."""
    entry = COMPONENTS[name]
    if isinstance(entry, str):
        module, _, attr = entry.partition(":")
        entry = getattr(import_module(module), attr)
    return entry


def parameters(name: str) -> dict[str, object]:
    """A component's parameters and their defaults (the constructor's keywords after ``ctx``)."""
    sig = inspect.signature(load(name))
    return {
        p.name: p.default
        for p in sig.parameters.values()
        if p.name != "ctx" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    }


def params_schema(name: str) -> dict:
    """The JSON Schema of a component's parameter mapping."""
    cls = load(name)
    declared = getattr(cls, "params_schema", None)
    if declared is None:
        declared = {}
        for param, default in parameters(name).items():
            kind = _TYPES.get(type(default))
            declared[param] = {"type": kind} if kind else {}
    return {"type": ["object", "null"], "additionalProperties": False, "properties": declared}


def resolve(spec: dict) -> dict:
    """A recipe's components with every parameter, defaults filled in: what actually runs."""
    return {comp: {**parameters(comp), **(params or {})} for comp, params in spec.items()}
