"""Base losses against values computed by hand, a brute-force oracle and an independent implementation."""

import itertools
import math

import pytest
import torch

from gaitflow.losses.base import (
    Circle,
    CrossEntropy,
    TripletBatchAll,
    TripletBatchHard,
    part_distances,
    part_similarities,
    triplet_terms,
)


def _points(*xs):
    """1-D points as embeddings [N, 1 part, 1 channel]."""
    return torch.tensor(xs, dtype=torch.float64)[:, None, None]


def test_part_distances_by_hand():
    emb = torch.tensor([[[0.0, 0.0]], [[3.0, 4.0]], [[6.0, 8.0]]])
    torch.testing.assert_close(part_distances(emb)[0], torch.tensor([[0.0, 5, 10], [5, 0, 5], [10, 5, 0]]))


def test_batch_all_by_hand():
    # x = 0, 1 | 1.5, 4; margin 0.5. Non-zero triples: (1,0,2) 1.0, (2,3,0) 1.5, (2,3,1) 2.5 -> mean 5/3
    d = part_distances(_points(0, 1, 1.5, 4))
    loss = TripletBatchAll(0.5)(d, torch.tensor([0, 0, 1, 1]))
    assert loss.item() == pytest.approx(5 / 3)


def test_batch_hard_by_hand():
    # hardest positive / negative per anchor: 0, 1.0, 2.5, 0 -> mean 0.875
    d = part_distances(_points(0, 1, 1.5, 4))
    assert TripletBatchHard(0.5)(d, torch.tensor([0, 0, 1, 1])).item() == pytest.approx(0.875)


def test_batch_all_paths_agree_with_brute_force():
    torch.manual_seed(0)
    for labels in (torch.tensor([0, 0, 1, 1, 2, 2]), torch.tensor([0, 0, 0, 1, 1, 2])):  # uniform, ragged
        emb = torch.randn(len(labels), 3, 4, dtype=torch.float64)
        d = part_distances(emb)
        got = TripletBatchAll(0.3)(d, labels)
        for p in range(3):
            terms = [
                max(0.0, 0.3 + d[p, a, q].item() - d[p, a, n].item())
                for a, q, n in itertools.product(range(len(labels)), repeat=3)
                if a != q and labels[a] == labels[q] and labels[a] != labels[n]
            ]
            nonzero = [t for t in terms if t > 0]
            assert got[p].item() == pytest.approx(sum(nonzero) / len(nonzero) if nonzero else 0.0)
        assert triplet_terms(d, labels, 0.3).shape[0] == 3


def test_cross_entropy_by_hand():
    logits = torch.tensor([[[2.0, 0.0]]])  # N=1, P=1, K=2
    z = math.log(math.exp(2) + 1)
    log_p0, log_p1 = 2 - z, -z
    ce = CrossEntropy(scale=1.0, label_smoothing=0.1)(logits, torch.tensor([0]))
    assert ce.item() == pytest.approx(-(0.95 * log_p0 + 0.05 * log_p1), rel=1e-6)
    assert CrossEntropy(scale=16, label_smoothing=0.0)(torch.zeros(3, 4, 5), torch.tensor([0, 1, 2])).shape == (4,)


def test_circle_by_hand():
    angles = [0.0, 0.5, 1.2]
    emb = torch.tensor([[[math.cos(a), math.sin(a)]] for a in angles])
    m, g = 0.25, 8.0
    s = lambda i, j: math.cos(angles[i] - angles[j])  # noqa: E731

    def anchor(sp, sn):
        ap, an = max(0.0, 1 + m - sp), max(0.0, sn + m)
        return math.log1p(math.exp(g * an * (sn - m) - g * ap * (sp - 1 + m)))

    expected = (anchor(s(0, 1), s(0, 2)) + anchor(s(1, 0), s(1, 2))) / 2  # anchor 2 has no positive
    got = Circle(m, g)(part_similarities(emb), torch.tensor([0, 0, 1]))
    assert got.item() == pytest.approx(expected, rel=1e-5)


def test_no_nan_or_inf_for_large_or_identical_embeddings():
    labels = torch.tensor([0, 0, 1, 1])
    for emb in (torch.randn(4, 2, 8) * 1e4, torch.ones(4, 2, 8)):
        emb = emb.clone().requires_grad_(True)
        d = part_distances(emb)
        total = (
            TripletBatchAll()(d, labels).sum()
            + TripletBatchHard()(d, labels).sum()
            + Circle()(part_similarities(emb), labels).sum()
        )
        total.backward()
        assert torch.isfinite(total) and torch.isfinite(emb.grad).all()


def test_cross_check_with_pytorch_metric_learning():
    pml = pytest.importorskip("pytorch_metric_learning")
    from pytorch_metric_learning import distances, losses

    torch.manual_seed(1)
    emb = torch.randn(12, 16, dtype=torch.float64)
    labels = torch.arange(4).repeat_interleave(3)
    theirs = losses.TripletMarginLoss(margin=0.2, distance=distances.LpDistance(normalize_embeddings=False))
    ours = TripletBatchAll(0.2)(part_distances(emb[:, None, :]), labels)
    assert ours.item() == pytest.approx(theirs(emb, labels).item(), rel=1e-6)
    theirs = losses.CircleLoss(m=0.25, gamma=64)
    ours = Circle(0.25, 64)(part_similarities(emb[:, None, :]), labels)
    assert ours.item() == pytest.approx(theirs(emb, labels).item(), rel=1e-5)
    assert pml.__version__
