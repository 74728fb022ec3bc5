"""Sigmoid focal loss (Lin et al., 2017) and its two special cases, BCE and α-balanced BCE."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from lightning_retina.losses._dtypes import upcast as _upcast
from lightning_retina.losses._reduction import reduce_loss

#: The ``alpha`` that disables α-balancing (torchvision's ``sigmoid_focal_loss`` uses the same value).
NO_ALPHA = -1.0


def check_focal_parameters(alpha: float, gamma: float, alpha_name: str = "alpha", gamma_name: str = "gamma") -> None:
    """Reject focal-loss parameters that give negative or meaningless losses.

    Args:
        alpha: must be in ``[0, 1]``, or exactly ``-1`` (:data:`NO_ALPHA`: no α-balancing), as in torchvision.
        gamma: must be finite and ``>= 0``.
        alpha_name: the name of ``alpha`` in the error message (e.g. ``"focal_alpha"``).
        gamma_name: the name of ``gamma`` in the error message.

    Raises:
        ValueError: naming the parameter and its value.
    """
    if not (0.0 <= alpha <= 1.0 or alpha == NO_ALPHA):
        raise ValueError(f"{alpha_name} must be in [0, 1] or -1 (no alpha-balancing), got {alpha}")
    if not (math.isfinite(gamma) and gamma >= 0):
        raise ValueError(f"{gamma_name} must be >= 0 and finite, got {gamma}")


def sigmoid_focal_loss(
    logits: Tensor,
    targets: Tensor,
    alpha: float = 0.25,
    gamma: float = 2.0,
    reduction: str = "none",
) -> Tensor:
    """Focal loss for dense detection, computed from logits.

    ``FL(p_t) = -α_t (1 - p_t)^γ log(p_t)`` where ``p = sigmoid(logits)``, ``p_t = p`` for target 1 and
    ``1 - p`` for target 0. ``gamma=0`` gives α-balanced BCE and ``gamma=0, alpha=-1`` plain BCE. Targets may be
    soft (in ``[0, 1]``); the loss then matches :func:`torchvision.ops.sigmoid_focal_loss`.

    Half-precision inputs are computed in float32 and the result is returned in float32, so the loss of a
    bf16/fp16 model never overflows or underflows.

    Args:
        logits: Tensor of arbitrary shape, the raw predictions.
        targets: Tensor of the same shape as ``logits``, 0/1 labels (or soft labels in ``[0, 1]``).
        alpha: weight in ``[0, 1]`` of the positive examples, ``1 - alpha`` for the negatives; ``-1`` disables it
            (torchvision's convention; any other value outside ``[0, 1]`` is an error). Default: ``0.25``.
        gamma: exponent ``>= 0`` of the modulating factor ``(1 - p_t)``. Default: ``2.0``.
        reduction: ``"none"`` | ``"mean"`` | ``"sum"``. ``"mean"`` of an empty input is ``0`` (still in the graph).

    Returns:
        Tensor: the loss, shaped like ``logits`` for ``"none"``, a scalar otherwise.

    Raises:
        ValueError: for an unknown ``reduction``, mismatched shapes, ``alpha`` outside ``[0, 1]`` other than ``-1``
            or ``gamma < 0``.

    Reference:
        Lin, Goyal, Girshick, He, Dollár, "Focal Loss for Dense Object Detection", ICCV 2017,
        https://arxiv.org/abs/1708.02002

    Example::

        >>> logits = torch.tensor([-2.1972])                  # p = 0.1
        >>> sigmoid_focal_loss(logits, torch.ones(1), alpha=-1, gamma=0)   # CE(p_t=0.1)
        tensor([2.3026])
    """
    check_focal_parameters(alpha, gamma)
    if logits.shape != targets.shape:
        raise ValueError(
            f"logits and targets must have the same shape, got {tuple(logits.shape)} and {tuple(targets.shape)}"
        )
    logits = _upcast(logits)
    targets = targets.to(logits.dtype)
    p = torch.sigmoid(logits)
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    loss = ce
    if gamma != 0:
        p_t = p * targets + (1 - p) * (1 - targets)
        loss = ce * (1 - p_t).clamp_min(torch.finfo(p_t.dtype).tiny).pow(gamma)  # finite gradient at p_t = 1
    if alpha != NO_ALPHA:
        loss = (alpha * targets + (1 - alpha) * (1 - targets)) * loss
    return reduce_loss(loss, reduction)
