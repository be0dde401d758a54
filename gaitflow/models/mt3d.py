"""MT3D (Lin, Zhang and Bao, ACM MM 2020): a multiple-temporal-scale 3D CNN.

No implementation of MT3D has been published, so this one is built from the
paper's description: a 3D CNN that models time at two scales, short clips and
the whole sequence, fused before part pooling. What is described is followed;
what is not is our choice and is marked (ours) below.

- Stem: a 3x3x3 convolution, then frame pooling that aggregates each clip of
  3 consecutive frames (a temporal convolution with stride 3; kernel and stride
  are ours, as in GaitGL from the same group).
- Multi-temporal-scale blocks, channels 32-64-128 (ours, GaitGL's widths):
  the small scale is a 3x3x3 convolution over short clips; the large scale is a
  2D convolution of the whole sequence's max-pooled map, broadcast back over
  time. The two are fused by addition (ours) after a leaky ReLU each.
- A 2x2 spatial max pool after the first block (ours).
- Temporal max pooling, horizontal pooling into 32 parts (mean + max, ours),
  a separate FC per part, and a BN head feeding a per-part classifier (ours,
  as GaitGL), so it trains with triplet plus cross-entropy.
"""

from __future__ import annotations

import torch.nn as nn
import torch.nn.functional as F

from gaitflow.models import register
from gaitflow.models.base import GaitModel, init_weights
from gaitflow.models.blocks import (
    HorizontalPooling,
    SeparateFCs,
    conv2d,
    conv3d,
    downsample_lengths,
    frame_mask,
    lrelu,
    masked_max,
    scaled,
    zero_padded,
)
from gaitflow.models.gaitgl import repeat_short


class TwoScaleBlock(nn.Module):
    """Small temporal scale (3D conv on clips) + large scale (2D conv on the sequence-pooled map)."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.clip = conv3d(cin, cout)
        self.sequence = conv2d(cin, cout, 3)

    def forward(self, x, mask):
        small = F.leaky_relu(self.clip(zero_padded(x, mask)))
        large = F.leaky_relu(self.sequence(masked_max(x, mask)))
        return small + large.unsqueeze(2)


@register("mt3d")
class MT3D(GaitModel):
    def __init__(self, frame_shape=(64, 44), width: float = 1.0, num_classes: int = 74, parts: int = 32):
        super().__init__(frame_shape, width, num_classes)
        c = [scaled(x, width) for x in (32, 64, 128)]
        self.stem = nn.Sequential(conv3d(1, c[0]), lrelu())
        self.frame_pool = nn.Sequential(conv3d(c[0], c[0], (3, 1, 1), (3, 1, 1), (0, 0, 0)), lrelu())
        self.block1 = TwoScaleBlock(c[0], c[1])
        self.block2 = TwoScaleBlock(c[1], c[2])
        self.block3 = TwoScaleBlock(c[2], c[2])
        self.parts = min(parts, frame_shape[0] // 2)
        self.hpp = HorizontalPooling((self.parts,))
        self.head = SeparateFCs(self.parts, c[2], c[2])
        self.bn = nn.BatchNorm1d(c[2])
        self.classifier = SeparateFCs(self.parts, c[2], num_classes)
        init_weights(self)

    def features(self, x, mask, lengths):
        x, lengths = repeat_short(x, lengths)
        mask = frame_mask(lengths, x.shape[2])
        out = self.frame_pool(self.stem(zero_padded(x, mask)))
        lengths = downsample_lengths(lengths, 3, 3)
        mask = frame_mask(lengths, out.shape[2])
        out = self.block1(out, mask)
        out = F.max_pool3d(out, (1, 2, 2))
        out = self.block3(self.block2(out, mask), mask)
        emb = self.bn(self.head(self.hpp(masked_max(out, mask))))
        return emb, self.classifier(emb)
