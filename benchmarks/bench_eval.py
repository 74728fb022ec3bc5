"""COCO evaluation: torchmetrics ``MeanAveragePrecision`` with the faster_coco_eval backend against pycocotools.

Both evaluate the same synthetic detections (ground truth jittered, some missed, false positives added, 100
detections per image); one repeat is ``update`` with every image plus ``compute``. The parity column compares
every scalar of the result (map, map_50, map_75, map_small/medium/large, mar_1/10/100, …).

    python benchmarks/bench_eval.py [--quick | --full]
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch
from torch import Tensor
from torchmetrics.detection import MeanAveragePrecision

from benchmarks._timing import describe_machine, ms, parity, parse_args, print_table, time_interleaved

FAST, REFERENCE = "faster_coco_eval", "pycocotools"


class EvalSetting(NamedTuple):
    images: int
    classes: int
    max_boxes: int = 20
    detections: int = 100


DEFAULT_SETTINGS = [EvalSetting(200, 20), EvalSetting(500, 80)]
FULL_SETTINGS = [EvalSetting(200, 20), EvalSetting(500, 20), EvalSetting(500, 80), EvalSetting(2000, 80)]
QUICK_SETTINGS = [EvalSetting(10, 5, 5, 20)]


def make_eval_data(setting: EvalSetting, seed: int = 0) -> tuple[list[dict[str, Tensor]], list[dict[str, Tensor]]]:
    """Predictions and targets of ``setting.images`` 640-px images."""
    g = torch.Generator().manual_seed(seed)
    preds, targets = [], []
    for _ in range(setting.images):
        n = int(torch.randint(1, setting.max_boxes + 1, (1,), generator=g))
        wh = 8 + torch.rand(n, 2, generator=g) * 300
        xy = torch.rand(n, 2, generator=g) * (640 - wh)
        boxes = torch.cat([xy, xy + wh], 1)
        labels = torch.randint(0, setting.classes, (n,), generator=g)
        targets.append({"boxes": boxes, "labels": labels})
        found = torch.rand(n, generator=g) < 0.8
        hits = boxes[found] + 0.1 * wh[found].repeat(1, 2) * torch.randn(int(found.sum()), 4, generator=g)
        num_false = setting.detections - hits.shape[0]
        fwh = 8 + torch.rand(num_false, 2, generator=g) * 300
        fxy = torch.rand(num_false, 2, generator=g) * (640 - fwh)
        det_boxes = torch.cat([hits, torch.cat([fxy, fxy + fwh], 1)])
        det_boxes = torch.cat([det_boxes[:, :2], torch.maximum(det_boxes[:, 2:], det_boxes[:, :2] + 1)], 1)
        scores = torch.cat([0.5 + 0.5 * torch.rand(hits.shape[0], generator=g), torch.rand(num_false, generator=g)])
        det_labels = torch.cat([labels[found], torch.randint(0, setting.classes, (num_false,), generator=g)])
        preds.append({"boxes": det_boxes, "scores": scores, "labels": det_labels})
    return preds, targets


def evaluate(backend: str, preds: list[dict[str, Tensor]], targets: list[dict[str, Tensor]]) -> dict[str, Tensor]:
    metric = MeanAveragePrecision(box_format="xyxy", iou_type="bbox", backend=backend)
    for p, t in zip(preds, targets):
        metric.update([p], [t])
    return metric.compute()


def same_results(a: dict[str, Tensor], b: dict[str, Tensor]) -> bool:
    keys = [k for k, v in a.items() if v.numel() == 1]
    return set(keys) <= set(b) and all(torch.allclose(a[k].float(), b[k].float(), atol=1e-6) for k in keys)


def main(argv: Sequence[str] | None = None) -> dict[str, list[dict[str, Any]]]:
    args = parse_args(__doc__.splitlines()[0], argv)
    settings = QUICK_SETTINGS if args.quick else FULL_SETTINGS if args.full else DEFAULT_SETTINGS
    print(f"# COCO evaluation, {describe_machine('cpu')}; median of {args.repeats}, interleaved\n")
    rows = []
    for setting in settings:
        preds, targets = make_eval_data(setting)
        results = {backend: evaluate(backend, preds, targets) for backend in (FAST, REFERENCE)}
        check = parity(same_results(results[FAST], results[REFERENCE]), f"map={float(results[FAST]['map']):.4f}")
        times = time_interleaved(
            {backend: (lambda b=backend: evaluate(b, preds, targets)) for backend in (FAST, REFERENCE)},
            args.repeats,
            args.warmup,
        )
        rows.append(
            {
                "setting": f"{setting.images} images, K={setting.classes}",
                "pycocotools ms": ms(times[REFERENCE]),
                "faster_coco_eval ms": ms(times[FAST]),
                "ratio (pycocotools/faster)": round(times[REFERENCE] / times[FAST], 2),
                "parity": check,
            }
        )
    print_table(rows)
    return {"speed": rows}


if __name__ == "__main__":
    main()
