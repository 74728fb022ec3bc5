"""Batching detection samples: images and targets stay per-image lists (sizes and box counts differ)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import Tensor


def collate_detection(batch: Sequence[tuple[Tensor, dict[str, Any]]]) -> tuple[list[Tensor], list[dict[str, Any]]]:
    """``[(image, target), ...]`` → ``([image, ...], [target, ...])``, the ``collate_fn`` of every loader here.

    Args:
        batch: samples with ``image`` a ``Tensor[3, H_i, W_i]`` and ``target`` a dict.

    Returns:
        The images and the targets as two lists of length ``len(batch)``.
    """
    return [image for image, _ in batch], [target for _, target in batch]
