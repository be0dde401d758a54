"""The contract every loss component keeps, so that a recipe can compose them blindly.

A component declares two things (docs/losses.md#recipes-composing-components):

``consumes``: what it is computed on, one of

- ``distances``: Euclidean distances per part ``[P, N, N]``;
- ``similarities``: cosine similarities per part ``[P, N, N]``;
- ``logits``: the model's classification logits ``[N, P, K]``;
- ``embeddings``: the part embeddings ``[N, P, C]`` themselves;
- ``part_losses``: the other components' per-part losses (a fusion).

``role``: where its output goes in the total loss,

- ``part``: a base loss; ``forward`` returns named per-part losses ``{name: [P]}``;
- ``reweight``: the same, in place of the component named by ``target`` (DRPL
  reweights the triplet's triples), which it reads from the context;
- ``fusion``: turns the per-part losses into one value (``fuse``) and may
  average the parts' inputs first (``fuse_input``); without one, the per-part
  losses are averaged over parts (post-fusion);
- ``extra``: a term added after fusion, ``weight(t, T) * sum(forward(...))``,
  with its own schedule (GSAM's gamma_t).

Every component is built the same way, ``cls(ctx, **params)``: ``ctx`` holds the
number of training identities, parts and channels, and the recipe's components
built so far (those named in ``needs``, and a reweight's ``target``, are built
first). A component that needs the training data before iteration 1 does it in
``prepare(model, data)``, which the training loop calls once for every component
of a fresh run (a resumed run restores the state from its checkpoint instead).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import torch
import torch.nn as nn

INPUTS = ("distances", "similarities", "logits", "embeddings", "part_losses")
ROLES = ("part", "reweight", "fusion", "extra")
# The axis of each input that runs over parts (what pre-fusion averages).
PART_AXIS = {"distances": 0, "similarities": 0, "logits": 1, "embeddings": 1}


@dataclass
class Context:
    """What a component may need to know when it is built."""

    num_ids: int  # training identities (labels are 0 .. num_ids - 1)
    parts: int  # P of the model's [N, P, C] embeddings
    channels: int  # C
    components: dict[str, nn.Module] = field(default_factory=dict)  # the recipe's components built so far


class TrainingData(Protocol):
    """The training set as ``prepare`` sees it."""

    labels: torch.Tensor  # [N] identity index of every training sequence

    def embed(self, model: nn.Module) -> torch.Tensor:
        """[N, P, C] embeddings of every training sequence under ``model`` (no gradient)."""


class Component(nn.Module):
    """Base class of loss components: declare ``consumes`` and ``role``, implement ``forward``."""

    consumes: str = ""
    role: str = ""
    target: str | None = None  # reweight: the component whose terms this one replaces
    needs: tuple[str, ...] = ()  # other components of the recipe this one reads from ``ctx``
    weight_name: str = "weight"  # extra: the name its schedule is logged under, ``<name>_<weight_name>``
    params_schema: dict | None = None  # JSON Schema of its parameters; else derived from their defaults

    def __init__(self, ctx: Context | None = None):
        super().__init__()

    def prepare(self, model: nn.Module, data: TrainingData) -> None:
        """Called once before the first iteration of a fresh run."""

    def forward(self, x: torch.Tensor, labels: torch.Tensor, t: int, T: int) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    # extra components
    def weight(self, t: int, T: int) -> float:
        return 1.0

    # fusion components
    def fuse_input(self, x: torch.Tensor, kind: str) -> torch.Tensor:
        return x

    def fuse(self, part_losses: dict[str, torch.Tensor], t: int, T: int) -> tuple[torch.Tensor, dict[str, float]]:
        return post_fuse(part_losses), {}


def post_fuse(part_losses: dict[str, torch.Tensor]) -> torch.Tensor:
    """The usual way: every per-part loss averaged over parts, then summed."""
    return sum(v.mean() for v in part_losses.values())


def check_declaration(name: str, cls: type) -> None:
    """A registered class must keep the contract; say what is missing, in one line."""
    if not (isinstance(cls, type) and issubclass(cls, Component)):
        raise TypeError(f"loss component {name!r}: expected a subclass of gaitflow.losses.component.Component")
    if cls.consumes not in INPUTS:
        raise TypeError(f"loss component {name!r}: consumes = {cls.consumes!r}; expected one of {', '.join(INPUTS)}")
    if cls.role not in ROLES:
        raise TypeError(f"loss component {name!r}: role = {cls.role!r}; expected one of {', '.join(ROLES)}")
    if cls.role == "reweight" and not cls.target:
        raise TypeError(f"loss component {name!r}: a reweight names the component it reweights in `target`")
