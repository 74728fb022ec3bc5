"""Validation mAP during and after a run: a callback that evaluates every ``every`` optimizer steps."""

from __future__ import annotations

from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from torch.utils.data import DataLoader
from typing_extensions import override

from lightning_retina.metrics import build_metric, metric_target


def evaluate(module: LightningModule, loader: DataLoader) -> dict[str, float]:
    """COCO mAP and mAP@0.5 of ``module`` on ``loader`` in eval mode and float32 (bf16 logits would tie scores).

    Returns:
        ``{"map": ..., "map_50": ...}`` (torchmetrics ``MeanAveragePrecision``, the module's validation metric).
    """
    was_training = module.training
    module.eval()
    metric = build_metric("coco")
    device = module.device
    with torch.no_grad(), torch.autocast(device.type, enabled=False):
        for images, targets in loader:
            detections = module([image.to(device) for image in images])
            metric.update([{k: v.cpu() for k, v in d.items()} for d in detections], [metric_target(t) for t in targets])
    results = metric.compute()
    module.train(was_training)
    return {"map": float(results["map"]), "map_50": float(results["map_50"])}


class EvaluateEvery(Callback):
    """Evaluate on ``loader`` after every ``every`` optimizer steps (and after the last one).

    Args:
        loader: the validation loader.
        every: steps between evaluations.
        max_steps: the run's step budget (the last evaluation is at that step).

    Attributes:
        rows: ``{"step", "map", "map_50"}`` per evaluation, in step order.
    """

    def __init__(self, loader: DataLoader, every: int, max_steps: int) -> None:
        if every <= 0:
            raise ValueError(f"every must be > 0, got {every}")
        self.loader, self.every, self.max_steps = loader, every, max_steps
        self.rows: list[dict[str, float]] = []

    @override
    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        step = trainer.global_step
        due = step % self.every == 0 or step == self.max_steps
        if due and step > 0 and (not self.rows or self.rows[-1]["step"] != step):
            self.rows.append({"step": float(step), **evaluate(pl_module, self.loader)})
