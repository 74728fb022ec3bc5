"""An empty batch (``update([], [])``) is accepted by the VOC metric and changes nothing."""

from __future__ import annotations

import torch

from lightning_retina.metrics import VOCMeanAveragePrecision


def test_empty_update_alone_gives_no_ground_truth_result() -> None:
    metric = VOCMeanAveragePrecision()
    metric.update([], [])
    result = metric.compute()
    assert float(result["map"]) == -1.0 and result["map_per_class"].numel() == 0


def test_empty_update_between_batches_changes_nothing() -> None:
    # class 0: one box found (AP 1); class 1: one box, its only detection misses it (AP 0) -> mAP 0.5 by hand
    preds = [{"boxes": torch.tensor([[0.0, 0.0, 10.0, 10.0], [50.0, 50.0, 60.0, 60.0]]),
              "scores": torch.tensor([0.9, 0.8]), "labels": torch.tensor([0, 1])}]  # fmt: skip
    target = [{"boxes": torch.tensor([[0.0, 0.0, 10.0, 10.0], [20.0, 20.0, 30.0, 30.0]]),
               "labels": torch.tensor([0, 1])}]  # fmt: skip
    metric = VOCMeanAveragePrecision()
    metric.update([], [])
    metric.update(preds, target)
    metric.update([], [])
    result = metric.compute()
    assert float(result["map"]) == 0.5
    assert result["map_per_class"].tolist() == [1.0, 0.0]
