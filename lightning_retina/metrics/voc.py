"""Pascal VOC mean average precision (the devkit's ``voc_eval``) as a torchmetrics ``Metric``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric

_EPS = torch.finfo(torch.float64).eps
_CHUNK = 1 << 22  # detection × ground-truth pairs per IoU block (bounds memory on crowded images)


def _table(state: list[Tensor] | Tensor, columns: int) -> Tensor:
    """A flat list state (or, after a DDP sync, its concatenation) as a ``float64[rows, columns]`` CPU table."""
    if isinstance(state, list):
        state = torch.cat(state) if state else torch.zeros(0)
    return state.detach().cpu().double().reshape(-1, columns)


def _field(item: dict[str, Tensor], key: str, where: str, shape: tuple[int, ...]) -> Tensor:
    """``item[key]`` as float64, checked against ``shape`` (``-1``: any size)."""
    if key not in item:
        raise ValueError(f"{where} has no {key!r} (keys: {sorted(item)})")
    value = torch.as_tensor(item[key]).detach().double()
    if value.ndim != len(shape) or any(s not in (-1, v) for s, v in zip(shape, value.shape)):
        raise ValueError(f"{where}[{key!r}] must have shape {list(shape)} (-1: any), got {list(value.shape)}")
    return value


def _pairwise_iou(a: Tensor, b: Tensor) -> Tensor:
    """IoU of broadcast xyxy boxes ``a[..., 4]`` and ``b[..., 4]``; 0 where both have zero area."""
    wh = (torch.minimum(a[..., 2:], b[..., 2:]) - torch.maximum(a[..., :2], b[..., :2])).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    union = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1]) + (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    union = union - inter
    return torch.where(union > 0, inter / union.clamp(min=_EPS), torch.zeros_like(inter))


def match_detections(
    det_boxes: Tensor,
    det_images: Tensor,
    gt_boxes: Tensor,
    gt_images: Tensor,
    gt_ignore: Tensor,
    num_images: int,
    iou_threshold: float,
) -> tuple[Tensor, Tensor]:
    """Mark the detections of one class as true / false positives, exactly as the devkit's ``voc_eval`` does.

    Going down the detections (already sorted by decreasing score), each is compared with the ground truth of its
    image: its best-overlapping box ``j`` (first one on ties) counts if ``IoU > iou_threshold``. A match to an
    ignored (difficult / crowd) box is neither TP nor FP; a match to a box an earlier detection took is a FP. The
    sequential loop is vectorised: a detection is a TP iff it is the first (highest-scoring) one whose best match is
    that same non-ignored box.

    Args:
        det_boxes: ``float[D, 4]`` xyxy, in decreasing score order.
        det_images: ``int64[D]`` image index of each detection.
        gt_boxes: ``float[G, 4]`` xyxy, in annotation order within each image.
        gt_images: ``int64[G]`` image index of each box.
        gt_ignore: ``bool[G]``, difficult / crowd boxes.
        num_images: number of images (indices are ``< num_images``).
        iou_threshold: a match needs IoU strictly above it.

    Returns:
        ``(tp, fp)``, two ``bool[D]`` masks.
    """
    num_det = det_boxes.shape[0]
    order = torch.argsort(gt_images, stable=True)  # boxes grouped by image, annotation order kept
    gt_boxes, gt_images, gt_ignore = gt_boxes[order], gt_images[order], gt_ignore[order]
    counts = torch.bincount(gt_images, minlength=num_images)
    width = int(counts.max()) if gt_boxes.shape[0] else 0
    if num_det == 0 or width == 0:
        return torch.zeros(num_det, dtype=torch.bool), torch.ones(num_det, dtype=torch.bool)
    starts = counts.cumsum(0) - counts
    slot = torch.arange(width)
    best_iou, best_gt = [], []
    for chunk in torch.arange(num_det).split(max(1, _CHUNK // width)):
        image = det_images[chunk]
        index = (starts[image, None] + slot).clamp(max=gt_boxes.shape[0] - 1)  # [C, W] ground-truth rows
        iou = _pairwise_iou(det_boxes[chunk, None, :], gt_boxes[index])
        iou = iou.masked_fill(slot >= counts[image, None], float("-inf"))
        value, column = iou.max(dim=1)  # first maximum on ties, like np.argmax
        best_iou.append(value)
        best_gt.append(index.gather(1, column[:, None]).squeeze(1))
    iou, gt = torch.cat(best_iou), torch.cat(best_gt)
    hit = iou > iou_threshold
    counted = hit & ~gt_ignore[gt]
    position = torch.arange(num_det)
    first = torch.full((gt_boxes.shape[0],), num_det).scatter_reduce(0, gt[counted], position[counted], "amin")
    tp = counted & (first[gt] == position)
    return tp, ~hit | (counted & ~tp)


def average_precision(tp: Tensor, fp: Tensor, num_positives: int, use_07_metric: bool) -> Tensor:
    """The devkit's ``voc_ap`` from TP / FP marks in decreasing score order.

    Args:
        tp: ``bool[D]`` true positives.
        fp: ``bool[D]`` false positives (a detection may be neither).
        num_positives: number of non-ignored ground-truth boxes (> 0).
        use_07_metric: VOC2007 11-point AP (max precision at recall >= t, t = 0, 0.1, …, 1, the thresholds
            computed as ``i * 0.1`` like the devkit's ``np.arange``); otherwise the area under the
            monotonically interpolated precision-recall curve (VOC2010+).

    Returns:
        A float64 scalar tensor.
    """
    tp_sum, fp_sum = tp.double().cumsum(0), fp.double().cumsum(0)
    recall = tp_sum / num_positives
    precision = tp_sum / (tp_sum + fp_sum).clamp(min=_EPS)  # eps like detectron2: no NaN for a leading "neither"
    if use_07_metric:
        thresholds = torch.arange(11, dtype=torch.float64) * 0.1
        reached = recall[None, :] >= thresholds[:, None]  # [11, D]
        candidates = torch.where(reached, precision[None, :], torch.zeros_like(precision))
        best = torch.cat([torch.zeros(11, 1, dtype=torch.float64), candidates], dim=1).amax(dim=1)  # 0 if none
        return best.sum() / 11
    zero, one = torch.zeros(1, dtype=torch.float64), torch.ones(1, dtype=torch.float64)
    recall = torch.cat([zero, recall, one])
    precision = torch.cat([zero, precision, zero]).flip(0).cummax(0).values.flip(0)
    steps = torch.nonzero(recall[1:] != recall[:-1]).squeeze(1)
    return ((recall[steps + 1] - recall[steps]) * precision[steps + 1]).sum()


class VOCMeanAveragePrecision(Metric):
    """Pascal VOC detection mAP at one IoU threshold, the devkit algorithm (``voc_eval`` / ``voc_ap``).

    Per class, detections of all images are sorted by score (ties keep input order); each ground-truth box is
    matched at most once; difficult (and crowd) boxes are neither true nor false positives and do not count as
    positives. AP is the 11-point VOC2007 value (``use_07_metric=True``) or the area under the interpolated
    precision-recall curve (VOC2010+, default). IoU is the plain continuous IoU: on boxes in the detectron2
    convention that :class:`~lightning_retina.data.VOCDetection` produces (``xmin - 1, ymin - 1, xmax, ymax``) it
    equals the devkit's ``+1`` IoU on the 1-based annotation, so the numbers are the devkit's.

    Classes without positive ground truth get AP ``-1`` in ``map_per_class`` and are left out of the mean (the
    devkit would divide by zero; torchmetrics' ``MeanAveragePrecision`` reports ``-1`` the same way); ``map`` is
    ``-1`` when no class has ground truth. The states are list states with ``dist_reduce_fx="cat"``, so under DDP
    ``compute()`` (which every rank must call) sees the images of all ranks.

    Args:
        iou_threshold: a detection matches a box with IoU strictly above it (VOC: 0.5).
        use_07_metric: 11-point AP (VOC2007 test protocol) instead of the area under the curve.
        class_names: the ``K`` foreground classes; fixes the reported classes to ``0..K-1`` (all of them, in
            order) and rejects other labels. Without it the classes are those seen in predictions or targets.
        kwargs: ``torchmetrics.Metric`` options (``sync_on_compute``, ``process_group``, …).

    Raises:
        ValueError: for ``iou_threshold`` outside ``(0, 1)``.

    Example::

        >>> metric = VOCMeanAveragePrecision()
        >>> preds = [{"boxes": torch.tensor([[0.0, 0.0, 10.0, 10.0]]), "scores": torch.tensor([0.9]),
        ...           "labels": torch.tensor([0])}]
        >>> target = [{"boxes": torch.tensor([[0.0, 0.0, 10.0, 9.0]]), "labels": torch.tensor([0])}]
        >>> metric.update(preds, target)
        >>> metric.compute()["map"]
        tensor(1.)
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(
        self,
        iou_threshold: float = 0.5,
        use_07_metric: bool = False,
        class_names: Sequence[str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not 0.0 < iou_threshold < 1.0:
            raise ValueError(f"iou_threshold must be in (0, 1), got {iou_threshold}")
        self.iou_threshold = iou_threshold
        self.use_07_metric = use_07_metric
        self.class_names = tuple(class_names) if class_names is not None else None
        # Flat 1-D float states: a rank that saw no image syncs an empty 1-D float tensor (torchmetrics' filler),
        # which only concatenates with tensors of the same rank and dtype.
        self.add_state("detections", default=[], dist_reduce_fx="cat")  # rows x1, y1, x2, y2, score, label
        self.add_state("groundtruths", default=[], dist_reduce_fx="cat")  # rows x1, y1, x2, y2, label, ignore
        self.add_state("detections_per_image", default=[], dist_reduce_fx="cat")
        self.add_state("groundtruths_per_image", default=[], dist_reduce_fx="cat")

    def update(self, preds: Sequence[dict[str, Tensor]], target: Sequence[dict[str, Tensor]]) -> None:
        """Add a batch of images.

        Args:
            preds: per image ``boxes`` (``float[N, 4]`` xyxy), ``scores`` (``float[N]``), ``labels`` (``int[N]``).
            target: per image ``boxes`` (``float[M, 4]`` xyxy), ``labels`` (``int[M]``) and optionally
                ``difficult`` / ``iscrowd`` (``bool[M]``, ignored boxes).

        Raises:
            ValueError: naming the image and key for mismatched lengths or shapes, or a label outside
                ``class_names``.
        """
        if len(preds) != len(target):
            raise ValueError(f"preds and target must have the same length, got {len(preds)} and {len(target)}")
        if not preds:  # an empty batch adds no image (torchmetrics' MeanAveragePrecision accepts it too)
            return
        det_rows, gt_rows = [], []
        for i, (p, t) in enumerate(zip(preds, target)):
            boxes = _field(p, "boxes", f"preds[{i}]", (-1, 4))
            scores, labels = (_field(p, key, f"preds[{i}]", boxes.shape[:1]) for key in ("scores", "labels"))
            det_rows.append(torch.cat([boxes, scores[:, None], self._checked_labels(labels, f"preds[{i}]")], dim=1))
            boxes = _field(t, "boxes", f"target[{i}]", (-1, 4))
            labels = self._checked_labels(_field(t, "labels", f"target[{i}]", boxes.shape[:1]), f"target[{i}]")
            ignore = torch.zeros_like(labels)
            for key in ("difficult", "iscrowd"):
                if key in t:
                    flag = _field(t, key, f"target[{i}]", boxes.shape[:1])
                    ignore = torch.maximum(ignore, flag.ne(0).double()[:, None])
            gt_rows.append(torch.cat([boxes, labels, ignore], dim=1))
        for state, rows in ((self.detections, det_rows), (self.groundtruths, gt_rows)):
            state.append(torch.cat(rows).reshape(-1).to(self.device, self.dtype))
        for state, rows in ((self.detections_per_image, det_rows), (self.groundtruths_per_image, gt_rows)):
            state.append(torch.tensor([len(r) for r in rows], dtype=self.dtype, device=self.device))

    def _checked_labels(self, labels: Tensor, where: str) -> Tensor:
        """``labels`` as a ``[N, 1]`` column; with ``class_names``, every label must be in ``0..K-1``."""
        if self.class_names is not None and labels.numel():
            if labels.min() < 0 or labels.max() >= len(self.class_names):
                raise ValueError(
                    f"{where}['labels'] has labels {labels.unique().long().tolist()}; "
                    f"class_names allows 0..{len(self.class_names) - 1}"
                )
        return labels[:, None]

    def compute(self) -> dict[str, Tensor]:
        """The mAP over all images seen (on all ranks).

        Returns:
            ``map`` and ``map_50`` (the same number: mAP at ``iou_threshold``), ``map_per_class`` (``float[K]``,
            ``-1`` for classes without positive ground truth) and ``classes`` (``int32[K]``).
        """
        det, gt = _table(self.detections, 6), _table(self.groundtruths, 6)
        det_counts = _table(self.detections_per_image, 1).squeeze(1).long()
        gt_counts = _table(self.groundtruths_per_image, 1).squeeze(1).long()
        num_images = det_counts.shape[0]
        det_images = torch.repeat_interleave(torch.arange(num_images), det_counts)
        gt_images = torch.repeat_interleave(torch.arange(num_images), gt_counts)
        det_labels, gt_labels, gt_ignore = det[:, 5].long(), gt[:, 4].long(), gt[:, 5] > 0
        if self.class_names is not None:
            classes = torch.arange(len(self.class_names))
        else:
            classes = torch.unique(torch.cat([det_labels, gt_labels]))
        per_class = torch.full((classes.shape[0],), -1.0, dtype=torch.float64)
        for k, c in enumerate(classes.tolist()):
            in_gt = gt_labels == c
            num_positives = int((in_gt & ~gt_ignore).sum())
            if num_positives == 0:
                continue
            in_det = torch.nonzero(det_labels == c).squeeze(1)
            in_det = in_det[torch.sort(det[in_det, 4], descending=True, stable=True).indices]
            tp, fp = match_detections(
                det[in_det, :4], det_images[in_det], gt[in_gt, :4], gt_images[in_gt], gt_ignore[in_gt],
                num_images, self.iou_threshold,
            )  # fmt: skip
            per_class[k] = average_precision(tp, fp, num_positives, self.use_07_metric)
        valid = per_class >= 0
        mean = per_class[valid].mean() if valid.any() else torch.tensor(-1.0, dtype=torch.float64)
        mean = mean.float().to(self.device)
        return {
            "map": mean,
            "map_50": mean.clone(),
            "map_per_class": per_class.float().to(self.device),
            "classes": classes.to(torch.int32).to(self.device),
        }
