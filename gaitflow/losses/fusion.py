"""Part fusion: how per-part losses become one loss (Waveloss; docs/losses.md#part-fusion).

- post-fusion (the usual way): the mean of the per-part losses.
- pre-fusion: the parts' distance (or similarity, or logit) matrices are averaged first
  and the base loss is computed once on the average (see :func:`pre_fuse`).
- norm-fusion (Waveloss eq. 4, 6, 7): with part losses L = (L_1..L_P),
  ``a_i = exp(L_i / ||L||_2)``, ``w_i = (a_i / ||a||_2) ** l`` under no-grad (eq. 6's gradient
  truncation), ``L_t = sum_i w_i L_i``, rescaled by ``m = sum_i L_i / sum_i w_i L_i`` (no-grad,
  eq. 7) and divided by P. Its value is exactly the post-fusion value; only the split of
  the gradient over parts changes: part i receives ``m w_i / P``. l = 0 is post-fusion;
  l > 0 leans on the parts with the largest loss, l < 0 on the smallest.
"""

from __future__ import annotations

import torch

from gaitflow.losses.component import PART_AXIS, Component, Context, post_fuse
from gaitflow.losses.schedules import dynamic_exponent

FUSIONS = ("post", "pre", "norm")


def post_fusion(part_losses: torch.Tensor) -> torch.Tensor:
    return part_losses.mean()


def norm_fusion_weights(part_losses: torch.Tensor, exponent: float) -> torch.Tensor:
    """The no-grad weights w_i of norm-fusion (eq. 4 and 6)."""
    with torch.no_grad():
        losses = part_losses.detach().float()
        norm = torch.linalg.vector_norm(losses)
        a = torch.exp(losses / norm) if norm > 0 else torch.ones_like(losses)
        return (a / torch.linalg.vector_norm(a)) ** exponent


def norm_fusion(part_losses: torch.Tensor, exponent: float) -> torch.Tensor:
    """Waveloss norm-fusion of per-part losses [P] with exponent l (eq. 4, 6, 7)."""
    w = norm_fusion_weights(part_losses, exponent).to(part_losses.dtype)
    weighted = (w * part_losses).sum()
    with torch.no_grad():
        rescale = part_losses.sum() / weighted if weighted != 0 else torch.ones_like(weighted)
    return rescale * weighted / part_losses.numel()


def pre_fuse(matrix: torch.Tensor) -> torch.Tensor:
    """Pre-fusion input: average a per-part matrix [P, ...] over parts, keeping one part."""
    return matrix.mean(0, keepdim=True)


class WavelossComponent(Component):
    """Recipe component ``waveloss``: how the per-part losses become one (post, pre or norm
    fusion), with norm-fusion's exponent l_t from the Dynamic Learning Process (eq. 5)."""

    consumes, role = "part_losses", "fusion"

    def __init__(
        self,
        ctx: Context,
        fusion: str = "norm",
        l_min: float = -1.0,
        l_max: float = 1.0,
        cycles: float = 1.0,
        formulation: str = "intended",
    ):
        super().__init__(ctx)
        if fusion not in FUSIONS:
            raise ValueError(f"fusion = {fusion!r}: expected one of {', '.join(FUSIONS)}")
        dynamic_exponent(0, 1, l_min, l_max, cycles, formulation)  # validates the formulation
        self.fusion, self.l_min, self.l_max, self.cycles, self.formulation = fusion, l_min, l_max, cycles, formulation

    def exponent(self, t: int, T: int) -> float:
        return dynamic_exponent(t, T, self.l_min, self.l_max, self.cycles, self.formulation)

    def fuse_input(self, x: torch.Tensor, kind: str) -> torch.Tensor:
        """Pre-fusion: the parts' matrices (or logits) averaged before the base loss sees them."""
        return x.mean(PART_AXIS[kind], keepdim=True) if self.fusion == "pre" else x

    def fuse(self, part_losses, t, T):
        if self.fusion != "norm":
            return post_fuse(part_losses), {}
        exponent = self.exponent(t, T)
        return norm_fusion(sum(part_losses.values()), exponent), {"waveloss_l": exponent}
