"""The batched RetinaNet loss: anchor matching + classification loss + box loss for a whole batch at once."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from lightning_retina.box_coder import BoxCoder
from lightning_retina.losses.box import ciou_loss, diou_loss, giou_loss, iou_loss, l1_loss, smooth_l1_loss
from lightning_retina.losses._focal_dense import dense_focal_loss
from lightning_retina.losses.focal import check_focal_parameters
from lightning_retina.matching import IGNORE, BatchedMatcher
from lightning_retina.targets import pad_targets

CLS_LOSSES = ("focal", "bce", "balanced_bce")
REG_LOSSES = ("smooth_l1", "l1", "iou", "giou", "diou", "ciou")
NORMALIZATIONS = ("batch", "per_image")
_DECODED_BOX_LOSSES = {"iou": iou_loss, "giou": giou_loss, "diou": diou_loss, "ciou": ciou_loss}


class RetinaNetLoss(nn.Module):
    """RetinaNet's training loss, computed for the whole padded batch without per-image or per-level loops.

    Anchors are labelled by ``matcher`` (a :class:`~lightning_retina.matching.BatchedMatcher`: IoU ≥ its
    ``fg_iou_thresh`` foreground, < ``bg_iou_thresh`` background, ignored in between, low-quality matches kept). The
    classification loss is summed over all non-ignored anchors and classes; the box loss over the foreground
    anchors. The focal loss is evaluated as the "all-negative" term over every logit plus a correction at each
    foreground anchor's true class, by one autograd function that walks the logits in cache-sized blocks, keeps
    nothing but the logits for the backward pass and never builds a one-hot ``[B, A, K]`` target.

    Losses are computed in float32 whatever the dtype of the head outputs (bf16/fp16 autocast safe).

    Args:
        cls_loss: ``"focal"`` (α=``focal_alpha``, γ=``focal_gamma``), ``"bce"`` (plain binary cross-entropy) or
            ``"balanced_bce"`` (α-balanced BCE, γ=0).
        reg_loss: ``"smooth_l1"`` / ``"l1"`` on encoded deltas, or ``"iou"``, ``"giou"``, ``"diou"``, ``"ciou"`` on
            boxes decoded from the predicted deltas and their anchors.
        focal_alpha: α of the focal / balanced BCE loss (paper: 0.25), in ``[0, 1]`` or ``-1`` (no α).
        focal_gamma: γ of the focal loss (paper: 2.0), ``>= 0``.
        smooth_l1_beta: β of the smooth-L1 loss (Detectron: 1/9; 0 is L1).
        normalization: ``"batch"`` divides each summed loss by the number of foreground anchors in the batch;
            ``"per_image"`` divides per image and averages over images (what torchvision does).
        matcher: the anchor labelling; pass the detector's own (``RetinaNetCore.matcher``) so that training matches
            with the thresholds the model was built with. Default: ``BatchedMatcher()`` (IoU 0.5 / 0.4).
        box_coder: encodes targets (L1 losses) and decodes predictions (IoU-family losses); pass the detector's own
            (``RetinaNetCore.box_coder``). Default: ``BoxCoder()`` (weights 1, 1, 1, 1).

    Shapes:
        - ``head_outputs["cls_logits"]``: ``[B, A, K]`` with ``K`` foreground classes.
        - ``head_outputs["bbox_regression"]``: ``[B, A, 4]`` encoded deltas.
        - ``anchors``: list of ``B`` tensors ``[A, 4]`` (xyxy, the resized-image frame) or one ``[B, A, 4]`` tensor.
        - ``targets``: list of ``B`` dicts with ``boxes`` ``[N_i, 4]`` (same frame), ``labels`` ``[N_i]`` in
          ``0..K-1`` and optionally ``iscrowd`` ``[N_i]``.

    Example::

        >>> loss_fn = RetinaNetLoss(cls_loss="focal", reg_loss="giou")
        >>> losses = loss_fn(head_outputs, anchors, targets)   # {"loss_cls": Tensor[], "loss_reg": Tensor[]}
    """

    def __init__(
        self,
        cls_loss: str = "focal",
        reg_loss: str = "smooth_l1",
        focal_alpha: float = 0.25,
        focal_gamma: float = 2.0,
        smooth_l1_beta: float = 1.0 / 9.0,
        normalization: str = "batch",
        matcher: BatchedMatcher | None = None,
        box_coder: BoxCoder | None = None,
    ) -> None:
        super().__init__()
        _check_choice("cls_loss", cls_loss, CLS_LOSSES)
        _check_choice("reg_loss", reg_loss, REG_LOSSES)
        _check_choice("normalization", normalization, NORMALIZATIONS)
        check_focal_parameters(focal_alpha, focal_gamma, "focal_alpha", "focal_gamma")
        if smooth_l1_beta < 0:
            raise ValueError(f"smooth_l1_beta must be >= 0, got {smooth_l1_beta}")
        self.cls_loss = cls_loss
        self.reg_loss = reg_loss
        self.alpha, self.gamma = {"focal": (focal_alpha, focal_gamma), "bce": (-1.0, 0.0)}.get(
            cls_loss, (focal_alpha, 0.0)
        )
        self.smooth_l1_beta = smooth_l1_beta
        self.normalization = normalization
        self.matcher = matcher if matcher is not None else BatchedMatcher()
        self.box_coder = box_coder if box_coder is not None else BoxCoder()

    def extra_repr(self) -> str:
        return (
            f"cls_loss={self.cls_loss!r}, alpha={self.alpha}, gamma={self.gamma}, reg_loss={self.reg_loss!r}, "
            f"normalization={self.normalization!r}"
        )

    def forward(
        self, head_outputs: dict[str, Tensor], anchors: list[Tensor] | Tensor, targets: list[dict[str, Tensor]]
    ) -> dict[str, Tensor]:
        """Compute ``{"loss_cls": Tensor[], "loss_reg": Tensor[]}`` (unweighted, float32)."""
        with torch.autocast(device_type=head_outputs["cls_logits"].device.type, enabled=False):
            logits = head_outputs["cls_logits"]  # any float dtype: the focal kernel computes in float32 blocks
            deltas = head_outputs["bbox_regression"].float()
            anchors = (torch.stack(list(anchors)) if not isinstance(anchors, Tensor) else anchors).float()
            padded = pad_targets(targets, device=logits.device)
            matched = self.matcher(padded, anchors)  # [B, A]
            foreground = matched >= 0
            num_fg = foreground.sum(dim=1)  # [B]
            fg_image, fg_anchor = torch.nonzero(foreground, as_tuple=True)  # [P] each
            fg_gt = matched[fg_image, fg_anchor]  # [P], index into the image's boxes
            cls_per_image = self._classification(logits, matched, fg_image, fg_anchor, padded.labels[fg_image, fg_gt])
            reg_per_image = self._regression(deltas, anchors, fg_image, fg_anchor, padded.boxes[fg_image, fg_gt])
            return {
                "loss_cls": self._normalize(cls_per_image, num_fg),
                "loss_reg": self._normalize(reg_per_image, num_fg),
            }

    def _classification(
        self, logits: Tensor, matched: Tensor, fg_image: Tensor, fg_anchor: Tensor, fg_labels: Tensor
    ) -> Tensor:
        """Summed classification loss per image, ``[B]``; ignored anchors count for nothing."""
        _, num_anchors, num_classes = logits.shape
        positive_index = (fg_image * num_anchors + fg_anchor) * num_classes + fg_labels  # flat [B, A, K] index
        per_anchor = dense_focal_loss(logits, matched != IGNORE, positive_index, self.alpha, self.gamma)
        return per_anchor.sum(dim=1)

    def _regression(
        self, deltas: Tensor, anchors: Tensor, fg_image: Tensor, fg_anchor: Tensor, fg_gt: Tensor
    ) -> Tensor:
        """Summed box loss per image, ``[B]``, over the foreground anchors ``(fg_image, fg_anchor)``.

        ``fg_gt`` holds their matched ground-truth boxes, ``[P, 4]``.
        """
        pred = deltas[fg_image, fg_anchor]  # [P, 4]
        fg_anchors = anchors[fg_image, fg_anchor]
        if self.reg_loss in _DECODED_BOX_LOSSES:
            per_box = _DECODED_BOX_LOSSES[self.reg_loss](self.box_coder.decode_single(pred, fg_anchors), fg_gt)
        else:
            target = self.box_coder.encode_single(fg_gt, fg_anchors)
            per_box = (
                l1_loss(pred, target) if self.reg_loss == "l1" else smooth_l1_loss(pred, target, self.smooth_l1_beta)
            )
        per_image = deltas.new_zeros(deltas.shape[0]).index_add(0, fg_image, per_box)
        return per_image + 0.0 * deltas.sum()  # keep the graph connected when there is no foreground

    def _normalize(self, per_image: Tensor, num_fg: Tensor) -> Tensor:
        if self.normalization == "per_image":
            return (per_image / num_fg.clamp(min=1)).mean()
        return per_image.sum() / num_fg.sum().clamp(min=1)


def _check_choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"Unknown {name} {value!r}; expected one of {allowed}")
