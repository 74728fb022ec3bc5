"""RetinaNetModule: torchvision's RetinaNet as a LightningModule that owns its (batched) losses."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import torch
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor
from torchmetrics import MeanMetric

from lightning_retina.losses.retinanet import RetinaNetLoss
from lightning_retina.data.image_io import decode_image
from lightning_retina.matching import BG_IOU_THRESH, FG_IOU_THRESH
from lightning_retina.metrics import METRICS, build_metric, metric_target
from lightning_retina.metrics.hooks import LogsEvaluationMetrics
from lightning_retina.model import DEFAULT_ANCHOR_SIZES, HeadOutputs, RetinaNetCore
from lightning_retina.optim import OptimizedModule
from lightning_retina.targets import check_targets
from lightning_retina.weighted_loss import weighted_sum

Batch = tuple[Sequence[Tensor], Sequence[dict[str, Tensor]]]
ImageInput = Tensor | str | Path
_EVAL_LOSS_KEYS = ("loss", "loss_cls", "loss_reg")


class RetinaNetModule(LogsEvaluationMetrics, OptimizedModule):
    """RetinaNet (ResNet-FPN, P3–P7, 9 anchors) with every loss of the focal-loss and IoU-loss literature.

    ``self.model`` is the :class:`~lightning_retina.model.RetinaNetCore`: transform, backbone, head, anchors, box
    coder, matcher and inference settings, everything detection, ``detect`` and export use
    (``self.model.to_torchvision()`` gives torchvision's ``RetinaNet`` on the same weights). :attr:`loss_fn` is a
    :class:`~lightning_retina.losses.RetinaNetLoss` built with the core's matcher and box coder. The module itself only
    trains and evaluates.

    The module follows the weighted-loss contract of :class:`~lightning_retina.callbacks.ALWA`: it has
    ``loss_weights`` and ``training_step`` returns ``{"loss": Σ w_k·loss_k, "loss_cls": ..., "loss_reg": ...}``.

    Args:
        num_classes: number of **foreground** classes (no background slot): 20 for VOC, 80 for COCO.
        class_names: optional names of the ``num_classes`` classes (kept in checkpoints, used by ``detect``).
        category_ids: optional id of each class in the data set it was trained on (COCO category ids, label order;
            kept in checkpoints, written by ``detect`` and the COCO results writer). The CLI links it from the data.
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
        fg_iou_thresh: IoU from which an anchor is foreground in training (paper: 0.5).
        bg_iou_thresh: IoU below which an anchor is background in training (paper: 0.4); in between it is ignored.
        score_thresh: inference score threshold.
        nms_thresh: inference NMS IoU threshold.
        detections_per_img: detections per image.
        topk_candidates: candidates per pyramid level before NMS.
        metric: ``"coco"``, ``"voc"``, ``"voc07"`` or ``None`` (no mAP in validation/test).
        class_metrics: also compute per-class AP (``val/map_per_class`` is returned by the metric).
        channels_last: run backbone and head in ``channels_last`` memory format (faster with bf16 on CPU/GPU).
        skip_nonfinite: on a NaN/Inf loss skip the step with a warning (counted in ``train/skipped_steps``)
            instead of stopping with an error. Single process only: Lightning cannot skip a step under DDP, so
            fitting with more than one process raises a ``ValueError`` at the start.
        max_consecutive_skips: with ``skip_nonfinite``, stop with a ``FloatingPointError`` (naming the count, the
            step and the losses) when this many training steps in a row had non-finite losses: a run that skips
            most of its steps has diverged and must not report success.
        optim_settings: the optimizer and lr schedule, flat keyword arguments documented in
            :class:`~lightning_retina.optim.OptimizedModule`: ``optimizer`` (``"sgd"``, the default, or ``"adamw"``),
            ``lr`` (0.01), ``momentum``, ``weight_decay``, ``warmup_steps`` (500), ``warmup_factor``, ``lr_schedule``
            (``"step"``, ``"cosine"`` or ``"constant"``), ``lr_milestones``, ``lr_gamma``.

    Example::

        >>> module = RetinaNetModule(num_classes=20, backbone="resnet50", reg_loss="giou")
        >>> trainer = Trainer(max_epochs=12, precision="bf16-mixed", callbacks=[ALWA()])
        >>> trainer.fit(module, datamodule=DetectionDataModule("voc", root="data"))
    """

    def __init__(
        self,
        num_classes: int,
        class_names: Sequence[str] | None = None,
        category_ids: Sequence[int] | None = None,
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
        fg_iou_thresh: float = FG_IOU_THRESH,
        bg_iou_thresh: float = BG_IOU_THRESH,
        score_thresh: float = 0.05,
        nms_thresh: float = 0.5,
        detections_per_img: int = 100,
        topk_candidates: int = 1000,
        metric: Literal["coco", "voc", "voc07"] | None = "coco",
        class_metrics: bool = False,
        channels_last: bool = False,
        skip_nonfinite: bool = False,
        max_consecutive_skips: int = 5,
        **optim_settings: Any,
    ) -> None:
        super().__init__(**optim_settings)  # saves every argument, these and optim_settings, as hyper-parameters
        if metric is not None and metric not in METRICS:
            raise ValueError(f"Unknown metric {metric!r}; expected one of {METRICS} or None")
        if class_names is not None and len(class_names) != num_classes:
            raise ValueError(f"class_names has {len(class_names)} names but num_classes={num_classes}")
        if category_ids is not None and len(category_ids) != num_classes:
            raise ValueError(f"category_ids has {len(category_ids)} ids but num_classes={num_classes}")
        if type(max_consecutive_skips) is not int or max_consecutive_skips < 1:  # noqa: E721 (bool is no count)
            raise ValueError(f"max_consecutive_skips must be an int >= 1, got {max_consecutive_skips!r}")
        self.num_classes = num_classes
        self.class_names = list(class_names) if class_names is not None else [str(i) for i in range(num_classes)]
        self.model = RetinaNetCore.from_config(num_classes, self.hparams)
        self.loss_fn = RetinaNetLoss(
            cls_loss, reg_loss, focal_alpha, focal_gamma, smooth_l1_beta, normalization,
            matcher=self.model.matcher, box_coder=self.model.box_coder,
        )  # fmt: skip
        self.loss_weights: dict[str, float] = {"loss_cls": 1.0, "loss_reg": 1.0, **(loss_weights or {})}
        unknown = set(self.loss_weights) - {"loss_cls", "loss_reg"}
        if unknown:
            raise ValueError(f"Unknown loss_weights keys {sorted(unknown)}; expected 'loss_cls' and 'loss_reg'")
        self.val_metric = build_metric(metric, class_metrics) if metric else None
        self.test_metric = build_metric(metric, class_metrics) if metric else None
        # per-image means of the evaluation losses: (sum, count) states summed over DDP ranks, so uneven shards
        # give the one-process value (a float logged with sync_dist would average the ranks' means)
        self.eval_loss_means = torch.nn.ModuleDict(
            {
                prefix: torch.nn.ModuleDict({key: MeanMetric(nan_strategy="disable") for key in _EVAL_LOSS_KEYS})
                for prefix in ("val", "test")
            }
        )
        self.skipped_steps = 0
        self.consecutive_skips = 0

    # ----------------------------------------------------------------------------------------------- forward
    def forward_heads(
        self, images: Sequence[Tensor], targets: Sequence[dict[str, Tensor]] | None = None
    ) -> HeadOutputs:
        """The core's :meth:`~lightning_retina.model.RetinaNetCore.forward_heads`: head outputs, anchors and resized
        targets for ``B`` float images ``[3, H_i, W_i]`` in 0..1."""
        return self.model.forward_heads(images, targets)

    def forward(self, images: ImageInput | Sequence[ImageInput]) -> list[dict[str, Tensor]]:
        """Detect objects (the module must be in eval mode, as torchvision's detectors require).

        Args:
            images: a batch ``[B, 3, H, W]``, one image ``[3, H, W]``, a list of ``[3, H_i, W_i]``, or image file
                paths (see :func:`as_image_list`); tensors float in 0..1 or uint8 in 0..255.

        Returns:
            one dict per image: ``boxes`` ``[N, 4]`` xyxy in input-image pixels, ``scores`` ``[N]`` (descending),
            ``labels`` ``[N]`` in ``0..num_classes-1``.

        Raises:
            RuntimeError: in train mode (BatchNorm would use and update batch statistics): call ``module.eval()``
                first, or use :meth:`predict_images`, which does.
        """
        if self.training:
            raise RuntimeError(
                "RetinaNetModule(images) detects only in eval mode (in train mode BatchNorm would normalise with the "
                "batch's statistics and change its running ones): call module.eval() first, or use "
                "module.predict_images(images)."
            )
        return self.model(as_image_list(images))

    @torch.inference_mode()
    def predict_images(self, images: ImageInput | Sequence[ImageInput]) -> list[dict[str, Tensor]]:
        """Detect objects in eval mode whatever the module's mode (restored afterwards), without gradients.

        Args:
            images: as :meth:`forward` (a batch, one image or a list; float 0..1 or uint8), on any device: they are
                moved to the module's device.

        Returns:
            as :meth:`forward`.
        """
        was_training = self.training
        self.eval()
        try:
            return self([image.to(self.device) for image in as_image_list(images)])
        finally:
            self.train(was_training)

    def compute_losses(
        self, images: Sequence[Tensor], targets: Sequence[dict[str, Tensor]], heads: HeadOutputs | None = None
    ) -> dict[str, Tensor]:
        """Raw (unweighted) losses of a batch; training, validation and test all call it.

        Args:
            images: ``B`` float tensors ``[3, H_i, W_i]`` in 0..1.
            targets: ``B`` dicts, ``boxes`` ``[N_i, 4]`` xyxy input pixels, ``labels`` ``[N_i]`` in
                ``0..num_classes-1``, optional ``iscrowd`` ``[N_i]``.
            heads: ``self.forward_heads(images, targets)`` when the caller already has it (evaluation reuses it for
                the detections). An override that adds loss terms keeps this argument.

        Returns:
            ``{"loss_cls": Tensor[], "loss_reg": Tensor[]}`` in float32.

        Raises:
            ValueError: naming the image and box of a malformed target.
        """
        check_targets(list(targets), self.num_classes)
        out = heads if heads is not None else self.forward_heads(images, targets)
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
        self._skip_or_stop(message)
        self.log("train/skipped_steps", float(self.skipped_steps), batch_size=1)
        return None

    def _skip_or_stop(self, message: str) -> None:
        """Raise ``FloatingPointError(message)``, or with ``skip_nonfinite`` count and warn, stopping after
        ``max_consecutive_skips`` skipped steps in a row (the count restarts at every optimizer step taken)."""
        if not self.hparams.skip_nonfinite:
            raise FloatingPointError(message + ". Pass skip_nonfinite=True to skip such steps instead.")
        self.skipped_steps += 1
        self.consecutive_skips += 1
        limit = self.hparams.max_consecutive_skips
        if self.consecutive_skips >= limit:
            raise FloatingPointError(
                f"{self.consecutive_skips} training steps in a row had a non-finite loss (max_consecutive_skips="
                f"{limit}), the last one: {message}. The run has diverged; lower the learning rate or check the data."
            )
        rank_zero_warn(f"{message}; skipping the step ({self.skipped_steps} skipped so far).", category=RuntimeWarning)

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        """Stop (or, with ``skip_nonfinite``, skip the step) when a gradient is NaN/Inf, naming the parameters.

        A finite loss can still have a non-finite gradient (a wrong kernel in the backward pass); without this check
        the optimizer would write NaN into the weights and the run would only fail one step later, at the loss.
        """
        named = [(name, p.grad) for name, p in self.named_parameters() if p.grad is not None]
        if not named:  # training_step skipped this batch (non-finite loss): nothing to step
            return
        if bool(torch.stack([torch.isfinite(g).all() for _, g in named]).all()):
            self.consecutive_skips = 0  # this optimizer step is taken
            return
        bad = [name for name, g in named if not bool(torch.isfinite(g).all())]
        message = (
            f"Non-finite gradient at global step {self.global_step} in {len(bad)} parameter(s): "
            f"{', '.join(bad[:5])}{', ...' if len(bad) > 5 else ''}"
        )
        self._skip_or_stop(message)
        for parameter in self.parameters():
            parameter.grad = None  # optimizers leave parameters without a gradient untouched

    # -------------------------------------------------------------------------------------------- evaluation
    def validation_step(self, batch: Batch, batch_idx: int) -> dict[str, Any] | None:
        return self._evaluation_step(batch, "val", self.val_metric)

    def test_step(self, batch: Batch, batch_idx: int) -> dict[str, Any] | None:
        return self._evaluation_step(batch, "test", self.test_metric)

    def _evaluation_step(self, batch: Batch, prefix: str, metric: Any) -> dict[str, Any] | None:
        """Log the losses and update ``metric``; returns ``{"detections", "targets"}`` for callbacks when evaluated."""
        images, targets = batch
        out = self.forward_heads(images, targets)
        losses = self.compute_losses(images, targets, heads=out)
        losses["loss"] = self.weighted_loss(losses)
        means = self.eval_loss_means[prefix]
        for key in losses:  # each batch's mean loss weighted by its images: the epoch value is per image
            if key not in means:  # a term a subclass's compute_losses adds: every rank meets it at the same batch
                means[key] = MeanMetric(nan_strategy="disable").to(self.device)
            mean = means[key]
            mean.update(losses[key].detach(), len(images))
            self.log(f"{prefix}/{key}", mean, metric_attribute=f"eval_loss_means.{prefix}.{key}")
        if metric is not None:
            detections = self.model.detect(out, [tuple(img.shape[-2:]) for img in images])
            metric.update(detections, [metric_target(t) for t in targets])
            return {"detections": detections, "targets": targets}
        return None

    def metric_class_names(self) -> list[str] | None:
        """The class names with ``class_metrics`` (per-class AP is logged under them), else ``None``."""
        return self.class_names if self.hparams.class_metrics else None

    def predict_step(self, batch: Batch | Sequence[Tensor], batch_idx: int) -> list[dict[str, Tensor]]:
        """Detections of a batch of images, or of ``(images, targets)`` (each then carries its target's ``image_id``)."""
        if not (isinstance(batch, tuple) and len(batch) == 2 and not isinstance(batch[0], Tensor)):
            return self(batch)
        images, targets = batch
        detections = self(images)
        for det, target in zip(detections, targets):
            if "image_id" in target:
                det["image_id"] = target["image_id"]
        return detections

    # ---------------------------------------------------------------------------------------- checkpointing
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["loss_weights"] = dict(self.loss_weights)
        checkpoint["skipped_steps"] = self.skipped_steps
        checkpoint["consecutive_skips"] = self.consecutive_skips

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.loss_weights.update(checkpoint.get("loss_weights", {}))
        self.skipped_steps = checkpoint.get("skipped_steps", 0)
        self.consecutive_skips = checkpoint.get("consecutive_skips", 0)



def as_image_list(images: ImageInput | Sequence[ImageInput]) -> list[Tensor]:
    """Images as the list of float ``[3, H, W]`` tensors in 0..1 that the network takes.

    Args:
        images: ``[B, 3, H, W]``, ``[3, H, W]``, an image file path, or a sequence of ``[3, H_i, W_i]`` tensors and
            paths; tensors floating point in 0..1 or uint8; files decoded by
            :func:`~lightning_retina.data.decode_image` (RGB, EXIF upright, pixel limit).

    Raises:
        TypeError: for anything else, or a tensor of another dtype.
        ValueError: naming the image whose shape is not ``[3, H, W]``, or an unreadable file.
    """
    if isinstance(images, Tensor):
        images = list(images) if images.ndim == 4 else [images]
    elif isinstance(images, (str, Path)):
        images = [images]
    elif not isinstance(images, Sequence) or not all(isinstance(image, (Tensor, str, Path)) for image in images):
        raise TypeError(f"images must be tensors or image file paths, got {type(images).__name__}")
    images = [decode_image(image) if isinstance(image, (str, Path)) else image for image in images]
    out = []
    for index, image in enumerate(images):
        if image.ndim != 3 or image.shape[0] != 3:
            raise ValueError(f"image {index} must have shape [3, H, W] (RGB, channels first), got {tuple(image.shape)}")
        if image.dtype == torch.uint8:
            image = image.float().div_(255.0)
        elif not image.is_floating_point():
            raise TypeError(f"image {index} must be float in 0..1 or uint8 in 0..255, got {image.dtype}")
        out.append(image)
    return out
