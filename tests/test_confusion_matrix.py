"""detection_confusion_matrix on hand-made cases, counted by hand."""

from __future__ import annotations

import pytest
import torch

from lightning_retina.metrics.confusion import detection_confusion_matrix


def _pred(boxes, scores, labels):
    return {"boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4), "scores": torch.tensor(scores),
            "labels": torch.tensor(labels, dtype=torch.int64)}  # fmt: skip


def _gt(boxes, labels, **flags):
    out = {"boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4), "labels": torch.tensor(labels)}
    return out | {k: torch.tensor(v) for k, v in flags.items()}


def test_hand_made_case() -> None:
    """Three classes (0 cat, 1 dog, 2 cow), background index 3; rows true class, columns predicted class."""
    image_1 = (
        _pred(
            [[0, 0, 10, 10],  # cat on the cat box: cat->cat
             [0, 0, 10, 9],  # a second cat on the same (taken) cat box: false positive cat
             [20, 20, 30, 30],  # dog on the cow box: cow->dog (confusion)
             [40, 40, 50, 50],  # cow on nothing: false positive cow
             [60, 60, 70, 70]],  # cow below the score threshold on the dog box: not counted
            [0.9, 0.8, 0.7, 0.6, 0.1], [0, 0, 1, 2, 2],
        ),
        _gt([[0, 0, 10, 10], [20, 20, 30, 30], [60, 60, 70, 70]], [0, 2, 1]),  # dog box missed: dog->background
    )  # fmt: skip
    image_2 = (
        _pred([[0, 0, 10, 10], [0, 0, 10, 10.5], [80, 80, 90, 90]], [0.5, 0.95, 0.9], [1, 1, 0]),
        # both dogs overlap the dog box; the higher score (0.95) takes it, the other is a false positive dog;
        # the cat at 80..90 sits on a crowd box: neither found nor false
        _gt([[0, 0, 10, 10], [80, 80, 90, 90]], [1, 0], iscrowd=[False, True]),
    )
    image_3 = (_pred([], [], []), _gt([[5, 5, 25, 25]], [2]))  # no detections: cow missed
    preds, targets = zip(image_1, image_2, image_3)
    matrix = detection_confusion_matrix(list(preds), list(targets), num_classes=3, score_threshold=0.25)
    expected = torch.tensor([
        # cat dog cow bg   (predicted)
        [1, 0, 0, 0],  # true cat
        [0, 1, 0, 1],  # true dog
        [0, 1, 0, 1],  # true cow
        [1, 1, 1, 0],  # background (false positives)
    ])  # fmt: skip
    assert matrix.tolist() == expected.tolist()


def test_same_class_box_is_preferred_over_a_better_overlapping_other_class_box() -> None:
    pred = _pred([[0, 0, 10, 10]], [0.9], [1])
    gt = _gt([[0, 0, 10, 10], [0, 0, 10, 8]], [0, 1])  # IoU 1.0 with the cat, 0.8 with the dog
    matrix = detection_confusion_matrix([pred], [gt], num_classes=2)
    assert matrix.tolist() == [[0, 0, 1], [0, 1, 0], [0, 0, 0]]


def test_iou_threshold_and_difficult_boxes() -> None:
    pred = _pred([[0, 0, 10, 10], [30, 30, 40, 40]], [0.9, 0.9], [0, 0])
    gt = _gt([[0, 0, 10, 4.9], [30, 30, 40, 40]], [0, 0], difficult=[False, True])  # IoU 0.49 < 0.5
    assert detection_confusion_matrix([pred], [gt], num_classes=1).tolist() == [[0, 1], [1, 0]]
    assert detection_confusion_matrix([pred], [gt], num_classes=1, iou_threshold=0.4).tolist() == [[1, 0], [0, 0]]


def test_bad_labels_raise_naming_the_image() -> None:
    with pytest.raises(ValueError, match=r"target\[0\]\['labels'\] has labels \[5\] outside 0..2"):
        detection_confusion_matrix([_pred([], [], [])], [_gt([[0, 0, 1, 1]], [5])], num_classes=3)
