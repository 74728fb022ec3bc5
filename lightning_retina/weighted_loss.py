"""The weighted-loss contract's sum: ``Σ loss_weights[k] · losses[k]``, refusing keys that do not pair up."""

from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor


def weighted_sum(losses: Mapping[str, Tensor], loss_weights: Mapping[str, float], owner: str = "module") -> Tensor:
    """``Σ_k loss_weights[k] · losses[k]`` over the keys both share, which must be all of each.

    Args:
        losses: raw scalar losses by name.
        loss_weights: their weights by the same names.
        owner: what holds them, for the message (e.g. the module's class name).

    Returns:
        ``Tensor[]``, the weighted sum.

    Raises:
        ValueError: when a loss has no weight (it would silently not be optimised) or a weight has no loss, naming
            both sets.
    """
    unweighted, unused = sorted(set(losses) - set(loss_weights)), sorted(set(loss_weights) - set(losses))
    if unweighted or unused:
        raise ValueError(
            f"{owner}: the losses {sorted(losses)} and loss_weights {sorted(loss_weights)} must have the same keys "
            f"(losses without a weight: {unweighted}; weights without a loss: {unused}). Add a loss_weights entry "
            "for every loss the model returns, and remove weights of losses it does not return."
        )
    return sum(loss_weights[key] * losses[key] for key in loss_weights)  # in weight order, as before
