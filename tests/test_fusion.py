"""Waveloss part fusion: the limits docs/losses.md#norm-fusion names."""

import pytest
import torch

from gaitflow.losses.fusion import norm_fusion, norm_fusion_weights, post_fusion, pre_fuse


def _grad(fuse, losses):
    x = losses.clone().requires_grad_(True)
    fuse(x).backward()
    return x.grad


@pytest.mark.parametrize("exponent", [-1.0, -0.3, 0.0, 0.5, 1.0, 3.0])
def test_value_equals_post_fusion_for_every_exponent(exponent):
    losses = torch.tensor([0.2, 1.5, 0.7, 3.0])
    assert norm_fusion(losses, exponent).item() == pytest.approx(post_fusion(losses).item())


def test_gradient_equals_post_fusion_at_zero():
    losses = torch.tensor([0.2, 1.5, 0.7, 3.0])
    torch.testing.assert_close(_grad(lambda x: norm_fusion(x, 0.0), losses), _grad(post_fusion, losses))


def test_gradient_share_follows_the_sign_of_the_exponent():
    losses = torch.tensor([0.2, 1.5, 0.7, 3.0])
    up = _grad(lambda x: norm_fusion(x, 1.0), losses)
    down = _grad(lambda x: norm_fusion(x, -1.0), losses)
    assert int(up.argmax()) == int(losses.argmax())
    assert int(down.argmax()) == int(losses.argmin())
    # the weights themselves carry no gradient
    assert not norm_fusion_weights(losses.requires_grad_(True), 1.0).requires_grad


def test_weights_by_hand():
    losses = torch.tensor([3.0, 4.0])  # ||L|| = 5
    a = torch.exp(torch.tensor([0.6, 0.8]))
    expected = (a / a.norm()) ** 2
    torch.testing.assert_close(norm_fusion_weights(losses, 2.0), expected)


def test_zero_losses_stay_finite():
    x = torch.zeros(4, requires_grad=True)
    out = norm_fusion(x, 1.0)
    out.backward()
    assert out.item() == 0.0 and torch.isfinite(x.grad).all()


def test_pre_fuse_averages_parts():
    m = torch.arange(12.0).reshape(3, 2, 2)
    torch.testing.assert_close(pre_fuse(m), m.mean(0, keepdim=True))
