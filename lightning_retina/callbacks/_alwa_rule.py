"""The ALWA weight rule as pure functions, testable without a ``Trainer``.

A window is summarised by its moments ``(count, sum, sum of squares)``: moments of several ranks (or of several
pieces of one window) add up to the moments of the pooled window, so DDP needs a single ``sum`` reduction.
"""

import math
from collections.abc import Sequence

import torch
from torch import Tensor

STATISTICS = ("std", "mean+std")


def window_moments(values: Sequence[Tensor], device: torch.device) -> Tensor:
    """Moments of one window of scalar losses.

    Args:
        values: the recorded losses, each a scalar tensor (any device, any floating dtype).
        device: where the result lives (the device the strategy reduces on).

    Returns:
        ``Tensor[3]`` float64: ``(count, sum, sum of squares)``; zeros for an empty window.
    """
    if not values:
        return torch.zeros(3, dtype=torch.float64, device=device)
    # stack where the newest values live (one transfer, not one per value), then widen on `device`
    x = torch.stack([v.to(values[-1].device) for v in values]).to(device=device, dtype=torch.float64)
    count = torch.tensor(float(x.numel()), dtype=torch.float64, device=device)
    return torch.stack((count, x.sum(), x.square().sum()))


def window_statistic(count: float, total: float, total_sq: float, statistic: str) -> float:
    """The trend statistic ``S`` of a window from its moments.

    Args:
        count: number of values in the window.
        total: their sum.
        total_sq: the sum of their squares.
        statistic: ``"std"`` (sample std, ddof=1; the paper's ALWA_2) or ``"mean+std"`` (ALWA_1).

    Returns:
        ``S``; ``nan`` when the window holds fewer than two values (the sample std is undefined).

    Raises:
        ValueError: If ``statistic`` is not one of ``STATISTICS``.
    """
    if statistic not in STATISTICS:
        raise ValueError(f"`statistic` must be one of {STATISTICS}, got {statistic!r}")
    if count < 2:
        return math.nan
    mean = total / count
    # ddof=1 variance from the pooled sums; rounding can push a constant window slightly below zero
    std = math.sqrt(max(total_sq - total * mean, 0.0) / (count - 1))
    return std if statistic == "std" else mean + std


def alwa_update(w_cls: float, stat_cls: float, stat_reg: float, min_weight: float) -> tuple[float, bool]:
    """One ALWA step for one (classification, regression) pair.

    If ``S_cls > S_reg`` the classification weight becomes ``1 - (S_cls - S_reg) / S_cls`` (= ``S_reg / S_cls``),
    clamped to ``[min_weight, 1]``; otherwise it is kept. The new weight is computed from the statistics alone, not
    from ``w_cls``, so it can go up as well as down.

    Args:
        w_cls: the current classification weight.
        stat_cls: ``S`` of the classification losses of the window.
        stat_reg: ``S`` of the regression losses of the window.
        min_weight: lower bound of the new weight, in ``(0, 1]``.

    Returns:
        ``(new_w_cls, updated)``; non-finite statistics give ``(w_cls, False)``.
    """
    if not (math.isfinite(stat_cls) and math.isfinite(stat_reg)) or not stat_cls > stat_reg:
        return w_cls, False
    new_w = 1.0 - (stat_cls - stat_reg) / stat_cls
    return min(max(new_w, min_weight), 1.0), True
