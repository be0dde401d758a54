"""GaitMPL's Dynamic Reweighting Progressive Learning (DRPL), eq. 2-7 (docs/losses.md#drpl).

Distances are per part (Euclidean, as the batch-all triplet's) over a P x K batch;
every loss here returns per-part values ``[P]``.

Hardness weights (eq. 2), for anchor a over its positives p (same identity, a itself
excluded) and, separately, its negatives n; they carry no gradient:

- ``softmax`` (the paper's), intended: ``W_ap = softmax_p(d_ap / delta)``,
  ``W_an = softmax_n(-d_an / delta)``: far positives and near negatives weigh most, more
  sharply as delta falls. as_printed: ``softmax(exp(+-d / delta))``, a softmax of
  exponentials; the exponent is clamped at ``EXP_CLAMP`` (30) so it never overflows.
- ``threshold`` (table V): only the hard half is kept (positives at least as far as the
  anchor's mean positive distance, negatives at most as near as its mean negative
  distance; the threshold is ours), softmax weights over those.
- ``polynomial`` (table V): ``softmax_p(d_ap ** delta)``, ``softmax_n(-d_an ** delta)``.
- ``exponential`` (table V, static): the softmax weights with delta fixed at 1.

DRPL-BH (eq. 5), per anchor: intended ``[m + sum_p W_ap d_ap - sum_n W_an d_an]_+`` (each
sum a weighted mean), averaged over anchors; as_printed adds the printed ``1/K`` and
``1/(K(P-1))`` factors on top of the weights. As delta grows it tends to the
batch-average triplet (mean positive minus mean negative distance); as it shrinks, to
the batch-hard triplet.

L_DRPL (eq. 6-7) = L_triplet_BA + s_t * L_DRPL-BH, delta = delta_t (eq. 3), s_t = sin(pi t / 2T).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from gaitflow.losses.base import TripletBatchAll, TripletBatchHard, pair_masks
from gaitflow.losses.component import Component, Context
from gaitflow.losses.schedules import progressive_factor, smoothness

WEIGHTINGS = ("softmax", "threshold", "polynomial", "exponential")
EXP_CLAMP = 30.0


def _masked_softmax(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    w = torch.softmax(logits.masked_fill(~mask, float("-inf")), dim=-1)
    return torch.nan_to_num(w, nan=0.0)  # rows with no member stay 0


def hardness_weights(
    dist: torch.Tensor, labels: torch.Tensor, delta: float, weighting: str = "softmax", formulation: str = "intended"
) -> tuple[torch.Tensor, torch.Tensor]:
    """(W_pos, W_neg), each [P, N, N], rows summing to 1 over the anchor's positives / negatives."""
    if weighting not in WEIGHTINGS:
        raise ValueError(f"weighting {weighting!r}: expected one of {', '.join(WEIGHTINGS)}")
    if formulation not in ("intended", "as_printed"):
        raise ValueError(f"formulation {formulation!r}: expected intended or as_printed")
    pos, neg = pair_masks(labels)
    d = dist.detach().float()
    pos_m, neg_m = pos.expand_as(d), neg.expand_as(d)
    if weighting == "exponential":
        delta = 1.0
    if weighting == "polynomial":
        lp, ln = d.clamp(min=0) ** delta, -(d.clamp(min=0) ** delta)
    else:
        lp, ln = d / delta, -d / delta
    if formulation == "as_printed" and weighting != "polynomial":
        lp, ln = torch.exp(lp.clamp(max=EXP_CLAMP)), torch.exp(ln.clamp(max=EXP_CLAMP))
    if weighting == "threshold":
        mean_p = (d * pos_m).sum(-1, keepdim=True) / pos_m.sum(-1, keepdim=True).clamp(min=1)
        mean_n = (d * neg_m).sum(-1, keepdim=True) / neg_m.sum(-1, keepdim=True).clamp(min=1)
        pos_m, neg_m = pos_m & (d >= mean_p), neg_m & (d <= mean_n)
    return _masked_softmax(lp, pos_m), _masked_softmax(ln, neg_m)


