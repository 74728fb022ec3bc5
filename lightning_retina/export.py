"""Export a trained RetinaNet with our post-processing: TorchScript, ONNX or a ``torch.export`` ExportedProgram.

The exported model's contract (also in the README):

- input ``images``: ``float32[B, 3, H, W]``, RGB in 0..1, with ``B``, ``H`` and ``W`` fixed when exporting
  (``--batch-size``, ``--image-size``); normalisation (ImageNet mean/std), resizing to the model's ``min_size`` /
  ``max_size`` and padding happen inside;
- outputs ``boxes float32[B, D, 4]`` (xyxy, input-image pixels), ``scores float32[B, D]`` (descending),
  ``labels int64[B, D]`` (``0..K-1``, ``-1`` for padding) and ``counts int64[B]``: the first ``counts[b]`` rows of
  image ``b`` are its detections; ``D`` is the model's ``detections_per_img``.

The network, anchors, score threshold, top-k, class-wise NMS and ranking are those the module validates with
(:func:`~lightning_retina.postprocess.postprocess_detections_padded` is the fixed-shape form of its post-processing).
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models.detection.image_list import ImageList

from lightning_retina.model import RetinaNetCore
from lightning_retina.postprocess import postprocess_detections_padded

FORMATS = ("onnx", "torchscript", "exported_program")
OUTPUT_NAMES = ("boxes", "scores", "labels", "counts")


class ExportableRetinaNet(nn.Module):
    """A :class:`RetinaNetCore` for a fixed input size, as one traceable function images → padded detections.

    Args:
        core: the trained network (shared, not copied).
        image_size: ``(H, W)`` of the images the exported model takes.

    Example::

        >>> wrapper = ExportableRetinaNet(module.model.eval(), (480, 640))
        >>> boxes, scores, labels, counts = wrapper(torch.rand(2, 3, 480, 640))
    """

    def __init__(self, core: RetinaNetCore, image_size: tuple[int, int]) -> None:
        super().__init__()
        self.core = core
        height, width = (int(s) for s in image_size)
        transform = core.transform
        min_size, max_size = float(transform.min_size[-1]), float(transform.max_size)
        self.scale = min(min_size / min(height, width), max_size / max(height, width))  # torchvision's resize rule
        self.resized = (math.floor(height * self.scale), math.floor(width * self.scale))
        stride = transform.size_divisible
        self.padded = tuple(int(math.ceil(s / stride) * stride) for s in self.resized)
        # Boxes go back to the input frame with torchvision's float32 ratios original / resized.
        ratio = torch.tensor((width, height, width, height), dtype=torch.float32) / torch.tensor(
            (self.resized[1], self.resized[0], self.resized[1], self.resized[0]), dtype=torch.float32
        )
        self.register_buffer("box_scale", ratio, persistent=False)
        self.register_buffer("mean", torch.tensor(transform.image_mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(transform.image_std).view(1, 3, 1, 1), persistent=False)
        anchors, per_level = self._anchors()
        self.register_buffer("anchors", anchors, persistent=False)
        self.num_anchors_per_level = per_level

    @torch.no_grad()
    def _anchors(self) -> tuple[Tensor, list[int]]:
        """The anchors of the padded input size, computed once (the grid shapes come from one dry run)."""
        device = next(self.core.parameters()).device
        dummy = torch.zeros(1, 3, *self.padded, device=device)
        features = list(self.core.backbone(dummy).values())
        shapes = [f.new_empty((0, 0, *f.shape[-2:]), dtype=torch.float32) for f in features]
        anchors = self.core.anchor_generator(ImageList(dummy, [self.resized]), shapes)[0]
        per_location = self.core.anchor_generator.num_anchors_per_location()[0]
        return anchors, [f.shape[-2] * f.shape[-1] * per_location for f in features]

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Detect objects in ``images`` ``float32[B, 3, H, W]`` in 0..1 (see the module docstring for the outputs)."""
        x = (images - self.mean) / self.std
        x = F.interpolate(x, scale_factor=self.scale, mode="bilinear", recompute_scale_factor=True, align_corners=False)
        x = F.pad(x, (0, self.padded[1] - self.resized[1], 0, self.padded[0] - self.resized[0]))
        if self.core.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        heads = self.core.head(list(self.core.backbone(x).values()))
        settings = self.core.inference
        boxes, scores, labels, counts = postprocess_detections_padded(
            heads["cls_logits"],
            heads["bbox_regression"],
            self.anchors,
            self.num_anchors_per_level,
            self.resized,
            self.core.box_coder,
            score_thresh=settings.score_thresh,
            nms_thresh=settings.nms_thresh,
            detections_per_img=settings.detections_per_img,
            topk_candidates=settings.topk_candidates,
        )
        return boxes * self.box_scale, scores, labels, counts


def export_model(
    core: RetinaNetCore, fmt: str, out: str | Path, image_size: tuple[int, int], batch_size: int = 1
) -> Path:
    """Write ``core`` with our post-processing as ``fmt`` to ``out`` (an existing file is the caller's to refuse).

    Args:
        core: the network, in eval mode (BatchNorm with its running statistics).
        fmt: ``"onnx"`` (opset 17), ``"torchscript"`` (traced) or ``"exported_program"`` (``torch.export``).
        out: the file to write.
        image_size: ``(H, W)`` of the input images.
        batch_size: ``B`` of the input batch.

    Returns:
        ``out`` as a path.

    Raises:
        ValueError: for an unknown format or a core in train mode.
    """
    if fmt not in FORMATS:
        raise ValueError(f"Unknown export format {fmt!r}; expected one of {FORMATS}")
    if core.training:
        raise ValueError("export the model in eval mode (core.eval()): train-mode BatchNorm uses batch statistics")
    out = Path(out)
    wrapper = ExportableRetinaNet(core, image_size).eval()
    example = torch.rand(batch_size, 3, *image_size, device=wrapper.anchors.device)
    with torch.no_grad():
        if fmt == "torchscript":
            torch.jit.trace(wrapper, example, check_trace=False).save(str(out))
        elif fmt == "exported_program":
            torch.export.save(torch.export.export(wrapper, (example,)), str(out))
        else:
            torch.onnx.export(
                wrapper, (example,), str(out), input_names=["images"], output_names=list(OUTPUT_NAMES),
                opset_version=17, dynamo=False,
            )  # fmt: skip
    return out
