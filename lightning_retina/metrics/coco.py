"""COCO mAP (torchmetrics ``MeanAveragePrecision``) that syncs when processes evaluated different numbers of images."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor
from torchmetrics.detection import MeanAveragePrecision


def _to(value: Any, device: torch.device) -> Any:
    """``value`` on ``device`` when it is a tensor (segmentation states hold tuples and are left as they are)."""
    return value.to(device) if isinstance(value, Tensor) else value


class COCOMeanAveragePrecision(MeanAveragePrecision):
    """``torchmetrics.detection.MeanAveragePrecision`` whose DDP sync gathers each per-image state list whole.

    torchmetrics keeps one tensor per image in list states without a reduction and gathers them one tensor at a
    time, so two processes that evaluated 3 and 2 images (an unpadded evaluation sampler, which a correct mAP needs)
    issue different numbers of collectives: gloo aborts and NCCL hangs. Here every state list is gathered with a
    single ``all_gather_object`` per state, the same number of calls on every process whatever it holds, and the
    lists are concatenated in rank order (the AP does not depend on the order of images). Arguments and results
    are those of the parent class.
    """

    def _sync_dist(self, dist_sync_fn: Callable | None = None, process_group: Any | None = None) -> None:
        group = process_group or self.process_group
        world_size = dist.get_world_size(group=group)
        for attr in self._reductions:
            local = [_to(value, torch.device("cpu")) for value in getattr(self, attr)]
            gathered: list[list[Any] | None] = [None] * world_size
            dist.all_gather_object(gathered, local, group=group)
            setattr(self, attr, [_to(value, self.device) for part in gathered for value in part])
