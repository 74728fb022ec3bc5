"""ResNet-FPN backbones (P3–P7) for RetinaNet, with BatchNorm that trains from scratch and freezes with weights."""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable
from pathlib import Path
from urllib.error import URLError
from urllib.parse import urlparse

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models import get_model_builder, get_model_weights, resnet
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.ops import FrozenBatchNorm2d
from torchvision.ops.feature_pyramid_network import LastLevelP6P7

BACKBONES = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")


class Float32P6P7(LastLevelP6P7):
    """RetinaNet's P6 (stride-2 conv on C5) and P7 (stride-2 conv on ReLU(P6)), always computed in float32.

    Under bf16 autocast, oneDNN's CPU backward of a 3x3 stride-2 convolution whose input map is one pixel wide reads
    memory it never wrote into the weight gradient: NaN when that memory held NaN, garbage otherwise (found on an
    AMD EPYC with AVX512-BF16 and behind the step-1 NaN of small bf16 runs on a Sapphire Rapids Xeon). P6 and P7
    are exactly the convolutions that see such maps (P7's input is 1x1 at 64-px images), and they cost little, so
    they run in float32 whatever the autocast state. Same parameters and state-dict keys as torchvision's block.
    ``tests/test_precision_probe.py`` reproduces the kernel's fault in a few lines.
    """

    def forward(self, p: list[Tensor], c: list[Tensor], names: list[str]) -> tuple[list[Tensor], list[str]]:
        source = (p[-1] if self.use_P5 else c[-1]).float()
        with torch.autocast(device_type=source.device.type, enabled=False):
            p6 = self.p6(source)
            p7 = self.p7(F.relu(p6))
        return [*p, p6, p7], [*names, "p6", "p7"]


def build_resnet_fpn(
    backbone: str, weights: str | None, trainable_layers: int | None, fpn_channels: int
) -> BackboneWithFPN:
    """A ResNet with an FPN on C3–C5, P6 from C5 and P7 from P6 (as in the paper and Detectron2).

    Without ``weights`` the whole backbone trains with ordinary BatchNorm (frozen BN would silently disable
    normalisation when training from scratch); with weights, BN is frozen and ``trainable_layers`` (default 3)
    stages train, as in the paper.

    Args:
        backbone: a torchvision ResNet name, one of ``BACKBONES``.
        weights: ``None`` (random init), a torchvision weights name such as ``"DEFAULT"`` or ``"IMAGENET1K_V2"``
            (downloaded by torchvision), or the path of a local ResNet ``state_dict`` file.
        trainable_layers: ResNet stages to train (0–5); default 5 without weights, 3 with weights.
        fpn_channels: channels of the FPN outputs.

    Returns:
        BackboneWithFPN: ``images [B, 3, H, W]`` → ``OrderedDict`` of five maps ``[B, fpn_channels, H/s, W/s]``,
        ``s`` = 8, 16, 32, 64, 128.

    Raises:
        ValueError: for an unknown backbone or weights name, or ``trainable_layers`` outside 0..5.
    """
    if backbone not in BACKBONES:
        raise ValueError(f"Unknown backbone {backbone!r}; expected one of {BACKBONES}")
    if trainable_layers is None:
        trainable_layers = 3 if weights is not None else 5
    body = _make_resnet(backbone, weights)
    _freeze_stages(body, trainable_layers)
    c5_channels = body.fc.in_features
    return BackboneWithFPN(  # C3-C5 → P3-P5, P6 from C5, P7 from P6 (as torchvision's resnet_fpn_backbone builds it)
        body,
        return_layers={"layer2": "0", "layer3": "1", "layer4": "2"},
        in_channels_list=[c5_channels // 4, c5_channels // 2, c5_channels],
        out_channels=fpn_channels,
        extra_blocks=Float32P6P7(c5_channels, fpn_channels),
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


def _resnet_from_file(builder: Callable[..., resnet.ResNet], path: str) -> resnet.ResNet:
    """A ResNet (frozen BN) with the weights of a local ``state_dict`` file (or a dict holding one under
    ``"state_dict"``). The classifier ``fc.*`` is not part of the detector: it may be absent or of any size.

    Raises:
        ValueError: naming the file and the keys, when a backbone weight is missing or a key is not the ResNet's.
    """
    model = builder(weights=None, norm_layer=FrozenBatchNorm2d)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, pickle.UnpicklingError) as error:  # not a torch.save file, or one holding other objects
        raise ValueError(f"backbone_weights file {path} is not a readable state_dict file: {error}") from None
    state = state.get("state_dict", state) if isinstance(state, dict) else state
    if not isinstance(state, dict):
        raise ValueError(f"backbone_weights file {path} holds a {type(state).__name__}, not a state_dict")
    backbone_state = {key: value for key, value in state.items() if not str(key).startswith("fc.")}
    try:
        missing, unexpected = model.load_state_dict(backbone_state, strict=False)
    except RuntimeError as error:  # a weight of another shape (another ResNet depth)
        raise ValueError(f"backbone_weights file {path} does not fit the ResNet: {error}") from None
    missing = [key for key in missing if not key.startswith("fc.")]
    if missing or unexpected:
        raise ValueError(
            f"backbone_weights file {path} does not fit the ResNet: missing {missing[:5]}, unexpected {unexpected[:5]}"
        )
    return model


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
        return _resnet_from_file(builder, weights)
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
