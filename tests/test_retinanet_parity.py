"""Our batched matcher, loss and post-processing against torchvision's per-image RetinaNet code."""

from __future__ import annotations

import pytest
import torch
from torchvision.models.detection._utils import Matcher
from torchvision.ops import box_iou

from lightning_retina import RetinaNetModule
from lightning_retina.matching import BatchedMatcher
from lightning_retina.targets import pad_targets
from tests.conftest import random_targets

SIZE = 128


def _module(**kwargs) -> RetinaNetModule:
    torch.manual_seed(0)
    return RetinaNetModule(
        num_classes=5, backbone="resnet18", min_size=SIZE, max_size=SIZE, anchor_sizes=(8, 16, 32, 64, 128),
        metric=None, **kwargs,
    )


def _batch(generator: torch.Generator, num_images: int = 3, empty: tuple[int, ...] = (1,)):
    images = [torch.rand(3, SIZE, SIZE, generator=generator) for _ in range(num_images)]
    return images, random_targets(num_images, SIZE, 5, 12, generator, empty=empty)


def test_matcher_equals_torchvision_matcher(generator):
    anchors = _module().forward_heads([torch.rand(3, SIZE, SIZE)]).anchors[0]
    targets = random_targets(4, SIZE, 5, 15, generator, empty=(2,))
    ours = BatchedMatcher(0.5, 0.4)(pad_targets(targets), anchors.expand(4, -1, -1))
    reference = Matcher(0.5, 0.4, allow_low_quality_matches=True)
    for i, t in enumerate(targets):
        if t["boxes"].numel() == 0:
            assert (ours[i] == -1).all()
        else:
            assert torch.equal(ours[i], reference(box_iou(t["boxes"], anchors)))


@pytest.mark.parametrize("reg_loss", ["l1", "giou", "ciou", "diou", "smooth_l1"])
def test_loss_equals_torchvision_compute_loss(generator, reg_loss):
    module = _module(reg_loss=reg_loss, normalization="per_image").train()
    module.model.head.regression_head._loss_type = reg_loss
    images, targets = _batch(generator)
    out = module.forward_heads(images, targets)
    ours = module.loss_fn(out.head_outputs, out.anchors, out.targets)
    if reg_loss == "smooth_l1":  # torchvision's smooth-L1 has beta=1.0 hard-wired; compare at that beta
        module.loss_fn.smooth_l1_beta = 1.0
        ours = module.loss_fn(out.head_outputs, out.anchors, out.targets)
    theirs = module.model.to_torchvision().compute_loss(out.targets, out.head_outputs, list(out.anchors))
    torch.testing.assert_close(ours["loss_cls"], theirs["classification"], rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(ours["loss_reg"], theirs["bbox_regression"], rtol=1e-5, atol=1e-7)


def test_compute_losses_equals_torchvision_forward(generator):
    """The whole training path (transform, backbone, head, anchors, loss) against torchvision's own forward."""
    module = _module(normalization="per_image", reg_loss="l1").train()  # torchvision's default box loss is L1
    images, targets = _batch(generator)
    theirs = module.model.to_torchvision()(images, [dict(t) for t in targets])
    ours = module.compute_losses(images, targets)
    torch.testing.assert_close(ours["loss_cls"], theirs["classification"], rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(ours["loss_reg"], theirs["bbox_regression"], rtol=1e-5, atol=1e-7)


def test_gradients_equal_torchvision(generator):
    module = _module(normalization="per_image", reg_loss="giou").train()
    module.model.head.regression_head._loss_type = "giou"
    images, targets = _batch(generator)
    out = module.forward_heads(images, targets)
    logits = out.head_outputs["cls_logits"].detach().requires_grad_()
    deltas = out.head_outputs["bbox_regression"].detach().requires_grad_()
    heads = {"cls_logits": logits, "bbox_regression": deltas}
    sum(module.loss_fn(heads, out.anchors, out.targets).values()).backward()
    ours = logits.grad.clone(), deltas.grad.clone()
    logits.grad = deltas.grad = None
    sum(module.model.to_torchvision().compute_loss(out.targets, heads, list(out.anchors)).values()).backward()
    torch.testing.assert_close(ours[0], logits.grad, rtol=1e-4, atol=1e-8)
    torch.testing.assert_close(ours[1], deltas.grad, rtol=1e-4, atol=1e-8)


def test_batch_normalization_divides_by_total_foreground(generator):
    module = _module(normalization="batch").train()
    images, targets = _batch(generator, empty=())
    out = module.forward_heads(images, targets)
    matched = module.loss_fn.matcher(pad_targets(out.targets), out.anchors)
    fg = (matched >= 0).sum(dim=1).float()
    batch = module.loss_fn(out.head_outputs, out.anchors, out.targets)
    module.loss_fn.normalization = "per_image"
    per_image_sums = [
        module.loss_fn(
            {k: v[i : i + 1] for k, v in out.head_outputs.items()}, out.anchors[i : i + 1], out.targets[i : i + 1]
        )
        for i in range(len(images))
    ]
    for key in ("loss_cls", "loss_reg"):
        expected = sum(p[key] * n.clamp(min=1) for p, n in zip(per_image_sums, fg)) / fg.sum()
        torch.testing.assert_close(batch[key], expected, rtol=1e-5, atol=1e-7)


def test_postprocess_equals_torchvision(generator):
    module = _module(score_thresh=0.3).eval()
    torch.nn.init.normal_(module.model.head.classification_head.cls_logits.bias, 0.0, 1.0)  # many candidates
    images = [torch.rand(3, SIZE, SIZE, generator=generator), torch.rand(3, 96, SIZE, generator=generator)]
    with torch.no_grad():
        ours = module(images)
        theirs = module.model.to_torchvision()(images)
    assert sum(len(d["scores"]) for d in ours) > 50
    for a, b in zip(ours, theirs):
        oa, ob = a["scores"].argsort(descending=True), b["scores"].argsort(descending=True)
        torch.testing.assert_close(a["scores"][oa], b["scores"][ob])
        torch.testing.assert_close(a["boxes"][oa], b["boxes"][ob])
        assert torch.equal(a["labels"][oa], b["labels"][ob])
