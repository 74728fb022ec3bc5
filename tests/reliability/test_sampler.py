"""ResumableDistributedSampler: mid-epoch start per rank, a seed per sample; shuffle_seed apart from seed."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.utils.data import DistributedSampler

from lightning_retina.data.sampler import ResumableDistributedSampler, SampleKey, sample_seed
from tests.reliability.conftest import shapes_datamodule

SIZE, WORLD, SEED = 11, 2, 3  # 11 items over 2 ranks: DistributedSampler pads rank 1's share with a repeat


def _samplers(epoch: int) -> list[ResumableDistributedSampler]:
    samplers = [ResumableDistributedSampler(range(SIZE), WORLD, rank, seed=SEED) for rank in range(WORLD)]
    for sampler in samplers:
        sampler.set_epoch(epoch)
    return samplers


def test_order_is_distributed_samplers_and_each_key_carries_its_seed() -> None:
    for rank, sampler in enumerate(_samplers(epoch=2)):
        reference = DistributedSampler(range(SIZE), WORLD, rank, shuffle=True, seed=SEED)
        reference.set_epoch(2)
        keys = list(sampler)
        assert all(isinstance(key, SampleKey) for key in keys)
        assert [key.index for key in keys] == list(reference)
        assert [key.seed for key in keys] == [sample_seed(SEED, 2, key.index) for key in keys]
    assert len({sample_seed(SEED, epoch, index) for epoch in range(3) for index in range(SIZE)}) == 3 * SIZE


@pytest.mark.parametrize("num_done", [0, 2, 5, 6])
def test_start_at_continues_each_ranks_share_then_whole_epochs(num_done: int) -> None:
    for whole, resumed in zip(_samplers(epoch=1), _samplers(epoch=0)):
        resumed.start_at(1, num_done)
        assert len(resumed) == len(whole) == 6  # the trainer's count of batches does not change
        assert list(resumed) == list(whole)[num_done:]
        assert list(resumed) == list(whole)  # only the first iteration starts part-way
        resumed.start_at(1, num_done)
        resumed.set_epoch(2)  # the trainer moved on before iterating: that epoch is whole
        whole.set_epoch(2)
        assert list(resumed) == list(whole)


@pytest.mark.parametrize(("epoch", "num_done"), [(-1, 0), (0, -1), (0, 7)])
def test_start_at_refuses_positions_outside_the_share(epoch: int, num_done: int) -> None:
    with pytest.raises(ValueError, match=f"cannot start epoch {epoch} after {num_done} samples: .* 6 samples"):
        _samplers(0)[0].start_at(epoch, num_done)


def test_a_key_fixes_the_augmentation_whatever_the_global_rng(tmp_path: Path) -> None:
    dm = shapes_datamodule(tmp_path, num_train=2, num_val=1, train_flip=True, photometric=True, scale_jitter=(0.5, 1.5))
    dm.prepare_data()
    dm.setup("fit")
    dataset = dm.datasets["train"]
    key = SampleKey(1, sample_seed(0, 0, 1))
    torch.manual_seed(1)
    image, target = dataset[key]
    rng = torch.get_rng_state()
    torch.manual_seed(2)
    again, again_target = dataset[key]
    torch.manual_seed(1)
    dataset[key]
    assert torch.equal(torch.get_rng_state(), rng)  # the global RNG is left as it was
    assert torch.equal(image, again) and torch.equal(target["boxes"], again_target["boxes"])
    others = {dataset[SampleKey(1, sample_seed(0, epoch, 1))][1]["boxes"].sum().item() for epoch in range(1, 9)}
    assert len(others) > 1  # other seeds draw other augmentations


def _train_order(dm) -> list[int]:
    dm.prepare_data()
    dm.setup("fit")
    return [int(t["image_id"]) for _, targets in dm.train_dataloader() for t in targets]


def test_shuffle_seed_changes_the_order_not_the_data(tmp_path: Path) -> None:
    root = tmp_path / "shapes"
    default, same, other = (shapes_datamodule(root, 8, 1, seed=0, **kw) for kw in ({}, {"shuffle_seed": 0},
                                                                                   {"shuffle_seed": 1}))  # fmt: skip
    files = {p: p.read_bytes() for p in _written(default, root)}
    assert _train_order(default) == _train_order(same)
    assert _train_order(other) != _train_order(default)
    assert {p: p.read_bytes() for p in _written(other, root)} == files  # the shapes set was not regenerated


def _written(dm, root: Path) -> list[Path]:
    dm.prepare_data()
    return sorted(p for p in root.rglob("*") if p.is_file())
