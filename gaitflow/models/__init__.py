"""Backbones behind one registry: ``create_model(name, **params)``.

Every model takes silhouettes ``[N, S, H, W]`` in [0, 1] and optionally the
true frame count of each sequence, and returns part embeddings ``[N, P, C]``
(and logits ``[N, P, K]`` where it has a classification head); see
:mod:`gaitflow.models.base`. A new backbone is one module with a
``@register("name")`` class: the registry is the only list of backbones (the
params schema's list is held to it by a test).
"""

from __future__ import annotations

import inspect
import pkgutil
from importlib import import_module

from gaitflow.models.base import GaitModel, ModelOutput

_REGISTRY: dict[str, type[GaitModel]] = {}  # filled by @register as the backbone modules are imported


def register(name: str):
    def wrap(cls):
        _REGISTRY[name] = cls
        cls.registry_name = name
        return cls

    return wrap


# Modules of this package that hold building blocks, not backbones.
_SUPPORT = ("base", "blocks")


def _load_all() -> None:
    """Import every module of this package once: each backbone registers itself."""
    for info in pkgutil.iter_modules(__path__):
        if info.name not in _SUPPORT:
            import_module(f"{__name__}.{info.name}")


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
