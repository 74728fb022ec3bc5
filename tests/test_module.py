"""RetinaNetModule: constructor checks, bad targets, the weighted-loss contract, NaN guard and overfitting."""

from __future__ import annotations

import pytest
import torch
from lightning.pytorch import Callback, Trainer
from torch.utils.data import DataLoader

from lightning_retina import RetinaNetModule
from tests.conftest import random_targets

SIZE = 128
QUIET = dict(logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)


def _module(**kwargs) -> RetinaNetModule:
    torch.manual_seed(0)
    defaults = dict(
        num_classes=3, backbone="resnet18", min_size=SIZE, max_size=SIZE, anchor_sizes=(8, 16, 32, 64, 128), metric=None
    )
    return RetinaNetModule(**{**defaults, **kwargs})


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"num_classes": 0}, "num_classes must be >= 1"),
        ({"cls_loss": "hinge"}, "Unknown cls_loss 'hinge'"),
        ({"reg_loss": "l3"}, "Unknown reg_loss 'l3'"),
        ({"normalization": "global"}, "Unknown normalization"),
        ({"backbone": "vgg16"}, "Unknown backbone 'vgg16'"),
        ({"metric": "f1"}, "Unknown metric 'f1'"),
        ({"loss_weights": {"loss_box": 1.0}}, "Unknown loss_weights keys \\['loss_box'\\]"),
        ({"fpn_channels": 100, "head_norm": "group"}, "fpn_channels must be positive .* got 100"),
        ({"trainable_backbone_layers": 6}, "trainable_backbone_layers must be in 0..5, got 6"),
    ],
)
def test_bad_constructor_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        _module(**kwargs)


# "" is a prefix of every parameter name: nothing trainable
@pytest.mark.parametrize(("trainable", "frozen_prefixes"), [(5, ()), (3, ("conv1", "bn1", "layer1")), (0, ("",))])
def test_fpn_channels_and_trainable_stages(trainable, frozen_prefixes):
    """The FPN outputs and every head conv have ``fpn_channels``; the frozen stages are torchvision's."""
    module = _module(fpn_channels=64, trainable_backbone_layers=trainable)
    features = module.model.backbone(torch.zeros(1, 3, SIZE, SIZE))
    assert [f.shape[1] for f in features.values()] == [64] * 5
    assert [f.shape[-1] for f in features.values()] == [SIZE // 2**level for level in range(3, 8)]
    head_convs = [m for m in module.model.head.modules() if isinstance(m, torch.nn.Conv2d)]
    assert all(conv.in_channels == 64 for conv in head_convs)
    frozen = {name for name, p in module.model.backbone.body.named_parameters() if not p.requires_grad}
    expected = {name for name, _ in module.model.backbone.body.named_parameters() if name.startswith(frozen_prefixes)}
    assert frozen == expected


def test_public_attributes():
    module = _module()
    for name in ("transform", "backbone", "head", "anchor_generator", "matcher", "box_coder", "inference"):
        assert hasattr(module.model, name)
    assert module.loss_fn.matcher is module.model.matcher and module.loss_fn.box_coder is module.model.box_coder
    assert module.loss_weights == {"loss_cls": 1.0, "loss_reg": 1.0}
    assert module.hparams.num_classes == 3


@pytest.mark.parametrize(
    ("boxes", "labels", "match"),
    [
        ([[10.0, 10, 5, 20]], [0], r"image 1, box 0: invalid box \[10.0, 10.0, 5.0, 20.0\]"),
        ([[10.0, 30, 20, 20]], [0], r"image 1, box 0: invalid box"),
        ([[float("nan"), 10, 20, 20]], [0], r"image 1, box 0: invalid box \[nan"),
        ([[1.0, 1, 9, 9], [10.0, 10, 20, 20]], [1, 3], r"image 1, box 1: label 3 is outside 0..2"),
        ([[1.0, 1, 9, 9]], [-1], r"image 1, box 0: label -1"),
    ],
)
def test_bad_targets_name_image_and_box(boxes, labels, match):
    good = {"boxes": torch.tensor([[1.0, 2, 30, 40]]), "labels": torch.tensor([0])}
    bad = {"boxes": torch.tensor(boxes), "labels": torch.tensor(labels)}
    with pytest.raises(ValueError, match=match):
        _module().compute_losses([torch.rand(3, SIZE, SIZE)] * 2, [good, bad])


def test_empty_images_train_with_zero_box_loss_and_finite_gradients():
    module = _module().train()
    empty = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}
    losses = module.compute_losses([torch.rand(3, SIZE, SIZE)] * 2, [empty, empty])
    assert losses["loss_reg"].item() == 0.0
    assert losses["loss_cls"].item() > 0
    sum(losses.values()).backward()
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert module.model.head.regression_head.bbox_reg.weight.grad is not None  # graph stays connected (DDP)


