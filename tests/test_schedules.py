"""Schedules: the end points and shapes docs/losses.md#schedules states."""

import math

import pytest

from gaitflow.losses.schedules import FUSION_SHAPES, dynamic_exponent, fusion_factor, progressive_factor, smoothness


def test_progressive_factor_end_points_and_monotone_fall():
    assert progressive_factor(0, 100) == pytest.approx(1.5)
    assert progressive_factor(100, 100) == pytest.approx(0.8)
    values = [progressive_factor(t, 100) for t in range(101)]
    assert all(a > b for a, b in zip(values, values[1:]))


def test_smoothness_end_points():
    assert smoothness(0, 50) == 0.0
    assert smoothness(50, 50) == pytest.approx(1.0)
    assert smoothness(25, 50) == pytest.approx(math.sin(math.pi / 4))


@pytest.mark.parametrize("shape", FUSION_SHAPES)
def test_fusion_factors_rise_to_one(shape):
    values = [fusion_factor(t, 90, shape) for t in range(91)]
    assert values[-1] == pytest.approx(1.0)
    assert all(b >= a for a, b in zip(values, values[1:]))
    if shape != "equal":
        assert values[0] == pytest.approx(0.0)
    with pytest.raises(ValueError):
        fusion_factor(1, 2, "cubic-spline")


def test_dynamic_exponent_intended_and_as_printed():
    # intended: C full cycles l_min -> l_max -> l_min over training, |sin(pi t C / T)|
    assert dynamic_exponent(0, 100) == pytest.approx(-1.0)
    assert dynamic_exponent(50, 100) == pytest.approx(1.0)  # C = 1: up to l_max at T/2 ...
    assert dynamic_exponent(100, 100) == pytest.approx(-1.0, abs=1e-9)  # ... and back to l_min at T
    assert dynamic_exponent(25, 100) == pytest.approx(-1.0 + 2 * math.sin(math.pi / 4))
    assert dynamic_exponent(25, 100, cycles=2) == pytest.approx(1.0)
    assert dynamic_exponent(50, 100, cycles=2) == pytest.approx(-1.0, abs=1e-9)
    assert dynamic_exponent(75, 100, cycles=2) == pytest.approx(1.0)
    values = [dynamic_exponent(t, 300, cycles=3) for t in range(301)]
    assert min(values) >= -1.0 - 1e-12 and max(values) <= 1.0 + 1e-12
    peaks = [t for t in range(1, 300) if values[t] > values[t - 1] and values[t] >= values[t + 1]]
    assert peaks == [50, 150, 250]  # three cycles, one l_max each
    # as printed: (l_max - l_min) sin(...) - l_min, which starts at +1 for the defaults
    assert dynamic_exponent(0, 100, formulation="as_printed") == pytest.approx(1.0)
    assert dynamic_exponent(100, 100, formulation="as_printed") == pytest.approx(3.0)
    # static l
    assert dynamic_exponent(37, 100, l_min=0.5, l_max=0.5) == 0.5
    with pytest.raises(ValueError):
        progressive_factor(1, 0)
