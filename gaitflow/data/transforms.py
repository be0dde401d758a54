"""Training augmentation of whole sequences: one transform per sequence, the same for all its frames.

- flip: mirror the sequence left-right with probability `flip`;
- affine: with probability `affine`, rotate by up to +-`rotate` degrees and shift by up to
  +-`shift` of the frame size (bilinear resampling, zeros outside).

Parameters are drawn from the trainer's numpy generator, whose state is checkpointed,
so a resumed run draws the same augmentations.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def augment(
    x: torch.Tensor,
    rng: np.random.Generator,
    flip: float = 0.0,
    affine: float = 0.0,
    rotate: float = 0.0,
    shift: float = 0.0,
) -> torch.Tensor:
    """x: [N, S, H, W] float silhouettes -> augmented copy (x itself when nothing applies)."""
    n = x.shape[0]
    flips = rng.random(n) < flip
    warps = rng.random(n) < affine
    angles = np.radians(rng.uniform(-rotate, rotate, n))
    shifts = rng.uniform(-shift, shift, (n, 2)) * 2  # affine_grid works in [-1, 1] coordinates
    if not flips.any() and not warps.any():
        return x
    x = x.clone()
    if flips.any():
        idx = torch.from_numpy(np.flatnonzero(flips)).to(x.device)
        x[idx] = x[idx].flip(-1)
    if warps.any():
        idx = np.flatnonzero(warps)
        theta = torch.zeros(len(idx), 2, 3, dtype=x.dtype, device=x.device)
        c, s = np.cos(angles[idx]), np.sin(angles[idx])
        theta[:, 0, 0] = torch.as_tensor(c)
        theta[:, 0, 1] = torch.as_tensor(-s)
        theta[:, 1, 0] = torch.as_tensor(s)
        theta[:, 1, 1] = torch.as_tensor(c)
        theta[:, :, 2] = torch.as_tensor(shifts[idx])
        t = torch.from_numpy(idx).to(x.device)
        seqs = x[t]  # [m, S, H, W]: frames as channels share the transform
        grid = F.affine_grid(theta, list(seqs.shape), align_corners=False)
        x[t] = F.grid_sample(seqs, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return x
