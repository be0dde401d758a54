"""The Gait Energy Image (Han and Bhanu, 2006) as a model: the mean silhouette over the real
frames, flattened into one part. It has no parameters, so it needs no training and is the
baseline every trained model must beat."""

from __future__ import annotations

from gaitflow.models import register
from gaitflow.models.base import GaitModel


@register("gei")
class GEI(GaitModel):
    def features(self, x, mask, lengths):
        n, _, s, h, w = x.shape
        if mask is None:
            mean = x.mean(dim=2)
        else:
            weights = mask.to(x.dtype)[:, None, :, None, None]
            mean = (x * weights).sum(2) / lengths.to(x.dtype)[:, None, None, None]
        return mean.reshape(n, h * w, 1), None
