"""The blockwise dense focal loss against a one-hot ``torchvision.ops.sigmoid_focal_loss``, values and gradients."""

from __future__ import annotations

import pytest
import torch
import torchvision.ops

import lightning_retina._blocks as blocks
from lightning_retina.losses._focal_dense import dense_focal_loss

ALPHA_GAMMA = [(0.25, 2.0), (-1.0, 0.0), (0.75, 0.0), (0.5, 0.5), (0.25, 1.0)]


def _inputs(dtype: torch.dtype = torch.float64, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    logits = (torch.randn(3, 40, 6, generator=g, dtype=torch.float64) * 4).to(dtype).requires_grad_()
    weight = (torch.rand(3, 40, generator=g) > 0.2).double()
    anchors = torch.randperm(3 * 40, generator=g)[:25]
    positive_index = anchors * 6 + torch.randint(0, 6, (25,), generator=g)
    return logits, weight, positive_index


def _reference(logits, weight, positive_index, alpha, gamma):
    one_hot = torch.zeros(logits.numel(), dtype=logits.dtype)
    one_hot[positive_index] = 1
    loss = torchvision.ops.sigmoid_focal_loss(logits, one_hot.view(logits.shape), alpha=alpha, gamma=gamma)
    return loss.sum(-1) * weight


@pytest.fixture(params=[False, True], ids=["one_block", "many_blocks"])
def block_size(request, monkeypatch):
    """Run each test with the blocks covering everything at once and with blocks of 2 rows."""
    if request.param:
        monkeypatch.setattr(blocks, "_CPU_BLOCK_ELEMENTS", 12)


@pytest.mark.parametrize(("alpha", "gamma"), ALPHA_GAMMA)
def test_values_and_gradients_match_one_hot_torchvision(alpha, gamma, block_size):
    logits, weight, positive_index = _inputs()
    upstream = torch.randn(3, 40, dtype=torch.float64)
    ours = dense_focal_loss(logits, weight, positive_index, alpha, gamma)
    (our_grad,) = torch.autograd.grad(ours, logits, upstream)
    theirs = _reference(logits, weight, positive_index, alpha, gamma)
    (their_grad,) = torch.autograd.grad(theirs, logits, upstream)
    torch.testing.assert_close(ours, theirs, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(our_grad, their_grad, rtol=1e-9, atol=1e-12)


def test_gradcheck_for_gamma_below_one():
    logits, weight, positive_index = _inputs()
    assert torch.autograd.gradcheck(lambda x: dense_focal_loss(x, weight, positive_index, 0.25, 0.5), (logits,))


def test_second_backward_with_retained_graph_gives_the_same_gradient():
    logits, weight, positive_index = _inputs()
    loss = dense_focal_loss(logits, weight, positive_index).sum()
    (first,) = torch.autograd.grad(loss, logits, retain_graph=True)
    (second,) = torch.autograd.grad(loss, logits)
    torch.testing.assert_close(first, second, rtol=0, atol=0)


def test_no_grad_forward_equals_grad_mode_forward():
    logits, weight, positive_index = _inputs()
    with torch.no_grad():
        plain = dense_focal_loss(logits, weight, positive_index)
    torch.testing.assert_close(plain, dense_focal_loss(logits, weight, positive_index), rtol=0, atol=0)


def test_bf16_logits_give_float32_loss_and_bf16_gradient():
    logits, weight, positive_index = _inputs(torch.bfloat16)
    loss = dense_focal_loss(logits, weight, positive_index)
    loss.sum().backward()
    exact = logits.detach().double().requires_grad_()
    _reference(exact, weight, positive_index, 0.25, 2.0).sum().backward()
    assert loss.dtype == torch.float32 and logits.grad.dtype == torch.bfloat16
    expected = _reference(exact.detach(), weight, positive_index, 0.25, 2.0)
    torch.testing.assert_close(loss.double(), expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(logits.grad.double(), exact.grad, rtol=1e-2, atol=1e-3)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"gamma": -1.0}, "gamma must be >= 0"),
        ({"anchor_weight": torch.ones(3, 41)}, r"anchor_weight must have shape \(3, 40\)"),
    ],
)
def test_bad_arguments_raise(kwargs, match):
    logits, weight, positive_index = _inputs()
    arguments = {"anchor_weight": weight, "gamma": 2.0, **kwargs}
    with pytest.raises(ValueError, match=match):
        dense_focal_loss(logits, arguments["anchor_weight"], positive_index, gamma=arguments["gamma"])
