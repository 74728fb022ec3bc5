"""Nothing a user owns is overwritten: make-shapes, the shapes DataModule and the demo refuse folders of user files.

Every test hashes the user's files before and after the refused command. The user's VOC tree uses the stems the
shapes generator writes (``000001``), as real VOC 2007 does.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch

from lightning_retina.cli import main
from lightning_retina.data import DetectionDataModule, make_shapes_dataset
from lightning_retina.data.synthetic import DEFAULT_DRAWING, shapes_manifest


def _hashes(root: Path) -> dict[str, str]:
    """SHA-256 of every file under ``root``, by relative path."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}  # fmt: skip


def _user_voc(root: Path) -> Path:
    """A user's VOC 2007 tree with the stems the generator also writes."""
    voc = root / "VOCdevkit" / "VOC2007"
    for folder in ("JPEGImages", "Annotations", "ImageSets/Main"):
        (voc / folder).mkdir(parents=True)
    for stem in ("000001", "000002"):
        (voc / "JPEGImages" / f"{stem}.jpg").write_bytes(b"my holiday photo " + stem.encode())
        (voc / "Annotations" / f"{stem}.xml").write_text(f"<annotation><filename>{stem}</filename></annotation>")
    for split in ("train", "val"):
        (voc / "ImageSets" / "Main" / f"{split}.txt").write_text("000001\n000002\n")
    return root


def _user_coco(root: Path) -> Path:
    """A user's COCO tree with the layout (and file names) of the generator's COCO output."""
    for split in ("train", "val"):
        (root / split).mkdir(parents=True)
        (root / split / "000001.jpg").write_bytes(b"my photo")
    (root / "annotations").mkdir()
    (root / "annotations" / "instances_train.json").write_text('{"images": [], "mine": true}')
    return root


USER_TREES = {"voc": _user_voc, "coco": _user_coco}
SMALL = ["--num-train", "2", "--num-val", "1", "--image-size", "32"]


@pytest.mark.parametrize("tree", list(USER_TREES))
@pytest.mark.parametrize("fmt", ["voc", "coco"])
def test_make_shapes_refuses_a_folder_of_user_files(tmp_path: Path, capsys, tree: str, fmt: str) -> None:
    root = USER_TREES[tree](tmp_path / "data")
    before = _hashes(root)
    assert main(["make-shapes", str(root), "--format", fmt, *SMALL]) == 2
    err = capsys.readouterr().err
    assert f"{root} already holds files" in err and "--overwrite" in err and "Traceback" not in err
    assert _hashes(root) == before


def test_make_shapes_overwrites_only_when_asked(tmp_path: Path) -> None:
    root = _user_voc(tmp_path / "data")
    before = _hashes(root)
    assert main(["make-shapes", str(root), *SMALL, "--overwrite"]) == 0
    after = _hashes(root)
    assert after["VOCdevkit/VOC2007/JPEGImages/000001.jpg"] != before["VOCdevkit/VOC2007/JPEGImages/000001.jpg"]
    assert shapes_manifest(root) == {"format": "voc", "num_train": 2, "num_val": 1, "image_size": 32, "seed": 0,
                                     **DEFAULT_DRAWING}


def test_make_shapes_on_an_existing_file_is_a_clear_error(tmp_path: Path, capsys) -> None:
    target = tmp_path / "notes.txt"
    target.write_text("mine")
    assert main(["make-shapes", str(target), *SMALL]) == 2
    err = capsys.readouterr().err
    assert f"{target} is a file, not a folder" in err and "Traceback" not in err
    assert target.read_text() == "mine"


def test_make_shapes_writes_into_an_empty_folder_and_again_into_its_own(tmp_path: Path) -> None:
    root = tmp_path / "empty"
    root.mkdir()
    make_shapes_dataset(root, "voc", num_train=2, num_val=1, image_size=32)
    make_shapes_dataset(root, "coco", num_train=1, num_val=1, image_size=32, seed=3)  # its own folder: allowed
    assert shapes_manifest(root) == {"format": "coco", "num_train": 1, "num_val": 1, "image_size": 32, "seed": 3,
                                     **DEFAULT_DRAWING}


