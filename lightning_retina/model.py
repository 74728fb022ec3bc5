"""The RetinaNet core: everything RetinaNet infers with, in one module that training, ``detect`` and export share.

:class:`RetinaNetCore` owns the input transform (resize, normalise, pad), the ResNet-FPN backbone (P3–P7), the head,
the anchor generator, the box coder, the matcher and the inference settings. It gives :meth:`~RetinaNetCore.forward_heads`
(head outputs and anchors for a batch) and :meth:`~RetinaNetCore.detect` / ``forward`` (detections with our batched
post-processing). The training loss (:class:`~lightning_retina.losses.RetinaNetLoss`) receives the core's box coder
and matcher; the Lightning module (:class:`~lightning_retina.RetinaNetModule`) only trains and evaluates it.

Build it with :meth:`RetinaNetCore.from_config` from the settings a module stores as hyper-parameters, or inject your
own parts (any backbone returning five feature maps, any head with RetinaNet's outputs) through the constructor.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn
from torchvision.models.detection import RetinaNet
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.retinanet import RetinaNetHead
from torchvision.models.detection.transform import GeneralizedRCNNTransform

from lightning_retina.backbone import build_resnet_fpn
from lightning_retina.box_coder import BoxCoder
from lightning_retina.matching import BatchedMatcher
from lightning_retina.postprocess import postprocess_detections

HEAD_NORMS = ("none", "group")
DEFAULT_ANCHOR_SIZES = (32, 64, 128, 256, 512)
# torchvision's ImageNet statistics, what its detection transform normalises with.
IMAGE_MEAN = (0.485, 0.456, 0.406)
IMAGE_STD = (0.229, 0.224, 0.225)


def make_anchor_generator(anchor_sizes: tuple[int, ...] = DEFAULT_ANCHOR_SIZES) -> AnchorGenerator:
    """RetinaNet anchors: per level ``size × {2^0, 2^(1/3), 2^(2/3)}`` and aspect ratios {1:2, 1:1, 2:1} (A = 9).

    Args:
        anchor_sizes: base anchor size of each pyramid level P3…P7 (paper: 32…512 for 800-px images;
            smaller images want smaller anchors, e.g. (16, 32, 64, 128, 256) at 256 px).
    """
    sizes = tuple((s, int(s * 2 ** (1 / 3)), int(s * 2 ** (2 / 3))) for s in anchor_sizes)
    return AnchorGenerator(sizes, ((0.5, 1.0, 2.0),) * len(sizes))


@dataclass(frozen=True)
class InferenceSettings:
    """How dense head outputs become detections (paper: score 0.05, top-1000 per level, NMS 0.5, 100 per image).

    Attributes:
        score_thresh: minimum score (exclusive).
        nms_thresh: IoU threshold of the class-wise NMS.
        detections_per_img: detections kept per image.
        topk_candidates: candidates kept per pyramid level before NMS.
    """

    score_thresh: float
    nms_thresh: float
    detections_per_img: int
    topk_candidates: int

    def __post_init__(self) -> None:
        for name in ("score_thresh", "nms_thresh"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}")
        for name in ("detections_per_img", "topk_candidates"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")


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


class RetinaNetCore(nn.Module):
    """RetinaNet's network and everything it infers with (no loss, no optimiser).

    Args:
        backbone: images ``[B, 3, H, W]`` → five feature maps (P3…P7) with ``out_channels`` channels each.
        head: ``features`` → ``{"cls_logits": [B, A, K], "bbox_regression": [B, A, 4]}`` (torchvision's
            :class:`~torchvision.models.detection.retinanet.RetinaNetHead`).
        anchor_generator: the anchors of every level (``A`` per image, matching the head).
        transform: resize / normalise / pad of the input images and the resizing of boxes back.
        box_coder: turns deltas into boxes (inference and IoU-family losses) and boxes into deltas (L1 losses).
        matcher: anchor labelling for training (the loss uses this one).
        inference: score / NMS / top-k settings of :meth:`detect`.
        channels_last: run backbone and head in ``channels_last`` memory format (faster with bf16 on CPU/GPU).

    Example::

        >>> core = RetinaNetCore.from_config(num_classes=20, config={"backbone": "resnet18", ...})
        >>> core.eval()
        >>> detections = core([image])   # [{"boxes": [N, 4], "scores": [N], "labels": [N]}]
    """

    def __init__(
        self,
        backbone: nn.Module,
        head: nn.Module,
        anchor_generator: AnchorGenerator,
        transform: GeneralizedRCNNTransform,
        box_coder: BoxCoder,
        matcher: BatchedMatcher,
        inference: InferenceSettings,
        channels_last: bool = False,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.anchor_generator = anchor_generator
        self.transform = transform
        self.box_coder = box_coder
        self.matcher = matcher
        self.inference = inference
        self.channels_last = channels_last
        if channels_last:
            self.to(memory_format=torch.channels_last)

    @classmethod
    def from_config(cls, num_classes: int, config: Mapping[str, Any]) -> RetinaNetCore:
        """Build the standard RetinaNet (ResNet-FPN, 9 anchors per location) from named settings.

        Args:
            num_classes: number of foreground classes (no background slot), e.g. 20 for VOC, 80 for COCO.
            config: the settings, as :class:`~lightning_retina.RetinaNetModule` stores them: ``backbone``,
                ``backbone_weights``, ``trainable_backbone_layers``, ``head_norm``, ``fpn_channels``,
                ``anchor_sizes``, ``min_size``, ``max_size``, ``score_thresh``, ``nms_thresh``,
                ``detections_per_img``, ``topk_candidates``, ``fg_iou_thresh``, ``bg_iou_thresh``,
                ``channels_last`` (see that class for their meaning and defaults).

        Raises:
            ValueError: for ``num_classes < 1``, an unknown backbone or head norm, ``fpn_channels`` that GroupNorm
                cannot split into 32 groups, or not five anchor sizes.
            KeyError: naming a setting missing from ``config``.
        """
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1 (foreground classes, no background slot), got {num_classes}")
        head_norm, channels = config["head_norm"], config["fpn_channels"]
        if head_norm not in HEAD_NORMS:
            raise ValueError(f"Unknown head_norm {head_norm!r}; expected one of {HEAD_NORMS}")
        if channels < 1 or (head_norm == "group" and channels % 32):
            raise ValueError(f"fpn_channels must be positive (and a multiple of 32 with head_norm='group'), got {channels}")
        if len(config["anchor_sizes"]) != 5:
            raise ValueError(f"anchor_sizes needs one size per level P3..P7 (5), got {config['anchor_sizes']}")
        backbone = build_resnet_fpn(
            config["backbone"], config["backbone_weights"], config["trainable_backbone_layers"], channels
        )
        anchor_generator = make_anchor_generator(tuple(config["anchor_sizes"]))
        norm_layer = partial(nn.GroupNorm, 32) if head_norm == "group" else None
        anchors_per_location = anchor_generator.num_anchors_per_location()[0]
        return cls(
            backbone=backbone,
            head=RetinaNetHead(backbone.out_channels, anchors_per_location, num_classes, norm_layer),
            anchor_generator=anchor_generator,
            transform=GeneralizedRCNNTransform(config["min_size"], config["max_size"], IMAGE_MEAN, IMAGE_STD),
            box_coder=BoxCoder(),
            matcher=BatchedMatcher(config["fg_iou_thresh"], config["bg_iou_thresh"], allow_low_quality_matches=True),
            inference=InferenceSettings(
                config["score_thresh"], config["nms_thresh"], config["detections_per_img"], config["topk_candidates"]
            ),
            channels_last=config["channels_last"],
        )

    def extra_repr(self) -> str:
        return f"box_coder={self.box_coder}, matcher={self.matcher}, inference={self.inference}"

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
        image_list, resized = self.transform(list(images), [dict(t) for t in targets] if targets else None)
        if self.channels_last:
            image_list.tensors = image_list.tensors.contiguous(memory_format=torch.channels_last)
        features = list(self.backbone(image_list.tensors).values())
        head_outputs = self.head(features)
        # Anchors only need the grid shapes; make them in float32 whatever the autocast dtype of the features.
        shape_only = [f.new_empty((0, 0, *f.shape[-2:]), dtype=torch.float32) for f in features]
        anchors = self.anchor_generator(ImageList(image_list.tensors[:1], image_list.image_sizes[:1]), shape_only)[0]
        per_location = self.anchor_generator.num_anchors_per_location()[0]
        per_level = [f.shape[-2] * f.shape[-1] * per_location for f in features]
        return HeadOutputs(head_outputs, anchors.expand(len(images), -1, -1), per_level, image_list, resized)

    def detect(self, out: HeadOutputs, original_sizes: Sequence[tuple[int, int]]) -> list[dict[str, Tensor]]:
        """Detections from :meth:`forward_heads`' outputs, boxes in the original images' pixels.

        Args:
            out: the head outputs of a batch.
            original_sizes: ``(height, width)`` of each input image before resizing.

        Returns:
            one dict per image: ``boxes`` ``[N, 4]`` xyxy, ``scores`` ``[N]`` (descending), ``labels`` ``[N]`` in
            ``0..num_classes-1``.
        """
        settings = self.inference
        detections = postprocess_detections(
            out.head_outputs["cls_logits"],
            out.head_outputs["bbox_regression"],
            out.anchors,
            out.num_anchors_per_level,
            out.images.image_sizes,
            self.box_coder,
            score_thresh=settings.score_thresh,
            nms_thresh=settings.nms_thresh,
            detections_per_img=settings.detections_per_img,
            topk_candidates=settings.topk_candidates,
        )
        return self.transform.postprocess(detections, out.images.image_sizes, list(original_sizes))

    def forward(self, images: Sequence[Tensor]) -> list[dict[str, Tensor]]:
        """Detect objects in ``B`` float images ``[3, H_i, W_i]`` in 0..1 (see :meth:`detect` for the output)."""
        return self.detect(self.forward_heads(images), [tuple(img.shape[-2:]) for img in images])

    def to_torchvision(self) -> RetinaNet:
        """torchvision's :class:`~torchvision.models.detection.RetinaNet` sharing this core's modules and settings.

        The parameters are shared, not copied: use it as the reference (its per-image loss and post-processing are
        what ours are tested and benchmarked against) or to hand the trained network to torchvision tooling.
        """
        model = RetinaNet(
            self.backbone,
            self.head.classification_head.num_classes,
            min_size=self.transform.min_size,
            max_size=self.transform.max_size,
            anchor_generator=self.anchor_generator,
            head=self.head,
            score_thresh=self.inference.score_thresh,
            nms_thresh=self.inference.nms_thresh,
            detections_per_img=self.inference.detections_per_img,
            fg_iou_thresh=self.matcher.fg_iou_thresh,
            bg_iou_thresh=self.matcher.bg_iou_thresh,
            topk_candidates=self.inference.topk_candidates,
        )
        model.transform = self.transform
        return model.train(self.training)
