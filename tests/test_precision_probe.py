"""The bf16 guard: ``fast_precision`` only picks bf16 on a CPU whose bf16 training probe is right, and a non-finite
gradient stops training at the step it appears, naming the parameters.

Regression for the README test command going NaN at step 1 on a 2-core Sapphire Rapids (AMX): two bf16 smoke runs
failed only after other tests had run in the same process, i.e. depending on what freed memory held. The cause, found
with the gradient check below on an AVX512-BF16 AMD EPYC once freed memory was filled with NaN: the bf16 CPU backward of
a 3x3 stride-2 convolution whose input map is one pixel wide reads unwritten memory into its weight gradient
(``test_bf16_stride2_conv_on_a_one_pixel_map``, a few lines). RetinaNet's P6/P7 are such convolutions at small inputs;
they now run in float32 (``Float32P6P7``). Here the freed memory is filled with NaN on purpose before the smoke
training (the ablation's ``--smoke --steps 3`` recipe).
"""

from __future__ import annotations

import math
import warnings

import pytest
import torch
import torch.nn.functional as F
from lightning.pytorch import Callback

from lightning_retina import precision
from lightning_retina.backbone import Float32P6P7
from lightning_retina.data import DetectionDataModule
from lightning_retina.demo import DemoConfig, build_demo_module, build_demo_trainer
from tests.reliability.conftest import fixed_order_loader, quiet_trainer, tiny_module, train_dataset


@pytest.fixture
def fresh_probe():
    """The probe's cached verdict is cleared before and after the test (it runs once per process otherwise)."""
    precision.cpu_bf16_probe.cache_clear()
    yield
    precision.cpu_bf16_probe.cache_clear()


def _conv_broken_in_bf16(monkeypatch: pytest.MonkeyPatch, make_wrong) -> None:
    """``F.conv2d`` (what ``nn.Conv2d`` calls) returns ``make_wrong(out)`` for bf16 inputs, the right value otherwise."""
    conv2d = F.conv2d

    def broken(input, *args, **kwargs):  # noqa: A002 - torch's own argument name
        out = conv2d(input, *args, **kwargs)
        return make_wrong(out) if out.dtype == torch.bfloat16 else out

    monkeypatch.setattr(F, "conv2d", broken)


def _p6p7_weight_gradients(block: torch.nn.Module) -> list[torch.Tensor]:
    """Weight gradients of a P6/P7 block on a one-pixel C5 (64-px input at stride 32 and below), bf16 autocast."""
    c5 = torch.randn(2, 128, 1, 1)
    precision._poison_freed_memory()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        p, _ = block([torch.randn(2, 64, 1, 1)], [c5], ["p5"])
    sum(level.float().sum() for level in p[1:]).backward()
    return [block.p6.weight.grad, block.p7.weight.grad]


@pytest.mark.skipif(not precision.cpu_supports_bf16(), reason="CPU lacks AVX512-BF16/AMX: no bf16 kernels to check")
def test_p6_p7_gradients_stay_finite_on_one_pixel_maps_under_bf16():
    """The block RetinaNet uses: finite gradients on the maps where oneDNN's bf16 kernel reads unwritten memory
    (with torchvision's ``LastLevelP6P7`` the same check gave NaN on this project's AVX512-BF16 CPU)."""
    for _ in range(4):
        torch.manual_seed(0)
        grads = _p6p7_weight_gradients(Float32P6P7(128, 64))
        assert all(bool(torch.isfinite(g).all()) for g in grads)


