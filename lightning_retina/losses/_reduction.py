"""The ``reduction`` argument shared by every loss function."""

from __future__ import annotations

from torch import Tensor

REDUCTIONS = ("none", "mean", "sum")


def reduce_loss(loss: Tensor, reduction: str) -> Tensor:
    """Reduce an elementwise loss like ``torch.nn.functional`` losses do.

    Args:
        loss: Tensor of per-element (or per-box) losses.
        reduction: ``"none"`` returns ``loss`` unchanged, ``"sum"`` its sum, ``"mean"`` its mean; the mean of an
            empty tensor is ``0.0 * loss.sum()``, so backward still runs and gives zero gradients.

    Returns:
        Tensor: ``loss`` or a scalar.

    Raises:
        ValueError: for any other ``reduction``.
    """
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    if reduction == "mean":
        return loss.mean() if loss.numel() > 0 else 0.0 * loss.sum()
    raise ValueError(f"Invalid reduction {reduction!r}; expected one of {REDUCTIONS}")
