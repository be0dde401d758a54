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
CHANNELS_LAST = torch.channels_last_3d
CHUNK_BYTES = 32 * 2**20  # glibc's largest threshold for serving an allocation from its heap


def to_strips(x: torch.Tensor, strips: int) -> torch.Tensor:
    """[N, C, S, k * h, W] -> [N * k, C, S, h, W]: the k horizontal strips stacked into the batch,
    channels-last (the one copy is made in channels-last order, so its gradient comes back in it)."""
    n, c, s, h, w = x.shape
    rows = x.permute(0, 2, 3, 4, 1).unflatten(2, (strips, h // strips)).transpose(1, 2)  # [N, k, S, h, W, C]
    return rows.reshape(n * strips, s, h // strips, w, c).permute(0, 4, 1, 2, 3)


def from_strips(y: torch.Tensor, strips: int) -> torch.Tensor:
    """Inverse of :func:`to_strips`, as a view: [N * k, C, S, h, W] -> [N, C, S, k, h, W]."""
    return y.permute(0, 2, 3, 4, 1).unflatten(0, (-1, strips)).permute(0, 5, 2, 1, 3, 4)


class GLConv(nn.Module):
    """Global + local 3D convolution. `stack`: concatenate global and local along the height
    (GaitGL's last layer) instead of adding them.

    The local convolution sees each of the 2**halving horizontal strips alone (zero padding at the
    strip borders). When the strips are of equal height they are stacked into the batch and
    convolved in one call, which gives the same result as one call per strip."""

    def __init__(self, cin: int, cout: int, halving: int, stack: bool = False):
        super().__init__()
        self.global_conv = conv3d(cin, cout)
        self.local_conv = conv3d(cin, cout)
        self.halving, self.stack = halving, stack

    def branches(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(lrelu(global), lrelu(local)) of x [N, C, S, H, W]. The local branch comes back as
        [N, C', S, H, W], or, for equal strips, as a view [N, C', S, strips, H / strips, W] of
        the strip-stacked result (its strips are apart in memory: no 5D view of it exists)."""
        strips = 2**self.halving
        h = x.shape[3]
        if self.halving == 0:
            local = F.leaky_relu(self.local_conv(x), inplace=True)
        elif h % strips:  # unequal strips: one call per strip, as the split gives them
            local = torch.cat([self.local_conv(p) for p in x.split(h // strips, dim=3)], dim=3)
            local = F.leaky_relu(local, inplace=True)
        else:
            local = F.leaky_relu(self.local_conv(to_strips(x, strips)), inplace=True)
            local = from_strips(local, strips)
        return F.leaky_relu(self.global_conv(x), inplace=True), local

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        glob, local = self.branches(x)
        if local.dim() == 6:  # strip-stacked: summed in glob's layout, which then is a plain 5D tensor
            if self.stack:
                return torch.cat([glob, local.flatten(3, 4)], dim=3)
            return (glob.unflatten(3, local.shape[3:5]) + local).flatten(3, 4)
        if self.stack:
            return torch.cat([glob, local], dim=3)
        return glob + local


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
        x = zero_padded(x, mask)  # temporal padding 1: zeros beyond a sequence, as alone
        # One channel: the same tensor with channels-last strides (a view), so that the 3D
        # convolutions and their gradients run channels-last, oneDNN's faster layout.
        x = x.squeeze(1).unsqueeze(4).permute(0, 4, 1, 2, 3)
        chunk = self._chunk(x)
        if chunk >= x.shape[0]:
            out = self.backbone(x, lengths)
        else:
            out = torch.cat(
                [
                    self.backbone(x[i : i + chunk], None if lengths is None else lengths[i : i + chunk])
                    for i in range(0, x.shape[0], chunk)
                ]
            )
        gait = self.head(self.hpp(out))
        emb = self.bn(gait)
        return emb, self.classifier(emb)

    def _chunk(self, x: torch.Tensor) -> int:
        """How many sequences go through the backbone at once. On the CPU, a few: the largest
        activation of a chunk (the stem's output) stays under CHUNK_BYTES, where the C allocator
        reuses freed memory instead of mapping fresh, zero-filled pages for every large activation
        of every step; that is about a quarter of a training step's time at the papers' shape. The
        backbone treats each sequence on its own, so chunks give the same result. Traced graphs
        (export) and other devices take the whole batch."""
        if x.device.type != "cpu" or torch.jit.is_tracing() or torch.jit.is_scripting():
            return x.shape[0]
        stem = x.shape[2] * x.shape[3] * x.shape[4] * self.stem[0].out_channels * x.element_size()
        return max(2, CHUNK_BYTES // stem)

    def backbone(self, x: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
        """Silhouettes [N, 1, S, H, W] (padded frames zero) -> temporally pooled map [N, C, 2H', W']."""
        mask = frame_mask(lengths, x.shape[2])
        out = x
        for i, m in enumerate(self.stem):
            if i and isinstance(m, nn.Conv3d):  # a second stem convolution sees zeros beyond a sequence
                out = zero_padded(out, mask)
            out = m(out)
            if i == 0:  # from a single sequence oneDNN returns the other layout
                out = out.contiguous(memory_format=CHANNELS_LAST)
        out = self.lta(out)
        mask = frame_mask(downsample_lengths(lengths, 3, 3), out.shape[2])
        for layer in self.layers[:-1]:
            out = layer(zero_padded(out, mask))
        last = self.layers[-1]
        if not last.stack:
            return masked_max(last(zero_padded(out, mask)), mask)  # temporal max pooling -> [N, C, H, W]
        # The stacked map's halves pooled over time on their own and then stacked (max pooling is per pixel).
        glob, local = last.branches(zero_padded(out, mask))
        local = masked_max(local, mask)
        return torch.cat([masked_max(glob, mask), local.flatten(2, 3) if local.dim() == 5 else local], dim=2)
