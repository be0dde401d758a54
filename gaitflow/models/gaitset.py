"""GaitSet (Chao et al., AAAI 2019): gait as an unordered set of frames.

Per-frame convolution blocks (32-64-128 channels), set pooling (max over the
frames) after every block, and a multilayer global pipeline that convolves
the pooled maps (its blocks are copies with their own weights). Both branches
go through the horizontal pooling pyramid (bins 16/8/4/2/1: 31 parts each, 62
in all), then a separate FC per part, 128 -> 256. 2.595 M parameters at width 1.
"""

from __future__ import annotations

import copy

import torch
import torch.nn as nn

from gaitflow.models import register
from gaitflow.models.base import GaitModel, init_weights
from gaitflow.models.blocks import FrameWise, HorizontalPooling, SeparateFCs, conv2d, lrelu, masked_max, scaled

STANDARD_BINS = (16, 8, 4, 2, 1)


def pyramid_bins(height: int, bins=STANDARD_BINS) -> tuple[int, ...]:
    """The pyramid's bins that fit a map of this height (all of them at the published resolution)."""
    return tuple(b for b in bins if b <= height and height % b == 0)


def set_blocks(width: float):
    """The three per-frame blocks GaitSet and GLN share: 32-64-128 channels, two pools."""
    c = [scaled(x, width) for x in (32, 64, 128)]
    b1 = nn.Sequential(conv2d(1, c[0], 5), lrelu(), conv2d(c[0], c[0], 3), lrelu(), nn.MaxPool2d(2))
    b2 = nn.Sequential(conv2d(c[0], c[1], 3), lrelu(), conv2d(c[1], c[1], 3), lrelu(), nn.MaxPool2d(2))
    b3 = nn.Sequential(conv2d(c[1], c[2], 3), lrelu(), conv2d(c[2], c[2], 3), lrelu())
    return c, (b1, b2, b3)


@register("gaitset")
class GaitSet(GaitModel):
    def __init__(self, frame_shape=(64, 44), width: float = 1.0, num_classes: int = 74, embedding: int = 256):
        super().__init__(frame_shape, width, num_classes)
        c, (b1, b2, b3) = set_blocks(width)
        self.set1, self.set2, self.set3 = FrameWise(b1), FrameWise(b2), FrameWise(b3)
        self.global2, self.global3 = copy.deepcopy(b2), copy.deepcopy(b3)
        bins = pyramid_bins(frame_shape[0] // 4)
        self.hpp = HorizontalPooling(bins)
        self.head = SeparateFCs(2 * sum(bins), c[2], scaled(embedding, width))
        init_weights(self)

    def features(self, x, mask, lengths):
        out = self.set1(x, mask)
        glob = self.global2(masked_max(out, mask))
        out = self.set2(out, mask)
        glob = self.global3(glob + masked_max(out, mask))
        out = masked_max(self.set3(out, mask), mask)
        glob = glob + out
        return self.head(torch.cat([self.hpp(out), self.hpp(glob)], -1)), None
