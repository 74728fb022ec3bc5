"""TorchvisionDetector: torchvision's detectors trained, validated and balanced by ALWA without glue."""

from __future__ import annotations

import pytest
import torch
from lightning.pytorch import Callback, Trainer
from torch.utils.data import DataLoader
from torchvision.models.detection import (
    fasterrcnn_mobilenet_v3_large_fpn,
    fcos_resnet50_fpn,
    maskrcnn_resnet50_fpn,
    retinanet_resnet50_fpn,
    ssdlite320_mobilenet_v3_large,
)

from lightning_retina.callbacks import ALWA
from lightning_retina.detectors import TorchvisionDetector

K = 2  # foreground classes, labels 0..K-1 as the DataModule gives them
TINY = {"weights": None, "weights_backbone": None, "min_size": 64, "max_size": 64}
BUILDERS = {  # name: (builder, num_classes the model is built with, expected offset, its loss names)
    "faster_rcnn": (lambda: fasterrcnn_mobilenet_v3_large_fpn(num_classes=K + 1, **TINY), 1,
                    {"loss_classifier", "loss_box_reg", "loss_objectness", "loss_rpn_box_reg"}),
    "mask_rcnn": (lambda: maskrcnn_resnet50_fpn(num_classes=K + 1, **TINY), 1,
                  {"loss_classifier", "loss_box_reg", "loss_objectness", "loss_rpn_box_reg", "loss_mask"}),
    "retinanet": (lambda: retinanet_resnet50_fpn(num_classes=K, **TINY), 0, {"classification", "bbox_regression"}),
    "fcos": (lambda: fcos_resnet50_fpn(num_classes=K, **TINY), 0,
             {"classification", "bbox_regression", "bbox_ctrness"}),
    "ssdlite": (lambda: ssdlite320_mobilenet_v3_large(num_classes=K + 1, weights=None, weights_backbone=None), 1,
                {"bbox_regression", "classification"}),
}  # fmt: skip


def _batch(n: int = 2, size: int = 64):
    g = torch.Generator().manual_seed(0)
    images = [torch.rand(3, size, size, generator=g) for _ in range(n)]
    targets = [
        {"boxes": torch.tensor([[4.0, 6.0, 40.0, 44.0], [30.0, 20.0, 60.0, 50.0]]), "labels": torch.tensor([0, 1]),
         "iscrowd": torch.tensor([False, False])}
        for _ in range(n)
    ]  # fmt: skip
    return images, targets


def _trainer(max_steps: int, callbacks=()) -> Trainer:
    return Trainer(max_steps=max_steps, accelerator="cpu", logger=False, enable_checkpointing=False,
                   enable_progress_bar=False, enable_model_summary=False, callbacks=list(callbacks),
                   num_sanity_val_steps=0)  # fmt: skip


@pytest.mark.parametrize("name", list(BUILDERS))
def test_fits_and_validates_with_the_models_own_losses(name: str) -> None:
    torch.manual_seed(0)
    build, offset, losses = BUILDERS[name]
    detector = TorchvisionDetector(build(), metric="voc", lr=1e-3, warmup_steps=0)
    assert detector.label_offset == offset and set(detector.loss_weights) == losses
    batch = _batch()
    trainer = _trainer(1)
    trainer.fit(detector, DataLoader([batch], batch_size=None))
    (metrics,) = trainer.validate(detector, DataLoader([batch], batch_size=None), verbose=False)
    assert 0.0 <= float(metrics["val/map"]) <= 1.0
    detector.eval()
    with torch.no_grad():
        raw, ours = detector.model(batch[0]), detector(batch[0])
    for r, o in zip(raw, ours):  # predictions shifted back into 0..K-1
        assert torch.equal(o["labels"], r["labels"] - offset) and torch.equal(o["boxes"], r["boxes"])


def test_a_label_0_box_trains_the_box_head_of_a_background_class_model() -> None:
    torch.manual_seed(0)
    model = fasterrcnn_mobilenet_v3_large_fpn(num_classes=K + 1, **TINY)
    detector = TorchvisionDetector(model)
    images, targets = _batch(n=1)
    targets = [{"boxes": targets[0]["boxes"][:1], "labels": torch.tensor([0])}]  # one box, class 0
    model.train()
    torch.manual_seed(1)
    unshifted = model(images, [dict(t) for t in targets])  # what the model alone does with label 0
    torch.manual_seed(1)
    shifted = detector.compute_losses(images, targets)
    assert float(unshifted["loss_box_reg"].detach()) == 0.0  # label 0 is background to torchvision: no box loss
    assert float(shifted["loss_box_reg"].detach()) > 0.0


def test_crowd_objects_are_left_out_and_mask_models_get_box_masks() -> None:
    detector = TorchvisionDetector(maskrcnn_resnet50_fpn(num_classes=K + 1, **TINY))
    images, targets = _batch(n=1)
    targets[0]["iscrowd"] = torch.tensor([False, True])
    (target,) = detector.model_targets(images, targets)
    assert target["labels"].tolist() == [1] and target["boxes"].tolist() == [[4.0, 6.0, 40.0, 44.0]]
    mask = target["masks"][0]
    assert mask.shape == (64, 64) and int(mask.sum()) == 36 * 38 and int(mask[6:44, 4:40].sum()) == 36 * 38


def test_loss_weights_must_match_the_models_losses() -> None:
    detector = TorchvisionDetector(retinanet_resnet50_fpn(num_classes=K, **TINY), loss_weights={"loss_cls": 1.0})
    with pytest.raises(ValueError, match=r"weights without a loss: \['loss_cls'\]"):
        detector.training_step(_batch(n=1), 0)


class _Record(Callback):
    def __init__(self) -> None:
        self.outputs: list[dict[str, float]] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.outputs.append({k: float(v) for k, v in outputs.items()})


def test_alwa_pools_fcos_regression_and_centerness() -> None:
    torch.manual_seed(0)
    detector = TorchvisionDetector(fcos_resnet50_fpn(num_classes=K, **TINY), metric=None, lr=1e-3, warmup_steps=0)
    record = _Record()
    group = ("classification", ("bbox_regression", "bbox_ctrness"))
    alwa = ALWA(interval=3, groups=[group], record="raw", log=False)
    batches = [_batch(n=1, size=64 + 8 * i) for i in range(3)]
    _trainer(3, [alwa, record]).fit(detector, DataLoader(batches, batch_size=None))
    cls = torch.tensor([o["classification"] for o in record.outputs], dtype=torch.float64)
    reg = torch.tensor([o["bbox_regression"] + o["bbox_ctrness"] for o in record.outputs], dtype=torch.float64)
    s_cls, s_reg = float(cls.std()), float(reg.std())  # ddof=1, the regression side is the sum of both terms
    expected = s_reg / s_cls if s_cls > s_reg else 1.0
    assert detector.loss_weights["classification"] == pytest.approx(expected, rel=1e-5)  # float32 sums in the callback
    assert detector.loss_weights["bbox_regression"] == detector.loss_weights["bbox_ctrness"] == 1.0


def test_alwa_group_forms() -> None:
    from lightning.pytorch.utilities.exceptions import MisconfigurationException

    assert ALWA(groups=[("a", "b")]).groups == (("a", "b"),)  # the pair form stays as it was
    assert ALWA(groups=[("a", ["b", "c"])]).groups == (("a", ("b", "c")),)
    for bad in ([("a", ())], [("a", ("b", ""))], [("a", ("b", "a"))], [("a", ("b", "c")), ("d", "c")]):
        with pytest.raises(MisconfigurationException):
            ALWA(groups=bad)
