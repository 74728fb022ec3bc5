"""``build_retinanet``: torchvision's RetinaNet with a ResNet-FPN backbone (P3–P7) and our norm choices."""

from __future__ import annotations

import os
from functools import partial
from pathlib import Path
from urllib.error import URLError
from urllib.parse import urlparse

import torch
from torch import nn
from torchvision.models import get_model_builder, get_model_weights, resnet
from torchvision.models.detection import RetinaNet
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.models.detection.retinanet import RetinaNetHead
from torchvision.ops import FrozenBatchNorm2d
from torchvision.ops.feature_pyramid_network import LastLevelP6P7

BACKBONES = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")
HEAD_NORMS = ("none", "group")
DEFAULT_ANCHOR_SIZES = (32, 64, 128, 256, 512)


def make_anchor_generator(anchor_sizes: tuple[int, ...] = DEFAULT_ANCHOR_SIZES) -> AnchorGenerator:
    """RetinaNet anchors: per level ``size × {2^0, 2^(1/3), 2^(2/3)}`` and aspect ratios {1:2, 1:1, 2:1} (A = 9).

    Args:
        anchor_sizes: base anchor size of each pyramid level P3…P7 (paper: 32…512 for 800-px images;
            smaller images want smaller anchors, e.g. (16, 32, 64, 128, 256) at 256 px).
    """
    sizes = tuple((s, int(s * 2 ** (1 / 3)), int(s * 2 ** (2 / 3))) for s in anchor_sizes)
    return AnchorGenerator(sizes, ((0.5, 1.0, 2.0),) * len(sizes))


