"""EvaluationPlots: after ``validate`` / ``test``, PR curves per class and a confusion matrix as PNGs in the log dir."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn

from lightning_retina.callbacks._evaluation_batch import class_names_of, evaluation_batch
from lightning_retina.metrics.coco import COCO_REC_THRESHOLDS, COCOMeanAveragePrecision
from lightning_retina.metrics.confusion import detection_confusion_matrix
from lightning_retina.metrics.factory import coco_backend, metric_target
from lightning_retina.metrics.plots import plot_confusion_matrix, plot_pr_curves

_STAGES = {TrainerFn.VALIDATING: "val", TrainerFn.TESTING: "test"}


def _free_path(folder: Path, stem: str) -> Path:
    """``folder/stem.png``, or ``stem-1.png``, ``stem-2.png``, … if taken: an earlier file is never overwritten."""
    path, n = folder / f"{stem}.png", 0
    while path.exists():
        n += 1
        path = folder / f"{stem}-{n}.png"
    return path


class EvaluationPlots(Callback):
    """After ``trainer.validate`` / ``trainer.test``: ``{stage}_pr_curve.png`` and ``{stage}_confusion_matrix.png``.

    The PR curves are COCOeval's interpolated precision at IoU 0.5 over its 101 recall thresholds, all areas,
    100 detections per image (``eval["precision"][0, :, k, 0, -1]``), one curve per class with ground truth plus
    their mean (its mean is COCO's ``map_50``). The confusion matrix is
    :func:`~lightning_retina.metrics.confusion.detection_confusion_matrix` (rows: true class, columns: predicted
    class, plus a background row of false positives and column of missed boxes). Both cover the images of all
    processes; global rank 0 writes them into ``trainer.log_dir`` (a name already taken gets ``-1``, ``-2``, …) and
    prints their paths; :attr:`paths` lists them. Validation during ``fit`` is left alone.

    Args:
        iou_threshold: IoU for the confusion matrix.
        score_threshold: lowest detection score counted in the confusion matrix (the PR curves use all).
        class_names: names indexed by label; default: the module's ``class_names``.
    """

    def __init__(
        self, iou_threshold: float = 0.5, score_threshold: float = 0.25, class_names: Sequence[str] | None = None
    ) -> None:
        self.iou_threshold = iou_threshold
        self.score_threshold = score_threshold
        self.class_names = class_names
        self.paths: list[Path] = []
        self._metric: COCOMeanAveragePrecision | None = None
        self._matrix: torch.Tensor | None = None

    def _stage(self, trainer: Trainer) -> str | None:
        return None if trainer.sanity_checking else _STAGES.get(trainer.state.fn)

    def _start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self._stage(trainer) is None:
            return
        num_classes = len(class_names_of(pl_module, self.class_names))
        self._metric = COCOMeanAveragePrecision(iou_thresholds=[0.5], extended_summary=True, backend=coco_backend())
        self._metric.warn_on_many_detections = False
        self._matrix = torch.zeros(num_classes + 1, num_classes + 1, dtype=torch.int64)

    def _update(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any) -> None:
        if self._metric is None or self._matrix is None or self._stage(trainer) is None:
            return
        _, detections, targets = evaluation_batch(outputs, batch, pl_module)
        detections = [{k: v.detach().cpu() for k, v in d.items()} for d in detections]
        targets = [{k: v.detach().cpu() for k, v in metric_target(t).items()} for t in targets]
        self._metric.update(detections, targets)
        self._matrix += detection_confusion_matrix(
            detections, targets, self._matrix.shape[0] - 1, self.iou_threshold, self.score_threshold
        )

    def _finish(self, trainer: Trainer, pl_module: LightningModule) -> None:
        stage = self._stage(trainer)
        if self._metric is None or self._matrix is None or stage is None:
            return
        results = self._metric.compute()  # every rank: the metric syncs inside
        matrix = trainer.strategy.reduce(self._matrix.to(pl_module.device), reduce_op="sum").cpu()
        self._metric, self._matrix = None, None
        folder = Path(trainer.log_dir or trainer.default_root_dir)  # on every rank: log_dir broadcasts
        if not trainer.is_global_zero:
            return
        names = class_names_of(pl_module, self.class_names)
        folder.mkdir(parents=True, exist_ok=True)
        written = [plot_confusion_matrix(matrix, names, _free_path(folder, f"{stage}_confusion_matrix"))]
        if "precision" in results:
            precision = results["precision"][0, :, :, 0, -1]  # [R, K]: IoU 0.5, area all, 100 detections
            classes = results["classes"].tolist()
            labels = [names[c] if 0 <= c < len(names) else str(c) for c in classes]
            path = _free_path(folder, f"{stage}_pr_curve")
            written.insert(0, plot_pr_curves(torch.tensor(COCO_REC_THRESHOLDS), precision, labels, path))
        else:
            rank_zero_warn(f"EvaluationPlots: no detections or ground truth in {stage}, no PR curve written")
        self.paths.extend(written)
        rank_zero_info("Evaluation plots: " + ", ".join(str(p) for p in written))

    def on_validation_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._start(trainer, pl_module)

    def on_test_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._start(trainer, pl_module)

    def on_validation_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:  # fmt: skip
        self._update(trainer, pl_module, outputs, batch)

    def on_test_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:  # fmt: skip
        self._update(trainer, pl_module, outputs, batch)

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._finish(trainer, pl_module)

    def on_test_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._finish(trainer, pl_module)
