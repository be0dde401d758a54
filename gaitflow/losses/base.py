"""Base losses, computed per part so that a part fusion can combine them (docs/losses.md#base-losses).

Each loss maps part embeddings (or logits) and labels to a vector of per-part
losses ``[P]``; how parts are combined (the mean, or Waveloss's norm-fusion) is
decided by :mod:`gaitflow.losses.fusion`. Pair losses take a per-part distance
or similarity matrix ``[P, N, N]``, so pre-fusion can hand them one averaged
matrix instead.

- Batch-all triplet (GaitMPL eq. 6): every (anchor, positive != anchor, negative)
  triple of the batch, ``[m + d_ap - d_an]_+``, averaged over the triples whose loss
  is non-zero (the averaging common gait code uses; 0 when none is).
- Batch-hard triplet: hardest positive and hardest negative per anchor (GaitMPL table VI).
- Cross-entropy on classification logits with a scale and label smoothing, per part.
- Circle loss (Sun et al., CVPR 2020), pair-based on cosine similarity, per anchor
  ``softplus(logsumexp_n(gamma a_n (s_n - m)) + logsumexp_p(-gamma a_p (s_p - 1 + m)))``
  with detached ``a_p = [1 + m - s_p]_+`` and ``a_n = [s_n + m]_+``, averaged over anchors.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from gaitflow.losses.component import Component, Context


def part_distances(emb: torch.Tensor) -> torch.Tensor:
    """Euclidean distances per part: [N, P, C] -> [P, N, N], from |x|^2 + |y|^2 - 2 x.y as a matrix
    product; self-distances are exactly 0 with a zero (not NaN) gradient."""
    x = emb.float().transpose(0, 1)  # [P, N, C]
    sq = (x * x).sum(-1)
    d2 = sq[:, :, None] + sq[:, None, :] - 2 * x @ x.transpose(1, 2)
    return _safe_sqrt(d2)


def _safe_sqrt(d2: torch.Tensor) -> torch.Tensor:
    """sqrt(max(d2, 0)) whose gradient is 0 (not inf or NaN) where the distance is 0."""
    positive = d2 > 1e-12
    return torch.where(positive, torch.sqrt(torch.where(positive, d2, torch.ones_like(d2))), torch.zeros_like(d2))


def part_similarities(emb: torch.Tensor) -> torch.Tensor:
    """Cosine similarities per part: [N, P, C] -> [P, N, N]."""
    x = F.normalize(emb.float(), dim=-1).transpose(0, 1)
    return x @ x.transpose(1, 2)


def pair_masks(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(positive, negative) masks [N, N]: same identity other than the anchor itself; other identity."""
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    return same & ~eye, ~same


def _uniform_indices(mask: torch.Tensor) -> torch.Tensor | None:
    """[N, k] column indices of each row's True entries when every row has the same count k."""
    counts = mask.sum(1)
    if len(counts) == 0 or bool((counts != counts[0]).any()) or int(counts[0]) == 0:
        return None
    return mask.nonzero()[:, 1].reshape(len(mask), int(counts[0]))


def triplet_terms(dist: torch.Tensor, labels: torch.Tensor, margin: float) -> torch.Tensor:
    """All batch-all triplet terms [m + d_ap - d_an]_+ per part: [P, T] (invalid triples are 0)."""
    pos, neg = pair_masks(labels)
    pi, ni = _uniform_indices(pos), _uniform_indices(neg)
    if pi is not None and ni is not None:  # P x K batches: gather, no N^3 cube
        ap = dist.gather(2, pi.expand(dist.shape[0], -1, -1))
        an = dist.gather(2, ni.expand(dist.shape[0], -1, -1))
        return F.relu(margin + ap[..., :, None] - an[..., None, :]).flatten(1)
    valid = (pos[:, :, None] & neg[:, None, :]).float()
    cube = F.relu(margin + dist[:, :, :, None] - dist[:, :, None, :]) * valid
    return cube.flatten(1)


def average_nonzero(terms: torch.Tensor) -> torch.Tensor:
    """[P, T] -> [P]: the mean of the non-zero terms of each part (0 where there are none)."""
    count = (terms > 0).sum(1)
    return terms.sum(1) / count.clamp(min=1)