def test_float32_p6_p7_equals_torchvision_block_in_float32():
    """Same parameters, same maths as torchvision's block (only the dtype under autocast differs)."""
    from torchvision.ops.feature_pyramid_network import LastLevelP6P7

    torch.manual_seed(0)
    ours = Float32P6P7(128, 64)
    theirs = LastLevelP6P7(128, 64)
    theirs.load_state_dict(ours.state_dict())
    p, c = [torch.randn(2, 64, 4, 4)], [torch.randn(2, 128, 4, 4)]
    out_ours, names_ours = ours(list(p), c, ["p5"])
    out_theirs, names_theirs = theirs(list(p), c, ["p5"])
    assert names_ours == names_theirs == ["p5", "p6", "p7"]
    for a, b in zip(out_ours, out_theirs):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize(
    ("make_wrong", "reason"),
    [
        (lambda out: out.masked_fill(torch.rand(out.shape) < 0.01, math.nan), "non-finite bf16 gradient"),
        (lambda out: out * 3.0, "away from float32"),
    ],
    ids=["garbage-nan", "wrong-values"],
)
def test_a_wrong_bf16_kernel_makes_fast_precision_fall_back_to_float32(fresh_probe, monkeypatch, make_wrong, reason):
    _conv_broken_in_bf16(monkeypatch, make_wrong)
    monkeypatch.setattr(precision, "cpu_supports_bf16", lambda: True)
    assert reason in precision.cpu_bf16_probe()
    with pytest.warns(RuntimeWarning, match=f"bf16 training is not used on this CPU: .*{reason}"):
        assert precision.fast_precision("cpu") == "32-true"


def test_probe_leaves_the_callers_random_stream_alone(fresh_probe):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    precision.cpu_bf16_probe()
    torch.testing.assert_close(torch.rand(3), expected, rtol=0, atol=0)


@pytest.mark.skipif(not precision.cpu_supports_bf16(), reason="CPU lacks AVX512-BF16/AMX: no bf16 path to guard")
def test_smoke_training_with_the_picked_precision_stays_finite_after_nan_filled_memory(tmp_path):
    """The failing README-suite case: the ablation smoke recipe, 3 steps, at the precision ``fast_precision`` picks
    (bf16 wherever the probe passes), right after freed memory was filled with NaN."""
    config = DemoConfig(data_dir=str(tmp_path / "shapes"), num_train=8, num_val=4, image_size=64, input_size=64,
                        batch_size=4, num_workers=0)  # fmt: skip
    data = DetectionDataModule("shapes", config.data_dir, batch_size=4, num_workers=0, shapes_num_train=8,
                               shapes_num_val=4, shapes_image_size=64, shapes_format="voc")  # fmt: skip
    data.prepare_data()
    losses: list[float] = []

    class Record(Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            losses.append(float(outputs["loss"]))

    torch.manual_seed(0)
    module = build_demo_module(config, list(data.class_names), max_steps=3)
    trainer = build_demo_trainer(config, [Record()], max_steps=3, enable_progress_bar=False)
    precision._poison_freed_memory()
    trainer.fit(module, datamodule=data)
    assert len(losses) == 3 and all(math.isfinite(v) for v in losses), (trainer.precision, losses)


def test_non_finite_gradient_stops_at_its_step_naming_the_parameter(tmp_path):
    module = tiny_module()
    module.model.head.regression_head.bbox_reg.weight.register_hook(lambda grad: grad * math.nan)
    with pytest.raises(FloatingPointError, match=r"Non-finite gradient at global step 0 in 1 parameter\(s\): "
                                                 r"model\.head\.regression_head\.bbox_reg\.weight"):  # fmt: skip
        quiet_trainer(max_steps=2).fit(module, fixed_order_loader(train_dataset(tmp_path, 4)))


def test_non_finite_gradient_with_skip_nonfinite_leaves_the_weights_unchanged(tmp_path):
    module = tiny_module(skip_nonfinite=True)
    module.model.head.regression_head.bbox_reg.weight.register_hook(lambda grad: grad * math.nan)
    before = {name: p.detach().clone() for name, p in module.named_parameters()}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet_trainer(max_steps=1).fit(module, fixed_order_loader(train_dataset(tmp_path, 2)))
    assert module.skipped_steps == 1
    assert any("Non-finite gradient at global step 0" in str(w.message) for w in caught)
    for name, p in module.named_parameters():
        assert torch.equal(p.detach(), before[name]), name
