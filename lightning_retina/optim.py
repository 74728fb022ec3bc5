"""Optimizer and learning-rate schedule of the package's LightningModules (SGD/AdamW, linear warm-up, step or cosine
decay), and :class:`OptimizedModule`, the base class that takes and documents their settings once."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from functools import partial
from typing import Any, ClassVar, Literal

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


class OptimizedModule(LightningModule):
    """A ``LightningModule`` that owns its optimizer and learning-rate schedule, set by flat keyword arguments.

    :class:`~lightning_retina.RetinaNetModule` and :class:`~lightning_retina.detectors.TorchvisionDetector` derive from
    it and forward their ``**optim_settings`` to this constructor, which takes, checks and documents them once. The
    settings stay flat: hyper-parameters ``lr``, ``optimizer``, ... in checkpoints (old ones load unchanged) and
    ``--model.lr``, ``--model.optimizer``, ... in LightningCLI (jsonargparse follows ``**optim_settings`` to this
    signature, so choices are checked when parsing). ``save_hyperparameters`` runs here and, as Lightning does, also
    collects the arguments of every subclass's ``__init__``; a subclass names arguments to leave out (e.g. a model
    object) in :attr:`hparams_ignore`. ``configure_optimizers`` returns :func:`configure_from_hparams`.

    Args:
        optimizer: ``"sgd"`` (momentum) or ``"adamw"``.
        lr: base learning rate (paper: 0.01 for 16 images per batch).
        momentum: SGD momentum.
        weight_decay: weight decay.
        warmup_steps: linear warm-up length in optimizer steps.
        warmup_factor: learning-rate factor at step 0.
        lr_schedule: ``"step"``, ``"cosine"`` (over ``trainer.estimated_stepping_batches``) or ``"constant"``
            (without warm-up: no scheduler, e.g. for :class:`~lightning_retina.callbacks.TimeBudgetLR`).
        lr_milestones: optimizer steps at which ``"step"`` multiplies the lr by ``lr_gamma``.
        lr_gamma: step-decay factor.

    Raises:
        ValueError: for an unknown ``lr_schedule``.
    """

    #: ``__init__`` arguments (of any subclass) left out of the hyper-parameters.
    hparams_ignore: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        optimizer: Literal["sgd", "adamw"] = "sgd",
        lr: float = 0.01,
        momentum: float = 0.9,
        weight_decay: float = 1e-4,
        warmup_steps: int = 500,
        warmup_factor: float = 0.001,
        lr_schedule: Literal["step", "cosine", "constant"] = "step",
        lr_milestones: Sequence[int] = (),
        lr_gamma: float = 0.1,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=list(self.hparams_ignore))
        if lr_schedule not in SCHEDULES:
            raise ValueError(f"Unknown lr_schedule {lr_schedule!r}; expected one of {SCHEDULES}")

    def configure_optimizers(self) -> dict[str, Any]:
        return configure_from_hparams(self)
