"""COCOMeanAveragePrecision equals pycocotools' COCOeval run by hand on the same detections, on every scalar."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from lightning_retina.data import COCODetection
from lightning_retina.metrics import COCOMeanAveragePrecision, metric_target
from tests.data_fixtures import COCOTree, write_coco

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
    evaluator = run_cocoeval(preds, targets, category_ids)
    with contextlib.redirect_stdout(io.StringIO()):
        evaluator.summarize()
    return evaluator.stats


def run_cocoeval(preds: list[dict], targets: list[dict], category_ids: list[int]) -> COCOeval:
    """pycocotools' ``COCOeval`` (bbox), evaluated and accumulated, on the same boxes written as COCO dicts by hand."""
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
    return evaluator


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


def _coco_files(tmp_path: Path, seed: int) -> tuple[COCOTree, Path]:
    """A COCO instances file and a results file written like real ones (2-decimal boxes, segment areas).

    Non-contiguous category ids, crowd boxes, an image without annotations (detections on it are false positives),
    an image without detections, 150 detections on some images; each annotation's ``area`` is 0.4-1.1 times its
    box area. Ground-truth boxes lie inside their image (the reader clips boxes past the border).
    """
    rng = np.random.default_rng(seed)
    category_ids = [2, 7, 11, 90]
    images, annotations, results = [], [], []
    for index, image_id in enumerate((5, 9, 14, 23, 31, 40)):
        images.append({"id": image_id, "file_name": f"{image_id}.jpg", "width": 240, "height": 200})
        n = 0 if index == 1 else int(rng.integers(3, 25))
        wh = np.round(3 + rng.random((n, 2)) ** 2 * 150, 2)
        xy = np.round(rng.random((n, 2)) * (np.array([240, 200]) - wh), 2)
        for box, cat in zip(np.concatenate([xy, wh], 1).tolist(), rng.choice(category_ids, n).tolist()):
            annotations.append({"id": 100 + len(annotations), "image_id": image_id, "category_id": cat,
                                "bbox": box, "area": round(box[2] * box[3] * rng.uniform(0.4, 1.1), 2),
                                "iscrowd": int(rng.random() < 0.1)})  # fmt: skip
        m = 0 if index == 2 else (150 if index % 2 else int(rng.integers(1, 60)))
        source = [a for a in annotations if a["image_id"] == image_id] or [{"bbox": [50, 50, 40, 30]}]
        for k in rng.integers(0, len(source), m).tolist():
            x, y, w, h = np.array(source[k]["bbox"]) + rng.normal(0, 0.06, 4) * np.repeat(source[k]["bbox"][2:], 2)
            cat = source[k].get("category_id") if rng.random() < 0.8 else None
            results.append({"image_id": image_id, "category_id": cat or int(rng.choice(category_ids)),
                            "bbox": [round(x, 2), round(y, 2), round(abs(w) + 1, 2), round(abs(h) + 1, 2)],
                            "score": round(float(rng.random()), 3)})  # fmt: skip
    data = {"images": images, "annotations": annotations,
            "categories": [{"id": c, "name": f"class{c}"} for c in category_ids]}  # fmt: skip
    tree = write_coco(tmp_path, "val", data)
    results_file = tmp_path / "results.json"
    results_file.write_text(json.dumps(results))
    return tree, results_file


def _predictions(results_file: Path, dataset: COCODetection) -> list[dict[str, torch.Tensor]]:
    """The results file as per-image predictions in the dataset's label space and item order."""
    label_of = {cid: label for label, cid in dataset.label_to_category_id.items()}
    results = json.loads(results_file.read_text())
    predictions = []
    for image_id in dataset.image_ids:
        mine = [r for r in results if r["image_id"] == image_id]
        xywh = torch.tensor([r["bbox"] for r in mine], dtype=torch.float64).reshape(-1, 4)
        labels = torch.tensor([label_of[r["category_id"]] for r in mine], dtype=torch.int64)
        boxes = torch.cat([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], 1).float()
        predictions.append({"boxes": boxes, "scores": torch.tensor([r["score"] for r in mine]), "labels": labels})
    return predictions


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("seed", range(3))
def test_coco_files_read_by_our_reader_give_cocoeval_numbers(tmp_path: Path, seed: int, backend: str) -> None:
    """COCODetection targets (with the annotation ``area``) + a results file = COCOeval on the two files."""
    tree, results_file = _coco_files(tmp_path, seed)
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(tree.ann_file))
        evaluator = COCOeval(gt, gt.loadRes(str(results_file)), "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    dataset = COCODetection(tree.image_dir, tree.ann_file)
    metric = COCOMeanAveragePrecision(backend=backend)
    metric.warn_on_many_detections = False
    metric.update(_predictions(results_file, dataset), [metric_target(dataset[i][1]) for i in range(len(dataset))])
    assert_equal_stats(metric.compute(), evaluator.stats)
