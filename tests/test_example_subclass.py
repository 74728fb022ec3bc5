"""examples/subclass.py fits and validates; a loss without a weight (or a weight without a loss) is refused."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest
import torch

from lightning_retina import RetinaNetModule

EXAMPLE = Path(__file__).parents[1] / "examples" / "subclass.py"


def _load_example():
    spec = importlib.util.spec_from_file_location("subclass_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_subclass_example_fits_and_validates() -> None:
    example = _load_example()
    module, metrics = example.main(max_steps=2)
    assert set(module.loss_weights) == {"loss_cls", "loss_reg", "loss_giou"}
    for key in ("val/loss", "val/loss_cls", "val/loss_reg", "val/loss_giou", "val/map"):
        assert key in metrics and math.isfinite(float(metrics[key])), key
    images, targets = example._random_batch()
    with torch.no_grad():
        losses = module.compute_losses(images, targets)
    expected = sum(module.loss_weights[k] * losses[k] for k in ("loss_cls", "loss_reg", "loss_giou"))
    assert torch.allclose(module.weighted_loss(losses), expected)  # the GIoU term is in the optimised sum


class AuxLoss(RetinaNetModule):
    def compute_losses(self, images, targets):
        losses = super().compute_losses(images, targets)
        return {**losses, "loss_aux": losses["loss_reg"] * 0.5}


def _tiny(cls=RetinaNetModule, **kwargs) -> RetinaNetModule:
    return cls(num_classes=2, backbone="resnet18", min_size=64, max_size=64, metric=None, fpn_channels=32, **kwargs)


def _batch():
    images = [torch.rand(3, 64, 64, generator=torch.Generator().manual_seed(0))]
    return images, [{"boxes": torch.tensor([[4.0, 4.0, 40.0, 40.0]]), "labels": torch.tensor([1])}]


def test_a_loss_without_a_weight_is_refused_at_the_first_step() -> None:
    with pytest.raises(ValueError, match=r"losses without a weight: \['loss_aux'\]") as info:
        _tiny(AuxLoss).training_step(_batch(), 0)
    assert "['loss_aux', 'loss_cls', 'loss_reg']" in str(info.value) and "['loss_cls', 'loss_reg']" in str(info.value)


def test_a_weight_without_a_loss_is_refused_at_the_first_step() -> None:
    module = _tiny()
    module.loss_weights["loss_extra"] = 1.0
    with pytest.raises(ValueError, match=r"weights without a loss: \['loss_extra'\]"):
        module.training_step(_batch(), 0)
