"""The module's COCO mAP equals pycocotools' COCOeval run by hand on the same detections."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from lightning_retina.evaluation import build_metric


def _random_case(generator: torch.Generator, num_images: int = 6, num_classes: int = 3):
    preds, targets = [], []
    for _ in range(num_images):
        n = int(torch.randint(1, 6, (1,), generator=generator))
        xy = torch.rand(n, 2, generator=generator) * 150
        wh = 10 + torch.rand(n, 2, generator=generator) * 80
        gt = torch.cat([xy, xy + wh], 1)
        labels = torch.randint(0, num_classes, (n,), generator=generator)
        crowd = torch.rand(n, generator=generator) < 0.15
        jitter = gt + torch.randn(n, 4, generator=generator) * 6  # near-misses and hits
        extra = torch.cat([xy[:2] + 40, xy[:2] + 90], 1)  # false positives
        boxes = torch.cat([jitter, extra])
        boxes = torch.cat([torch.minimum(boxes[:, :2], boxes[:, 2:]), torch.maximum(boxes[:, :2], boxes[:, 2:])], 1)
        preds.append({"boxes": boxes, "scores": torch.rand(len(boxes), generator=generator),
                      "labels": torch.cat([labels, torch.randint(0, num_classes, (len(extra),), generator=generator)])})
        targets.append({"boxes": gt, "labels": labels, "iscrowd": crowd})
    return preds, targets


def _cocoeval(preds, targets) -> np.ndarray:
    images, annotations, results = [], [], []
    for image_id, (p, t) in enumerate(zip(preds, targets)):
        images.append({"id": image_id, "width": 300, "height": 300})
        for box, label, crowd in zip(t["boxes"].tolist(), t["labels"].tolist(), t["iscrowd"].tolist()):
            w, h = box[2] - box[0], box[3] - box[1]
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": label,
                                "iscrowd": int(crowd), "bbox": [box[0], box[1], w, h], "area": w * h})  # fmt: skip
        for box, label, score in zip(p["boxes"].tolist(), p["labels"].tolist(), p["scores"].tolist()):
            results.append({"image_id": image_id, "category_id": label, "score": score,
                            "bbox": [box[0], box[1], box[2] - box[0], box[3] - box[1]]})  # fmt: skip
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = {"images": images, "annotations": annotations, "categories": [{"id": i} for i in range(3)]}
        gt.createIndex()
        evaluator = COCOeval(gt, gt.loadRes(results), "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return evaluator.stats


@pytest.mark.parametrize("seed", [0, 1])
def test_module_coco_map_equals_cocoeval(seed):
    preds, targets = _random_case(torch.Generator().manual_seed(seed))
    metric = build_metric("coco")
    metric.update(preds, targets)
    ours = metric.compute()
    stats = _cocoeval(preds, targets)
    for key, index in (("map", 0), ("map_50", 1), ("map_75", 2), ("mar_100", 8)):
        assert abs(float(ours[key]) - stats[index]) <= 1e-6, (key, float(ours[key]), stats[index])
