"""The module's inference API: eval-mode safety and the accepted image forms (list, batch, single, uint8, files)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from tests.reliability.conftest import tiny_module


@pytest.fixture(scope="module")
def module():
    model = tiny_module(score_thresh=0.0)
    torch.nn.init.normal_(model.model.head.classification_head.cls_logits.bias, -1.0, 1.0)
    return model


def _same(a: list[dict[str, torch.Tensor]], b: list[dict[str, torch.Tensor]]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.keys() == y.keys()
        for key in x:
            torch.testing.assert_close(x[key], y[key], rtol=0, atol=0)


def test_forward_refuses_train_mode(module):
    module.train()
    with pytest.raises(RuntimeError, match=r"eval mode .* module\.eval\(\)"):
        module([torch.rand(3, 64, 64)])


def test_predict_images_runs_in_eval_mode_and_restores_the_mode(module):
    images = [torch.rand(3, 64, 64, generator=torch.Generator().manual_seed(i)) for i in range(2)]
    module.train()
    running = {k: v.clone() for k, v in module.state_dict().items() if "running" in k}
    ours = module.predict_images(images)
    assert module.training  # mode restored
    for key, value in running.items():
        assert torch.equal(module.state_dict()[key], value), key  # BatchNorm statistics untouched
    module.eval()
    with torch.no_grad():
        _same(ours, module(images))
    assert sum(len(d["scores"]) for d in ours) > 0


def test_batch_single_uint8_and_file_inputs_equal_the_float_list(module, tmp_path):
    pixels = np.random.default_rng(0).integers(0, 256, (2, 64, 48, 3), dtype=np.uint8)
    as_uint8 = torch.from_numpy(pixels).permute(0, 3, 1, 2).contiguous()  # [B, 3, H, W] (layout matters to 1e-5)
    as_float = [image.float() / 255 for image in as_uint8]
    paths = []
    for i, array in enumerate(pixels):
        paths.append(tmp_path / f"{i}.png")
        Image.fromarray(array).save(paths[-1])
    reference = module.predict_images(as_float)
    _same(module.predict_images(as_uint8), reference)  # a uint8 batch
    _same(module.predict_images(torch.stack(as_float)), reference)  # a float batch
    _same(module.predict_images(paths), reference)  # files
    # one image: against a batch of one (a batch of two may round differently in the convolutions, ~1e-5)
    _same(module.predict_images(as_uint8[0]), module.predict_images(as_float[:1]))
    _same(module.predict_images(str(paths[1])), module.predict_images(as_float[1:]))


@pytest.mark.parametrize(
    ("images", "error", "match"),
    [
        ([torch.rand(1, 64, 64)], ValueError, r"image 0 must have shape \[3, H, W\]"),
        (torch.rand(2, 64, 64, 3), ValueError, r"image 0 must have shape \[3, H, W\]"),
        ([torch.zeros(3, 8, 8, dtype=torch.int32)], TypeError, "image 0 must be float in 0..1 or uint8"),
        ({"image": 1}, TypeError, "images must be tensors or image file paths"),
    ],
)
def test_bad_inputs_are_named(module, images, error, match):
    with pytest.raises(error, match=match):
        module.predict_images(images)
