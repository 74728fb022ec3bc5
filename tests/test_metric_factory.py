"""metric_log_dict: the logged keys, and per-class COCO AP equal to COCOeval restricted to that category."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lightning_retina.metrics import LOG_KEYS, build_metric, metric_log_dict
from tests.test_coco_metric import random_case, run_cocoeval


def _per_class_cocoeval(preds, targets, category_ids) -> dict[int, float]:
    """AP@[.5:.95] of each category with ground truth, from COCOeval's precision array (``-1`` entries left out)."""
    evaluator = run_cocoeval(preds, targets, category_ids)
    precision = evaluator.eval["precision"][:, :, :, 0, -1]  # [T, R, K] at area "all", 100 detections
    out = {}
    for k, category in enumerate(evaluator.params.catIds):
        values = precision[:, :, k]
        if (values > -1).any():
            out[category] = float(np.mean(values[values > -1]))
    return out


def test_per_class_ap_is_logged_by_name_and_equals_cocoeval() -> None:
    preds, targets, category_ids = random_case(3)
    names = {c: f"class {c}" for c in category_ids}
    metric = build_metric("coco", class_metrics=True)
    metric.warn_on_many_detections = False
    metric.update(preds, targets)
    logged = metric_log_dict(metric.compute(), "val", [names.get(i, "") for i in range(max(category_ids) + 1)])
    expected = _per_class_cocoeval(preds, targets, category_ids)
    per_class = {k: float(v) for k, v in logged.items() if k.startswith("val/map_per_class/")}
    assert per_class.keys() == {f"val/map_per_class/class {c}" for c in expected}
    for category, ap in expected.items():
        assert abs(per_class[f"val/map_per_class/class {category}"] - ap) <= 1e-6
    assert {k for k in logged if "per_class" not in k} == {f"val/{k}" for k in LOG_KEYS}


def test_no_per_class_keys_without_class_metrics() -> None:
    preds, targets, _ = random_case(3)
    metric = build_metric("coco")
    metric.warn_on_many_detections = False
    metric.update(preds, targets)
    logged = metric_log_dict(metric.compute(), "test", ["a"] * 200)
    assert sorted(logged) == sorted(f"test/{k}" for k in LOG_KEYS)
    assert all(v.ndim == 0 for v in logged.values())


@pytest.mark.parametrize("kind", ["voc", "voc07"])
def test_voc_per_class_ap_by_name_and_undefined_classes_left_out(kind: str) -> None:
    # class 0 found (AP 1), class 1 missed (AP 0), class 2 has a detection but no ground truth (AP -1: left out)
    preds = [{"boxes": torch.tensor([[0.0, 0, 10, 10], [50, 50, 60, 60], [70, 70, 80, 80]]),
              "scores": torch.tensor([0.9, 0.8, 0.7]), "labels": torch.tensor([0, 1, 2])}]  # fmt: skip
    target = [{"boxes": torch.tensor([[0.0, 0, 10, 10], [20, 20, 30, 30]]), "labels": torch.tensor([0, 1])}]
    metric = build_metric(kind)
    metric.update(preds, target)
    logged = metric_log_dict(metric.compute(), "val", ["cat", "dog", "cow"])
    assert {k: float(v) for k, v in logged.items()} == {
        "val/map": 0.5, "val/map_50": 0.5, "val/map_per_class/cat": 1.0, "val/map_per_class/dog": 0.0,
    }  # fmt: skip
