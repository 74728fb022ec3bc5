"""The dense focal loss of a whole batch as one autograd Function: no one-hot target, no large temporaries.

For logits ``x`` and ``g(y) = softplus(y) · sigmoid(y)^γ`` the focal loss of a class is ``(1-α) g(x)`` when the
class is absent (the "negative" term) and ``α g(-x)`` when it is the anchor's true class. The loss of an anchor is
its negative term summed over all classes plus, at its true class only, ``α g(-x) - (1-α) g(x)``. The derivative

    g'(y) = sigmoid(y)^γ · (sigmoid(y) + γ (1 - sigmoid(y)) softplus(y))

is finite for every γ ≥ 0. The forward pass walks the logits in blocks small enough to stay in the CPU cache and
computes, from the same ``sigmoid`` and ``softplus`` of each block, both the loss and ``g'`` (into the buffer that
becomes the gradient). The backward pass only scales that buffer in place by the incoming gradient of each anchor
and writes the positive term's derivative ``-α g'(-x)`` at the true classes, so the whole loss costs one
``[B, A, K]`` tensor (which the gradient needs anyway) and no other temporary of that size; without grad mode
(validation) only the loss is computed.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from lightning_retina._blocks import block_elements
from lightning_retina.losses._dtypes import upcast


def _alphas(alpha: float) -> tuple[float, float]:
    """Weights of the positive and the negative term (both 1 when α is disabled)."""
    return (alpha, 1.0 - alpha) if alpha >= 0 else (1.0, 1.0)


def _g(y: Tensor, gamma: float, slope_out: Tensor | None = None) -> Tensor:
    """``g(y)`` as a new tensor, in float32 (float64 for float64 input); ``g'(y)`` into ``slope_out`` when given."""
    y = upcast(y)
    p = torch.sigmoid(y)
    softplus = F.softplus(y)
    if gamma == 0:
        if slope_out is not None:
            slope_out.copy_(p)
        return softplus
    p_gamma = p.pow(gamma)
    if slope_out is not None:
        torch.mul(torch.addcmul(p, torch.sub(1.0, p), softplus, value=gamma), p_gamma, out=slope_out)
    return softplus.mul_(p_gamma)


def _negative_terms(rows: Tensor, gamma: float, slope_out: Tensor | None) -> Tensor:
    """``Σ_k g(rows[:, k])`` per row, ``[N]``; writes ``g'(rows)`` into ``slope_out`` (``[N, K]``) when given."""
    num_rows, num_classes = rows.shape
    loss = torch.empty(num_rows, dtype=upcast(rows[:0]).dtype, device=rows.device)
    step = max(1, block_elements(rows.device) // max(num_classes, 1))
    for start in range(0, num_rows, step):
        block = slice(start, start + step)
        torch.sum(_g(rows[block], gamma, None if slope_out is None else slope_out[block]), dim=1, out=loss[block])
    return loss


def _true_class_terms(true_logit: Tensor, alpha: float, gamma: float) -> tuple[Tensor, Tensor]:
    """At each true class: the loss correction ``α g(-x) - (1-α) g(x)`` and the derivative ``-α g'(-x)``.

    The correction turns the negative term, already counted for every class, into the positive one. The derivative
    is the whole derivative of the loss at a true class, which the backward pass writes over the negative one.
    """
    positive_weight, negative_weight = _alphas(alpha)
    x = upcast(true_logit)
    slope = torch.empty_like(x)
    value = _g(-x, gamma, slope).mul_(positive_weight).sub_(_g(x, gamma), alpha=negative_weight)
    return value, slope.mul_(-positive_weight)


class _DenseFocalLoss(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx, logits: Tensor, anchor_weight: Tensor, positive_index: Tensor, alpha: float, gamma: float
    ) -> Tensor:
        num_classes = logits.shape[-1]
        rows = logits.reshape(-1, num_classes)
        slope = torch.empty_like(rows) if ctx.needs_input_grad[0] else None  # becomes the gradient
        loss = _negative_terms(rows, gamma, slope).mul_(_alphas(alpha)[1])
        anchor = torch.div(positive_index, num_classes, rounding_mode="floor")
        correction, positive_slope = _true_class_terms(logits.reshape(-1)[positive_index], alpha, gamma)
        loss.index_add_(0, anchor, correction)
        ctx.save_for_backward(logits, anchor_weight, positive_index, anchor)
        ctx.slope, ctx.positive_slope, ctx.alpha, ctx.gamma = slope, positive_slope, alpha, gamma
        return loss.view(anchor_weight.shape).mul_(anchor_weight)

    @staticmethod
    def backward(ctx, grad_loss: Tensor) -> tuple[Tensor | None, None, None, None, None]:
        logits, anchor_weight, positive_index, anchor = ctx.saved_tensors
        num_classes = logits.shape[-1]
        slope, ctx.slope = ctx.slope, None  # scaled in place into the gradient: hand it over exactly once
        if slope is None:  # a second backward (retain_graph=True): recompute the slope
            slope = torch.empty_like(logits).view(-1, num_classes)
            _negative_terms(logits.reshape(-1, num_classes), ctx.gamma, slope)
        coef = upcast(grad_loss * anchor_weight).reshape(-1, 1)  # [B·A, 1]
        grad = slope.mul_(coef * _alphas(ctx.alpha)[1])
        grad.view(-1)[positive_index] = (ctx.positive_slope * coef.view(-1)[anchor]).to(grad.dtype)
        return grad.view(logits.shape), None, None, None, None


def dense_focal_loss(
    logits: Tensor, anchor_weight: Tensor, positive_index: Tensor, alpha: float = 0.25, gamma: float = 2.0
) -> Tensor:
    """Focal loss of every anchor, summed over its classes, with targets given by the true-class positions only.

    Equal to ``anchor_weight * sigmoid_focal_loss(logits, one_hot, alpha, gamma).sum(-1)`` where ``one_hot`` is 1
    exactly at ``positive_index``, but computed in cache-sized blocks without building ``one_hot`` and with an
    analytic gradient (see the module docstring).

    Args:
        logits: ``Tensor[B, A, K]``, any float dtype; the maths runs in float32 (float64 for float64 input) and the
            gradient has ``logits``' dtype.
        anchor_weight: ``Tensor[B, A]``, e.g. 1 for matched and background anchors and 0 for ignored ones.
        positive_index: ``Int64Tensor[P]``, flat positions ``(b·A + a)·K + label`` of the foreground anchors' true
            classes in ``logits``, at most one per anchor.
        alpha: weight of the positive class (``1 - alpha`` for negatives); ``alpha < 0`` disables it.
        gamma: focusing parameter, ``>= 0`` (``0``: α-balanced BCE).

    Returns:
        ``Tensor[B, A]`` (float32, or float64 for float64 logits): the loss of each anchor.

    Raises:
        ValueError: for ``gamma < 0`` or an ``anchor_weight`` whose shape is not ``logits.shape[:-1]``.
    """
    if gamma < 0:
        raise ValueError(f"gamma must be >= 0, got {gamma}")
    if anchor_weight.shape != logits.shape[:-1]:
        raise ValueError(f"anchor_weight must have shape {tuple(logits.shape[:-1])}, got {tuple(anchor_weight.shape)}")
    weight = anchor_weight.to(upcast(logits[:0]).dtype)
    return _DenseFocalLoss.apply(logits.contiguous(), weight, positive_index, float(alpha), float(gamma))
