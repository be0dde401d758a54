"""GaitMPL's Global Structure-Aligned Memory bank (GSAM), eq. 8-11 (docs/losses.md#gsam).

The memory holds, per training identity, an L2-normalised feature: a sequence's
part embedding flattened to one vector. It is a module with buffers, so it goes
into checkpoints and a resumed run continues with the same memory.

Initialisation (eq. 8, algorithm 1 lines 1-3): one pass of the untrained extractor
over the training set; each row is an element of that identity's features:
``centroid`` (the mean, default), ``hardest`` (the feature farthest from the centroid),
``random`` (one feature), ``multi`` (``per_id`` random features; an identity's logit is
the highest of its rows). The choice of the hardest sample and of how several rows
give one logit are ours.

Update (eq. 9), once per iteration, no gradient, alpha = beta = 0.9, rows renormalised:

- ``none``: the memory stays as initialised;
- ``hard``: present identities' rows are replaced by their batch mean;
- ``pu``: present identities only, ``M[i] <- alpha M[i] + (1 - alpha) mean_{y_b = i} F(b)``;
- ``pu+au`` (default): PU, then every absent identity moves by the batch's mean movement:
  intended ``M[j] <- M[j] + (1 - beta) delta`` with ``delta`` the mean over present ids of
  ``M_new[i] - M_old[i]``; as_printed: present ``(1 - alpha)/|B| sum_{y_b = i} F(b) + alpha M[i]``,
  absent ``(1 - beta)(mean_B F(b) - M[j]) + beta M[j]``.

With several rows per identity (``multi``) every row of a present identity follows its
batch mean in the same way.

Loss (eq. 10): ``CE(F M^T / tau, y) + variance``, tau = 0.1; the variance term is, intended,
the mean squared distance of each feature to the mean of its own identity in the batch;
as_printed, to the mean of the whole batch.

``center`` (an addition of ours, not the paper's; off by default): subtract a running mean of
the raw features before normalising them, in the memory and in the batch. Early in training
the features of every identity point the same way (pairwise cosine 0.985-0.999), so the logits
``F M^T / tau`` barely differ and the cross-entropy stays near log(#ids) while its gradient,
scaled by 1 / tau on normalised tiny embeddings, dwarfs the triplet's. Centring spreads the
normalised features around the sphere (docs/losses.md#gsam-centred-ours).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from gaitflow.losses.component import Component, Context
from gaitflow.losses.schedules import fusion_factor

UPDATES = ("none", "hard", "pu", "pu+au")
ELEMENTS = ("centroid", "hardest", "random", "multi")


class GSAM(nn.Module):
    """The memory bank and its loss. ``labels`` are training-identity indices 0..num_ids-1."""

    input = "embeddings"

    def __init__(
        self,
        num_ids: int,
        dim: int,
        tau: float = 0.1,
        alpha: float = 0.9,
        beta: float = 0.9,
        update: str = "pu+au",
        element: str = "centroid",
        per_id: int = 8,
        formulation: str = "intended",
        variance_weight: float = 1.0,
        seed: int = 0,
        center: bool = False,
    ):
        super().__init__()
        if update not in UPDATES:
            raise ValueError(f"update {update!r}: expected one of {', '.join(UPDATES)}")
        if element not in ELEMENTS:
            raise ValueError(f"element {element!r}: expected one of {', '.join(ELEMENTS)}")
        if formulation not in ("intended", "as_printed"):
            raise ValueError(f"formulation {formulation!r}: expected intended or as_printed")
        self.rows_per_id = per_id if element == "multi" else 1
        self.num_ids, self.dim = num_ids, dim
        self.tau, self.alpha, self.beta = tau, alpha, beta
        self.update_rule, self.element, self.formulation = update, element, formulation
        self.variance_weight, self.seed = variance_weight, seed
        self.center = center
        self.register_buffer("memory", torch.zeros(num_ids * self.rows_per_id, dim))
        self.register_buffer("centre", torch.zeros(dim))  # running mean of the raw features (center)
        self.register_buffer("owner", torch.arange(num_ids).repeat_interleave(self.rows_per_id))
        self.register_buffer("initialised", torch.zeros((), dtype=torch.bool))

    def flatten(self, embeddings: torch.Tensor) -> torch.Tensor:
        """[N, P, C] part embeddings -> [N, P*C] L2-normalised features (centred first with ``center``)."""
        x = embeddings.reshape(len(embeddings), -1).float()
        return F.normalize(x - self.centre if self.center else x, dim=1)

    @torch.no_grad()
    def initialise(self, features: torch.Tensor, labels: torch.Tensor) -> None:
        """Fill the memory from one pass over the training set: features [N, P*C] or [N, P, C]."""
        if self.center and features.dim() == 3:
            self.centre.copy_(features.reshape(len(features), -1).float().mean(0))
        f = self.flatten(features) if features.dim() == 3 else F.normalize(features.float(), dim=1)
        gen = torch.Generator().manual_seed(self.seed)
        rows = []
        for i in range(self.num_ids):
            own = f[labels == i]
            if len(own) == 0:
                raise ValueError(f"identity {i} has no training sequence to initialise its memory row")
            centre = own.mean(0)
            if self.element == "centroid":
                chosen = centre[None]
            elif self.element == "hardest":
                chosen = own[(own - centre).norm(dim=1).argmax()][None]
            else:
                k = self.rows_per_id
                idx = (
                    torch.randint(len(own), (k,), generator=gen)
                    if len(own) < k
                    else torch.randperm(len(own), generator=gen)[:k]
                )
                chosen = own[idx.to(own.device)]
            rows.append(chosen)
        self.memory.copy_(F.normalize(torch.cat(rows), dim=1))
        self.initialised.fill_(True)

    @torch.no_grad()
    def update(self, features: torch.Tensor, labels: torch.Tensor) -> None:
        """One memory update (eq. 9) from a batch of normalised features [B, D] and labels."""
        if self.update_rule == "none":
            return
        present = labels.unique()
        old = self.memory.clone()
        mem = self.memory
        rows_of = lambda ids: torch.isin(self.owner, ids)  # noqa: E731
        for i in present:
            own = features[labels == i]
            rows = self.owner == i
            if self.update_rule == "hard":
                mem[rows] = own.mean(0)
            elif self.formulation == "as_printed":
                mem[rows] = (1 - self.alpha) / len(features) * own.sum(0) + self.alpha * mem[rows]
            else:
                mem[rows] = self.alpha * mem[rows] + (1 - self.alpha) * own.mean(0)
        mem[rows_of(present)] = F.normalize(mem[rows_of(present)], dim=1)
        if self.update_rule == "pu+au":
            absent = ~rows_of(present)
            if absent.any():
                if self.formulation == "as_printed":
                    mem[absent] = (1 - self.beta) * (features.mean(0) - mem[absent]) + self.beta * mem[absent]
                else:
                    moved = rows_of(present)
                    delta = (mem[moved] - old[moved]).mean(0)
                    mem[absent] = mem[absent] + (1 - self.beta) * delta
                mem[absent] = F.normalize(mem[absent], dim=1)

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        """Identity logits [B, num_ids] = F M^T / tau (the best row of each identity)."""
        sim = features @ self.memory.t() / self.tau
        if self.rows_per_id == 1:
            return sim
        return sim.reshape(len(features), self.num_ids, self.rows_per_id).amax(-1)

    def variance(self, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if self.formulation == "as_printed":
            return ((features - features.mean(0)) ** 2).sum(1).mean()
        ids, inverse = labels.unique(return_inverse=True)
        sums = torch.zeros(len(ids), features.shape[1], device=features.device, dtype=features.dtype)
        sums.index_add_(0, inverse, features)
        counts = torch.bincount(inverse, minlength=len(ids)).to(features.dtype)
        means = sums / counts[:, None]
        return ((features - means[inverse]) ** 2).sum(1).mean()

    def components(
        self, embeddings: torch.Tensor, labels: torch.Tensor, update: bool = True
    ) -> dict[str, torch.Tensor]:
        """{'gsam_ce', 'gsam_variance'} for a batch. In training the memory is first updated with the
        batch (algorithm 1: line 7 updates M, line 12 computes L_GSAM with it)."""
        if not bool(self.initialised):
            raise RuntimeError("GSAM memory used before initialise(): run one pass of the extractor first")
        if self.center and update and self.training:  # the centre follows the features, like the memory
            with torch.no_grad():
                batch = embeddings.reshape(len(embeddings), -1).float().mean(0)
                self.centre.mul_(self.alpha).add_((1 - self.alpha) * batch)
        f = self.flatten(embeddings)
        if update and self.training:
            self.update(f.detach(), labels)
        return {
            "gsam_ce": F.cross_entropy(self.logits(f), labels),
            "gsam_variance": self.variance_weight * self.variance(f, labels),
        }

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return sum(self.components(embeddings, labels).values())


class GSAMComponent(Component):
    """Recipe component ``gsam`` ("+G"): ``gamma_t * (CE over memory logits + variance)`` added
    after fusion (eq. 10-11). Its memory is filled in ``prepare`` by one pass of the untrained
    extractor over the training set (eq. 8) and travels in checkpoints as buffers."""

    consumes, role, weight_name = "embeddings", "extra", "gamma"

    def __init__(
        self,
        ctx: Context,
        tau: float = 0.1,
        alpha: float = 0.9,
        beta: float = 0.9,
        update: str = "pu+au",
        element: str = "centroid",
        per_id: int = 8,
        variance_weight: float = 1.0,
        factor: str = "sine",
        formulation: str = "intended",
        center: bool = False,
    ):
        super().__init__(ctx)
        fusion_factor(0, 1, factor)  # validates the shape
        self.factor = factor
        self.memory = GSAM(
            ctx.num_ids,
            ctx.parts * ctx.channels,
            tau=tau,
            alpha=alpha,
            beta=beta,
            update=update,
            element=element,
            per_id=per_id,
            variance_weight=variance_weight,
            formulation=formulation,
            center=center,
        )

    def prepare(self, model, data) -> None:
        self.memory.initialise(data.embed(model), data.labels)

    def weight(self, t: int, T: int) -> float:
        return fusion_factor(t, T, self.factor)

    def forward(self, emb, labels, t, T):
        return self.memory.components(emb, labels)
