"""VOCMeanAveragePrecision against a plain-loop port of the devkit's ``voc_eval`` and hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lightning_retina.metrics import VOCMeanAveragePrecision


# ----------------------------------------------------------------------------- reference: the devkit, looped
def devkit_voc_ap(rec: np.ndarray, prec: np.ndarray, use_07_metric: bool) -> float:
    """``voc_ap`` of py-faster-rcnn ``lib/datasets/voc_eval.py``."""
    if use_07_metric:
        ap = 0.0
        for t in np.arange(0.0, 1.1, 0.1):
            p = 0 if np.sum(rec >= t) == 0 else np.max(prec[rec >= t])
            ap = ap + p / 11.0
        return ap
    mrec = np.concatenate(([0.0], rec, [1.0]))
    mpre = np.concatenate(([0.0], prec, [0.0]))
    for i in range(mpre.size - 1, 0, -1):
        mpre[i - 1] = np.maximum(mpre[i - 1], mpre[i])
    i = np.where(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1]))


def devkit_voc_eval(class_recs: dict, detections: list, ovthresh: float, use_07_metric: bool) -> float:
    """The detection loop of ``voc_eval`` on 1-based pixel boxes (``+1`` widths), with detectron2's eps.

    Args:
        class_recs: ``{image: {"bbox": float[M, 4], "difficult": bool[M]}}`` for one class.
        detections: ``[(image, score, [x1, y1, x2, y2]), ...]`` for that class.
    """
    npos = sum(int((~r["difficult"]).sum()) for r in class_recs.values())
    taken = {image: [False] * len(r["bbox"]) for image, r in class_recs.items()}
    confidence = np.array([d[1] for d in detections])
    order = np.argsort(-confidence, kind="stable")
    tp, fp = np.zeros(len(order)), np.zeros(len(order))
    for d, k in enumerate(order):
        image, _, bb = detections[k]
        R = class_recs[image]
        bb, BBGT, ovmax = np.asarray(bb, dtype=float), R["bbox"].astype(float), -np.inf
        if BBGT.size > 0:
            ixmin, iymin = np.maximum(BBGT[:, 0], bb[0]), np.maximum(BBGT[:, 1], bb[1])
            ixmax, iymax = np.minimum(BBGT[:, 2], bb[2]), np.minimum(BBGT[:, 3], bb[3])
            iw, ih = np.maximum(ixmax - ixmin + 1.0, 0.0), np.maximum(iymax - iymin + 1.0, 0.0)
            inters = iw * ih
            uni = ((bb[2] - bb[0] + 1.0) * (bb[3] - bb[1] + 1.0)
                   + (BBGT[:, 2] - BBGT[:, 0] + 1.0) * (BBGT[:, 3] - BBGT[:, 1] + 1.0) - inters)  # fmt: skip
            overlaps = inters / uni
            ovmax, jmax = np.max(overlaps), np.argmax(overlaps)
        if ovmax > ovthresh:
            if not R["difficult"][jmax]:
                if not taken[image][jmax]:
                    tp[d] = 1.0
                    taken[image][jmax] = True
                else:
                    fp[d] = 1.0
        else:
            fp[d] = 1.0
    fp, tp = np.cumsum(fp), np.cumsum(tp)
    rec = tp / float(npos)
    prec = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
    return devkit_voc_ap(rec, prec, use_07_metric)


# ------------------------------------------------------------------------------------------------ data
def random_voc_data(seed: int, num_images: int = 40, num_classes: int = 4):
    """VOC-like GT (integer 1-based boxes, ~25 % difficult) in our frame, and noisy / duplicate / random detections.

    Class 3 has only difficult ground truth (so it has no positives).
    """
    rng = np.random.default_rng(seed)
    preds, targets = [], []
    for _ in range(num_images):
        m = int(rng.integers(0, 7))
        xy = rng.integers(1, 150, size=(m, 2))
        box_1based = np.concatenate([xy, xy + rng.integers(4, 100, size=(m, 2))], axis=1).astype(np.float64)
        labels = rng.integers(0, num_classes, size=m)
        difficult = (rng.random(m) < 0.25) | (labels == 3)
        gt = box_1based - np.array([1, 1, 0, 0])  # detectron2 convention
        picked = rng.random(m) < 0.8
        noisy = gt[picked] + rng.normal(0, 6, size=(int(picked.sum()), 4))
        noisy_labels = np.where(rng.random(len(noisy)) < 0.1, rng.integers(0, num_classes, len(noisy)), labels[picked])
        half = len(noisy) // 2  # duplicates of already detected boxes: false positives once the box is taken
        xy_r = rng.uniform(0, 200, size=(3, 2))
        random = np.concatenate([xy_r, xy_r + rng.uniform(5, 80, size=(3, 2))], axis=1)
        det = np.concatenate([noisy, noisy[:half] + rng.normal(0, 2, size=(half, 4)), random])
        det[:, 2:] = np.maximum(det[:, 2:], det[:, :2] + 0.5)
        det_labels = np.concatenate([noisy_labels, noisy_labels[:half], rng.integers(0, num_classes, 3)])
        preds.append({
            "boxes": torch.tensor(det, dtype=torch.float32),
            "scores": torch.tensor(rng.random(len(det)), dtype=torch.float32),
            "labels": torch.tensor(det_labels, dtype=torch.int64),
        })  # fmt: skip
        targets.append({
            "boxes": torch.tensor(gt, dtype=torch.float32),
            "labels": torch.tensor(labels, dtype=torch.int64),
            "difficult": torch.tensor(difficult),
        })  # fmt: skip
    return preds, targets


def devkit_map(preds, targets, num_classes: int, use_07_metric: bool) -> list[float | None]:
    """Per-class devkit AP (``None`` for classes without positives), boxes moved back to 1-based pixels."""
    to_1based = np.array([1.0, 1.0, 0.0, 0.0])
    aps = []
    for c in range(num_classes):
        recs, dets = {}, []
        for image, (p, t) in enumerate(zip(preds, targets)):
            keep = (t["labels"] == c).numpy()
            recs[image] = {"bbox": t["boxes"].double().numpy()[keep] + to_1based,
                           "difficult": t["difficult"].numpy()[keep]}  # fmt: skip
            for box, score, label in zip(p["boxes"].double().numpy(), p["scores"].tolist(), p["labels"].tolist()):
                if label == c:
                    dets.append((image, score, box + to_1based))
        npos = sum(int((~r["difficult"]).sum()) for r in recs.values())
        aps.append(devkit_voc_eval(recs, dets, 0.5, use_07_metric) if npos else None)
    return aps


@pytest.mark.parametrize("use_07_metric", [True, False])
@pytest.mark.parametrize("seed", [0, 1])
def test_equals_the_devkit_on_random_detections(seed: int, use_07_metric: bool) -> None:
    preds, targets = random_voc_data(seed)
    metric = VOCMeanAveragePrecision(use_07_metric=use_07_metric, class_names=("a", "b", "c", "d"))
    for start in range(0, len(preds), 7):  # several updates, like validation batches
        metric.update(preds[start : start + 7], targets[start : start + 7])
    result = metric.compute()
    reference = devkit_map(preds, targets, 4, use_07_metric)
    assert reference[3] is None and all(ap is not None for ap in reference[:3])
    expected = torch.tensor([-1.0 if ap is None else ap for ap in reference], dtype=torch.float64)
    torch.testing.assert_close(result["map_per_class"].double(), expected, atol=1e-6, rtol=0)
    torch.testing.assert_close(result["map"].double(), expected[:3].mean(), atol=1e-6, rtol=0)
    assert result["map_50"] == result["map"]
    assert result["classes"].tolist() == [0, 1, 2, 3]


def _one_image(det_boxes, scores, gt_boxes, difficult=None, det_labels=None, gt_labels=None):
    det_boxes, gt_boxes = torch.tensor(det_boxes, dtype=torch.float32), torch.tensor(gt_boxes, dtype=torch.float32)
    pred = {"boxes": det_boxes.reshape(-1, 4), "scores": torch.tensor(scores, dtype=torch.float32),
            "labels": torch.tensor(det_labels or [0] * len(scores))}  # fmt: skip
    target = {"boxes": gt_boxes.reshape(-1, 4), "labels": torch.tensor(gt_labels or [0] * len(gt_boxes))}
    if difficult is not None:
        target["difficult"] = torch.tensor(difficult)
    return [pred], [target]


def test_hand_computed_precision_recall() -> None:
    # TP (0.9), duplicate of the same box = FP (0.8), TP (0.7): recall 1/2, 1/2, 1; precision 1, 1/2, 2/3
    gt = [[0, 0, 10, 10], [20, 20, 30, 30]]
    det = [[0, 0, 10, 10], [0, 0, 10, 9], [20, 20, 30, 31]]
    area, eleven = VOCMeanAveragePrecision(), VOCMeanAveragePrecision(use_07_metric=True)
    for metric in (area, eleven):
        metric.update(*_one_image(det, [0.9, 0.8, 0.7], gt))
    # area: 1/2 of recall at precision 1, 1/2 at the envelope 2/3;  11-point: t = 0…0.5 -> 1, t = 0.6…1 -> 2/3
    assert area.compute()["map"].item() == pytest.approx(0.5 + 0.5 * 2 / 3, abs=1e-6)
    assert eleven.compute()["map"].item() == pytest.approx((6 + 5 * 2 / 3) / 11, abs=1e-6)


def test_difficult_match_is_neither_tp_nor_fp() -> None:
    # the top detection hits a difficult box: without it the PR curve is a single TP -> AP 1 (no NaN either)
    metric = VOCMeanAveragePrecision()
    metric.update(*_one_image([[0, 0, 10, 10], [20, 20, 30, 30]], [0.9, 0.5], [[0, 0, 10, 10], [20, 20, 30, 30]],
                              difficult=[True, False]))  # fmt: skip
    assert metric.compute()["map"].item() == pytest.approx(1.0)
    crowd = VOCMeanAveragePrecision()  # iscrowd is ignored the same way
    pred, target = _one_image([[0, 0, 10, 10], [20, 20, 30, 30]], [0.9, 0.5], [[0, 0, 10, 10], [20, 20, 30, 30]])
    target[0]["iscrowd"] = torch.tensor([True, False])
    crowd.update(pred, target)
    assert crowd.compute()["map"].item() == pytest.approx(1.0)


def test_iou_threshold_is_strict() -> None:
    # IoU exactly 0.5: [0,0,10,10] vs [0,0,10,20] -> not a match (devkit: ovmax > ovthresh)
    metric = VOCMeanAveragePrecision()
    metric.update(*_one_image([[0, 0, 10, 10]], [0.9], [[0, 0, 10, 20]]))
    assert metric.compute()["map"].item() == 0.0


def test_classes_without_positives_are_minus_one_and_left_out() -> None:
    metric = VOCMeanAveragePrecision()
    metric.update(*_one_image([[0, 0, 10, 10], [5, 5, 9, 9]], [0.9, 0.8], [[0, 0, 10, 10]],
                              det_labels=[2, 7], gt_labels=[2]))  # fmt: skip
    result = metric.compute()
    assert result["classes"].tolist() == [2, 7]
    assert result["map_per_class"].tolist() == [1.0, -1.0]
    assert result["map"].item() == 1.0


def test_no_detections_and_no_ground_truth() -> None:
    metric = VOCMeanAveragePrecision(class_names=("a", "b"))
    metric.update(*_one_image([], [], [[0, 0, 10, 10]], gt_labels=[1]))
    result = metric.compute()
    assert result["map_per_class"].tolist() == [-1.0, 0.0] and result["map"].item() == 0.0
    with pytest.warns(UserWarning, match="before the ``update``"):
        assert VOCMeanAveragePrecision().compute()["map"].item() == -1.0


def test_bad_input_raises() -> None:
    with pytest.raises(ValueError, match="iou_threshold"):
        VOCMeanAveragePrecision(iou_threshold=1.5)
    metric = VOCMeanAveragePrecision(class_names=("a",))
    pred, target = _one_image([[0, 0, 10, 10]], [0.9], [[0, 0, 10, 10]])
    with pytest.raises(ValueError, match=r"preds\[0\]\['scores'\] must have shape \[1\]"):
        metric.update([{**pred[0], "scores": torch.ones(2)}], target)
    with pytest.raises(ValueError, match=r"target\[0\] has no 'labels'"):
        metric.update(pred, [{"boxes": target[0]["boxes"]}])
    with pytest.raises(ValueError, match=r"target\[0\]\['labels'\] has labels \[3\]"):
        metric.update(pred, [{**target[0], "labels": torch.tensor([3])}])
    with pytest.raises(ValueError, match="same length"):
        metric.update(pred, target * 2)
