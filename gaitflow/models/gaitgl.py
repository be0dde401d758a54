"""GaitGL (Lin et al., ICCV 2021): global and local 3D convolutions.

A 3D stem, local temporal aggregation (a temporal convolution with stride 3),
global-local convolution layers (a global 3D conv over the whole map plus the
same-shaped conv over 8 horizontal strips separately), temporal max pooling,
GeM horizontal pooling into 64 parts (one per row of the final map), a separate
FC per part and a BN head whose output is the embedding and feeds a separate
classifier per part.

Variants: ``casia-b`` (channels 32-64-128, 3.097 M parameters at 64 x 44 with
74 classes), ``wide`` (64-128-256, as the Waveloss paper uses on CASIA-B) and
``ou-mvlp`` (32-64-128-256, two layers per stage, strips of half the map).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from gaitflow.errors import GaitflowError
from gaitflow.models import register
from gaitflow.models.base import GaitModel, init_weights
from gaitflow.models.blocks import (
    GeMPooling,
    SeparateFCs,
    conv3d,
    downsample_lengths,
    frame_mask,
    lrelu,
    masked_max,
    scaled,
    zero_padded,
)

VARIANTS = {
    "casia-b": {"channels": (32, 64, 128), "deep": False, "halving": 3},
    "wide": {"channels": (64, 128, 256), "deep": False, "halving": 3},
    "ou-mvlp": {"channels": (32, 64, 128, 256), "deep": True, "halving": 1},
}


class GLConv(nn.Module):
    """Global + local 3D convolution. `stack`: concatenate global and local along the height
    (GaitGL's last layer) instead of adding them."""

    def __init__(self, cin: int, cout: int, halving: int, stack: bool = False):
        super().__init__()
        self.global_conv = conv3d(cin, cout)
        self.local_conv = conv3d(cin, cout)
        self.halving, self.stack = halving, stack

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        glob = self.global_conv(x)
        if self.halving == 0:
            local = self.local_conv(x)
        else:
            local = torch.cat([self.local_conv(s) for s in x.split(x.shape[3] // 2**self.halving, dim=3)], dim=3)
        if self.stack:
            return F.leaky_relu(torch.cat([glob, local], dim=3))
        return F.leaky_relu(glob) + F.leaky_relu(local)


def repeat_short(x: torch.Tensor, lengths: torch.Tensor | None, minimum: int = 3):
    """Sequences shorter than `minimum` frames are tiled (as the reference repeats them) so the
    stride-3 aggregation has something to aggregate. x: [N, 1, S, H, W]."""
    s = x.shape[2]
    lens = lengths if lengths is not None else torch.full((x.shape[0],), s, device=x.device)
    if int(lens.min()) >= minimum:
        return x, lengths
    reps = torch.where(lens == 1, 3, torch.where(lens < minimum, 2, 1))
    new = lens * reps
    frames = int(new.max())
    idx = torch.arange(frames, device=x.device)[None, :] % lens[:, None]  # [N, S']
    idx = torch.where(idx < s, idx, 0)
    out = torch.gather(x, 2, idx[:, None, :, None, None].expand(-1, x.shape[1], -1, *x.shape[3:]))
    return out, new


@register("gaitgl")
class GaitGL(GaitModel):
    def __init__(self, frame_shape=(64, 44), width: float = 1.0, num_classes: int = 74, variant: str = "casia-b"):
        super().__init__(frame_shape, width, num_classes)
        if variant not in VARIANTS:
            raise GaitflowError(f"variant {variant!r}: expected one of {', '.join(VARIANTS)}")
        v = VARIANTS[variant]
        c = [scaled(x, width) for x in v["channels"]]
        half = min(v["halving"], max(0, (frame_shape[0] // 2).bit_length() - 1))
        if v["deep"]:
            self.stem = nn.Sequential(conv3d(1, c[0]), lrelu(), conv3d(c[0], c[0]), lrelu())
            stages = [
                (c[0], c[1], False),
                (c[1], c[1], False),
                None,
                (c[1], c[2], False),
                (c[2], c[2], False),
                (c[2], c[3], False),
                (c[3], c[3], True),
            ]
        else:
            self.stem = nn.Sequential(conv3d(1, c[0]), lrelu())
            stages = [(c[0], c[1], False), None, (c[1], c[2], False), (c[2], c[2], True)]
        self.lta = nn.Sequential(conv3d(c[0], c[0], (3, 1, 1), (3, 1, 1), (0, 0, 0)), lrelu())
        self.layers = nn.ModuleList(
            [nn.MaxPool3d((1, 2, 2)) if s is None else GLConv(s[0], s[1], half, stack=s[2]) for s in stages]
        )
        channels = c[-1]
        self.parts = frame_shape[0]  # one part per row: the last layer doubles the halved height
        self.hpp = GeMPooling(self.parts)
        self.head = SeparateFCs(self.parts, channels, channels)
        self.bn = nn.BatchNorm1d(channels)
        self.classifier = SeparateFCs(self.parts, channels, num_classes)
        init_weights(self)

    def features(self, x, mask, lengths):
        x, lengths = repeat_short(x, lengths)
        mask = frame_mask(lengths, x.shape[2])
        out = self.stem(zero_padded(x, mask))  # temporal padding 1: zeros beyond a sequence, as alone
        out = self.lta(out)
        lengths = downsample_lengths(lengths, 3, 3)
        mask = frame_mask(lengths, out.shape[2])
        for layer in self.layers:
            out = layer(zero_padded(out, mask))
        out = masked_max(out, mask)  # temporal max pooling -> [N, C, H, W]
        gait = self.head(self.hpp(out))
        emb = self.bn(gait)
        return emb, self.classifier(emb)
