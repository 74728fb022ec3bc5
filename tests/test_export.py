"""``lightning-retina export``: every format whose runtime is installed gives the eager module's detections."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from lightning_retina.checkpoint import load_module
from lightning_retina.cli import main
from lightning_retina.export import ExportableRetinaNet, export_model
from tests.reliability.conftest import fixed_order_loader, quiet_trainer, tiny_module, train_dataset

HEIGHT, WIDTH, BATCH = 48, 64, 2
EXPORT_FORMATS = [
    "torchscript",
    "exported_program",
    pytest.param(
        "onnx",
        marks=pytest.mark.skipif(
            importlib.util.find_spec("onnxruntime") is None, reason="onnxruntime not installed (extra [export])"
        ),
    ),
]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A tiny model after one training step, written by ``Trainer.save_checkpoint`` (score threshold 0: 100 boxes)."""
    root = tmp_path_factory.mktemp("export")
    module = tiny_module(score_thresh=0.0)
    trainer = quiet_trainer(max_steps=1)
    trainer.fit(module, fixed_order_loader(train_dataset(root / "shapes", 2)))
    trainer.save_checkpoint(root / "model.ckpt")
    return root / "model.ckpt"


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return torch.rand(BATCH, 3, HEIGHT, WIDTH, generator=torch.Generator().manual_seed(3))


@torch.no_grad()
def run_exported(fmt: str, path: Path, images: torch.Tensor) -> list[np.ndarray]:
    if fmt == "torchscript":
        return [t.numpy() for t in torch.jit.load(str(path))(images)]
    if fmt == "exported_program":
        return [t.numpy() for t in torch.export.load(str(path)).module()(images)]
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"images": images.numpy()})


def assert_equal_to_eager(outputs: list[np.ndarray], eager: list[dict[str, torch.Tensor]]) -> None:
    boxes, scores, labels, counts = (torch.as_tensor(o) for o in outputs)
    assert counts.tolist() == [len(d["scores"]) for d in eager]
    for i, detections in enumerate(eager):
        n = len(detections["scores"])
        assert n > 0
        assert torch.equal(labels[i, :n], detections["labels"])  # same labels in the same (score) order
        torch.testing.assert_close(scores[i, :n], detections["scores"], rtol=0, atol=1e-5)
        torch.testing.assert_close(boxes[i, :n], detections["boxes"], rtol=0, atol=1e-4)
        assert (labels[i, n:] == -1).all() and (scores[i, n:] == 0).all()


@pytest.mark.parametrize("fmt", EXPORT_FORMATS)
def test_exported_model_gives_the_eager_detections(checkpoint, images, tmp_path, fmt):
    out = tmp_path / f"model.{fmt}"
    argv = ["export", "--ckpt", str(checkpoint), "--format", fmt, "--out", str(out)]
    assert main([*argv, "--image-size", str(HEIGHT), str(WIDTH), "--batch-size", str(BATCH)]) == 0
    eager = load_module(checkpoint)(images)
    assert_equal_to_eager(run_exported(fmt, out, images), eager)


def test_export_refuses_to_replace_a_file(checkpoint, tmp_path):
    out = tmp_path / "mine.onnx"
    out.write_bytes(b"user data")
    with pytest.raises(SystemExit, match="exists; pass --overwrite"):
        main(["export", "--ckpt", str(checkpoint), "--format", "torchscript", "--out", str(out)])
    assert out.read_bytes() == b"user data"


def test_wrapper_equals_the_eager_module_in_python(checkpoint, images):
    """The fixed-shape post-processing against the module's own, before any serialisation."""
    module = load_module(checkpoint)
    with torch.no_grad():
        outputs = [t.numpy() for t in ExportableRetinaNet(module.model, (HEIGHT, WIDTH))(images)]
    assert_equal_to_eager(outputs, module(images))


def test_export_refuses_a_train_mode_model(checkpoint, tmp_path):
    module = load_module(checkpoint).train()
    with pytest.raises(ValueError, match="eval mode"):
        export_model(module.model, "torchscript", tmp_path / "m.pt", (HEIGHT, WIDTH))