def test_a_users_own_manifest_named_like_ours_does_not_make_the_folder_ours(tmp_path: Path) -> None:
    root = tmp_path / "data"
    root.mkdir()
    (root / "shapes.json").write_text(json.dumps({"format": "voc", "num_train": 2}))
    before = _hashes(root)
    assert shapes_manifest(root) is None
    with pytest.raises(ValueError, match="already holds files"):
        make_shapes_dataset(root, "voc", num_train=2, num_val=1, image_size=32)
    assert _hashes(root) == before


def test_an_interrupted_set_is_not_reported_finished_and_may_be_regenerated(tmp_path: Path, monkeypatch) -> None:
    from lightning_retina.data import synthetic

    drawn = synthetic._draw_image

    def crash_on_the_second_image(rng, size, **drawing):
        if (tmp_path / "data" / "VOCdevkit" / "VOC2007" / "JPEGImages" / "000001.jpg").exists():
            raise KeyboardInterrupt
        return drawn(rng, size, **drawing)

    monkeypatch.setattr(synthetic, "_draw_image", crash_on_the_second_image)
    with pytest.raises(KeyboardInterrupt):
        make_shapes_dataset(tmp_path / "data", "voc", num_train=3, num_val=1, image_size=32)
    assert shapes_manifest(tmp_path / "data") is None
    monkeypatch.undo()
    make_shapes_dataset(tmp_path / "data", "voc", num_train=3, num_val=1, image_size=32)  # the folder is its own
    assert shapes_manifest(tmp_path / "data")["num_train"] == 3


@pytest.mark.parametrize("tree", list(USER_TREES))
def test_shapes_datamodule_never_generates_over_user_files(tmp_path: Path, tree: str) -> None:
    root = USER_TREES[tree](tmp_path / "data")
    before = _hashes(root)
    dm = DetectionDataModule("shapes", str(root), shapes_format="voc", shapes_num_train=2, shapes_num_val=1,
                             shapes_image_size=32, num_workers=0)  # fmt: skip
    with pytest.raises(ValueError, match=f"{root} already holds files"):
        dm.prepare_data()
    assert _hashes(root) == before


DEMO_FAST = ["--max-minutes", "0.01", "--num-train", "2", "--num-val", "1", "--accelerator", "cpu"]


def test_demo_refuses_an_out_folder_with_a_users_metrics(tmp_path: Path, capsys) -> None:
    out = tmp_path / "results"
    out.mkdir()
    (out / "metrics.json").write_text('{"my": "paper numbers"}')
    (out / "model.ckpt").write_bytes(b"my model")
    before = _hashes(out)
    assert main(["demo", "--data-dir", str(tmp_path / "shapes"), "--out", str(out), *DEMO_FAST]) == 2
    err = capsys.readouterr().err
    assert f"{out} already holds files" in err and "metrics.json" in err and "--overwrite" in err
    assert _hashes(out) == before
    assert not (tmp_path / "shapes").exists()  # refused before generating data


def test_demo_refuses_a_users_voc_root_as_data_dir(tmp_path: Path, capsys) -> None:
    root = _user_voc(tmp_path / "VOC")
    before = _hashes(root)
    assert main(["demo", "--data-dir", str(root), "--out", str(tmp_path / "out"), *DEMO_FAST]) == 2
    assert f"{root} already holds files" in capsys.readouterr().err
    assert _hashes(root) == before


@pytest.mark.parametrize(
    ("option", "message"),
    [(["--num-val", "0"], "--num-val must be >= 1"), (["--num-train", "0"], "--num-train must be >= 1"),
     (["--max-minutes", "0"], "--max-minutes must be > 0")],
)  # fmt: skip
def test_demo_settings_that_would_fail_after_training_fail_first(tmp_path: Path, capsys, option, message) -> None:
    argv = ["demo", "--data-dir", str(tmp_path / "shapes"), "--out", str(tmp_path / "out"), *DEMO_FAST, *option]
    assert main(argv) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "shapes").exists() and not (tmp_path / "out").exists()


