"""The demo's evaluation: ``Trainer.validate`` with the module's COCO metric, VOC AP@0.5 and a picture of detections."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from typing_extensions import override

from lightning_retina.data import DetectionDataModule
from lightning_retina.metrics import LOG_KEYS, build_metric, metric_target
from lightning_retina.module import RetinaNetModule
from lightning_retina.viz import draw_detections, save_grid


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
