"""Shared pytest fixtures: small deterministic detection batches."""

from __future__ import annotations

import pytest
import torch


def random_targets(
    num_images: int,
    size: int,
    num_classes: int,
    max_boxes: int,
    generator: torch.Generator,
    empty: tuple[int, ...] = (),
) -> list[dict[str, torch.Tensor]]:
    """Random valid boxes (xyxy, at least 4 px wide) and labels; images listed in ``empty`` get no boxes."""
    targets = []
    for i in range(num_images):
        n = 0 if i in empty else int(torch.randint(1, max_boxes + 1, (1,), generator=generator))
        xy = torch.rand(n, 2, generator=generator) * (size - 8)
        wh = 4 + torch.rand(n, 2, generator=generator) * (size - 4 - xy).clamp(min=0)
        boxes = torch.cat([xy, (xy + wh).clamp(max=size)], dim=1)
        labels = torch.randint(0, num_classes, (n,), generator=generator)
        targets.append({"boxes": boxes, "labels": labels})
    return targets


@pytest.fixture
def generator() -> torch.Generator:
    return torch.Generator().manual_seed(0)
