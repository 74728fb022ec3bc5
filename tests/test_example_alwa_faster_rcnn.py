"""The ALWA example on torchvision Faster R-CNN runs a few CPU steps with two groups."""

import importlib.util
import math
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "alwa_faster_rcnn.py"


def load_example():
    spec = importlib.util.spec_from_file_location("alwa_faster_rcnn", EXAMPLE)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    return example


def test_example_trains_with_two_alwa_groups(tmp_path):
    example = load_example()
    module = example.main(max_steps=4, batch_size=2, interval=2, accelerator="cpu", default_root_dir=str(tmp_path))
    metrics = module.trainer.callback_metrics
    assert module.trainer.global_step == 4
    for cls_key, reg_key in example.GROUPS:
        weight = module.loss_weights[cls_key]
        assert math.isfinite(weight) and 1e-3 <= weight <= 1.0
        assert module.loss_weights[reg_key] == 1.0
        assert metrics[f"alwa/{cls_key}_weight"].item() == pytest.approx(weight)
        assert math.isfinite(metrics[f"alwa/{cls_key}_stat"].item())  # an update ran with finite statistics
        assert math.isfinite(metrics[f"alwa/{reg_key}_stat"].item())
