"""The training sampler: seeded shuffling split over DDP ranks, mid-epoch resume and one augmentation seed per sample.

An exact resume needs two things a plain ``DistributedSampler`` does not give: the resumed epoch must continue
with the batches the interrupted run had not trained on yet (not replay the epoch from its start), and every
sample must get the random augmentation it would have got without the interruption. The first is
:meth:`ResumableDistributedSampler.start_at`; for the second the sampler yields :class:`SampleKey` s, and the data
set seeds each sample's augmentation with ``key.seed`` (see ``RecordDataset.__getitem__``), a function of
``(seed, epoch, index)`` alone: the same whatever the rank, the batch, the loader worker or the position in the
epoch, and independent of the global RNG.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

import numpy as np
from torch.utils.data import Dataset, DistributedSampler


class SampleKey(NamedTuple):
    """What :class:`ResumableDistributedSampler` yields and ``RecordDataset.__getitem__`` accepts.

    Attributes:
        index: the item of the data set.
        seed: the seed of this item's random augmentation in this epoch (see :func:`sample_seed`).
    """

    index: int
    seed: int


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """The augmentation seed of item ``index`` in ``epoch``: well mixed, so nearby items and epochs are unrelated.

    Args:
        seed: the run's shuffle seed (any int; taken modulo ``2**64``).
        epoch: the epoch (``>= 0``).
        index: the data set item (``>= 0``).

    Returns:
        an int in ``[0, 2**64)``, what ``torch.manual_seed`` accepts.
    """
    entropy = [seed % 2**64, epoch, index]
    return int(np.random.SeedSequence(entropy).generate_state(1, dtype=np.uint64)[0])


class ResumableDistributedSampler(DistributedSampler):
    """A seeded :class:`~torch.utils.data.DistributedSampler` that can start an epoch part-way and seeds each sample.

    The order of epoch ``e`` is ``DistributedSampler``'s (a permutation drawn from ``seed + e``, padded and split
    over the ranks); Lightning calls :meth:`set_epoch` at the start of every epoch. Items come out as
    :class:`SampleKey` ``(index, sample_seed(seed, epoch, index))``.

    :meth:`start_at` makes the next iteration begin after the first ``num_done`` samples of this rank's share of
    an epoch; the iteration after it is a whole epoch again. ``len()`` stays the whole share, so the number of
    batches in an epoch (what the trainer counts its progress against) does not change with a resume.

    Args:
        dataset: the data set (its length is all the sampler uses).
        num_replicas: processes sharing the epoch.
        rank: this process.
        seed: the shuffle seed, also the base of the augmentation seeds.
    """

    def __init__(self, dataset: Dataset, num_replicas: int, rank: int, seed: int = 0) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed)
        self._start: tuple[int, int] | None = None

    def start_at(self, epoch: int, num_done: int) -> None:
        """Begin the next iteration in ``epoch`` after the first ``num_done`` samples of this rank's share.

        Raises:
            ValueError: for an epoch below 0 or ``num_done`` outside ``0..len(self)``.
        """
        if epoch < 0 or not 0 <= num_done <= self.num_samples:
            raise ValueError(
                f"cannot start epoch {epoch} after {num_done} samples: a rank's share of an epoch has "
                f"{self.num_samples} samples"
            )
        self.set_epoch(epoch)
        self._start = (epoch, num_done)

    def __iter__(self) -> Iterator[SampleKey]:
        indices = list(super().__iter__())
        skip = 0
        if self._start is not None:
            epoch, skip = self._start
            self._start = None
            if epoch != self.epoch:  # the trainer moved on to another epoch: that one is whole
                skip = 0
        return iter([SampleKey(i, sample_seed(self.seed, self.epoch, i)) for i in indices[skip:]])
