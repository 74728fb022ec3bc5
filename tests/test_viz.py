"""Drawn detections: class colours, filled tags, line width and text that scale with the image."""

from __future__ import annotations

import torch

from lightning_retina.viz import PALETTE, class_color, draw_detections


def _colour_count(drawn: torch.Tensor, colour: tuple[int, int, int]) -> int:
    return int((drawn == torch.tensor(colour, dtype=torch.uint8)[:, None, None]).all(0).sum())


def test_each_class_gets_its_palette_colour_in_box_and_filled_tag():
    assert len(set(PALETTE)) == len(PALETTE) and class_color(len(PALETTE) + 2) == PALETTE[2]
    image = torch.full((3, 200, 300), 0.5)
    det = {"boxes": torch.tensor([[20.0, 60, 120, 180], [150, 80, 280, 190]]), "scores": torch.tensor([0.9, 0.8]),
           "labels": torch.tensor([0, 1])}  # fmt: skip
    drawn = draw_detections(image, det, ["a", "b"])
    assert drawn.dtype == torch.uint8 and drawn.shape == (3, 200, 300)
    for label, (x1, y1, x2, _) in zip((0, 1), det["boxes"].int().tolist()):
        colour = torch.tensor(class_color(label), dtype=torch.uint8)
        assert torch.equal(drawn[:, y1 + 1, (x1 + x2) // 2], colour)  # the box's top edge, 2 px wide
        tag = drawn[:, y1 - 12 : y1 - 2, x1 : x1 + 30]  # the tag above the box, filled around its text
        assert (tag == colour[:, None, None]).all(0).float().mean() > 0.25


def test_line_width_and_text_size_scale_with_the_image():
    counts = []
    for side in (400, 1600):
        image = torch.full((3, side, side), 0.5)
        det = {"boxes": torch.tensor([[0.2, 0.3, 0.7, 0.8]]) * side, "scores": torch.tensor([0.9]),
               "labels": torch.tensor([3])}  # fmt: skip
        counts.append(_colour_count(draw_detections(image, det, ["a", "b", "c", "name"]), class_color(3)))
    assert counts[1] > 8 * counts[0]  # area of lines and tag grows about with side² (here 16x)


def test_below_threshold_is_not_drawn():
    image = torch.full((3, 100, 100), 0.5)
    det = {"boxes": torch.tensor([[10.0, 20, 60, 70]]), "scores": torch.tensor([0.2]), "labels": torch.tensor([0])}
    drawn = draw_detections(image, det, ["a"], score_thresh=0.3)
    assert torch.equal(drawn, torch.full((3, 100, 100), 128, dtype=torch.uint8))
