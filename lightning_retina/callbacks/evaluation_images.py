"""EvaluationImages: a few validation images with ground truth and predictions drawn, sent to image loggers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import Logger, MLFlowLogger, TensorBoardLogger, WandbLogger
from torch import Tensor

from lightning_retina.callbacks._evaluation_batch import class_names_of, evaluation_batch
from lightning_retina.viz import draw_detections


def log_images(logger: Logger, tag: str, images: Sequence[Tensor], step: int) -> bool:
    """Send ``uint8[3, H, W]`` images to ``logger`` if its type has an image API.

    TensorBoard: ``{tag}/{i}`` via ``add_image``; Weights & Biases: one ``log_image`` under ``tag``; MLflow:
    artifacts ``{tag}/step_{step}_{i}.png``. Other loggers (CSV, …) take no images.

    Returns:
        Whether the logger took the images.
    """
    if isinstance(logger, TensorBoardLogger):
        for i, image in enumerate(images):
            logger.experiment.add_image(f"{tag}/{i}", image.cpu(), global_step=step)
        return True
    hwc = [image.permute(1, 2, 0).cpu().numpy() for image in images]
    if isinstance(logger, WandbLogger):
        logger.log_image(key=tag, images=hwc, step=step)
        return True
    if isinstance(logger, MLFlowLogger):
        for i, image in enumerate(hwc):
            logger.experiment.log_image(logger.run_id, image, artifact_file=f"{tag}/step_{step:07d}_{i}.png")
        return True
    return False


class EvaluationImages(Callback):
    """After each validation, log the first ``num_images`` validation images with boxes drawn.

    Ground truth is drawn green, predictions (score ``>= score_thresh``) red with class name and score, by
    :func:`lightning_retina.viz.draw_detections`. The images are the first ones of the (unshuffled) validation
    loader on global rank 0, the same every epoch, logged under ``val/images/{i}`` at the current global step to
    every logger that takes images (:func:`log_images`); a CSV logger gets nothing and nothing fails. The sanity
    check is skipped. The module's ``validation_step`` may return ``{"detections", "targets"}`` (as
    :class:`~lightning_retina.RetinaNetModule` does); otherwise the module is run on the images.

    Args:
        num_images: how many images (default 4).
        score_thresh: the lowest score drawn.
        class_names: names indexed by label; default: the module's ``class_names``.
        tag: the logging tag.
    """

    def __init__(
        self,
        num_images: int = 4,
        score_thresh: float = 0.3,
        class_names: Sequence[str] | None = None,
        tag: str = "val/images",
    ) -> None:
        if num_images < 1:
            raise ValueError(f"num_images must be >= 1, got {num_images}")
        self.num_images = num_images
        self.score_thresh = score_thresh
        self.class_names = class_names
        self.tag = tag
        self.images: list[Tensor] = []

    def on_validation_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.images = []

    def on_validation_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero or dataloader_idx != 0:
            return
        if len(self.images) >= self.num_images:
            return
        names = class_names_of(pl_module, self.class_names)
        images, detections, targets = evaluation_batch(outputs, batch, pl_module)
        for image, detection, target in zip(images, detections, targets):
            if len(self.images) < self.num_images:
                self.images.append(draw_detections(image, detection, names, target, score_thresh=self.score_thresh))

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        for logger in trainer.loggers:
            log_images(logger, self.tag, self.images, trainer.global_step)
