"""The CPU demo: generate shapes, train a ResNet-18-FPN RetinaNet from scratch with ALWA, evaluate, draw."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer, seed_everything
from lightning.pytorch.accelerators import CUDAAccelerator, MPSAccelerator
from typing_extensions import override

from lightning_retina.callbacks import ALWA, TimeBudgetLR, TrainingHistory
from lightning_retina.data import DetectionDataModule
from lightning_retina.metrics import LOG_KEYS, build_metric, metric_target
from lightning_retina.module import RetinaNetModule
from lightning_retina.output_folder import claim_output_folder
from lightning_retina.precision import fast_precision
from lightning_retina.viz import draw_detections, save_grid

log = logging.getLogger(__name__)


@dataclass
class DemoConfig:
    """Settings of :func:`run_demo` (the ``lightning-retina demo`` options)."""

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


class _CheckpointOnInterrupt(Callback):
    """Ctrl-C during training: save a checkpoint before Lightning shuts down."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.saved = False

    @override
    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        if isinstance(exception, KeyboardInterrupt):
            trainer.save_checkpoint(self.path)
            self.saved = True


#: The demo's marker in its output folder: a folder holding it was made by the demo and may be written again.
OUT_MARKER = "lightning-retina-demo.json"
WRITER = "lightning-retina demo"

WARMUP_STEPS = 50
# The module's own schedule for a step budget: the same linear warm-up as TimeBudgetLR's, then a cosine over the steps.
_STEP_BUDGET_SCHEDULE = {"lr_schedule": "cosine", "warmup_steps": WARMUP_STEPS, "warmup_factor": 1 / WARMUP_STEPS}