def drpl_batch_hard(
    dist: torch.Tensor,
    labels: torch.Tensor,
    delta: float,
    margin: float = 0.2,
    weighting: str = "softmax",
    formulation: str = "intended",
) -> torch.Tensor:
    """DRPL-BH per part (eq. 5): [P]."""
    w_pos, w_neg = hardness_weights(dist, labels, delta, weighting, formulation)
    pos_term = (w_pos * dist).sum(-1)
    neg_term = (w_neg * dist).sum(-1)
    if formulation == "as_printed":
        pos, neg = pair_masks(labels)
        k = pos.sum(1).float() + 1  # sequences per identity, the anchor included (the printed K)
        pos_term = pos_term / k
        neg_term = neg_term / neg.sum(1).float().clamp(min=1)  # K (P - 1): the anchor's negatives
    pos, neg = pair_masks(labels)
    valid = pos.any(1) & neg.any(1)
    per_anchor = torch.where(valid, F.relu(margin + pos_term - neg_term), torch.zeros_like(pos_term))
    return per_anchor.sum(-1) / valid.sum().clamp(min=1)


class DRPL(nn.Module):
    """L_DRPL = [L_BA] + s_t * L_BH, with the BH part DRPL-BH (default) or the vanilla batch-hard
    triplet, and s_t the smoothness factor (or 1 without it): the variants of table VI."""

    input = "distances"

    def __init__(
        self,
        margin: float = 0.2,
        delta_min: float = 0.1,
        eps: float = 1.4,
        weighting: str = "softmax",
        formulation: str = "intended",
        batch_all: bool = True,
        smooth: bool = True,
        hard: str = "drpl",
    ):
        super().__init__()
        if hard not in ("drpl", "vanilla"):
            raise ValueError(f"hard {hard!r}: expected drpl or vanilla")
        hardness_weights(torch.zeros(1, 2, 2), torch.tensor([0, 1]), 1.0, weighting, formulation)  # validate
        self.margin, self.delta_min, self.eps = margin, delta_min, eps
        self.weighting, self.formulation = weighting, formulation
        self.batch_all, self.smooth, self.hard = batch_all, smooth, hard
        self.ba = TripletBatchAll(margin)
        self.vanilla = TripletBatchHard(margin)

    def components(self, dist: torch.Tensor, labels: torch.Tensor, t: int, T: int) -> dict[str, torch.Tensor]:
        """Named per-part terms, already weighted: {'triplet_ba': [P], 'drpl_bh': [P]}."""
        s = smoothness(t, T) if self.smooth else 1.0
        if self.hard == "vanilla":
            bh = self.vanilla(dist, labels)
        else:
            delta = progressive_factor(t, T, self.delta_min, self.eps)
            bh = drpl_batch_hard(dist, labels, delta, self.margin, self.weighting, self.formulation)
        out = {"drpl_bh": s * bh}
        if self.batch_all:
            out["triplet_ba"] = self.ba(dist, labels)
        return out

    def forward(self, dist: torch.Tensor, labels: torch.Tensor, t: int = 0, T: int = 1) -> torch.Tensor:
        return sum(self.components(dist, labels, t, T).values())


class DRPLComponent(DRPL, Component):
    """Recipe component ``drpl`` ("+D"): it reweights the recipe's triplet loss, so its terms take
    the triplet's place and its margin and weight (one margin for every term)."""

    consumes, role, target = "distances", "reweight", "triplet"

    def __init__(
        self,
        ctx: Context,
        delta_min: float = 0.1,
        eps: float = 1.4,
        weighting: str = "softmax",
        formulation: str = "intended",
        batch_all: bool = True,
        smooth: bool = True,
        hard: str = "drpl",
    ):
        triplet = ctx.components[self.target]
        super().__init__(triplet.margin, delta_min, eps, weighting, formulation, batch_all, smooth, hard)
        self.weight = triplet.weight

    def forward(self, dist, labels, t, T):
        return {k: self.weight * v for k, v in self.components(dist, labels, t, T).items()}
