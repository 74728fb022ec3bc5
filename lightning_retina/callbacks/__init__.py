"""Lightning callbacks: ``ALWA`` (adaptive loss weight adjustment for any detector), ``TrainingHistory``
(per-step losses and loss weights for plots) and ``TimeBudgetLR`` (a cosine lr schedule over a wall-clock budget)."""

from lightning_retina.callbacks.alwa import ALWA
from lightning_retina.callbacks.history import TrainingHistory
from lightning_retina.callbacks.time_budget import TimeBudgetLR

__all__ = ["ALWA", "TrainingHistory", "TimeBudgetLR"]
