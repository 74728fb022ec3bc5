"""`lightning-retina detect`: safe checkpoint loading, inputs, COCO results, and never overwriting a user's file."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from PIL import Image

from lightning_retina import RetinaNetModule
from lightning_retina.checkpoint import INFERENCE_LIMITS, load_module
from lightning_retina.cli import main
from lightning_retina.data import decode_image as read_image

CLASS_NAMES = ["cat", "dog", "bird"]
TINY = dict(backbone="resnet18", fpn_channels=32, min_size=64, max_size=64, anchor_sizes=(8, 16, 32, 64, 128),
            score_thresh=0.0, detections_per_img=5)  # fmt: skip


def _save(module: RetinaNetModule, path: Path) -> Path:
    trainer = L.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False, max_steps=0)
    trainer.strategy.connect(module)
    trainer.save_checkpoint(path)
    return path


def _edit_hparams(src: Path, dst: Path, **changes) -> Path:
    checkpoint = torch.load(src, weights_only=True)
    checkpoint["hyper_parameters"].update(changes)
    torch.save(checkpoint, dst)
    return dst


def _image(path: Path, size=(50, 70), seed=0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def _hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in root.rglob("*.*")}


@pytest.fixture(scope="module")
def module_and_ckpt(tmp_path_factory) -> tuple[RetinaNetModule, Path]:
    torch.manual_seed(0)
    module = RetinaNetModule(num_classes=3, class_names=CLASS_NAMES, **TINY)
    path = _save(module, tmp_path_factory.mktemp("ckpt") / "model.ckpt")
    return module.eval(), path


@pytest.fixture(scope="module")
def ckpt(module_and_ckpt) -> Path:
    return module_and_ckpt[1]


# ---------------------------------------------------------------------------------------------- checkpoint loading
def test_loads_in_eval_mode_with_the_saved_weights(module_and_ckpt, tmp_path):
    module, path = module_and_ckpt
    cli_style = _edit_hparams(path, tmp_path / "cli.ckpt", _instantiator="lightning.pytorch.cli.instantiate_module")
    image = read_image(_image(tmp_path / "x.png"))
    with torch.no_grad():
        expected = module([image])[0]
    for checkpoint in (path, cli_style):
        loaded = load_module(checkpoint)
        assert not loaded.training and all(not m.training for m in loaded.modules())
        with torch.no_grad():
            got = loaded([image])[0]
        assert len(got["boxes"]) == 5
        torch.testing.assert_close(got["boxes"], expected["boxes"])
        torch.testing.assert_close(got["scores"], expected["scores"])
        assert loaded.class_names == CLASS_NAMES


@pytest.mark.parametrize("weights", ["DEFAULT", "/etc/passwd", "file"])
def test_pretrained_weights_in_the_checkpoint_are_neither_downloaded_nor_read(ckpt, tmp_path, weights, monkeypatch):
    if weights == "file":
        weights = str(tmp_path / "not_weights.pth")
        Path(weights).write_text("reading this would fail")
    hostile = _edit_hparams(ckpt, tmp_path / "w.ckpt", backbone_weights=weights)
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", lambda *a, **k: pytest.fail("download attempted"))
    loaded = load_module(hostile)
    assert loaded.hparams.backbone_weights is None


@pytest.mark.parametrize(
    ("key", "value"),
    [("num_classes", 10**6), ("max_size", 10**7), ("fpn_channels", 4096), ("detections_per_img", 0),
     ("num_classes", "3"), ("min_size", 1.5)],
)  # fmt: skip
def test_absurd_sizes_are_refused_before_building(ckpt, tmp_path, key, value, monkeypatch):
    hostile = _edit_hparams(ckpt, tmp_path / "h.ckpt", **{key: value})
    monkeypatch.setattr("lightning_retina.module.RetinaNetCore.from_config", lambda *a, **k: pytest.fail("model was built"))
    with pytest.raises(ValueError, match=f"{key}={value!r}"):
        load_module(hostile)
    assert key in INFERENCE_LIMITS


def test_a_foreign_instantiator_is_refused(ckpt, tmp_path, capsys):
    hostile = _edit_hparams(ckpt, tmp_path / "i.ckpt", _instantiator="os.system")
    assert main(["detect", "--ckpt", str(hostile), str(_image(tmp_path / "x.png")), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "i.ckpt is not a lightning-retina checkpoint" in err and "Traceback" not in err


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all", None])
def test_a_file_that_is_not_a_checkpoint_is_refused(tmp_path, capsys, content):
    path = tmp_path / "fake.ckpt"
    if content is None:
        torch.save({"weights": torch.zeros(2)}, path)  # loads safely but is not a module checkpoint
    else:
        path.write_bytes(content)
    image = _image(tmp_path / "x.png")
    assert main(["detect", "--ckpt", str(path), str(image), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "fake.ckpt is not" in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()


# ------------------------------------------------------------------------------------------------------- outputs
def test_files_folders_and_globs_give_coco_results_in_original_pixels(module_and_ckpt, tmp_path):
    module, path = module_and_ckpt
    folder = [_image(tmp_path / "in" / f"{i}.png", size=(40 + 10 * i, 90), seed=i) for i in range(3)]
    jpg = _image(tmp_path / "more" / "big.jpg", size=(120, 80), seed=7)
    out = tmp_path / "out"
    argv = ["detect", "--ckpt", str(path), str(tmp_path / "in"), str(tmp_path / "more" / "*.jpg"), str(folder[0]),
            "--out", str(out), "--score-thresh", "0", "--batch-size", "2"]  # fmt: skip
    assert main(argv) == 0
    results = json.loads((out / "detections.json").read_text())
    inputs = [*folder, jpg]  # the folder's images sorted, then the glob; folder[0] given twice is kept once
    assert sorted({r["image_id"] for r in results}) == list(range(len(inputs)))
    with torch.no_grad():  # the same batches of 2 (images of different sizes are padded together in a batch)
        batches = [module([read_image(p) for p in inputs[i : i + 2]]) for i in range(0, len(inputs), 2)]
    for image_id, (source, expected) in enumerate(zip(inputs, sum(batches, []))):
        entries = [r for r in results if r["image_id"] == image_id]
        assert {r["file_name"] for r in entries} == {str(source)}
        assert len({r["drawn"] for r in entries}) == 1 and (out / entries[0]["drawn"]).is_file()
        boxes = torch.tensor([r["bbox"] for r in entries])
        boxes[:, 2:] += boxes[:, :2]  # back to xyxy
        torch.testing.assert_close(boxes.float(), expected["boxes"])
        assert [r["score"] for r in entries] == pytest.approx(expected["scores"].tolist())
        assert [r["category_id"] for r in entries] == expected["labels"].tolist()  # no data set ids: label index
        assert [r["category_name"] for r in entries] == [CLASS_NAMES[int(i)] for i in expected["labels"]]
        assert set(entries[0]) == {"image_id", "file_name", "drawn", "category_id", "category_name", "bbox", "score"}


def test_same_stem_in_two_folders_gives_two_outputs(ckpt, tmp_path):
    a, b = _image(tmp_path / "a" / "x.jpg"), _image(tmp_path / "b" / "x.png", seed=1)
    c = _image(tmp_path / "a" / "x.png", seed=2)
    out = tmp_path / "out"
    assert main(["detect", "--ckpt", str(ckpt), str(a), str(b), str(c), "--out", str(out), "--score-thresh", "0"]) == 0
    results = json.loads((out / "detections.json").read_text())
    drawn = {r["file_name"]: r["drawn"] for r in results}
    assert drawn == {str(a): "a/x_jpg.png", str(b): "b/x.png", str(c): "a/x_png.png"}
    assert len({hashlib.sha256((out / d).read_bytes()).hexdigest() for d in drawn.values()}) == 3


def test_never_overwrites_an_input_or_a_users_file(ckpt, tmp_path, capsys):
    photos = tmp_path / "photos"
    holiday = _image(photos / "holiday.png")
    (photos / "notes.txt").write_text("mine")
    before = _hashes(photos)
    for extra in ([], ["--overwrite"]):
        assert main(["detect", "--ckpt", str(ckpt), str(holiday), "--out", str(photos), *extra]) == 2
    err = capsys.readouterr().err
    assert "not empty and was not written by lightning-retina detect" in err
    assert "would overwrite an input image" in err
    assert main(["detect", "--ckpt", str(ckpt), str(holiday), "--out", str(holiday)]) == 2
    assert "is an existing file, not a folder" in capsys.readouterr().err
    assert _hashes(photos) == before

    out = tmp_path / "out"
    assert main(["detect", "--ckpt", str(ckpt), str(holiday), "--out", str(out)]) == 0
    assert main(["detect", "--ckpt", str(ckpt), str(holiday), "--out", str(out)]) == 0  # its own folder: again
    (out / "other.png").write_text("a user's file")
    other = _image(tmp_path / "elsewhere" / "other.png")
    assert main(["detect", "--ckpt", str(ckpt), str(other), "--out", str(out)]) == 2
    assert "other.png exists and was not written by lightning-retina detect" in capsys.readouterr().err
    assert (out / "other.png").read_text() == "a user's file"


def test_bad_images_are_reported_and_the_good_ones_processed(ckpt, tmp_path, capsys):
    good = _image(tmp_path / "in" / "a_good.png")
    (tmp_path / "in" / "b_corrupt.png").write_bytes(good.read_bytes()[:60])
    Image.new("1", (10_000, 10_000)).save(tmp_path / "in" / "c_bomb.png")  # 100 Mpx in a few kB
    frames = [Image.new("RGB", (30, 20), c) for c in ("red", "blue")]
    frames[0].save(tmp_path / "in" / "d_anim.gif", save_all=True, append_images=frames[1:])
    out = tmp_path / "out"
    with pytest.warns(UserWarning, match="d_anim.gif holds 2 frames; using the first"):
        status = main(["detect", "--ckpt", str(ckpt), str(tmp_path / "in"), "--out", str(out), "--score-thresh", "0"])
    assert status == 1
    err = capsys.readouterr().err
    assert "cannot decode image" in err and "b_corrupt.png" in err
    assert "c_bomb.png: 10000x10000 = 100000000 pixels is more than the limit of 50000000" in err
    assert {r["file_name"] for r in json.loads((out / "detections.json").read_text())} == {
        str(good), str(tmp_path / "in" / "d_anim.gif")
    }
    manifest = json.loads((out / "lightning-retina-detect.json").read_text())
    assert [bool(i.get("error")) for i in manifest["images"]] == [False, True, True, False]


def test_sixteen_bit_png_is_scaled_by_65535(tmp_path):
    values = np.array([[0, 257, 65535]], dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / "deep.png")
    image = read_image(tmp_path / "deep.png")
    assert image.shape == (3, 1, 3)
    torch.testing.assert_close(image[:, 0], torch.tensor([0.0, 257 / 65535, 1.0]).expand(3, -1))


@pytest.mark.parametrize("value", ["2", "nan", "-0.1"])
def test_score_threshold_outside_0_1_is_a_usage_error(ckpt, value, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["detect", "--ckpt", str(ckpt), "x.png", "--score-thresh", value])
    assert exit_info.value.code == 2
    assert "--score-thresh: must be a number in [0, 1]" in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_cuda_without_a_gpu_says_so_and_does_not_blame_the_checkpoint(ckpt, tmp_path, capsys):
    image = _image(tmp_path / "x.png")
    assert main(["detect", "--ckpt", str(ckpt), str(image), "--device", "cuda", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "CUDA is not available on this machine" in err and "checkpoint" not in err
