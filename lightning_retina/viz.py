"""Drawing detections: boxes with class names and scores on images, saved as PNG grids."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor
from torchvision.io import write_png
from torchvision.utils import draw_bounding_boxes, make_grid

PRED_COLOR = (255, 64, 32)
TRUE_COLOR = (40, 220, 80)


def draw_detections(
    image: Tensor,
    detections: dict[str, Tensor],
    class_names: Sequence[str],
    target: dict[str, Tensor] | None = None,
    score_thresh: float = 0.3,
) -> Tensor:
    """Draw predicted (red, ``name score``) and, optionally, true (green, ``name``) boxes on an image.

    Args:
        image: ``FloatTensor[3, H, W]`` in 0..1 or ``uint8``.
        detections: ``boxes`` ``[N, 4]`` xyxy pixels, ``scores`` ``[N]``, ``labels`` ``[N]``.
        class_names: names indexed by label.
        target: ground truth ``boxes`` / ``labels`` to draw underneath.
        score_thresh: predictions below this score are not drawn.

    Returns:
        ``uint8`` tensor ``[3, H, W]``.
    """
    canvas = image if image.dtype == torch.uint8 else (image.clamp(0, 1) * 255).round().to(torch.uint8)
    canvas = canvas.cpu()
    if target is not None and len(target["boxes"]):
        canvas = draw_bounding_boxes(
            canvas,
            target["boxes"].cpu().float(),
            labels=[class_names[int(i)] for i in target["labels"]],
            colors=TRUE_COLOR,
            width=1,
        )
    keep = detections["scores"] >= score_thresh
    if keep.any():
        canvas = draw_bounding_boxes(
            canvas,
            detections["boxes"][keep].cpu().float(),
            labels=[
                f"{class_names[int(i)]} {float(s):.2f}"
                for i, s in zip(detections["labels"][keep], detections["scores"][keep])
            ],
            colors=PRED_COLOR,
            width=2,
        )
    return canvas


def save_image(image: Tensor, path: str | Path) -> Path:
    """Write a ``uint8`` ``[3, H, W]`` tensor as PNG (parent folders are created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_png(image.cpu(), str(path))
    return path


def save_grid(images: Sequence[Tensor], path: str | Path, nrow: int = 4) -> Path:
    """Tile ``uint8`` images of equal size into one PNG with a 2-px white border."""
    grid = make_grid(torch.stack(list(images)), nrow=nrow, padding=2, pad_value=255)
    return save_image(grid, path)
