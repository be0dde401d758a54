"""Building blocks shared by the backbones, written once.

Tensors inside the backbones are ``[N, C, S, H, W]`` (batch, channels, frames,
height, width). Part features are ``[N, C, P]`` inside a model and ``[N, P, C]``
at its output.

Variable length: a batch may mix sequences of different lengths, padded to the
longest, with ``lengths`` giving each one's true frame count. Padded frames
must not change any valid output, so every block that mixes frames either
masks them (``masked_max``) or sees zeros there, exactly as zero padding would
give a sequence run alone (``zero_padded``, applied before each temporal layer).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def scaled(channels: int, width: float) -> int:
    """A channel count under the width multiplier (at least 1)."""
    return max(1, int(round(channels * width)))


def frame_mask(lengths: torch.Tensor | None, frames: int) -> torch.Tensor | None:
    """bool [N, S]: True for real frames; None when there is no padding to mask."""
    if lengths is None:
        return None
    mask = torch.arange(frames, device=lengths.device)[None, :] < lengths[:, None]
    return None if bool(mask.all()) else mask


def _broadcast(mask: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """[N, S] -> shape broadcastable to x [N, C, S, ...]."""
    return mask.view(mask.shape[0], 1, mask.shape[1], *([1] * (x.dim() - 3)))


def zero_padded(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Zero the padded frames of x [N, C, S, ...], so a temporal layer sees what zero padding gives."""
    return x if mask is None else x * _broadcast(mask, x).to(x.dtype)


def masked_max(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Max over the frames of x [N, C, S, ...], ignoring padded frames (set pooling, temporal pooling).

    Reduced in frame-major order ([N, S, C, ...], how frame-wise blocks lay frames out), so the
    gradient comes back in the producer's layout instead of being copied into it."""
    frames_first = x.transpose(1, 2)
    if mask is not None:
        frames_first = frames_first.masked_fill(~mask.view(*mask.shape, *([1] * (x.dim() - 2))), float("-inf"))
    return frames_first.amax(dim=1)


def downsample_lengths(lengths: torch.Tensor | None, kernel: int, stride: int) -> torch.Tensor | None:
    """Frame counts after an unpadded temporal convolution: floor((L - k) / s) + 1."""
    return None if lengths is None else torch.div(lengths - kernel, stride, rounding_mode="floor") + 1


class FrameWise(nn.Module):
    """Runs a 2D block on every frame: [N, C, S, H, W] -> [N, C', S, H', W'].

    With a padding mask only the real frames are computed; padded frames come
    out as zeros.
    """

    def __init__(self, block: nn.Module):
        super().__init__()
        self.block = block

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        n, c, s, h, w = x.shape
        frames = x.transpose(1, 2).reshape(n * s, c, h, w)
        if mask is None:
            out = self.block(frames)
            return out.reshape(n, s, *out.shape[1:]).transpose(1, 2)
        flat = mask.reshape(-1)
        real = self.block(frames[flat])
        out = real.new_zeros((n * s, *real.shape[1:]))
        out[flat] = real
        return out.reshape(n, s, *real.shape[1:]).transpose(1, 2)


def conv2d(cin: int, cout: int, k: int, stride: int = 1, padding: int | None = None) -> nn.Conv2d:
    """Bias-free 2D convolution (biases are redundant before BN and break zero-frame exactness)."""
    return nn.Conv2d(cin, cout, k, stride, k // 2 if padding is None else padding, bias=False)


def conv3d(cin: int, cout: int, k=(3, 3, 3), stride=(1, 1, 1), padding=(1, 1, 1)) -> nn.Conv3d:
    return nn.Conv3d(cin, cout, k, stride, padding, bias=False)


class HorizontalPooling(nn.Module):
    """Horizontal pooling pyramid: the map is cut into b horizontal strips for each b in `bins`,
    and each strip is pooled by mean + max over its pixels. [N, C, H, W] -> [N, C, sum(bins)]."""

    def __init__(self, bins=(16, 8, 4, 2, 1)):
        super().__init__()
        self.bins = tuple(bins)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c = x.shape[:2]
        out = []
        for b in self.bins:
            z = x.reshape(n, c, b, -1)
            out.append(z.mean(-1) + z.amax(-1))
        return torch.cat(out, -1)


class GeMPooling(nn.Module):
    """Generalised-mean horizontal pooling with a learnable exponent p (GaitGL's GeM-HPP):
    each of `bins` strips -> (mean x^p)^(1/p). [N, C, H, W] -> [N, C, bins]."""

    def __init__(self, bins: int, p: float = 6.5, eps: float = 1e-6):
        super().__init__()
        self.bins = bins
        self.p = nn.Parameter(torch.ones(1) * p)
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c = x.shape[:2]
        z = x.reshape(n, c, self.bins, -1).clamp(min=self.eps).pow(self.p)
        return z.mean(-1).pow(1.0 / self.p)


class SeparateFCs(nn.Module):
    """One bias-free linear map per part: [N, C_in, P] -> [N, C_out, P]."""

    def __init__(self, parts: int, cin: int, cout: int, norm: bool = False):
        super().__init__()
        self.weight = nn.Parameter(nn.init.xavier_uniform_(torch.zeros(parts, cin, cout)))
        self.norm = norm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = F.normalize(self.weight, dim=1) if self.norm else self.weight
        return torch.einsum("ncp,pco->nop", x, w)


class BNNeck(nn.Module):
    """BNNeck head (Luo et al. 2019), part-wise: BatchNorm over all part features, then cosine logits
    against normalised per-part class weights. [N, C, P] -> (features [N, C, P], logits [N, K, P])."""

    def __init__(self, parts: int, channels: int, classes: int, norm: bool = True):
        super().__init__()
        self.bn = nn.BatchNorm1d(channels * parts)
        self.weight = nn.Parameter(nn.init.xavier_uniform_(torch.zeros(parts, channels, classes)))
        self.norm = norm

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n, c, p = x.shape
        feat = self.bn(x.reshape(n, -1)).reshape(n, c, p)
        if self.norm:
            logits = torch.einsum("ncp,pck->nkp", F.normalize(feat, dim=1), F.normalize(self.weight, dim=1))
        else:
            logits = torch.einsum("ncp,pck->nkp", feat, self.weight)
        return feat, logits


class FocalConv2d(nn.Module):
    """GaitPart's focal convolution: one conv shared by 2**halving horizontal strips, each convolved
    on its own (no context crosses a strip boundary)."""

    def __init__(self, cin: int, cout: int, k: int, halving: int):
        super().__init__()
        self.conv = conv2d(cin, cout, k)
        self.halving = halving

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.halving == 0:
            return self.conv(x)
        strips = x.split(x.shape[2] // 2**self.halving, dim=2)
        return torch.cat([self.conv(s) for s in strips], dim=2)


def lrelu() -> nn.LeakyReLU:
    return nn.LeakyReLU(inplace=True)
