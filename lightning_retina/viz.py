"""Drawing detections readably: class-coloured boxes with filled ``name score`` tags, saved as PNGs and grids."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont
from torch import Tensor
from torchvision.io import write_png
from torchvision.utils import make_grid

#: A fixed palette of 20 distinct, saturated colours (Kelly's / Glasbey-like), indexed by ``label % 20``.
PALETTE: tuple[tuple[int, int, int], ...] = (
    (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180), (70, 240, 240),
    (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128), (220, 190, 255), (170, 110, 40),
    (255, 250, 200), (128, 0, 0), (170, 255, 195), (128, 128, 0), (255, 215, 180), (0, 0, 128), (128, 128, 128),
)  # fmt: skip
_WHITE, _BLACK = (255, 255, 255), (0, 0, 0)
TRUE_COLOR = _WHITE  # ground-truth boxes


def class_color(label: int) -> tuple[int, int, int]:
    """The palette colour of class ``label`` (the same class always gets the same colour)."""
    return PALETTE[int(label) % len(PALETTE)]


def _text_color(background: tuple[int, int, int]) -> tuple[int, int, int]:
    """Black on light, white on dark backgrounds (ITU-R BT.601 luma)."""
    r, g, b = background
    return _BLACK if 0.299 * r + 0.587 * g + 0.114 * b > 140 else _WHITE


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)  # a scalable font on Pillow >= 10.1
    except TypeError:  # older Pillow: its fixed-size bitmap font
        return ImageFont.load_default()


def draw_detections(
    image: Tensor,
    detections: dict[str, Tensor],
    class_names: Sequence[str],
    target: dict[str, Tensor] | None = None,
    score_thresh: float = 0.3,
) -> Tensor:
    """Draw predicted boxes with ``name score`` tags and, optionally, the true boxes, readable on any background.

    Predictions: a box in the class's :func:`class_color` with a thin black outline, and a tag of the same colour
    (text black or white, whichever reads better) above the box, or inside it at the top edge of the image. Line
    width and text size scale with the image (about 1/200 and 1/40 of its longer side, at least 2 and 10 px). Tags go
    over all boxes, higher scores last (on top). Ground truth: thin white boxes with a black outline, without tags.

    Args:
        image: ``FloatTensor[3, H, W]`` in 0..1 or ``uint8``.
        detections: ``boxes`` ``[N, 4]`` xyxy pixels, ``scores`` ``[N]``, ``labels`` ``[N]``.
        class_names: names indexed by label.
        target: ground truth ``boxes`` to draw underneath.
        score_thresh: predictions below this score are not drawn.

    Returns:
        ``uint8`` tensor ``[3, H, W]``.
    """
    canvas = image if image.dtype == torch.uint8 else (image.clamp(0, 1) * 255).round().to(torch.uint8)
    picture = Image.fromarray(canvas.cpu().permute(1, 2, 0).numpy())
    draw = ImageDraw.Draw(picture)
    longer = max(picture.size)
    width = max(2, round(longer / 200))
    font = _font(max(10, round(longer / 40)))
    if target is not None:
        for box in target["boxes"].cpu().tolist():
            draw.rectangle(box, outline=_BLACK, width=2)
            draw.rectangle(box, outline=TRUE_COLOR, width=1)
    keep = detections["scores"] >= score_thresh
    scores, order = detections["scores"][keep].cpu().sort()
    boxes, labels = detections["boxes"][keep].cpu()[order], detections["labels"][keep].cpu()[order]
    for (x1, y1, x2, y2), label in zip(boxes.tolist(), labels.tolist()):
        draw.rectangle((x1 - 1, y1 - 1, x2 + 1, y2 + 1), outline=_BLACK, width=width + 2)
        draw.rectangle((x1, y1, x2, y2), outline=class_color(label), width=width)
    for (x1, y1, _, _), score, label in zip(boxes.tolist(), scores.tolist(), labels.tolist()):  # tags over all boxes
        color = class_color(label)
        text = f"{class_names[int(label)]} {score:.2f}"
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        pad = max(1, width // 2)
        tag_w, tag_h = right - left + 2 * pad, bottom - top + 2 * pad
        tag_x = min(max(0.0, x1 - width / 2), max(0.0, picture.width - tag_w))
        tag_y = y1 - width / 2 - tag_h if y1 - width / 2 - tag_h >= 0 else max(0.0, y1 - width / 2)
        draw.rectangle((tag_x, tag_y, tag_x + tag_w, tag_y + tag_h), fill=color, outline=_BLACK)
        draw.text((tag_x + pad - left, tag_y + pad - top), text, fill=_text_color(color), font=font)
    return torch.from_numpy(np.asarray(picture).copy()).permute(2, 0, 1)


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
