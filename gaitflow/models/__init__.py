"""Backbones behind one registry: ``create_model(name, **params)``.

Every model takes silhouettes ``[N, S, H, W]`` in [0, 1] and optionally the
true frame count of each sequence, and returns part embeddings ``[N, P, C]``
(and logits ``[N, P, K]`` where it has a classification head); see
:mod:`gaitflow.models.base`. A new backbone is one module with a
``@register("name")`` class.
"""

from __future__ import annotations

import inspect
from importlib import import_module

from gaitflow.models.base import GaitModel, ModelOutput

_MODULES = ("gaitset", "gaitpart", "gaitgl", "gln", "deepgaitv2", "mt3d", "gei")
_REGISTRY: dict[str, type[GaitModel]] = {}


def register(name: str):
    def wrap(cls):
        _REGISTRY[name] = cls
        cls.registry_name = name
        return cls

    return wrap


def _load_all() -> None:
    for mod in _MODULES:
        import_module(f"gaitflow.models.{mod}")


def available() -> list[str]:
    _load_all()
    return sorted(_REGISTRY)


def create_model(name: str, **params) -> GaitModel:
    """Build a registered backbone, e.g. ``create_model("gaitset", frame_shape=(64, 44), width=1.0)``."""
    from gaitflow.errors import GaitflowError

    _load_all()
    if name not in _REGISTRY:
        raise GaitflowError(f"backbone {name!r} is unknown; expected one of: {', '.join(sorted(_REGISTRY))}")
    cls = _REGISTRY[name]
    accepted = [p for p in inspect.signature(cls).parameters if p not in ("self", "args", "kwargs")]
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise GaitflowError(
            f"backbone {name!r}: unknown parameter {', '.join(unknown)}; expected some of: {', '.join(accepted)}"
        )
    return cls(**params)


__all__ = ["GaitModel", "ModelOutput", "available", "create_model", "register"]
