"""RetinaNet's box coder: anchors + deltas ``(dx, dy, dw, dh)`` ↔ boxes, the arithmetic of torchvision's ``BoxCoder``.

torchvision keeps its coder in a private module (``torchvision.models.detection._utils``); the few lines are ours so
that nothing here imports a private API, and they are tested against torchvision's coder.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

# dw/dh are clamped before exp so that no box grows more than 1000/16 times its anchor (torchvision, Detectron).
DEFAULT_XFORM_CLIP = math.log(1000.0 / 16)


class BoxCoder:
    """Encode boxes as deltas from anchors and decode deltas back, with weights ``(1, 1, 1, 1)`` by default.

    Args:
        weights: ``(wx, wy, ww, wh)`` the deltas are multiplied by when encoding (divided by when decoding).
        bbox_xform_clip: upper bound of ``dw``/``dh`` before ``exp`` when decoding.

    Example::

        >>> coder = BoxCoder()
        >>> deltas = coder.encode_single(gt_boxes, anchors)        # [N, 4]
        >>> torch.allclose(coder.decode_single(deltas, anchors), gt_boxes, atol=1e-4)
        True
    """

    def __init__(
        self, weights: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0), bbox_xform_clip: float = DEFAULT_XFORM_CLIP
    ) -> None:
        self.weights = tuple(float(w) for w in weights)
        self.bbox_xform_clip = float(bbox_xform_clip)

    def __repr__(self) -> str:
        return f"BoxCoder(weights={self.weights}, bbox_xform_clip={self.bbox_xform_clip:.6g})"

    def encode_single(self, boxes: Tensor, anchors: Tensor) -> Tensor:
        """Deltas of ``boxes`` relative to ``anchors``.

        Args:
            boxes: ``Tensor[N, 4]`` xyxy, the boxes to encode (e.g. matched ground truth).
            anchors: ``Tensor[N, 4]`` xyxy with positive width and height.

        Returns:
            ``Tensor[N, 4]``: ``(dx, dy, dw, dh)`` times the weights, in ``boxes``' dtype.
        """
        wx, wy, ww, wh = self.weights
        anchor_w, anchor_h, anchor_x, anchor_y = _size_and_centre(anchors.to(boxes.dtype))
        box_w, box_h, box_x, box_y = _size_and_centre(boxes)
        return torch.stack(
            (
                wx * (box_x - anchor_x) / anchor_w,
                wy * (box_y - anchor_y) / anchor_h,
                ww * torch.log(box_w / anchor_w),
                wh * torch.log(box_h / anchor_h),
            ),
            dim=1,
        )

    def decode_single(self, deltas: Tensor, anchors: Tensor) -> Tensor:
        """Boxes from ``deltas`` applied to ``anchors``.

        Args:
            deltas: ``Tensor[N, 4]`` ``(dx, dy, dw, dh)``.
            anchors: ``Tensor[N, 4]`` xyxy.

        Returns:
            ``Tensor[N, 4]`` xyxy in ``deltas``' dtype.
        """
        wx, wy, ww, wh = self.weights
        anchor_w, anchor_h, anchor_x, anchor_y = _size_and_centre(anchors.to(deltas.dtype))
        centre_x = deltas[:, 0] / wx * anchor_w + anchor_x
        centre_y = deltas[:, 1] / wy * anchor_h + anchor_y
        half_w = 0.5 * torch.exp(torch.clamp(deltas[:, 2] / ww, max=self.bbox_xform_clip)) * anchor_w
        half_h = 0.5 * torch.exp(torch.clamp(deltas[:, 3] / wh, max=self.bbox_xform_clip)) * anchor_h
        return torch.stack((centre_x - half_w, centre_y - half_h, centre_x + half_w, centre_y + half_h), dim=1)


def _size_and_centre(boxes: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``(width, height, centre x, centre y)`` of xyxy ``boxes``, each ``[N]``."""
    width = boxes[:, 2] - boxes[:, 0]
    height = boxes[:, 3] - boxes[:, 1]
    return width, height, boxes[:, 0] + 0.5 * width, boxes[:, 1] + 0.5 * height
