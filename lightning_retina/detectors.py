"""TorchvisionDetector: any torchvision detection model as a LightningModule that follows the weighted-loss contract.

Faster R-CNN, Mask R-CNN, Keypoint R-CNN, RetinaNet, FCOS, SSD and SSDlite train on the
:class:`~lightning_retina.data.DetectionDataModule`'s batches, validate with the same mAP metrics as
:class:`~lightning_retina.RetinaNetModule` and work with :class:`~lightning_retina.callbacks.ALWA`, with no glue.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import torch
from torch import Tensor, nn
from torchvision.models.detection import FCOS, KeypointRCNN, MaskRCNN, RetinaNet
from torchvision.models.detection.generalized_rcnn import GeneralizedRCNN
from torchvision.models.detection.ssd import SSD

from lightning_retina.metrics import build_metric, metric_target
from lightning_retina.metrics.hooks import LogsEvaluationMetrics
from lightning_retina.optim import OptimizedModule
from lightning_retina.weighted_loss import weighted_sum

Batch = tuple[Sequence[Tensor], Sequence[dict[str, Tensor]]]
_RCNN_LOSSES = ("loss_classifier", "loss_box_reg", "loss_objectness", "loss_rpn_box_reg")
# most specific type first: MaskRCNN and KeypointRCNN are FasterRCNNs, all of them GeneralizedRCNNs
_LOSS_NAMES: tuple[tuple[type[nn.Module], tuple[str, ...]], ...] = (
    (MaskRCNN, (*_RCNN_LOSSES, "loss_mask")),
    (KeypointRCNN, (*_RCNN_LOSSES, "loss_keypoint")),
    (GeneralizedRCNN, _RCNN_LOSSES),
    (FCOS, ("classification", "bbox_regression", "bbox_ctrness")),
    (RetinaNet, ("classification", "bbox_regression")),
    (SSD, ("bbox_regression", "classification")),
)


def model_loss_names(model: nn.Module) -> tuple[str, ...]:
    """The names of the losses a torchvision detection model returns in training mode.

    Raises:
        ValueError: for a model type this table does not know (pass ``loss_weights`` for it).
    """
    for kind, names in _LOSS_NAMES:
        if isinstance(model, kind):
            return names
    raise ValueError(
        f"unknown detector type {type(model).__name__}: pass loss_weights with one entry per loss it returns"
    )


def has_background_class(model: nn.Module) -> bool:
    """``True`` for the models whose class 0 is background (Faster / Mask / Keypoint R-CNN, SSD, SSDlite)."""
    return isinstance(model, (GeneralizedRCNN, SSD))


def _box_masks(boxes: Tensor, height: int, width: int) -> Tensor:
    """``uint8[N, H, W]``: each box filled with ones (a mask target for data without masks)."""
    ys = torch.arange(height, device=boxes.device).view(1, -1, 1) + 0.5
    xs = torch.arange(width, device=boxes.device).view(1, 1, -1) + 0.5
    x1, y1, x2, y2 = (boxes[:, i].view(-1, 1, 1) for i in range(4))
    return ((xs >= x1) & (xs < x2) & (ys >= y1) & (ys < y2)).to(torch.uint8)


class TorchvisionDetector(LogsEvaluationMetrics, OptimizedModule):
    """A torchvision detection model trained and evaluated as :class:`~lightning_retina.RetinaNetModule` is.

    Labels: the DataModule's labels are ``0..K-1``. Models with a background class 0 (Faster / Mask / Keypoint
    R-CNN, SSD; built with ``num_classes=K + 1``) get ``label + 1`` in training and their predictions shifted back by
    1, so class 0 is a real class and not silently background; RetinaNet and FCOS (built with ``num_classes=K``) get
    the labels as they are. ``label_offset`` overrides the choice.

    Targets: objects flagged ``iscrowd`` or ``difficult`` are left out of the training targets (the models have no
    ignore region). A Mask R-CNN whose targets have no ``masks`` gets each box filled as its mask (the mask head then
    learns boxes; pass real ``masks`` for real ones).

    The weighted-loss contract of :class:`~lightning_retina.callbacks.ALWA`: ``loss_weights`` is keyed by the
    model's own loss names (Faster R-CNN: ``loss_classifier``, ``loss_box_reg``, ``loss_objectness``,
    ``loss_rpn_box_reg``; RetinaNet: ``classification``, ``bbox_regression``; FCOS: those and ``bbox_ctrness``; SSD:
    ``bbox_regression``, ``classification``), 1 each by default; ``training_step`` returns
    ``{"loss": Σ w_k·loss_k, <each raw loss>}``. A loss without a weight or a weight without a loss is an error at
    the first step.

    Validation / test: torchvision models return losses only in training mode (where BatchNorm would update its
    statistics), so evaluation logs the mAP of ``metric`` only (``val/map``, ``val/map_50``, ...).

    Args:
        model: a torchvision detection model, e.g. ``fasterrcnn_resnet50_fpn(weights=None, num_classes=K + 1)``.
        class_names: optional names of the ``K`` classes (kept in checkpoints).
        label_offset: added to the labels in training and subtracted from predictions; default 1 for models with a
            background class, else 0.
        loss_weights: initial weight of each loss by name (default 1 for each of the model's losses); required, with
            every loss, for a model type not in the table above.
        metric: ``"coco"``, ``"voc"``, ``"voc07"`` or ``None`` (no evaluation metric).
        class_metrics: also compute per-class AP.
        optim_settings: the optimizer and lr schedule, flat keyword arguments documented in
            :class:`~lightning_retina.optim.OptimizedModule` (``optimizer``, ``lr``, ``lr_schedule``, ...; the same
            defaults as :class:`~lightning_retina.RetinaNetModule`).

    Raises:
        ValueError: for an unknown model type without ``loss_weights``, or an unknown ``lr_schedule``.

    Example::

        >>> from torchvision.models.detection import fasterrcnn_resnet50_fpn
        >>> detector = TorchvisionDetector(fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=21))
        >>> trainer = Trainer(callbacks=[ALWA(groups=[("loss_classifier", "loss_box_reg"),
        ...                                           ("loss_objectness", "loss_rpn_box_reg")])])
        >>> trainer.fit(detector, datamodule=DetectionDataModule("voc", root="data"))  # doctest: +SKIP
    """

    hparams_ignore = ("model",)  # a module, not a setting: checkpoints keep its weights in the state dict

    def __init__(
        self,
        model: nn.Module,
        class_names: Sequence[str] | None = None,
        label_offset: int | None = None,
        loss_weights: Mapping[str, float] | None = None,
        metric: Literal["coco", "voc", "voc07"] | None = "coco",
        class_metrics: bool = False,
        **optim_settings: Any,
    ) -> None:
        super().__init__(**optim_settings)  # saves every argument but the model as hyper-parameters
        self.model = model
        self.class_names = list(class_names) if class_names is not None else None
        self.label_offset = int(has_background_class(model)) if label_offset is None else label_offset
        known = loss_weights is None or any(isinstance(model, kind) for kind, _ in _LOSS_NAMES)
        self.loss_weights: dict[str, float] = {name: 1.0 for name in model_loss_names(model)} if known else {}
        self.loss_weights.update(loss_weights or {})
        self.val_metric = build_metric(metric, class_metrics) if metric else None
        self.test_metric = build_metric(metric, class_metrics) if metric else None

    # ----------------------------------------------------------------------------------------------- forward
    def forward(self, images: Sequence[Tensor]) -> list[dict[str, Tensor]]:
        """Detect objects (the model in eval mode).

        Args:
            images: ``B`` float tensors ``[3, H_i, W_i]`` in 0..1.

        Returns:
            one dict per image, as the model gives it (``boxes`` ``[N, 4]`` xyxy input pixels, ``scores`` ``[N]``,
            ...), with ``labels`` ``[N]`` in ``0..K-1``.
        """
        return [{**out, "labels": out["labels"] - self.label_offset} for out in self.model(list(images))]

    def model_targets(self, images: Sequence[Tensor], targets: Sequence[dict[str, Tensor]]) -> list[dict[str, Tensor]]:
        """The targets as the model wants them: crowd / difficult objects left out, labels + ``label_offset``, box
        masks for a mask model without ``masks``."""
        wants_masks = isinstance(self.model, MaskRCNN)
        out = []
        for image, target in zip(images, targets):
            keep = torch.ones_like(target["labels"], dtype=torch.bool)
            for flag in ("iscrowd", "difficult"):
                if flag in target:
                    keep &= ~target[flag].bool()
            entry = {"boxes": target["boxes"][keep], "labels": target["labels"][keep] + self.label_offset}
            if "masks" in target:
                entry["masks"] = target["masks"][keep]
            elif wants_masks:
                entry["masks"] = _box_masks(entry["boxes"], *image.shape[-2:])
            out.append(entry)
        return out

    def compute_losses(self, images: Sequence[Tensor], targets: Sequence[dict[str, Tensor]]) -> dict[str, Tensor]:
        """Raw (unweighted) losses of a batch, keyed by the model's loss names (the model in training mode)."""
        return self.model(list(images), self.model_targets(images, targets))

    # ---------------------------------------------------------------------------------------------- training
    def training_step(self, batch: Batch, batch_idx: int) -> dict[str, Tensor]:
        images, targets = batch
        losses = self.compute_losses(images, targets)
        loss = weighted_sum(losses, self.loss_weights, f"TorchvisionDetector({type(self.model).__name__})")
        batch_size = len(images)
        self.log("train/loss", loss, prog_bar=True, batch_size=batch_size)
        self.log_dict({f"train/{k}": v for k, v in losses.items()}, batch_size=batch_size)
        return {"loss": loss, **{k: v.detach() for k, v in losses.items()}}

    # -------------------------------------------------------------------------------------------- evaluation
    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        self._evaluation_step(batch, self.val_metric)

    def test_step(self, batch: Batch, batch_idx: int) -> None:
        self._evaluation_step(batch, self.test_metric)

    def _evaluation_step(self, batch: Batch, metric: Any) -> None:
        if metric is None:
            return
        images, targets = batch
        detections = [{k: d[k] for k in ("boxes", "scores", "labels")} for d in self(images)]
        metric.update(detections, [metric_target(t) for t in targets])

    def predict_step(self, batch: Batch | Sequence[Tensor], batch_idx: int) -> list[dict[str, Tensor]]:
        with_targets = isinstance(batch, tuple) and len(batch) == 2 and not isinstance(batch[0], Tensor)
        return self(batch[0] if with_targets else batch)

    # ---------------------------------------------------------------------------------------- checkpointing
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["loss_weights"] = dict(self.loss_weights)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.loss_weights.update(checkpoint.get("loss_weights", {}))
