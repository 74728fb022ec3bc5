"""Paired comparison of a setting with the baseline over seeds: per-seed differences, mean, Student-t interval."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass


def student_t_cdf(t: float, df: int, points: int = 20_000) -> float:
    """P(T <= t) of Student's t distribution with ``df`` degrees of freedom (Simpson's rule on the density).

    Args:
        t: the value.
        df: degrees of freedom (>= 1).
        points: even number of Simpson intervals on [0, |t|] (accurate to ~1e-9 for |t| < 100).
    """
    if df < 1:
        raise ValueError(f"df must be >= 1, got {df}")
    log_norm = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)

    def density(x: float) -> float:
        return math.exp(log_norm - (df + 1) / 2 * math.log1p(x * x / df))

    upper = abs(t)
    h = upper / points
    total = density(0.0) + density(upper)
    total += sum((4 if i % 2 else 2) * density(i * h) for i in range(1, points))
    half = total * h / 3
    return 0.5 + half if t >= 0 else 0.5 - half


def student_t_quantile(p: float, df: int) -> float:
    """The ``p`` quantile of Student's t with ``df`` degrees of freedom (bisection on :func:`student_t_cdf`).

    Example: ``student_t_quantile(0.975, 2)`` is 4.303, the two-sided 95 % value for 3 seeds.
    """
    if not 0.5 <= p < 1:
        raise ValueError(f"p must be in [0.5, 1), got {p}")
    low, high = 0.0, 1.0
    while student_t_cdf(high, df) < p:
        low, high = high, high * 2
    for _ in range(60):
        mid = (low + high) / 2
        low, high = (mid, high) if student_t_cdf(mid, df) < p else (low, mid)
    return (low + high) / 2


@dataclass(frozen=True)
class PairedDifference:
    """A setting minus the baseline, seed by seed.

    Attributes:
        per_seed: the differences, one per seed, in the seeds' order.
        mean: their mean.
        low: lower end of the two-sided 95 % t interval of the mean (``nan`` with one seed).
        high: upper end.
    """

    per_seed: tuple[float, ...]
    mean: float
    low: float
    high: float

    @property
    def verdict(self) -> str:
        """``"no difference"`` when the interval contains 0, ``"better"`` / ``"worse"`` when it does not,
        ``"n/a (1 seed)"`` without an interval."""
        if math.isnan(self.low):
            return "n/a (1 seed)"
        if self.low <= 0 <= self.high:
            return "no difference"
        return "better" if self.mean > 0 else "worse"


def paired_difference(values: Sequence[float], baseline: Sequence[float], confidence: float = 0.95) -> PairedDifference:
    """Per-seed differences ``values[i] - baseline[i]``, their mean and its two-sided t interval.

    Args:
        values: one metric of a setting, one value per seed.
        baseline: the same metric of the baseline, the same seeds in the same order.
        confidence: the interval's coverage.

    Raises:
        ValueError: if the two lists differ in length or are empty.
    """
    if len(values) != len(baseline) or not values:
        raise ValueError(f"need one value per seed for both, got {len(values)} and {len(baseline)}")
    diffs = tuple(v - b for v, b in zip(values, baseline))
    mean = statistics.fmean(diffs)
    if len(diffs) == 1:
        return PairedDifference(diffs, mean, math.nan, math.nan)
    half = student_t_quantile(0.5 + confidence / 2, len(diffs) - 1) * statistics.stdev(diffs) / math.sqrt(len(diffs))
    return PairedDifference(diffs, mean, mean - half, mean + half)


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1; ``nan`` for a single value)."""
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else math.nan
