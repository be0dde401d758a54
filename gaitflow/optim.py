"""Optimisers and the learning-rate schedule.

The schedule is a pure function of the iteration: linear warm-up over the first
`warmup` iterations, then multi-step decay by `gamma` at each milestone (counted
in iterations, as the reference trainer steps its scheduler every iteration).
"""

from __future__ import annotations

import bisect

import torch


def lr_factor(iteration: int, warmup: int, milestones: list[int], gamma: float) -> float:
    """Multiplier of the base learning rate at an iteration (0-based)."""
    warm = min(1.0, (iteration + 1) / warmup) if warmup > 0 else 1.0
    return warm * gamma ** bisect.bisect_right(sorted(milestones), iteration)


def build_optimizer(params, name: str, lr: float, momentum: float, weight_decay: float) -> torch.optim.Optimizer:
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    raise ValueError(f"optimizer {name!r}: expected adam or sgd")


def build_scheduler(opt: torch.optim.Optimizer, warmup: int, milestones: list[int], gamma: float):
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda it: lr_factor(it, warmup, milestones, gamma))
