"""TimeBudgetLR: a learning-rate schedule over a wall-clock budget instead of a step count."""

from __future__ import annotations

import math
import time
from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.utilities.exceptions import MisconfigurationException
from typing_extensions import override


class TimeBudgetLR(Callback):
    """Scale every param group's learning rate by a cosine of the elapsed fraction of a time budget.

    Useful with ``Trainer(max_time=...)``, where the number of steps is not known in advance: the lr warms up
    linearly over ``warmup_steps`` and then follows ``0.5 (1 + cos(π t / budget))`` down to
    ``final_factor`` × the base lr when the budget is spent.

    It is the only owner of the learning rate: the module must configure no lr scheduler (build
    :class:`~lightning_retina.RetinaNetModule` with ``lr_schedule="constant"`` and ``warmup_steps=0``, which returns
    the optimizer alone). The base lr of each param group is its ``initial_lr`` (set here when no scheduler did), which
    is saved with the optimizer's state, so a resumed run scales the same base lr.

    Args:
        budget_seconds: the training time budget (the same as ``max_time``).
        warmup_steps: linear warm-up length in optimizer steps.
        final_factor: lr factor reached at the end of the budget.

    Raises:
        ValueError: for a non-positive budget or a factor outside [0, 1].
        MisconfigurationException: at the start of training, when the module configured an lr scheduler (two
            owners of the lr).
    """

    def __init__(self, budget_seconds: float, warmup_steps: int = 100, final_factor: float = 0.02) -> None:
        if budget_seconds <= 0:
            raise ValueError(f"budget_seconds must be > 0, got {budget_seconds}")
        if not 0 <= final_factor <= 1:
            raise ValueError(f"final_factor must be in [0, 1], got {final_factor}")
        self.budget_seconds = budget_seconds
        self.warmup_steps = warmup_steps
        self.final_factor = final_factor
        self._start: float | None = None
        self._base_lrs: list[float] = []

    def factor(self, elapsed: float, step: int) -> float:
        """The lr multiplier after ``elapsed`` seconds and ``step`` optimizer steps."""
        progress = min(1.0, elapsed / self.budget_seconds)
        cosine = self.final_factor + (1 - self.final_factor) * 0.5 * (1 + math.cos(math.pi * progress))
        warm = min(1.0, (step + 1) / self.warmup_steps) if self.warmup_steps > 0 else 1.0
        return warm * cosine

    @override
    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.lr_scheduler_configs:
            schedulers = [type(config.scheduler).__name__ for config in trainer.lr_scheduler_configs]
            raise MisconfigurationException(
                f"TimeBudgetLR owns the learning rate, but the module also configured {schedulers}: build it without "
                "a schedule (RetinaNetModule: lr_schedule='constant', warmup_steps=0) or drop TimeBudgetLR"
            )
        self._start = time.monotonic()
        self._base_lrs = [g.setdefault("initial_lr", g["lr"]) for opt in trainer.optimizers for g in opt.param_groups]

    @override
    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int) -> None:
        if self._start is None:
            return
        f = self.factor(time.monotonic() - self._start, trainer.global_step)
        groups = [g for opt in trainer.optimizers for g in opt.param_groups]
        for group, base in zip(groups, self._base_lrs):
            group["lr"] = base * f
