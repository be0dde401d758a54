"""GSAM: memory initialisation, the update strategies on a toy memory, the loss, checkpointed state."""

import math

import pytest
import torch
import torch.nn.functional as F

from gaitflow.losses.gsam import GSAM


def _memory(update="pu+au", formulation="intended", element="centroid"):
    g = GSAM(num_ids=3, dim=2, update=update, formulation=formulation, element=element, per_id=2)
    feats = torch.tensor([[1.0, 0.0], [1.0, 0.2], [0.0, 1.0], [0.2, 1.0], [-1.0, 0.0], [-1.0, -0.3]])
    g.initialise(feats, torch.tensor([0, 0, 1, 1, 2, 2]))
    return g


def test_centroid_initialisation():
    g = _memory()
    f = F.normalize(torch.tensor([[1.0, 0.0], [1.0, 0.2]]), dim=1).mean(0)
    torch.testing.assert_close(g.memory[0], F.normalize(f, dim=0))
    torch.testing.assert_close(g.memory.norm(dim=1), torch.ones(3))


def test_intended_update_moves_absent_rows_by_the_mean_movement():
    g = _memory()
    before = g.memory.clone()
    batch = F.normalize(torch.tensor([[0.6, 0.8], [0.8, 0.6]]), dim=1)
    g.update(batch, torch.tensor([0, 0]))
    present = F.normalize(0.9 * before[0] + 0.1 * batch.mean(0), dim=0)
    torch.testing.assert_close(g.memory[0], present)
    delta = present - before[0]
    for j in (1, 2):
        torch.testing.assert_close(g.memory[j], F.normalize(before[j] + 0.1 * delta, dim=0))


def test_as_printed_update_follows_the_printed_equation():
    g = _memory(formulation="as_printed")
    before = g.memory.clone()
    batch = F.normalize(torch.tensor([[0.6, 0.8], [0.8, 0.6], [0.0, -1.0]]), dim=1)
    labels = torch.tensor([0, 0, 1])
    g.update(batch, labels)
    p0 = F.normalize(0.1 / 3 * batch[:2].sum(0) + 0.9 * before[0], dim=0)
    p1 = F.normalize(0.1 / 3 * batch[2] + 0.9 * before[1], dim=0)
    a2 = F.normalize(0.1 * (batch.mean(0) - before[2]) + 0.9 * before[2], dim=0)
    torch.testing.assert_close(g.memory, torch.stack([p0, p1, a2]))


def test_none_hard_and_pu():
    batch = F.normalize(torch.tensor([[0.6, 0.8]]), dim=1)
    g = _memory("none")
    before = g.memory.clone()
    g.update(batch, torch.tensor([1]))
    torch.testing.assert_close(g.memory, before)
    g = _memory("hard")
    g.update(batch, torch.tensor([1]))
    torch.testing.assert_close(g.memory[1], batch[0])
    g = _memory("pu")
    before = g.memory.clone()
    g.update(batch, torch.tensor([1]))
    torch.testing.assert_close(g.memory[[0, 2]], before[[0, 2]])
    assert not torch.allclose(g.memory[1], before[1])


def test_loss_by_hand_and_gradient_only_to_the_features():
    g = _memory(update="none")
    emb = torch.tensor([[[0.6, 0.8]], [[0.8, 0.6]], [[0.0, 1.0]]], requires_grad=True)  # [N, P=1, C=2]
    labels = torch.tensor([0, 0, 1])
    parts = g.components(emb, labels)
    f = F.normalize(emb.detach().reshape(3, 2), dim=1)
    ce = F.cross_entropy(f @ g.memory.t() / 0.1, labels)
    mean0 = f[:2].mean(0)
    var = (((f[0] - mean0) ** 2).sum() + ((f[1] - mean0) ** 2).sum() + 0) / 3
    assert parts["gsam_ce"].item() == pytest.approx(ce.item(), rel=1e-5)
    assert parts["gsam_variance"].item() == pytest.approx(var.item(), rel=1e-5)
    sum(parts.values()).backward()
    assert emb.grad is not None and not g.memory.requires_grad
    printed = GSAM(3, 2, formulation="as_printed")
    assert printed.variance(f, labels).item() == pytest.approx(((f - f.mean(0)) ** 2).sum(1).mean().item())


def test_memory_travels_in_the_state_dict():
    g = _memory()
    g.train()
    g.components(torch.randn(4, 1, 2), torch.tensor([0, 1, 0, 1]))
    restored = GSAM(num_ids=3, dim=2, per_id=2)
    restored.load_state_dict(g.state_dict())
    torch.testing.assert_close(restored.memory, g.memory)
    assert bool(restored.initialised)


def test_several_rows_per_identity_and_other_elements():
    g = _memory(element="multi")
    assert g.memory.shape == (6, 2)
    assert g.logits(torch.randn(5, 2)).shape == (5, 3)
    hardest = _memory(element="hardest")
    assert hardest.memory.shape == (3, 2)
    with pytest.raises(RuntimeError, match="before initialise"):
        GSAM(3, 2).components(torch.randn(2, 1, 2), torch.tensor([0, 1]))
    with pytest.raises(ValueError):
        GSAM(3, 2, update="sometimes")


def test_centring_spreads_a_narrow_cone_and_follows_the_features():
    """``center`` (ours): features that share one large direction (a narrow cone) give near-uniform
    memory logits, and a cross-entropy near log(#ids); centred, the identities separate."""
    torch.manual_seed(0)
    ids, per, dim = 5, 4, 16
    labels = torch.arange(ids).repeat_interleave(per)
    common = 10 * torch.ones(dim)
    own = torch.randn(ids, dim)
    feats = (common + own[labels] + 0.1 * torch.randn(len(labels), dim)).reshape(len(labels), 4, 4)
    plain, centred = GSAM(ids, dim), GSAM(ids, dim, center=True)
    for g in (plain, centred):
        g.initialise(feats, labels)
        g.eval()
    ce_plain = plain.components(feats, labels, update=False)["gsam_ce"].item()
    ce_centred = centred.components(feats, labels, update=False)["gsam_ce"].item()
    assert ce_plain > 0.9 * math.log(ids) and ce_centred < 0.5 * ce_plain
    assert torch.allclose(centred.centre, feats.reshape(len(labels), -1).mean(0))
    assert "centre" in centred.state_dict()  # travels in checkpoints
    # in training the centre moves toward each batch's mean, at the memory's momentum alpha
    centred.train()
    shifted = feats + 1.0
    before = centred.centre.clone()
    centred.components(shifted, labels)
    expected = 0.9 * before + 0.1 * shifted.reshape(len(labels), -1).mean(0)
    assert torch.allclose(centred.centre, expected, atol=1e-5)
    plain.train()
    plain.components(shifted, labels)
    assert torch.equal(plain.centre, torch.zeros(dim))  # off by default: the paper's GSAM