@pytest.mark.skipif(
    torch.cuda.is_available() or torch.backends.mps.is_available(), reason="needs a machine without a GPU"
)
def test_demo_on_gpu_without_a_gpu_is_a_clear_error(tmp_path: Path, capsys) -> None:
    argv = ["demo", "--data-dir", str(tmp_path / "shapes"), "--out", str(tmp_path / "out"), *DEMO_FAST[:-1], "gpu"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "--accelerator gpu: no usable GPU" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_malformed_yaml_config_is_one_line_naming_the_file(tmp_path: Path, capsys) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("model:\n  lr: [1, 2\n  backbone: : resnet18\n")
    assert main(["fit", "--config", str(config)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"lightning-retina fit: error: {config}, line 3: malformed YAML config")
    assert len(err.splitlines()) == 1


@pytest.mark.parametrize(("text", "kind"), [("- 1\n- 2\n", "list"), ("just words\n", "str"), ("7\n", "int")])
def test_a_yaml_config_that_is_not_a_mapping_is_one_line_naming_the_file(tmp_path: Path, capsys, text, kind) -> None:
    # re-attack: jsonargparse said "error: Unexpected config: - 1" after the full usage, without the file
    config = tmp_path / "list.yaml"
    config.write_text(text)
    assert main(["fit", "--config", str(config)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"lightning-retina fit: error: {config}: a config must be a YAML mapping of options (key: value), " \
        f"not a {kind}"


@pytest.mark.parametrize("content", [b'{"state_dict": {}}', b"", b"\x80\x04K\x07."])  # JSON, empty, pickled int
def test_validate_with_a_ckpt_path_that_is_not_a_checkpoint_is_one_line_naming_it(tmp_path: Path, capsys,
                                                                                  content) -> None:
    # re-attack: a JSON file as --ckpt_path gave torch.load's RuntimeError traceback (reading the saved data settings)
    ckpt = tmp_path / "j.ckpt"
    ckpt.write_bytes(content)
    argv = ["validate", "--ckpt_path", str(ckpt), "--data.dataset", "shapes", "--data.root", str(tmp_path / "s")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"lightning-retina validate: error: --ckpt_path {ckpt} is not a")
    assert len(err.splitlines()) == 1
    assert not (tmp_path / "s").exists()  # refused before the data set is generated


# ------------------------------------------------------- shapes folders written before the writers' marker
EARLIER = {"format": "voc", "num_train": 2, "num_val": 1, "image_size": 32, "seed": 0}


def _earlier_set(root: Path, manifest: dict) -> Path:
    """A shapes set as an earlier version left it: the same files, ``shapes.json`` holding only the arguments."""
    make_shapes_dataset(root, **EARLIER)
    (root / "shapes.json").write_text(json.dumps(manifest, indent=1))
    return root


def test_a_shapes_folder_of_an_earlier_version_is_ours(tmp_path: Path) -> None:
    root = _earlier_set(tmp_path / "data", EARLIER)
    # a finished set, drawn with the defaults of the drawing arguments it predates: the DataModule reuses it as it is
    assert shapes_manifest(root) == {**EARLIER, **DEFAULT_DRAWING}
    make_shapes_dataset(root, "coco", num_train=1, num_val=1, image_size=32, seed=3)  # was: "already holds files"
    assert shapes_manifest(root) == {"format": "coco", "num_train": 1, "num_val": 1, "image_size": 32, "seed": 3,
                                     **DEFAULT_DRAWING}
    assert json.loads((root / "shapes.json").read_text())["written_by"] == "lightning-retina make-shapes"


def test_the_datamodule_reuses_an_earlier_versions_set_without_rewriting_it(tmp_path: Path) -> None:
    root = _earlier_set(tmp_path / "data", EARLIER)
    before = _hashes(root)
    dm = DetectionDataModule("shapes", str(root), shapes_format="voc", shapes_num_train=2, shapes_num_val=1,
                             shapes_image_size=32, num_workers=0)  # fmt: skip
    dm.prepare_data()
    assert _hashes(root) == before


@pytest.mark.parametrize(
    "manifest",
    [
        {**EARLIER, "owner": "me"},  # another key
        {**EARLIER, "seed": True},  # not an integer
        {**EARLIER, "format": "yolo"},
        [EARLIER],
    ],
)
def test_a_shapes_json_of_another_shape_is_still_the_users(tmp_path: Path, manifest) -> None:
    root = _earlier_set(tmp_path / "data", manifest)
    before = _hashes(root)
    assert shapes_manifest(root) is None
    with pytest.raises(ValueError, match="already holds files.*--overwrite"):
        make_shapes_dataset(root, **EARLIER)
    assert _hashes(root) == before
