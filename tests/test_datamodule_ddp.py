"""Two-process CPU DDP (ddp_spawn, gloo): every validation image is evaluated once and the mAP is the 1-process one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from lightning.pytorch import LightningModule, Trainer
from torch import Tensor

from lightning_retina.data import SHAPES_CLASSES, DetectionDataModule
from lightning_retina.metrics import VOCMeanAveragePrecision

NUM_VAL = 5  # odd: a padding sampler would repeat one image


def jittered_predictions(target: dict) -> dict[str, Tensor]:
    """Ground truth moved by a few pixels plus one random false positive, seeded by the image id (same on any rank)."""
    g = torch.Generator().manual_seed(int(target["image_id"]))
    boxes = target["boxes"]
    noisy = boxes + torch.randn(boxes.shape, generator=g) * 4
    xy = torch.rand(1, 2, generator=g) * 40
    false_positive = torch.cat([xy, xy + 10], dim=1)
    return {
        "boxes": torch.cat([noisy, false_positive]),
        "scores": torch.rand(boxes.shape[0] + 1, generator=g),
        "labels": torch.cat([target["labels"], torch.randint(0, len(SHAPES_CLASSES), (1,), generator=g)]),
    }


class RecordingModule(LightningModule):
    """A stand-in detector: validation feeds jittered ground truth to the VOC metric and records the image ids."""

    def __init__(self, out_dir: str) -> None:
        super().__init__()
        self.out_dir = Path(out_dir)
        self.norm = torch.nn.BatchNorm1d(1)  # parameters and buffers, so DDP has something to sync
        self.metric = VOCMeanAveragePrecision(class_names=SHAPES_CLASSES)
        self.seen: list[int] = []

    def training_step(self, batch, batch_idx: int) -> Tensor:
        images, _ = batch
        return self.norm(torch.stack([img.mean() for img in images])[:, None]).pow(2).mean()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.0)

    def on_validation_epoch_start(self) -> None:
        self.seen = []

    def validation_step(self, batch, batch_idx: int) -> None:
        images, targets = batch
        self.norm(torch.zeros(len(images), 1))
        self.metric.update([jittered_predictions(t) for t in targets], targets)
        self.seen += [t["image_id"] for t in targets]
        self.log("val/images", float(len(images)), batch_size=len(images), reduce_fx="sum", sync_dist=True)

    def on_validation_epoch_end(self) -> None:
        result = self.metric.compute()  # every rank computes: the states are gathered from all ranks
        self.metric.reset()
        record = {"seen": self.seen, "map": result["map"].item(), "map_per_class": result["map_per_class"].tolist()}
        (self.out_dir / f"rank{self.global_rank}.json").write_text(json.dumps(record))
        self.log("val/map", result["map"])


def one_process_map(dm: DetectionDataModule) -> dict[str, Tensor]:
    metric = VOCMeanAveragePrecision(class_names=SHAPES_CLASSES)
    dataset = dm.datasets["val"]
    for index in range(len(dataset)):
        _, target = dataset[index]
        metric.update([jittered_predictions(target)], [target])
    return metric.compute()


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is not available")
def test_each_val_image_once_and_same_map_as_one_process(tmp_path: Path) -> None:
    dm = DetectionDataModule("shapes", tmp_path / "data", batch_size=2, eval_batch_size=2, num_workers=0,
                             shapes_num_train=4, shapes_num_val=NUM_VAL, shapes_image_size=64)  # fmt: skip
    trainer = Trainer(
        accelerator="cpu", devices=2, strategy="ddp_spawn", max_epochs=1, limit_train_batches=1,
        num_sanity_val_steps=0, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False,
    )  # fmt: skip
    trainer.fit(RecordingModule(str(tmp_path)), datamodule=dm)

    records = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    dm.setup("validate")
    assert sorted(records[0]["seen"] + records[1]["seen"]) == sorted(dm.datasets["val"].image_ids)
    assert {len(r["seen"]) for r in records} == {2, 3}
    assert trainer.callback_metrics["val/images"].item() == NUM_VAL

    expected = one_process_map(dm)
    assert 0 < expected["map"].item() < 1
    for record in records:
        assert record["map"] == pytest.approx(expected["map"].item(), abs=1e-6)
        assert record["map_per_class"] == pytest.approx(expected["map_per_class"].tolist(), abs=1e-6)
