"""Mid-epoch resume under two-process CPU DDP (ddp_spawn, gloo): every rank continues its own share exactly.

A stand-in module records what each rank trains on (image ids and augmented boxes, flips and scale jitter on); a
run resumed from a checkpoint written after batch 3 of 4 (per rank) must see, rank by rank, exactly what the
uninterrupted run saw after that batch, the next epoch included.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from lightning.pytorch import LightningModule
from lightning.pytorch.callbacks import ModelCheckpoint
from torch import Tensor

from tests.reliability.conftest import quiet_trainer, shapes_datamodule

WORLD, BATCHES_PER_RANK, MID_STEP = 2, 4, 3
NUM_TRAIN = WORLD * BATCHES_PER_RANK * 2  # batch 2

pytestmark = pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is not available")


class SeenPerRank(LightningModule):
    """Writes ``rank<r>.json`` into ``out_dir``: per batch, the image ids and augmented boxes this rank trained on."""

    def __init__(self, out_dir: str) -> None:
        super().__init__()
        self.out_dir = out_dir
        self.weight = torch.nn.Parameter(torch.ones(1))
        self.seen: list[list[Any]] = []

    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        images, targets = batch
        self.seen.append([[int(t["image_id"]), t["boxes"].tolist()] for t in targets])
        return self.weight * torch.stack([img.mean() for img in images]).sum()

    def on_train_end(self) -> None:
        (Path(self.out_dir) / f"rank{self.global_rank}.json").write_text(json.dumps(self.seen))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _fit(out: Path, data: Path, ckpt_path: Path | None = None, **trainer_kwargs: Any) -> list[list[Any]]:
    """Fit 2 epochs on 2 processes; what each rank trained on."""
    out.mkdir()
    dm = shapes_datamodule(data, NUM_TRAIN, 2, train_flip=True, scale_jitter=(0.7, 1.3))
    trainer = quiet_trainer(devices=WORLD, strategy="ddp_spawn", max_epochs=2, **trainer_kwargs)
    trainer.fit(SeenPerRank(str(out)), datamodule=dm, ckpt_path=ckpt_path)
    return [json.loads((out / f"rank{rank}.json").read_text()) for rank in range(WORLD)]


def test_mid_epoch_resume_under_ddp_continues_each_ranks_share(tmp_path: Path) -> None:
    data = tmp_path / "data"
    shapes_datamodule(data, NUM_TRAIN, 2).prepare_data()  # written once, not raced by the ranks
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "ckpt", filename="{step}", save_top_k=-1,
                                 every_n_train_steps=MID_STEP)  # fmt: skip
    full = _fit(tmp_path / "full", data, callbacks=[checkpoint], enable_checkpointing=True)
    assert [len(seen) for seen in full] == [2 * BATCHES_PER_RANK] * WORLD
    first_epoch = [{i for batch in seen[:BATCHES_PER_RANK] for i, _ in batch} for seen in full]
    assert not first_epoch[0] & first_epoch[1] and len(first_epoch[0] | first_epoch[1]) == NUM_TRAIN

    resumed = _fit(tmp_path / "resumed", data, ckpt_path=tmp_path / "ckpt" / f"step={MID_STEP}.ckpt")
    for rank in range(WORLD):
        assert resumed[rank] == full[rank][MID_STEP:], f"rank {rank}"