def test_zero_area_and_crowd_boxes_give_finite_losses():
    module = _module().train()
    target = {
        "boxes": torch.tensor([[10.0, 10, 10, 40], [20.0, 20, 80, 80], [5.0, 5, 60, 60]]),
        "labels": torch.tensor([0, 1, 2]),
        "iscrowd": torch.tensor([False, False, True]),
    }
    losses = module.compute_losses([torch.rand(3, SIZE, SIZE)], [target])
    assert all(torch.isfinite(v) for v in losses.values())


class _Boxes(torch.utils.data.Dataset):
    def __init__(self, n: int, generator: torch.Generator) -> None:
        self.images = [torch.rand(3, SIZE, SIZE, generator=generator) * 0.3 for _ in range(n)]
        self.targets = random_targets(n, SIZE, 3, 3, generator)
        for img, t in zip(self.images, self.targets):  # paint each box so the task is learnable
            for (x1, y1, x2, y2), lab in zip(t["boxes"].round().int().tolist(), t["labels"].tolist()):
                img[lab, y1:y2, x1:x2] = 1.0

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        return self.images[i], self.targets[i]


def _collate(batch):
    return tuple(zip(*batch))


class _KeepOutputs(Callback):
    def __init__(self) -> None:
        self.outputs = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.outputs.append(outputs)


def test_training_step_follows_weighted_loss_contract(generator):
    module = _module(loss_weights={"loss_cls": 0.5})
    keep = _KeepOutputs()
    loader = DataLoader(_Boxes(2, generator), batch_size=2, collate_fn=_collate)
    trainer = Trainer(max_steps=1, callbacks=[keep], **QUIET)
    trainer.fit(module, loader)
    (out,) = keep.outputs
    assert set(out) == {"loss", "loss_cls", "loss_reg"}
    assert not out["loss_cls"].requires_grad
    torch.testing.assert_close(out["loss"], 0.5 * out["loss_cls"] + 1.0 * out["loss_reg"])
    assert {"train/loss", "train/loss_cls", "train/loss_reg"} <= set(trainer.logged_metrics)


def test_nonfinite_loss_stops_with_step_and_components(generator):
    module = _module()
    with torch.no_grad():
        module.model.head.classification_head.cls_logits.bias.fill_(float("nan"))
    loader = DataLoader(_Boxes(2, generator), batch_size=2, collate_fn=_collate)
    trainer = Trainer(max_steps=2, **QUIET)
    with pytest.raises(
        FloatingPointError, match=r"at global step 0 \(batch 0\): loss_cls=nan, loss_reg=.*loss_weights="
    ):
        trainer.fit(module, loader)


def test_skip_nonfinite_skips_and_counts(generator):
    module = _module(skip_nonfinite=True)
    with torch.no_grad():
        module.model.head.classification_head.cls_logits.bias.fill_(float("nan"))
    loader = DataLoader(_Boxes(2, generator), batch_size=1, collate_fn=_collate)
    trainer = Trainer(max_epochs=1, **QUIET)
    before = {k: v.clone() for k, v in module.state_dict().items() if v.is_floating_point()}
    with pytest.warns(RuntimeWarning, match="skipping the step"):
        trainer.fit(module, loader)
    assert module.skipped_steps == 2
    assert trainer.logged_metrics["train/skipped_steps"] == 2
    after = module.state_dict()
    unchanged = (
        torch.allclose(after[k], v, rtol=0, atol=0, equal_nan=True) for k, v in before.items() if "running" not in k
    )
    assert all(unchanged), "a skipped step changed weights"


def test_tiny_model_overfits_four_images(generator):
    """ResNet-18, 128 px, 3 classes: 4 images are memorised to loss_cls < 0.1."""
    torch.set_num_threads(2)
    module = _module(
        head_norm="group", optimizer="adamw", lr=1e-3, weight_decay=0.0, warmup_steps=5, lr_schedule="constant"
    )
    loader = DataLoader(_Boxes(4, generator), batch_size=4, collate_fn=_collate)
    trainer = Trainer(max_steps=80, **QUIET)
    trainer.fit(module, loader)
    module.train()
    images, targets = next(iter(loader))
    with torch.no_grad():
        losses = module.compute_losses(images, targets)
    assert losses["loss_cls"] < 0.1, losses
    module.eval()
    with torch.no_grad():
        detections = module(images)
    hits = sum(
        set(d["labels"][d["scores"] > 0.5].tolist()) >= set(t["labels"].tolist()) for d, t in zip(detections, targets)
    )
    assert hits >= 3
