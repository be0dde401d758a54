"""Training-progress schedules, as pure functions of the iteration t (0-based) and the total T.

Equations as docs/losses.md#schedules states them:

- ``progressive_factor``: GaitMPL eq. 3, delta_t = delta_min + 0.5 (1 + cos(pi t / (2T))) eps;
  with delta_min = 0.1 and eps = 1.4 it falls from 1.5 at t = 0 to 0.8 at t = T.
- ``smoothness``: GaitMPL eq. 7, s_t = sin(pi t / (2T)), 0 -> 1 (weight of DRPL-BH).
- ``fusion_factor``: GaitMPL eq. 11, gamma_t (weight of GSAM), sine by default; the other
  rising shapes of the paper's table IX (equal, multi-step, logarithmic, exponential,
  polynomial). The paper names them without formulas; ours all rise from their value at
  t = 0 to 1 at t = T (equal weights is 1 throughout).
- ``dynamic_exponent``: Waveloss eq. 5, the exponent l_t of the norm-fusion weights.
  intended: l_min + (l_max - l_min) |sin(pi t C / (2T))|, moving between l_min and l_max
  in C half-waves; as_printed: (l_max - l_min) sin(pi t C / (2T)) - l_min, to the letter.
"""

from __future__ import annotations

import math

FUSION_SHAPES = ("equal", "multistep", "logarithmic", "exponential", "polynomial", "sine")


def _progress(t: float, T: float) -> float:
    if T <= 0:
        raise ValueError(f"total iterations T = {T}: expected a positive number")
    return min(max(t / T, 0.0), 1.0)


def progressive_factor(t: float, T: float, delta_min: float = 0.1, eps: float = 1.4) -> float:
    """GaitMPL eq. 3: the softmax temperature of DRPL's hardness weights (1.5 -> 0.8 by default)."""
    return delta_min + 0.5 * (1.0 + math.cos(math.pi * _progress(t, T) / 2.0)) * eps


def smoothness(t: float, T: float) -> float:
    """GaitMPL eq. 7: s_t = sin(pi t / (2T))."""
    return math.sin(math.pi * _progress(t, T) / 2.0)


def fusion_factor(
    t: float, T: float, shape: str = "sine", steps: tuple[float, ...] = (1 / 3, 2 / 3), power: float = 2.0
) -> float:
    """GaitMPL eq. 11 and table IX: the weight gamma_t of the GSAM loss."""
    x = _progress(t, T)
    if shape == "sine":
        return math.sin(math.pi * x / 2.0)
    if shape == "equal":
        return 1.0
    if shape == "multistep":  # 0, then equal steps up at each milestone fraction, 1 after the last
        return sum(x >= s for s in steps) / len(steps)
    if shape == "logarithmic":
        return math.log1p((math.e - 1.0) * x)
    if shape == "exponential":
        return (math.exp(x) - 1.0) / (math.e - 1.0)
    if shape == "polynomial":
        return x**power
    raise ValueError(f"fusion factor shape {shape!r}: expected one of {', '.join(FUSION_SHAPES)}")


def dynamic_exponent(
    t: float, T: float, l_min: float = -1.0, l_max: float = 1.0, cycles: float = 1.0, formulation: str = "intended"
) -> float:
    """Waveloss eq. 5: the Dynamic Learning Process exponent l_t (static when l_min == l_max).

    ``intended``: C = ``cycles`` full cycles l_min -> l_max -> l_min over training,
    ``l_min + (l_max - l_min) |sin(pi t C / T)|``; ``as_printed``: the paper's formula to the letter,
    ``(l_max - l_min) sin(pi t C / 2T) - l_min`` (docs/losses.md, "Dynamic exponent")."""
    x = _progress(t, T)
    if formulation == "intended":
        return l_min + (l_max - l_min) * abs(math.sin(math.pi * x * cycles))
    if formulation == "as_printed":
        return (l_max - l_min) * math.sin(math.pi * x * cycles / 2.0) - l_min
    raise ValueError(f"formulation {formulation!r}: expected intended or as_printed")
