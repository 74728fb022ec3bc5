"""The demo's recipe: its settings (:class:`DemoConfig`) and the builders of its data, model and trainer.

Change the recipe here (model size, optimizer, lr schedule, time or step budget); :mod:`lightning_retina.demo.run`
runs it, and ``benchmarks/ablation`` builds its runs from the same builders.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lightning.pytorch import Callback, Trainer
from lightning.pytorch.accelerators import CUDAAccelerator, MPSAccelerator

from lightning_retina.callbacks import TimeBudgetLR
from lightning_retina.data import DetectionDataModule
from lightning_retina.module import RetinaNetModule
from lightning_retina.precision import fast_precision


@dataclass
class DemoConfig:
    """Settings of :func:`~lightning_retina.demo.run_demo` (the ``lightning-retina demo`` options)."""

    data_dir: str = "data/shapes"
    out: str = "demo_out"
    max_minutes: float = 8.0
    alwa: bool = True
    num_train: int = 1500
    num_val: int = 200
    image_size: int = 256
    input_size: int = 192
    fpn_channels: int = 128
    batch_size: int = 16
    lr: float = 2e-3
    alwa_interval: int = 50
    alwa_start_step: int = 200
    num_workers: int = 1
    seed: int = 0
    accelerator: str = "auto"
    overwrite: bool = False


WARMUP_STEPS = 50
# The module's own schedule for a step budget: the same linear warm-up as TimeBudgetLR's, then a cosine over the steps.
_STEP_BUDGET_SCHEDULE = {"lr_schedule": "cosine", "warmup_steps": WARMUP_STEPS, "warmup_factor": 1 / WARMUP_STEPS}


def build_demo_datamodule(config: DemoConfig, seed: int | None = None, **options: Any) -> DetectionDataModule:
    """The shapes data (VOC layout) of the demo; ``seed`` (default ``config.seed``) also seeds the shuffle; ``options``:
    any other :class:`DetectionDataModule` argument (e.g. ``shapes_shape_sizes``)."""
    return DetectionDataModule(
        dataset="shapes",
        root=config.data_dir,
        batch_size=config.batch_size,
        num_workers=config.num_workers,
        shapes_num_train=config.num_train,
        shapes_num_val=config.num_val,
        shapes_image_size=config.image_size,
        shapes_format="voc",
        seed=config.seed if seed is None else seed,
        **options,
    )


def demo_anchor_sizes(input_size: int) -> tuple[int, ...]:
    """The demo's anchor sizes on P3…P7: shapes are 12–120 px on 256-px images, so anchors of 8…128 px
    (× 2^0, 2^1/3, 2^2/3) at 160-px input cover them; other input sizes scale them."""
    return tuple(round(s * input_size / 160) for s in (8, 16, 32, 64, 128))


def build_demo_module(
    config: DemoConfig, class_names: list[str], max_steps: int | None = None, **overrides: Any
) -> RetinaNetModule:
    """The demo's model: ResNet-18-FPN from scratch, GroupNorm head, anchors sized for ``input_size`` images.

    Args:
        config: the demo settings.
        class_names: the data set's classes.
        max_steps: a step budget (the same as :func:`build_demo_trainer`'s): the module then runs its own lr schedule,
            a linear warm-up and a cosine over the steps. Without it, the module has no lr schedule (``"constant"``,
            no warm-up: no scheduler) and the trainer's :class:`TimeBudgetLR` is the only owner of the lr.
        overrides: any other :class:`RetinaNetModule` argument (e.g. ``cls_loss``, ``reg_loss``, ``metric``).
    """
    hparams: dict[str, Any] = dict(
        num_classes=len(class_names),
        class_names=class_names,
        backbone="resnet18",
        head_norm="group",
        fpn_channels=config.fpn_channels,
        anchor_sizes=demo_anchor_sizes(config.input_size),
        min_size=config.input_size,
        max_size=config.input_size,
        optimizer="adamw",
        lr=config.lr,
        weight_decay=1e-4,
        warmup_steps=0,
        lr_schedule="constant",
        metric="coco",  # what Trainer.validate evaluates after training (the fit trainer runs no validation)
        class_metrics=True,
        channels_last=True,
    )
    schedule = _STEP_BUDGET_SCHEDULE if max_steps else {}
    return RetinaNetModule(**{**hparams, **schedule, **overrides})


def build_demo_trainer(
    config: DemoConfig, callbacks: list[Callback], max_steps: int | None = None, **trainer_kwargs: Any
) -> Trainer:
    """A Trainer for the demo recipe: the time budget (or ``max_steps``), the fast precision, no validation loop.

    With the time budget, a :class:`TimeBudgetLR` over ``config.max_minutes`` is added to ``callbacks`` (the lr
    schedule of the recipe). With ``max_steps`` it is not: build the module with the same ``max_steps``, whose lr
    then depends on the step only, so that a seeded run repeats exactly (a wall-clock lr differs from run to run).
    """
    budget = config.max_minutes * 60
    lr_schedule = [] if max_steps else [TimeBudgetLR(budget, warmup_steps=WARMUP_STEPS)]
    return Trainer(
        accelerator=config.accelerator,
        devices=1,
        precision=fast_precision(config.accelerator),
        max_time=None if max_steps else {"seconds": budget},
        max_steps=max_steps or -1,
        max_epochs=-1,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        callbacks=[*callbacks, *lr_schedule],
        **{"logger": False, "enable_checkpointing": False, "enable_model_summary": False, "log_every_n_steps": 10,
           **trainer_kwargs},
    )


def check_demo_config(config: DemoConfig) -> None:
    """Refuse settings that would fail only after training.

    Raises:
        ValueError: naming the option, for fewer than one training or validation image, a time budget that is not
            positive, or ``accelerator="gpu"`` on a machine without a usable GPU.
    """
    for option, value in (("--num-train", config.num_train), ("--num-val", config.num_val)):
        if value < 1:
            raise ValueError(f"{option} must be >= 1 (the demo trains and evaluates on it), got {value}")
    if not config.max_minutes > 0:
        raise ValueError(f"--max-minutes must be > 0, got {config.max_minutes}")
    if config.accelerator == "gpu" and not (CUDAAccelerator.is_available() or MPSAccelerator.is_available()):
        raise ValueError("--accelerator gpu: no usable GPU (CUDA or MPS) on this machine; use cpu or auto")
