"""DeepGaitV2 (Fan et al., 2023): a deep residual gait network.

A 3x3 conv stem, one 2D residual block, then three stages of residual blocks
(channels 64-128-256-512, spatial strides 1-2-2-1), temporal max pooling, a
16-bin horizontal pooling, a separate FC per part (512 -> 256) and a BNNeck
head. ``mode``: ``p3d`` (the default: 2D blocks plus a temporal (3,1,1)
convolution shortcut in each, "pseudo-3D"), ``3d`` (full 3x3x3 blocks) or
``2d`` (no temporal modelling before the pooling).
"""

from __future__ import annotations

import torch.nn as nn
import torch.nn.functional as F

from gaitflow.errors import GaitflowError
from gaitflow.models import register
from gaitflow.models.base import GaitModel, init_weights
from gaitflow.models.blocks import (
    BNNeck,
    FrameWise,
    HorizontalPooling,
    SeparateFCs,
    conv2d,
    conv3d,
    masked_max,
    scaled,
    zero_padded,
)


def _basic2d(cin: int, cout: int, stride: int) -> nn.Module:
    return nn.Sequential(
        conv2d(cin, cout, 3, stride),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
        conv2d(cout, cout, 3),
        nn.BatchNorm2d(cout),
    )


class Residual(nn.Module):
    """A residual block over [N, C, S, H, W]: per-frame 2D, pseudo-3D or full 3D."""

    def __init__(self, cin: int, cout: int, stride: int, mode: str):
        super().__init__()
        self.mode = mode
        if mode == "3d":
            self.body = nn.Sequential(
                conv3d(cin, cout, stride=(1, stride, stride)), nn.BatchNorm3d(cout), nn.ReLU(inplace=True)
            )
            self.body2 = nn.Sequential(conv3d(cout, cout), nn.BatchNorm3d(cout))
        elif mode == "p3d":
            self.conv1 = FrameWise(
                nn.Sequential(conv2d(cin, cout, 3, stride), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))
            )
            self.temporal = nn.Sequential(conv3d(cout, cout, (3, 1, 1), (1, 1, 1), (1, 0, 0)), nn.BatchNorm3d(cout))
            self.conv2 = FrameWise(nn.Sequential(conv2d(cout, cout, 3), nn.BatchNorm2d(cout)))
        else:
            self.body = FrameWise(_basic2d(cin, cout, stride))
        self.shortcut = None
        if stride != 1 or cin != cout:
            self.shortcut = FrameWise(nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)))

    def forward(self, x, mask):
        identity = x if self.shortcut is None else self.shortcut(x, mask)
        if self.mode == "3d":
            out = self.body2(zero_padded(self.body(zero_padded(x, mask)), mask))
        elif self.mode == "p3d":
            out = self.conv1(x, mask)
            out = F.relu(out + self.temporal(zero_padded(out, mask)))
            out = self.conv2(out, mask)
        else:
            out = self.body(x, mask)
        return F.relu(out + identity)


@register("deepgaitv2")
class DeepGaitV2(GaitModel):
    def __init__(
        self,
        frame_shape=(64, 44),
        width: float = 1.0,
        num_classes: int = 74,
        mode: str = "p3d",
        channels=(64, 128, 256, 512),
        layers=(1, 1, 1, 1),
        embedding: int = 256,
    ):
        super().__init__(frame_shape, width, num_classes)
        if mode not in ("2d", "p3d", "3d"):
            raise GaitflowError(f"mode {mode!r}: expected 2d, p3d or 3d")
        c = [scaled(x, width) for x in channels]
        self.stem = FrameWise(nn.Sequential(conv2d(1, c[0], 3), nn.BatchNorm2d(c[0]), nn.ReLU(inplace=True)))
        blocks, cin = [], c[0]
        for i, (cout, stride, n) in enumerate(zip(c, (1, 2, 2, 1), layers)):
            for j in range(n):
                blocks.append(Residual(cin, cout, stride if j == 0 else 1, "2d" if i == 0 else mode))
                cin = cout
        self.blocks = nn.ModuleList(blocks)
        self.parts = min(16, frame_shape[0] // 4)
        self.hpp = HorizontalPooling((self.parts,))
        emb = scaled(embedding, width)
        self.fc = SeparateFCs(self.parts, c[-1], emb)
        self.bnneck = BNNeck(self.parts, emb, num_classes)
        init_weights(self)

    def features(self, x, mask, lengths):
        out = self.stem(x, mask)
        for block in self.blocks:
            out = block(out, mask)
        emb = self.fc(self.hpp(masked_max(out, mask)))
        _, logits = self.bnneck(emb)
        return emb, logits