def build_retinanet(
    num_classes: int,
    backbone: str = "resnet50",
    backbone_weights: str | None = None,
    trainable_backbone_layers: int | None = None,
    head_norm: str = "none",
    fpn_channels: int = 256,
    anchor_sizes: tuple[int, ...] = DEFAULT_ANCHOR_SIZES,
    min_size: int = 800,
    max_size: int = 1333,
    score_thresh: float = 0.05,
    nms_thresh: float = 0.5,
    detections_per_img: int = 100,
    topk_candidates: int = 1000,
    fg_iou_thresh: float = 0.5,
    bg_iou_thresh: float = 0.4,
) -> RetinaNet:
    """Build a torchvision :class:`~torchvision.models.detection.RetinaNet`.

    Without ``backbone_weights`` the whole backbone trains with ordinary BatchNorm (frozen BN would silently
    disable normalisation when training from scratch); with weights, BN is frozen and ``trainable_backbone_layers``
    (default 3) stages train, as in the paper. P6 is computed from C5 as in the paper and Detectron2.

    Args:
        num_classes: number of foreground classes (no background slot), e.g. 20 for VOC, 80 for COCO.
        backbone: a torchvision ResNet name, one of ``BACKBONES``.
        backbone_weights: ``None`` (random init), a torchvision weights name such as ``"DEFAULT"`` or
            ``"IMAGENET1K_V2"`` (downloaded by torchvision), or the path of a local ResNet ``state_dict`` file.
        trainable_backbone_layers: ResNet stages to train (0–5); default 5 without weights, 3 with weights.
        head_norm: ``"none"`` (paper) or ``"group"`` (GroupNorm(32) in the head convs, torchvision v2 style, converges
            much faster from scratch).
        fpn_channels: channels of the FPN outputs and of every head conv (paper: 256). The head's four convs
            per branch cost ``fpn_channels²``: 128 makes a small model about twice as fast on a CPU.
        anchor_sizes: base anchor size of P3…P7.
        min_size: shorter image side after resizing.
        max_size: longest image side after resizing.
        score_thresh: inference score threshold.
        nms_thresh: inference NMS IoU threshold.
        detections_per_img: detections kept per image.
        topk_candidates: candidates kept per pyramid level before NMS.
        fg_iou_thresh: IoU for a foreground anchor.
        bg_iou_thresh: IoU below which an anchor is background.

    Returns:
        RetinaNet: with ``.transform``, ``.backbone``, ``.head``, ``.anchor_generator``, ``.proposal_matcher``.

    Raises:
        ValueError: for ``num_classes < 1``, an unknown backbone or head norm, or ``fpn_channels`` that GroupNorm
            cannot split into 32 groups.
    """
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1 (foreground classes, no background slot), got {num_classes}")
    if backbone not in BACKBONES:
        raise ValueError(f"Unknown backbone {backbone!r}; expected one of {BACKBONES}")
    if head_norm not in HEAD_NORMS:
        raise ValueError(f"Unknown head_norm {head_norm!r}; expected one of {HEAD_NORMS}")
    if fpn_channels < 1 or (head_norm == "group" and fpn_channels % 32):
        raise ValueError(
            f"fpn_channels must be positive (and a multiple of 32 with head_norm='group'), got {fpn_channels}"
        )
    if len(anchor_sizes) != 5:
        raise ValueError(f"anchor_sizes needs one size per level P3..P7 (5), got {anchor_sizes}")
    pretrained = backbone_weights is not None
    if trainable_backbone_layers is None:
        trainable_backbone_layers = 3 if pretrained else 5
    body = _make_resnet(backbone, backbone_weights)
    _freeze_stages(body, trainable_backbone_layers)
    c5_channels = body.fc.in_features
    fpn = BackboneWithFPN(  # C3-C5 → P3-P5, P6 from C5, P7 from P6 (as torchvision's resnet_fpn_backbone builds it)
        body,
        return_layers={"layer2": "0", "layer3": "1", "layer4": "2"},
        in_channels_list=[c5_channels // 4, c5_channels // 2, c5_channels],
        out_channels=fpn_channels,
        extra_blocks=LastLevelP6P7(c5_channels, fpn_channels),
    )
    anchor_generator = make_anchor_generator(tuple(anchor_sizes))
    norm_layer = partial(nn.GroupNorm, 32) if head_norm == "group" else None
    head = RetinaNetHead(fpn.out_channels, anchor_generator.num_anchors_per_location()[0], num_classes, norm_layer)
    return RetinaNet(
        fpn,
        num_classes,
        min_size=min_size,
        max_size=max_size,
        anchor_generator=anchor_generator,
        head=head,
        score_thresh=score_thresh,
        nms_thresh=nms_thresh,
        detections_per_img=detections_per_img,
        fg_iou_thresh=fg_iou_thresh,
        bg_iou_thresh=bg_iou_thresh,
        topk_candidates=topk_candidates,
    )


def _freeze_stages(body: resnet.ResNet, trainable_layers: int) -> None:
    """Freeze all but the last ``trainable_layers`` ResNet stages (0–5), as torchvision's FPN extractor does."""
    if not 0 <= trainable_layers <= 5:
        raise ValueError(f"trainable_backbone_layers must be in 0..5, got {trainable_layers}")
    trained = ["layer4", "layer3", "layer2", "layer1", "conv1"][:trainable_layers]
    if trainable_layers == 5:
        trained.append("bn1")
    for name, parameter in body.named_parameters():
        if not name.startswith(tuple(trained)):
            parameter.requires_grad_(False)


def _make_resnet(name: str, weights: str | None) -> resnet.ResNet:
    """A ResNet with trainable BN (no weights) or frozen BN (torchvision weights or a local file).

    Raises:
        FileNotFoundError: when torchvision weights are neither in the torch hub cache nor downloadable, naming the
            file to put in the cache.
    """
    builder = get_model_builder(name)
    if weights is None:
        return builder(weights=None, norm_layer=nn.BatchNorm2d)
    if os.path.isfile(weights):
        model = builder(weights=None, norm_layer=FrozenBatchNorm2d)
        state = torch.load(weights, map_location="cpu", weights_only=True)
        model.load_state_dict(state.get("state_dict", state) if isinstance(state, dict) else state)
        return model
    enum = get_model_weights(name)
    try:
        resolved = enum.DEFAULT if weights == "DEFAULT" else enum[weights]
    except KeyError:
        raise ValueError(
            f"backbone_weights {weights!r} is neither a file nor one of {[w.name for w in enum]} / 'DEFAULT'"
        ) from None
    try:
        return builder(weights=resolved, norm_layer=FrozenBatchNorm2d)
    except URLError as error:  # no network: say where the file goes instead of a urllib traceback
        cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(resolved.url).path).name
        raise FileNotFoundError(
            f"backbone_weights={weights!r}: cannot download {resolved.url} ({error.reason}); put that file at "
            f"{cached}, or pass the path of a local ResNet state_dict file as backbone_weights"
        ) from None
