"""The only place where the package reaches into other libraries' private (undocumented) internals, and why.

Each entry has no public replacement in the versions it was checked against (Lightning 2.6.6, torchmetrics 1.9.0);
when one appears, change it here and nowhere else.

- :class:`UnrepeatedDistributedSampler`: Lightning's unpadded ``DistributedSampler`` (each item once over all ranks,
  ranks may differ by one item). It lives in ``lightning.pytorch.overrides.distributed``, which Lightning does not
  document; Lightning itself wraps samplers in it for ``predict``. Evaluation loaders use it so that the mAP sees every
  image exactly once (a padded sampler repeats images; lightning #5060, #7929).
- :class:`GatherListStatesOnce`: overrides torchmetrics' private ``Metric._sync_dist`` and reads its private
  ``_reductions`` (the state names). torchmetrics gathers list states one tensor at a time, so processes holding
  different numbers of images issue different numbers of collectives (gloo aborts, NCCL hangs); the public
  ``dist_sync_fn`` argument is called once per tensor and cannot change that count.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as dist
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from torch import Tensor

__all__ = ["GatherListStatesOnce", "UnrepeatedDistributedSampler"]


def _to(value: Any, device: torch.device) -> Any:
    """``value`` on ``device`` when it is a tensor (segmentation states hold tuples and are left as they are)."""
    return value.to(device) if isinstance(value, Tensor) else value


class GatherListStatesOnce:
    """Mixin for a torchmetrics ``Metric`` whose states are all lists without a reduction (put it first in the bases):
    each state is gathered with one ``all_gather_object``, the same number of calls on every process whatever it
    holds, and the per-rank lists are concatenated in rank order."""

    def _sync_dist(self, dist_sync_fn: Callable | None = None, process_group: Any | None = None) -> None:
        group = process_group or self.process_group  # type: ignore[attr-defined]
        world_size = dist.get_world_size(group=group)
        for attr in self._reductions:  # type: ignore[attr-defined]
            local = [_to(value, torch.device("cpu")) for value in getattr(self, attr)]
            gathered: list[list[Any] | None] = [None] * world_size
            dist.all_gather_object(gathered, local, group=group)
            setattr(self, attr, [_to(value, self.device) for part in gathered for value in part])  # type: ignore[attr-defined]