class TripletBatchAll(nn.Module):
    """Batch-all triplet loss per part (GaitMPL eq. 6), averaged over the non-zero triples."""

    input = "distances"

    def __init__(self, margin: float = 0.2):
        super().__init__()
        self.margin = margin

    def forward(self, dist: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return average_nonzero(triplet_terms(dist, labels, self.margin))


class TripletBatchHard(nn.Module):
    """Batch-hard triplet per part: [m + max_p d_ap - min_n d_an]_+ averaged over anchors."""

    input = "distances"

    def __init__(self, margin: float = 0.2):
        super().__init__()
        self.margin = margin

    def forward(self, dist: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        pos, neg = pair_masks(labels)
        hardest_pos = dist.masked_fill(~pos, float("-inf")).amax(2)
        hardest_neg = dist.masked_fill(~neg, float("inf")).amin(2)
        valid = pos.any(1) & neg.any(1)
        loss = F.relu(self.margin + hardest_pos - hardest_neg)
        return torch.where(valid, loss, torch.zeros_like(loss)).sum(1) / valid.sum().clamp(min=1)


class CrossEntropy(nn.Module):
    """Cross-entropy per part on logits [N, P, K]: scale x logits, uniform label smoothing."""

    input = "logits"

    def __init__(self, scale: float = 16.0, label_smoothing: float = 0.1):
        super().__init__()
        self.scale, self.label_smoothing = scale, label_smoothing

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        n, p, k = logits.shape
        per = F.cross_entropy(
            self.scale * logits.float().transpose(1, 2),
            labels[:, None].expand(n, p),
            reduction="none",
            label_smoothing=self.label_smoothing,
        )  # [N, P]
        return per.mean(0)


class Circle(nn.Module):
    """Circle loss per part on cosine similarities [P, N, N] (Sun et al. 2020, pair-based form)."""

    input = "similarities"

    def __init__(self, margin: float = 0.25, gamma: float = 64.0):
        super().__init__()
        self.margin, self.gamma = margin, gamma

    def forward(self, sim: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        pos, neg = pair_masks(labels)
        m, g = self.margin, self.gamma
        alpha_p = F.relu(1 + m - sim).detach()
        alpha_n = F.relu(sim + m).detach()
        logit_p = (-g * alpha_p * (sim - (1 - m))).masked_fill(~pos, float("-inf"))
        logit_n = (g * alpha_n * (sim - m)).masked_fill(~neg, float("-inf"))
        per_anchor = F.softplus(torch.logsumexp(logit_p, 2) + torch.logsumexp(logit_n, 2))  # [P, N]
        valid = pos.any(1) & neg.any(1)
        per_anchor = torch.where(valid, per_anchor, torch.zeros_like(per_anchor))
        return per_anchor.sum(1) / valid.sum().clamp(min=1)


class TripletComponent(Component):
    """Recipe component ``triplet``: the batch-all triplet per part, weighted in the total."""

    consumes, role = "distances", "part"

    def __init__(self, ctx: Context, margin: float = 0.2, weight: float = 1.0):
        super().__init__(ctx)
        self.margin, self.weight = margin, weight
        self.loss = TripletBatchAll(margin)

    def forward(self, dist, labels, t, T):
        return {"triplet": self.weight * self.loss(dist, labels)}


class CrossEntropyComponent(Component):
    """Recipe component ``ce``: cross-entropy per part on the model's logits (BNNeck / classifier)."""

    consumes, role = "logits", "part"

    def __init__(self, ctx: Context, scale: float = 16.0, label_smoothing: float = 0.1, weight: float = 1.0):
        super().__init__(ctx)
        self.weight = weight
        self.loss = CrossEntropy(scale, label_smoothing)

    def forward(self, logits, labels, t, T):
        return {"ce": self.weight * self.loss(logits, labels)}


class CircleComponent(Component):
    """Recipe component ``circle``: circle loss per part on cosine similarities."""

    consumes, role = "similarities", "part"

    def __init__(self, ctx: Context, margin: float = 0.25, gamma: float = 64.0, weight: float = 1.0):
        super().__init__(ctx)
        self.weight = weight
        self.loss = Circle(margin, gamma)

    def forward(self, sim, labels, t, T):
        return {"circle": self.weight * self.loss(sim, labels)}
