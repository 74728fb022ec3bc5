"""COCOMeanAveragePrecision equals pycocotools' COCOeval run by hand on the same detections, on every scalar."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from lightning_retina.metrics import COCOMeanAveragePrecision

#: COCOeval.stats order (pycocotools ``summarize``).
STAT_KEYS = (
    "map", "map_50", "map_75", "map_small", "map_medium", "map_large",
    "mar_1", "mar_10", "mar_100", "mar_small", "mar_medium", "mar_large",
)  # fmt: skip
BACKENDS = ("pycocotools", "faster_coco_eval")


def random_case(seed: int) -> tuple[list[dict], list[dict], list[int]]:
    """Up to 8 images, 1-80 classes with non-contiguous ids, crowd boxes, empty images, up to 200 detections.

    Ground-truth ``area`` is 0.3-1.2 times the box area (a segment area is not the box area), so boxes move
    between small / medium / large depending on which one is used. Detections are jittered copies of the ground
    truth (hits, near misses, duplicates), some with a wrong class, plus boxes on images without ground truth.
    """
    g = torch.Generator().manual_seed(seed)
    num_classes = int(torch.randint(1, 81, (1,), generator=g))
    category_ids = torch.randperm(200, generator=g)[:num_classes].sort().values
    preds, targets = [], []
    for _ in range(int(torch.randint(1, 9, (1,), generator=g))):
        n = int(torch.randint(0, 30, (1,), generator=g))
        xy = torch.rand(n, 2, generator=g) * 400
        wh = 2 + torch.rand(n, 2, generator=g) ** 2 * 200  # many small, some large
        labels = category_ids[torch.randint(0, num_classes, (n,), generator=g)]
        area = wh.prod(1) * (0.3 + 0.9 * torch.rand(n, generator=g))
        targets.append({"boxes": torch.cat([xy, xy + wh], 1), "labels": labels, "area": area,
                        "iscrowd": torch.rand(n, generator=g) < 0.1})  # fmt: skip
        m = int(torch.randint(0, 201, (1,), generator=g))
        random_labels = category_ids[torch.randint(0, num_classes, (m,), generator=g)]
        if n:
            source = torch.randint(0, n, (m,), generator=g)
            boxes = targets[-1]["boxes"][source] + torch.randn(m, 4, generator=g) * wh[source].repeat(1, 2) * 0.15
            det_labels = torch.where(torch.rand(m, generator=g) < 0.8, labels[source], random_labels)
        else:
            boxes, det_labels = torch.rand(m, 4, generator=g) * 400, random_labels
        boxes = torch.cat([torch.minimum(boxes[:, :2], boxes[:, 2:]), torch.maximum(boxes[:, :2], boxes[:, 2:]) + 1], 1)
        preds.append({"boxes": boxes, "scores": torch.rand(m, generator=g), "labels": det_labels})
    return preds, targets, category_ids.tolist()


def _xywh(box: list[float]) -> list[float]:
    return [box[0], box[1], box[2] - box[0], box[3] - box[1]]


def cocoeval_stats(preds: list[dict], targets: list[dict], category_ids: list[int]) -> np.ndarray:
    """pycocotools' ``COCOeval`` (bbox) stats on the same boxes, built by hand (image ids = list positions)."""
    images, annotations, results = [], [], []
    for image_id, (p, t) in enumerate(zip(preds, targets)):
        images.append({"id": image_id, "width": 640, "height": 640})
        for box, label, crowd, area in zip(*(t[k].tolist() for k in ("boxes", "labels", "iscrowd", "area"))):
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": label,
                                "iscrowd": int(crowd), "bbox": _xywh(box), "area": area})  # fmt: skip
        for box, label, score in zip(*(p[k].tolist() for k in ("boxes", "labels", "scores"))):
            results.append({"image_id": image_id, "category_id": label, "score": score, "bbox": _xywh(box)})
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = {"images": images, "annotations": annotations, "categories": [{"id": c} for c in category_ids]}
        gt.createIndex()
        evaluator = COCOeval(gt, gt.loadRes(results), "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return evaluator.stats


def assert_equal_stats(ours: dict, stats: np.ndarray) -> None:
    """Every scalar of ``ours`` equals COCOeval's to 1e-6 (ours are float32: ~3e-8 rounding)."""
    differences = {key: abs(float(ours[key]) - float(stats[i])) for i, key in enumerate(STAT_KEYS)}
    assert max(differences.values()) <= 1e-6, {k: (float(ours[k]), float(stats[i])) for i, k in enumerate(STAT_KEYS)}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("seed", range(12))
def test_every_scalar_equals_cocoeval_on_random_cases(seed: int, backend: str) -> None:
    preds, targets, category_ids = random_case(seed)
    metric = COCOMeanAveragePrecision(backend=backend)
    metric.warn_on_many_detections = False
    for start in range(0, len(preds), 3):  # several updates, like a validation loop
        metric.update(preds[start : start + 3], targets[start : start + 3])
    assert_equal_stats(metric.compute(), cocoeval_stats(preds, targets, category_ids))


def test_float32_thresholds_of_torchmetrics_differ_from_cocoeval() -> None:
    """The case the default thresholds fix: torchmetrics' own float32 ones are off by more than 5e-5 here."""
    preds, targets, category_ids = random_case(51)
    stats = cocoeval_stats(preds, targets, category_ids)
    float32 = COCOMeanAveragePrecision(
        iou_thresholds=torch.linspace(0.5, 0.95, 10).tolist(), rec_thresholds=torch.linspace(0.0, 1.0, 101).tolist()
    )
    ours = COCOMeanAveragePrecision()
    for metric in (float32, ours):
        metric.warn_on_many_detections = False
        metric.update(preds, targets)
    off = float32.compute()
    assert max(abs(float(off[key]) - stats[i]) for i, key in enumerate(STAT_KEYS)) > 5e-5
    assert_equal_stats(ours.compute(), stats)


def test_area_decides_small_medium_large() -> None:
    """One 40x40 box (box area 1600: medium) whose annotation area is 900 (small), found exactly."""
    box = torch.tensor([[10.0, 10.0, 50.0, 50.0]])
    preds = [{"boxes": box, "scores": torch.tensor([0.9]), "labels": torch.tensor([0])}]
    target = {"boxes": box, "labels": torch.tensor([0]), "iscrowd": torch.tensor([False])}
    for area, (small, medium) in ((900.0, (1.0, -1.0)), (None, (-1.0, 1.0))):
        metric = COCOMeanAveragePrecision()
        metric.update(preds, [target if area is None else {**target, "area": torch.tensor([area])}])
        result = metric.compute()
        assert (float(result["map_small"]), float(result["map_medium"])) == (small, medium)