def build_demo_datamodule(config: DemoConfig, seed: int | None = None) -> DetectionDataModule:
    """The shapes data (VOC layout) of the demo; ``seed`` (default ``config.seed``) also seeds the shuffle."""
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
    )


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
    # Shapes are 12-120 px on 256-px images: anchors of 8..128 px (x 2^0, 2^1/3, 2^2/3) at 160-px input cover them;
    # other input sizes scale them.
    anchors = tuple(round(s * config.input_size / 160) for s in (8, 16, 32, 64, 128))
    hparams: dict[str, Any] = dict(
        num_classes=len(class_names),
        class_names=class_names,
        backbone="resnet18",
        head_norm="group",
        fpn_channels=config.fpn_channels,
        anchor_sizes=anchors,
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


def run_demo(config: DemoConfig) -> dict[str, Any]:
    """Train, evaluate and draw; returns the metrics written to ``metrics.json``.

    Writes into ``config.out``: ``detections.png``, ``training.png``, ``metrics.json``, ``model.ckpt`` and its marker
    :data:`OUT_MARKER`. Nothing a user owns is overwritten: ``config.out`` must be new, empty or an earlier demo's
    output folder (unless ``config.overwrite``), and ``config.data_dir`` new, empty or a shapes set written by
    :func:`~lightning_retina.data.make_shapes_dataset` (``overwrite`` does not apply to it). The settings and the
    folders are checked before anything is generated or trained.

    Raises:
        ValueError: for settings refused by :func:`check_demo_config`, or an output / data folder holding a user's
            files.
        KeyboardInterrupt: re-raised after saving ``interrupted.ckpt`` when the user presses Ctrl-C.
    """
    check_demo_config(config)
    out = claim_output_folder(config.out, OUT_MARKER, WRITER, overwrite=config.overwrite, option="--overwrite")
    seed_everything(config.seed, workers=True, verbose=False)
    datamodule = build_demo_datamodule(config)
    datamodule.prepare_data()
    module = build_demo_module(config, list(datamodule.class_names))
    history = TrainingHistory()
    interrupt = _CheckpointOnInterrupt(out / "interrupted.ckpt")
    callbacks: list[Callback] = [history, interrupt]
    if config.alwa:
        callbacks.append(ALWA(interval=config.alwa_interval, start_step=config.alwa_start_step))
    trainer = build_demo_trainer(config, callbacks)
    precision = trainer.precision
    print(f"Training ResNet-18-FPN RetinaNet from scratch for {config.max_minutes:g} min "
          f"({precision}, {config.input_size} px, batch {config.batch_size}, ALWA {'on' if config.alwa else 'off'})")
    started = time.monotonic()
    try:
        trainer.fit(module, datamodule=datamodule)
    except SystemExit:
        if interrupt.saved:
            print(f"\nInterrupted: checkpoint saved to {interrupt.path}")
            raise KeyboardInterrupt from None
        raise
    train_seconds = time.monotonic() - started
    trainer.save_checkpoint(out / "model.ckpt")
    history.plot(out / "training.png", title="demo: raw losses and ALWA weight")

    metrics = evaluate_and_draw(module, datamodule, out / "detections.png", config.accelerator)
    metrics.update(
        steps=trainer.global_step,
        train_seconds=round(train_seconds, 1),
        precision=precision,
        loss_weights=dict(module.loss_weights),
        config=asdict(config),
    )
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    print(format_table(metrics))
    return metrics


class _VOCAndPictures(Callback):
    """During ``Trainer.validate``: VOC AP@0.5 per class and the first ``num_drawn`` images with their detections."""

    def __init__(self, class_names: list[str], num_drawn: int) -> None:
        self.class_names, self.num_drawn = class_names, num_drawn
        self.voc = build_metric("voc")
        self.drawn: list[torch.Tensor] = []

    @override
    def on_validation_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:  # fmt: skip
        images, targets = batch
        detections = [{k: v.cpu() for k, v in d.items()} for d in outputs["detections"]]
        self.voc.update(detections, [metric_target(t) for t in targets])
        for image, det, target in zip(images, detections, targets):
            if len(self.drawn) < self.num_drawn:
                self.drawn.append(draw_detections(image.cpu(), det, self.class_names, target=target))


def evaluate_and_draw(
    module: RetinaNetModule, datamodule: DetectionDataModule, picture: Path, accelerator: str = "auto",
    num_drawn: int = 8,
) -> dict[str, Any]:
    """Evaluate with ``Trainer.validate`` (the module's COCO metric, per class) in float32 — bf16 logits would tie
    scores and blur the ranking — plus VOC AP@0.5 per class, and save a picture of the first detections.

    Returns:
        torchmetrics' scalar keys (``map``, ``map_50``, ...), ``map_per_class`` and ``ap50_per_class_voc`` by class
        name (a class without ground truth is left out of ``map_per_class``), and ``map_50_voc``.
    """
    collector = _VOCAndPictures(list(module.class_names), num_drawn)
    evaluator = Trainer(
        accelerator=accelerator, devices=1, precision="32-true", logger=False, enable_checkpointing=False,
        enable_model_summary=False, callbacks=[collector],
    )  # fmt: skip
    (logged,) = evaluator.validate(module, datamodule=datamodule, verbose=False)
    save_grid(collector.drawn, picture)
    names = list(module.class_names)
    metrics: dict[str, Any] = {key: float(logged[f"val/{key}"]) for key in LOG_KEYS if f"val/{key}" in logged}
    per_class = {name: logged.get(f"val/map_per_class/{name}") for name in names}
    metrics["map_per_class"] = {name: float(ap) for name, ap in per_class.items() if ap is not None}
    voc_results = collector.voc.compute()
    metrics["ap50_per_class_voc"] = {
        names[int(c)]: float(a) for c, a in zip(voc_results["classes"], voc_results["map_per_class"])
    }
    metrics["map_50_voc"] = float(voc_results["map"])
    return metrics


def format_table(metrics: dict[str, Any]) -> str:
    """A small plain-text table of the demo's results."""
    lines = [
        "",
        f"{'metric':<28}{'value':>10}",
        f"{'mAP@[.5:.95]':<28}{metrics['map']:>10.3f}",
        f"{'mAP@0.5':<28}{metrics['map_50']:>10.3f}",
        f"{'mAP@0.75':<28}{metrics['map_75']:>10.3f}",
    ]
    for name, ap in metrics["ap50_per_class_voc"].items():
        lines.append(f"{'AP@0.5 ' + name:<28}{ap:>10.3f}")
    weights = metrics.get("loss_weights", {})
    lines.append(f"{'final ALWA weight (cls)':<28}{weights.get('loss_cls', 1.0):>10.3f}")
    lines.append(f"{'optimizer steps':<28}{metrics.get('steps', 0):>10d}")
    return "\n".join(lines)
