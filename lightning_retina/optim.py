"""Optimizer and learning-rate schedule of RetinaNetModule (SGD/AdamW, linear warm-up, step or cosine decay)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from functools import partial
from typing import Any

import torch
from lightning.pytorch import LightningModule
from torch import nn
from torch.optim.lr_scheduler import LambdaLR

OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("step", "cosine", "constant")


def build_optimizer(
    params: Iterable[nn.Parameter], name: str, lr: float, momentum: float, weight_decay: float
) -> torch.optim.Optimizer:
    """``"sgd"`` (momentum, as the paper) or ``"adamw"`` (faster from scratch on small data).

    Raises:
        ValueError: for an unknown optimizer name.
    """
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    raise ValueError(f"Unknown optimizer {name!r}; expected one of {OPTIMIZERS}")


def lr_factor(
    step: int,
    warmup_steps: int,
    warmup_factor: float,
    schedule: str,
    milestones: Sequence[int],
    gamma: float,
    total_steps: int,
) -> float:
    """Multiplier of the base learning rate at optimizer step ``step``.

    Linear warm-up from ``warmup_factor`` to 1 over ``warmup_steps``, then ``"step"`` (× ``gamma`` at each
    milestone), ``"cosine"`` (to 0 at ``total_steps``) or ``"constant"``.
    """
    warm = 1.0
    if step < warmup_steps:
        alpha = step / warmup_steps
        warm = warmup_factor * (1 - alpha) + alpha
    if schedule == "step":
        return warm * gamma ** sum(step >= m for m in milestones)
    if schedule == "cosine":
        progress = min(1.0, step / max(1, total_steps))
        return warm * 0.5 * (1 + math.cos(math.pi * progress))
    return warm


def configure_from_hparams(module: LightningModule) -> dict[str, Any]:
    """:func:`optimizer_and_schedule` for ``module``'s trainable parameters and its hyper-parameters ``optimizer``,
    ``lr``, ``momentum``, ``weight_decay``, ``warmup_steps``, ``warmup_factor``, ``lr_schedule``, ``lr_milestones``
    and ``lr_gamma`` (a cosine runs over ``trainer.estimated_stepping_batches``): its ``configure_optimizers``."""
    hp = module.hparams
    total = int(module.trainer.estimated_stepping_batches) if hp.lr_schedule == "cosine" else 0
    return optimizer_and_schedule(
        [p for p in module.parameters() if p.requires_grad], hp.optimizer, hp.lr, hp.momentum, hp.weight_decay,
        hp.warmup_steps, hp.warmup_factor, hp.lr_schedule, hp.lr_milestones, hp.lr_gamma, total,
    )  # fmt: skip


def optimizer_and_schedule(
    params: Iterable[nn.Parameter],
    optimizer: str,
    lr: float,
    momentum: float,
    weight_decay: float,
    warmup_steps: int,
    warmup_factor: float,
    lr_schedule: str,
    lr_milestones: Sequence[int],
    lr_gamma: float,
    total_steps: int,
) -> dict[str, Any]:
    """What ``LightningModule.configure_optimizers`` returns: :func:`build_optimizer` and a per-step ``LambdaLR`` of
    :func:`lr_factor` (``total_steps`` matters for ``"cosine"`` only). ``"constant"`` without warm-up has nothing to
    schedule and returns the optimizer alone, so that a callback such as
    :class:`~lightning_retina.callbacks.TimeBudgetLR` is the only owner of the learning rate.

    Raises:
        ValueError: for an unknown optimizer or schedule name.
    """
    if lr_schedule not in SCHEDULES:
        raise ValueError(f"Unknown lr_schedule {lr_schedule!r}; expected one of {SCHEDULES}")
    built = build_optimizer(params, optimizer, lr, momentum, weight_decay)
    if lr_schedule == "constant" and warmup_steps <= 0:
        return {"optimizer": built}
    schedule = partial(
        lr_factor,
        warmup_steps=warmup_steps,
        warmup_factor=warmup_factor,
        schedule=lr_schedule,
        milestones=tuple(lr_milestones),
        gamma=lr_gamma,
        total_steps=total_steps,
    )
    return {"optimizer": built, "lr_scheduler": {"scheduler": LambdaLR(built, schedule), "interval": "step"}}
