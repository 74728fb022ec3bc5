"""RetinaNetModule: torchvision's RetinaNet as a LightningModule that owns its (batched) losses."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any, Literal, NamedTuple

import torch
from lightning.pytorch import LightningModule
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor
from torch.optim.lr_scheduler import LambdaLR
from torchvision.models.detection.image_list import ImageList

from lightning_retina.evaluation import METRICS, build_metric, metric_target
from lightning_retina.losses.retinanet import RetinaNetLoss
from lightning_retina.model import DEFAULT_ANCHOR_SIZES, build_retinanet
from lightning_retina.optim import SCHEDULES, build_optimizer, lr_factor
from lightning_retina.postprocess import postprocess_detections
from lightning_retina.targets import check_targets
from lightning_retina.weighted_loss import weighted_sum

Batch = tuple[Sequence[Tensor], Sequence[dict[str, Tensor]]]
_COCO_LOG_KEYS = ("map", "map_50", "map_75", "map_small", "map_medium", "map_large", "mar_100")


class HeadOutputs(NamedTuple):
    """What one forward pass through backbone and head produces for a batch.

    Attributes:
        head_outputs: ``{"cls_logits": [B, A, K], "bbox_regression": [B, A, 4]}``.
        anchors: ``Tensor[B, A, 4]`` in the resized-image frame (a view, shared by all images).
        num_anchors_per_level: ``A`` split over P3…P7.
        images: the resized, normalised, padded batch.
        targets: the targets resized into the same frame (``None`` without targets).
    """

    head_outputs: dict[str, Tensor]
    anchors: Tensor
    num_anchors_per_level: list[int]
    images: ImageList
    targets: list[dict[str, Tensor]] | None


class RetinaNetModule(LightningModule):
    """RetinaNet (ResNet-FPN, P3–P7, 9 anchors) with every loss of the focal-loss and IoU-loss literature.

    ``self.model`` is a plain torchvision :class:`~torchvision.models.detection.RetinaNet` (so its
    ``transform``, ``backbone``, ``head``, ``anchor_generator`` and ``proposal_matcher`` are there to reuse), but
    the loss and the post-processing are ours and batched: :attr:`loss_fn` is a
    :class:`~lightning_retina.losses.RetinaNetLoss`.

    The module follows the weighted-loss contract of :class:`~lightning_retina.callbacks.ALWA`: it has
    ``loss_weights`` and ``training_step`` returns ``{"loss": Σ w_k·loss_k, "loss_cls": ..., "loss_reg": ...}``.

    Args:
        num_classes: number of **foreground** classes (no background slot): 20 for VOC, 80 for COCO.
        class_names: optional names of the ``num_classes`` classes (kept in checkpoints, used by ``detect``).
        backbone: torchvision ResNet name (``"resnet18"`` … ``"resnet152"``).
        backbone_weights: ``None`` (from scratch, BN trains), a torchvision weights name (``"DEFAULT"``) or a local
            ResNet ``state_dict`` file (frozen BN).
        trainable_backbone_layers: ResNet stages to train (default: 5 from scratch, 3 with weights).
        head_norm: ``"none"`` (paper) or ``"group"`` (GroupNorm(32) head; much faster from scratch).
        fpn_channels: channels of the FPN and the head convs (paper: 256; 128 halves a small model's step time).
        anchor_sizes: base anchor size of P3…P7 (paper: 32…512 for 800-px images).
        cls_loss: ``"focal"``, ``"bce"`` or ``"balanced_bce"``.
        reg_loss: ``"smooth_l1"``, ``"l1"``, ``"iou"``, ``"giou"``, ``"diou"`` or ``"ciou"``.
        focal_alpha: α (paper: 0.25).
        focal_gamma: γ (paper: 2.0).
        smooth_l1_beta: β of smooth-L1 on deltas (1/9).
        normalization: ``"batch"`` (by foreground anchors in the batch) or ``"per_image"`` (torchvision).
        loss_weights: initial weights of ``loss_cls`` and ``loss_reg`` (default 1:1); ALWA adjusts them.
        min_size: shorter side after resizing.
        max_size: longest side after resizing.
        score_thresh: inference score threshold.
        nms_thresh: inference NMS IoU threshold.
        detections_per_img: detections per image.
        topk_candidates: candidates per pyramid level before NMS.
        optimizer: ``"sgd"`` (momentum 0.9) or ``"adamw"``.
        lr: base learning rate (paper: 0.01 for 16 images per batch).
        momentum: SGD momentum.
        weight_decay: weight decay.
        warmup_steps: linear warm-up length in optimizer steps.
        warmup_factor: learning-rate factor at step 0.
        lr_schedule: ``"step"``, ``"cosine"`` (over ``trainer.estimated_stepping_batches``) or ``"constant"``.
        lr_milestones: optimizer steps at which ``"step"`` multiplies the lr by ``lr_gamma``.
        lr_gamma: step-decay factor.
        metric: ``"coco"``, ``"voc"``, ``"voc07"`` or ``None`` (no mAP in validation/test).
        class_metrics: also compute per-class AP (``val/map_per_class`` is returned by the metric).
        channels_last: run backbone and head in ``channels_last`` memory format (faster with bf16 on CPU/GPU).
        skip_nonfinite: on a NaN/Inf loss skip the step with a warning (counted in ``train/skipped_steps``)
            instead of stopping with an error. Single process only: Lightning cannot skip a step under DDP, so
            fitting with more than one process raises a ``ValueError`` at the start.

    Example::

        >>> module = RetinaNetModule(num_classes=20, backbone="resnet50", reg_loss="giou")
        >>> trainer = Trainer(max_epochs=12, precision="bf16-mixed", callbacks=[ALWA()])
        >>> trainer.fit(module, datamodule=DetectionDataModule("voc", root="data"))
    """

    def __init__(
        self,
        num_classes: int,
        class_names: Sequence[str] | None = None,
        backbone: Literal["resnet18", "resnet34", "resnet50", "resnet101", "resnet152"] = "resnet50",
        backbone_weights: str | None = None,
        trainable_backbone_layers: int | None = None,
        head_norm: Literal["none", "group"] = "none",
        fpn_channels: int = 256,
        anchor_sizes: tuple[int, ...] = DEFAULT_ANCHOR_SIZES,
        cls_loss: Literal["focal", "bce", "balanced_bce"] = "focal",
        reg_loss: Literal["smooth_l1", "l1", "iou", "giou", "diou", "ciou"] = "smooth_l1",
        focal_alpha: float = 0.25,
        focal_gamma: float = 2.0,
        smooth_l1_beta: float = 1.0 / 9.0,
        normalization: Literal["batch", "per_image"] = "batch",
        loss_weights: dict[str, float] | None = None,
        min_size: int = 800,
        max_size: int = 1333,
        score_thresh: float = 0.05,
        nms_thresh: float = 0.5,
        detections_per_img: int = 100,
        topk_candidates: int = 1000,
        optimizer: Literal["sgd", "adamw"] = "sgd",
        lr: float = 0.01,
        momentum: float = 0.9,
        weight_decay: float = 1e-4,
        warmup_steps: int = 500,
        warmup_factor: float = 0.001,
        lr_schedule: Literal["step", "cosine", "constant"] = "step",
        lr_milestones: Sequence[int] = (),
        lr_gamma: float = 0.1,
        metric: Literal["coco", "voc", "voc07"] | None = "coco",
        class_metrics: bool = False,
        channels_last: bool = False,
        skip_nonfinite: bool = False,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        if metric is not None and metric not in METRICS:
            raise ValueError(f"Unknown metric {metric!r}; expected one of {METRICS} or None")
        if lr_schedule not in SCHEDULES:
            raise ValueError(f"Unknown lr_schedule {lr_schedule!r}; expected one of {SCHEDULES}")
        if class_names is not None and len(class_names) != num_classes:
            raise ValueError(f"class_names has {len(class_names)} names but num_classes={num_classes}")
        self.num_classes = num_classes
        self.class_names = list(class_names) if class_names is not None else [str(i) for i in range(num_classes)]
        self.model = build_retinanet(
            num_classes,
            backbone=backbone,
            backbone_weights=backbone_weights,
            trainable_backbone_layers=trainable_backbone_layers,
            head_norm=head_norm,
            fpn_channels=fpn_channels,
            anchor_sizes=tuple(anchor_sizes),
            min_size=min_size,
            max_size=max_size,
            score_thresh=score_thresh,
            nms_thresh=nms_thresh,
            detections_per_img=detections_per_img,
            topk_candidates=topk_candidates,
        )
        self.loss_fn = RetinaNetLoss(
            cls_loss=cls_loss,
            reg_loss=reg_loss,
            focal_alpha=focal_alpha,
            focal_gamma=focal_gamma,
            smooth_l1_beta=smooth_l1_beta,
            normalization=normalization,
        )
        self.loss_weights: dict[str, float] = {"loss_cls": 1.0, "loss_reg": 1.0, **(loss_weights or {})}
        unknown = set(self.loss_weights) - {"loss_cls", "loss_reg"}
        if unknown:
            raise ValueError(f"Unknown loss_weights keys {sorted(unknown)}; expected 'loss_cls' and 'loss_reg'")
        self.val_metric = build_metric(metric, class_metrics) if metric else None
        self.test_metric = build_metric(metric, class_metrics) if metric else None
        self.skipped_steps = 0
        if channels_last:
            self.model.to(memory_format=torch.channels_last)

    # ----------------------------------------------------------------------------------------------- forward
    def forward_heads(
        self, images: Sequence[Tensor], targets: Sequence[dict[str, Tensor]] | None = None
    ) -> HeadOutputs:
        """Resize/normalise/pad, run backbone + FPN + head and make the anchors.

        Args:
            images: ``B`` float tensors ``[3, H_i, W_i]`` in 0..1.
            targets: optional, one dict per image (``boxes`` xyxy in input pixels, ``labels``).

        Returns:
            HeadOutputs, targets resized into the network's input frame.
        """
        image_list, resized = self.model.transform(list(images), [dict(t) for t in targets] if targets else None)
        if self.hparams.channels_last:
            image_list.tensors = image_list.tensors.contiguous(memory_format=torch.channels_last)
        features = list(self.model.backbone(image_list.tensors).values())
        head_outputs = self.model.head(features)
        # Anchors only need the grid shapes; make them in float32 whatever the autocast dtype of the features.
        shape_only = [f.new_empty((0, 0, *f.shape[-2:]), dtype=torch.float32) for f in features]
        anchors = self.model.anchor_generator(
            ImageList(image_list.tensors[:1], image_list.image_sizes[:1]), shape_only
        )[0]
        per_level = [
            f.shape[-2] * f.shape[-1] * self.model.anchor_generator.num_anchors_per_location()[0] for f in features
        ]
        return HeadOutputs(head_outputs, anchors.expand(len(images), -1, -1), per_level, image_list, resized)

    def forward(self, images: Sequence[Tensor]) -> list[dict[str, Tensor]]:
        """Detect objects.

        Args:
            images: ``B`` float tensors ``[3, H_i, W_i]`` in 0..1 (any sizes).

        Returns:
            one dict per image: ``boxes`` ``[N, 4]`` xyxy in input-image pixels, ``scores`` ``[N]``, ``labels`` ``[N]``
            in ``0..num_classes-1``.
        """
        return self._detect(self.forward_heads(images), [tuple(img.shape[-2:]) for img in images])

    def _detect(self, out: HeadOutputs, original_sizes: list[tuple[int, int]]) -> list[dict[str, Tensor]]:
        hp = self.hparams
        detections = postprocess_detections(
            out.head_outputs["cls_logits"],
            out.head_outputs["bbox_regression"],
            out.anchors,
            out.num_anchors_per_level,
            out.images.image_sizes,
            self.loss_fn.box_coder,
            score_thresh=hp.score_thresh,
            nms_thresh=hp.nms_thresh,
            detections_per_img=hp.detections_per_img,
            topk_candidates=hp.topk_candidates,
        )
        return self.model.transform.postprocess(detections, out.images.image_sizes, original_sizes)

    def compute_losses(self, images: Sequence[Tensor], targets: Sequence[dict[str, Tensor]]) -> dict[str, Tensor]:
        """Raw (unweighted) losses of a batch.

        Args:
            images: ``B`` float tensors ``[3, H_i, W_i]`` in 0..1.
            targets: ``B`` dicts, ``boxes`` ``[N_i, 4]`` xyxy input pixels, ``labels`` ``[N_i]`` in
                ``0..num_classes-1``, optional ``iscrowd`` ``[N_i]``.

        Returns:
            ``{"loss_cls": Tensor[], "loss_reg": Tensor[]}`` in float32.

        Raises:
            ValueError: naming the image and box of a malformed target.
        """
        check_targets(list(targets), self.num_classes)
        out = self.forward_heads(images, targets)
        return self.loss_fn(out.head_outputs, out.anchors, out.targets)

    def weighted_loss(self, losses: dict[str, Tensor]) -> Tensor:
        """``Σ loss_weights[k] · losses[k]``; a loss without a weight, or a weight without a loss, is a ValueError."""
        return weighted_sum(losses, self.loss_weights, type(self).__name__)

    # ---------------------------------------------------------------------------------------------- training
    def setup(self, stage: str) -> None:
        if stage == "fit" and self.hparams.skip_nonfinite and self.trainer.world_size > 1:
            raise ValueError(
                f"skip_nonfinite=True needs a single process, got {self.trainer.world_size}: Lightning cannot skip a "
                "training step under DDP. Leave it False to stop at the first non-finite loss."
            )

    def training_step(self, batch: Batch, batch_idx: int) -> dict[str, Tensor] | None:
        images, targets = batch
        losses = self.compute_losses(images, targets)
        loss = self.weighted_loss(losses)
        if not torch.isfinite(loss):
            return self._on_nonfinite(loss, losses, batch_idx)
        batch_size = len(images)
        self.log("train/loss", loss, prog_bar=True, batch_size=batch_size)
        self.log_dict({f"train/{k}": v for k, v in losses.items()}, prog_bar=True, batch_size=batch_size)
        return {"loss": loss, **{k: v.detach() for k, v in losses.items()}}

    def _on_nonfinite(self, loss: Tensor, losses: dict[str, Tensor], batch_idx: int) -> None:
        values = ", ".join(f"{k}={float(v.detach()):.6g}" for k, v in losses.items())
        message = (
            f"Non-finite loss {float(loss.detach())} at global step {self.global_step} (batch {batch_idx}): {values}; "
            f"loss_weights={self.loss_weights}"
        )
        if not self.hparams.skip_nonfinite:
            raise FloatingPointError(message + ". Pass skip_nonfinite=True to skip such steps instead.")
        self.skipped_steps += 1
        rank_zero_warn(f"{message}; skipping the step ({self.skipped_steps} skipped so far).", category=RuntimeWarning)
        self.log("train/skipped_steps", float(self.skipped_steps), batch_size=1)
        return None

    # -------------------------------------------------------------------------------------------- evaluation
    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        self._evaluation_step(batch, "val", self.val_metric)

    def test_step(self, batch: Batch, batch_idx: int) -> None:
        self._evaluation_step(batch, "test", self.test_metric)

    def _evaluation_step(self, batch: Batch, prefix: str, metric: Any) -> None:
        images, targets = batch
        check_targets(list(targets), self.num_classes)
        out = self.forward_heads(images, targets)
        losses = self.loss_fn(out.head_outputs, out.anchors, out.targets)
        batch_size = len(images)
        self.log_dict({f"{prefix}/{k}": v for k, v in losses.items()}, batch_size=batch_size, sync_dist=True)
        self.log(f"{prefix}/loss", self.weighted_loss(losses), batch_size=batch_size, sync_dist=True)
        if metric is not None:
            detections = self._detect(out, [tuple(img.shape[-2:]) for img in images])
            metric.update(detections, [metric_target(t) for t in targets])

    def on_validation_epoch_end(self) -> None:
        self._log_metric("val", self.val_metric)

    def on_test_epoch_end(self) -> None:
        self._log_metric("test", self.test_metric)

    def _log_metric(self, prefix: str, metric: Any) -> None:
        # Every rank computes (torchmetrics syncs inside compute), so no rank waits on a collective alone.
        if metric is None:
            return
        results = metric.compute()
        metric.reset()
        scalars = {f"{prefix}/{k}": v for k, v in results.items() if k in _COCO_LOG_KEYS and v.numel() == 1}
        self.log_dict(scalars, prog_bar=False, sync_dist=True)

    def predict_step(self, batch: Batch | Sequence[Tensor], batch_idx: int) -> list[dict[str, Tensor]]:
        images = (
            batch[0] if isinstance(batch, tuple) and len(batch) == 2 and not isinstance(batch[0], Tensor) else batch
        )
        return self(images)

    # ---------------------------------------------------------------------------------------- optimisation
    def configure_optimizers(self) -> dict[str, Any]:
        hp = self.hparams
        params = [p for p in self.parameters() if p.requires_grad]
        optimizer = build_optimizer(params, hp.optimizer, hp.lr, hp.momentum, hp.weight_decay)
        total = int(self.trainer.estimated_stepping_batches) if hp.lr_schedule == "cosine" else 0
        schedule = partial(
            lr_factor,
            warmup_steps=hp.warmup_steps,
            warmup_factor=hp.warmup_factor,
            schedule=hp.lr_schedule,
            milestones=tuple(hp.lr_milestones),
            gamma=hp.lr_gamma,
            total_steps=total,
        )
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": LambdaLR(optimizer, schedule), "interval": "step"},
        }

    # ---------------------------------------------------------------------------------------- checkpointing
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["loss_weights"] = dict(self.loss_weights)
        checkpoint["skipped_steps"] = self.skipped_steps

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.loss_weights.update(checkpoint.get("loss_weights", {}))
        self.skipped_steps = checkpoint.get("skipped_steps", 0)

