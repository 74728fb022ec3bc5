"""backbone_weights as a local ResNet state_dict file: loaded into the detector's ResNet, classifier ignored."""

from __future__ import annotations

import pytest
import torch
from torchvision.models import resnet18, resnet34

from lightning_retina.backbone import build_resnet_fpn


def test_a_classifier_of_another_size_is_ignored_and_every_backbone_weight_is_loaded(tmp_path):
    torch.manual_seed(0)
    classifier = resnet18(num_classes=4)
    path = tmp_path / "r18.pt"
    torch.save(classifier.state_dict(), path)
    body = build_resnet_fpn("resnet18", str(path), None, 32).body
    loaded = body.state_dict()
    compared = [k for k in classifier.state_dict() if not k.startswith("fc.") and "num_batches_tracked" not in k]
    assert len(compared) == 100  # every conv and BN tensor of ResNet-18 (FrozenBatchNorm2d keeps no counter)
    for key in compared:
        assert torch.equal(loaded[key], classifier.state_dict()[key]), key
    assert not body.conv1.weight.requires_grad and body.layer2[0].conv1.weight.requires_grad  # 3 stages train


def test_a_file_of_another_resnet_is_refused_naming_the_file(tmp_path):
    path = tmp_path / "r34.pt"
    torch.save(resnet34().state_dict(), path)
    with pytest.raises(ValueError, match="r34.pt.*does not fit"):
        build_resnet_fpn("resnet18", str(path), None, 32)


def test_a_file_without_a_state_dict_is_refused_naming_the_file(tmp_path):
    path = tmp_path / "list.pt"
    torch.save([1, 2], path)
    with pytest.raises(ValueError, match="list.pt holds a list"):
        build_resnet_fpn("resnet18", str(path), None, 32)


def test_a_file_that_is_not_a_torch_file_is_refused_naming_the_file(tmp_path):
    path = tmp_path / "notes.pt"
    path.write_text("[1, 2]")
    with pytest.raises(ValueError, match="notes.pt is not a readable state_dict file"):
        build_resnet_fpn("resnet18", str(path), None, 32)
