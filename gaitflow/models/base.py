"""The interface every backbone shares.

``model(sils, lengths=None)`` takes silhouettes ``[N, S, H, W]`` in [0, 1]
(padded to the longest sequence when ``lengths`` gives the true frame counts)
and returns a :class:`ModelOutput`: part embeddings ``[N, P, C]`` and, where the
model has a classification head, logits ``[N, P, K]``.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn as nn


class ModelOutput(NamedTuple):
    embeddings: torch.Tensor  # [N, P, C]
    logits: torch.Tensor | None = None  # [N, P, K]


class GaitModel(nn.Module):
    """Base class: subclasses implement ``features(x [N, 1, S, H, W], mask [N, S] | None, lengths)``
    returning part features ``[N, C, P]`` (and logits ``[N, K, P]`` or None)."""

    def __init__(self, frame_shape=(64, 44), width: float = 1.0, num_classes: int = 74):
        super().__init__()
        self.frame_shape = tuple(frame_shape)
        self.width = width
        self.num_classes = num_classes

    def features(self, x: torch.Tensor, mask: torch.Tensor | None, lengths: torch.Tensor | None):
        raise NotImplementedError

    def forward(self, sils: torch.Tensor, lengths: torch.Tensor | None = None) -> ModelOutput:
        from gaitflow.models.blocks import frame_mask

        if sils.dim() != 4:
            raise ValueError(f"expected silhouettes [N, S, H, W], got shape {tuple(sils.shape)}")
        mask = frame_mask(lengths, sils.shape[1])
        feats, logits = self.features(sils.unsqueeze(1), mask, lengths if mask is not None else None)
        emb = feats.transpose(1, 2)
        return ModelOutput(emb, None if logits is None else logits.transpose(1, 2))


def init_weights(model: nn.Module) -> None:
    """The reference initialisation: Xavier-uniform convolutions and linears with zero bias,
    BatchNorm weights drawn from N(1, 0.02) with zero bias (part FCs keep their own Xavier init)."""
    for m in model.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)) and m.affine:
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


def to_channels_last(model: nn.Module) -> nn.Module:
    """Channels-last memory for the 2D convolutions (faster on CPUs with oneDNN; 3D layers keep theirs)."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            m.to(memory_format=torch.channels_last)
    return model
