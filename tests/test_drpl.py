"""DRPL: hardness weights, DRPL-BH and its limits, the total, the ablation variants."""

import math

import pytest
import torch

from gaitflow.losses.base import TripletBatchAll, TripletBatchHard, pair_masks, part_distances
from gaitflow.losses.drpl import DRPL, WEIGHTINGS, drpl_batch_hard, hardness_weights

LABELS = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2])


def _dist(seed=0, scale=1.0):
    torch.manual_seed(seed)
    return part_distances(torch.randn(len(LABELS), 2, 5, dtype=torch.float64) * scale)


def _batch_average(dist, labels, margin):
    pos, neg = pair_masks(labels)
    mean_p = (dist * pos).sum(-1) / pos.sum(-1)
    mean_n = (dist * neg).sum(-1) / neg.sum(-1)
    return torch.relu(margin + mean_p - mean_n).mean(-1)


def test_weights_by_hand():
    # anchor 0 has positives at distances 1 and 2 and negatives at 3 and 5
    d = torch.tensor([[[0.0, 1, 2, 3, 5], [1, 0, 1, 1, 1], [2, 1, 0, 1, 1], [3, 1, 1, 0, 1], [5, 1, 1, 1, 0]]])
    labels = torch.tensor([0, 0, 0, 1, 1])
    wp, wn = hardness_weights(d, labels, delta=1.0)
    e = math.e
    assert wp[0, 0, 1].item() == pytest.approx(e / (e + e**2))
    assert wp[0, 0, 2].item() == pytest.approx(e**2 / (e + e**2))
    assert wn[0, 0, 3].item() == pytest.approx(math.exp(-3) / (math.exp(-3) + math.exp(-5)))
    assert wp[0, 0, 0] == 0 and wn[0, 0, 1] == 0  # the anchor and its positives are not negatives


def test_limits_batch_average_and_batch_hard():
    d = _dist()
    wide = drpl_batch_hard(d, LABELS, delta=1e6, margin=0.2)
    torch.testing.assert_close(wide, _batch_average(d, LABELS, 0.2))
    sharp = drpl_batch_hard(d, LABELS, delta=1e-4, margin=0.2)
    torch.testing.assert_close(sharp, TripletBatchHard(0.2)(d, LABELS))


def test_weights_carry_no_gradient():
    emb = torch.randn(9, 2, 5, requires_grad=True)
    d = part_distances(emb)
    wp, wn = hardness_weights(d, LABELS, 0.8)
    assert not wp.requires_grad and not wn.requires_grad
    drpl_batch_hard(d, LABELS, 0.8).sum().backward()
    assert emb.grad is not None and torch.isfinite(emb.grad).all()


@pytest.mark.parametrize("weighting", WEIGHTINGS)
@pytest.mark.parametrize("formulation", ["intended", "as_printed"])
def test_no_nan_for_large_distances(weighting, formulation):
    emb = (torch.randn(9, 2, 5) * 1e4).requires_grad_(True)
    d = part_distances(emb)
    wp, wn = hardness_weights(d, LABELS, 0.8, weighting, formulation)
    assert torch.isfinite(wp).all() and torch.isfinite(wn).all()
    loss = drpl_batch_hard(d, LABELS, 0.8, 0.2, weighting, formulation).sum()
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(emb.grad).all()


def test_as_printed_adds_the_printed_factors():
    d = _dist(1)
    pos, neg = pair_masks(LABELS)
    intended_terms = drpl_batch_hard(d, LABELS, 1e6, margin=10.0)  # margin keeps every anchor active
    printed = drpl_batch_hard(d, LABELS, 1e6, margin=10.0, formulation="as_printed")
    mean_p = (d * pos).sum(-1) / pos.sum(-1)
    mean_n = (d * neg).sum(-1) / neg.sum(-1)
    # weights are uniform at large delta (exp of ~1 under as_printed is nearly flat too, so compare loosely)
    torch.testing.assert_close(intended_terms, (10.0 + mean_p - mean_n).mean(-1))
    assert (printed > 0).all() and not torch.allclose(printed, intended_terms)


def test_threshold_keeps_the_hard_half_and_exponential_is_delta_one():
    d = _dist(2)
    wp, wn = hardness_weights(d, LABELS, 0.8, "threshold")
    pos, _ = pair_masks(LABELS)
    kept = wp > 0
    mean_p = (d * pos).sum(-1, keepdim=True) / pos.sum(-1, keepdim=True)
    assert bool((d[kept] >= mean_p.expand_as(d)[kept]).all())
    static, _ = hardness_weights(d, LABELS, 0.3, "exponential")
    one, _ = hardness_weights(d, LABELS, 1.0, "softmax")
    torch.testing.assert_close(static, one)
    with pytest.raises(ValueError):
        hardness_weights(d, LABELS, 1.0, "cubic")


def test_total_is_batch_all_plus_smoothed_drpl_bh():
    d = _dist(3)
    drpl = DRPL()
    ba = TripletBatchAll(0.2)(d, LABELS)
    torch.testing.assert_close(drpl(d, LABELS, t=0, T=100), ba)  # s_0 = 0
    bh_end = drpl_batch_hard(d, LABELS, 0.8)
    torch.testing.assert_close(drpl(d, LABELS, t=100, T=100), ba + bh_end)  # s_T = 1, delta_T = 0.8
    no_ba = DRPL(batch_all=False, smooth=False)
    torch.testing.assert_close(no_ba(d, LABELS, 0, 100), drpl_batch_hard(d, LABELS, 1.5))
    vanilla = DRPL(hard="vanilla", smooth=False)
    torch.testing.assert_close(vanilla(d, LABELS, 0, 100), ba + TripletBatchHard(0.2)(d, LABELS))
    assert set(drpl.components(d, LABELS, 5, 10)) == {"triplet_ba", "drpl_bh"}
