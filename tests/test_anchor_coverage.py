"""benchmarks.anchor_coverage: the measurement behind the ablation's anchor sizes."""

from __future__ import annotations

from pathlib import Path

import torch

from benchmarks.anchor_coverage import STRIDES, anchor_coverage, image_anchors, main, shapes_boxes
from lightning_retina.data import make_shapes_dataset
from lightning_retina.demo import demo_anchor_sizes


def test_a_box_equal_to_an_anchor_is_covered_and_a_tiny_one_is_not() -> None:
    anchors = image_anchors(64, (16, 32, 64, 128, 256))
    # P3 anchors are centred on multiples of the stride 8: the 16-px square around (8, 8) is one of them
    exact = anchor_coverage(torch.tensor([[0.0, 0.0, 16.0, 16.0]]), anchors)
    assert exact.covered == 1.0 and exact.median_best_iou == 1.0 and exact.positives_per_box >= 1
    tiny = anchor_coverage(torch.tensor([[30.0, 30.0, 32.0, 32.0]]), anchors)
    assert tiny.covered == 0.0 and tiny.positives_per_box == 0.0 and tiny.median_best_iou < 4 / 16**2 + 1e-6


def test_the_ablation_data_is_covered_by_twice_the_stride_and_not_by_the_demo_anchors(tmp_path: Path) -> None:
    root = make_shapes_dataset(tmp_path, "voc", num_train=40, num_val=0, image_size=96, seed=0,
                               objects_per_image=(1, 4), shape_sizes=(20, 48), crowd_probability=0.0)  # fmt: skip
    boxes = shapes_boxes(str(root), 96, images=40)
    demo = anchor_coverage(boxes, image_anchors(96, demo_anchor_sizes(96)))
    twice = anchor_coverage(boxes, image_anchors(96, tuple(2 * s for s in STRIDES)))
    assert demo.boxes == twice.boxes == len(boxes) > 40
    assert demo.covered < 0.5 and twice.covered == 1.0 and twice.positives_per_box > 4 * demo.positives_per_box


def test_the_command_names_a_malformed_annotation_file(tmp_path: Path, capsys) -> None:
    root = make_shapes_dataset(tmp_path / "data", "voc", num_train=2, num_val=0, image_size=64)
    (root / "VOCdevkit/VOC2007/Annotations/000001.xml").write_text("<annotation><object>")
    assert main([str(root), "--input-size", "64"]) == 2
    assert "000001.xml: malformed" in capsys.readouterr().err
