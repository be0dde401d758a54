"""GLN, the Gait Lateral Network (Hou et al., ECCV 2020).

A GaitSet-like trunk (per-frame stages 32-64-128 and set stages on the pooled
maps) whose three levels are joined top-down, as in a feature pyramid: lateral
1x1 convolutions to 256 channels, nearest upsampling and addition, 3x3
smoothing. Each level goes through the horizontal pooling pyramid (31 parts),
93 parts in all, then a separate FC per part, 256 -> 256.

``phase=1`` is the lateral pre-training network (triplet only). ``phase=2`` adds
the compact block of the second phase (BN, dropout, ReLU, a linear map of all
parts to 256, BN, and a classifier) whose logits feed a cross-entropy loss; the
embedding stays the 93-part feature, as in the reference.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from gaitflow.errors import GaitflowError
from gaitflow.models import register
from gaitflow.models.base import GaitModel, init_weights
from gaitflow.models.blocks import FrameWise, HorizontalPooling, SeparateFCs, conv2d, lrelu, masked_max, scaled
from gaitflow.models.gaitset import pyramid_bins


def _stage(cin: int, cout: int, first_kernel: int = 3) -> nn.Sequential:
    return nn.Sequential(conv2d(cin, cout, first_kernel), lrelu(), conv2d(cout, cout, 3), lrelu())


@register("gln")
class GLN(GaitModel):
    def __init__(
        self,
        frame_shape=(64, 44),
        width: float = 1.0,
        num_classes: int = 74,
        phase: int = 1,
        lateral: int = 256,
        embedding: int = 256,
        dropout: float = 0.9,
    ):
        super().__init__(frame_shape, width, num_classes)
        if phase not in (1, 2):
            raise GaitflowError(f"phase {phase!r}: expected 1 (lateral pre-training) or 2 (compact block)")
        c = [scaled(x, width) for x in (32, 64, 128)]
        lat, emb = scaled(lateral, width), scaled(embedding, width)
        self.sil0 = FrameWise(_stage(1, c[0], 5))
        self.sil1 = FrameWise(_stage(c[0], c[1]))
        self.sil2 = FrameWise(_stage(c[1], c[2]))
        self.set1, self.set2 = _stage(c[0], c[1]), _stage(c[1], c[2])
        self.pool = FrameWise(nn.MaxPool2d(2))
        self.lateral = nn.ModuleList([nn.Conv2d(2 * ch, lat, 1, bias=False) for ch in c])
        self.smooth = nn.ModuleList([nn.Conv2d(lat, lat, 3, padding=1, bias=False) for _ in c])
        heights = (frame_shape[0], frame_shape[0] // 2, frame_shape[0] // 4)
        self.hpps = nn.ModuleList([HorizontalPooling(pyramid_bins(h)) for h in heights])
        parts = sum(sum(h.bins) for h in self.hpps)
        self.head = SeparateFCs(parts, lat, emb)
        self.phase = phase
        if phase == 2:
            self.compact = nn.Sequential(
                nn.BatchNorm1d(parts * emb),
                nn.Dropout(dropout),
                nn.ReLU(inplace=True),
                nn.Linear(parts * emb, emb, bias=False),
                nn.BatchNorm1d(emb),
            )
            self.classifier = nn.Linear(emb, num_classes, bias=False)
        init_weights(self)

    def features(self, x, mask, lengths):
        s0 = self.sil0(x, mask)
        set0 = masked_max(s0, mask)
        in1 = self.pool(s0, mask)
        s1 = self.sil1(in1, mask)
        s2 = self.sil2(self.pool(s1, mask), mask)
        set1_sil = masked_max(s1, mask)
        set1 = self.set1(masked_max(in1, mask)) + set1_sil
        set2_sil = masked_max(s2, mask)
        set2 = self.set2(F.max_pool2d(set1, 2)) + set2_sil
        levels = [torch.cat(p, 1) for p in ((set0, set0), (set1_sil, set1), (set2_sil, set2))]
        top = self.lateral[2](levels[2])
        mid = F.interpolate(top, size=levels[1].shape[-2:], mode="nearest") + self.lateral[1](levels[1])
        low = F.interpolate(mid, size=levels[0].shape[-2:], mode="nearest") + self.lateral[0](levels[0])
        maps = [self.smooth[0](low), self.smooth[1](mid), self.smooth[2](top)]
        feat = self.head(torch.cat([hpp(m) for hpp, m in zip(self.hpps, maps)], -1))
        if self.phase == 1:
            return feat, None
        compact = self.compact(feat.reshape(feat.shape[0], -1))
        return feat, self.classifier(compact)[:, :, None]  # one "part" of logits
