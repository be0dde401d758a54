"""GaitPart (Fan et al., CVPR 2020): part-based micro-motion.

A per-frame backbone with focal convolutions (the map cut into 4, then 8
horizontal strips convolved separately), horizontal pooling into 16 parts per
frame, and the temporal feature aggregator: for each part, two micro-motion
templates (mean + max over 3 and over 5 neighbouring frames), each weighted by
a sigmoid attention from a small per-part 1D convolution, then the max over
time. A separate FC per part, 128 -> 128. 1.204 M parameters at width 1.

Per-part convolutions are grouped convolutions (one group per part): the same
weights as separate modules, in one call.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from gaitflow.models import register
from gaitflow.models.base import GaitModel, init_weights
from gaitflow.models.blocks import (
    FocalConv2d,
    FrameWise,
    HorizontalPooling,
    SeparateFCs,
    conv2d,
    lrelu,
    masked_max,
    scaled,
    zero_padded,
)


class MicroMotion(nn.Module):
    """One micro-motion branch over [N, P*C, S]: template (mean + max over `window` frames) x attention."""

    def __init__(self, parts: int, channels: int, window: int, second_kernel: int, squeeze: int = 4):
        super().__init__()
        hidden = channels // squeeze
        self.conv1 = nn.Conv1d(parts * channels, parts * hidden, 3, padding=1, groups=parts, bias=False)
        self.conv2 = nn.Conv1d(
            parts * hidden, parts * channels, second_kernel, padding=second_kernel // 2, groups=parts, bias=False
        )
        self.window = window

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        hidden = zero_padded(F.leaky_relu(self.conv1(x)), mask)
        scores = torch.sigmoid(self.conv2(hidden))
        pad = self.window // 2
        mean = F.avg_pool1d(x, self.window, 1, pad)  # zero padding counted, as for a sequence alone
        peak = x if mask is None else x.masked_fill(~mask[:, None, :], float("-inf"))
        peak = F.max_pool1d(peak, self.window, 1, pad)
        return (mean + peak) * scores


@register("gaitpart")
class GaitPart(GaitModel):
    def __init__(self, frame_shape=(64, 44), width: float = 1.0, num_classes: int = 74, embedding: int = 128):
        super().__init__(frame_shape, width, num_classes)
        c = [scaled(x, width) for x in (32, 64, 128)]
        h2, h3 = frame_shape[0] // 2, frame_shape[0] // 4
        halve2 = min(2, max(0, h2.bit_length() - 1))
        halve3 = min(3, max(0, h3.bit_length() - 1))
        self.backbone = FrameWise(
            nn.Sequential(
                conv2d(1, c[0], 5),
                lrelu(),
                conv2d(c[0], c[0], 3),
                lrelu(),
                nn.MaxPool2d(2),
                FocalConv2d(c[0], c[1], 3, halve2),
                lrelu(),
                FocalConv2d(c[1], c[1], 3, halve2),
                lrelu(),
                nn.MaxPool2d(2),
                FocalConv2d(c[1], c[2], 3, halve3),
                lrelu(),
                FocalConv2d(c[2], c[2], 3, halve3),
                lrelu(),
            )
        )
        self.parts = min(16, h3)
        self.hpp = FrameWise(HorizontalPooling((self.parts,)))
        self.mtb1 = MicroMotion(self.parts, c[2], 3, 1)
        self.mtb2 = MicroMotion(self.parts, c[2], 5, 3)
        self.head = SeparateFCs(self.parts, c[2], scaled(embedding, width))
        init_weights(self)

    def features(self, x, mask, lengths):
        parts = self.hpp(self.backbone(x, mask), mask)  # [N, C, S, P]
        n, c, s, p = parts.shape
        seq = parts.permute(0, 3, 1, 2).reshape(n, p * c, s)  # parts as channel groups
        motion = self.mtb1(seq, mask) + self.mtb2(seq, mask)
        pooled = masked_max(motion.reshape(n, p, c, s).permute(0, 2, 3, 1), mask)  # [N, C, P]
        return self.head(pooled), None
