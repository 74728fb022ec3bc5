"""DetectionDataModule (classes before setup, prepare_data, setup per stage, loaders, samplers) and its transforms."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler

from lightning_retina.data import SHAPES_CLASSES, VOC_CLASSES, DetectionDataModule
from lightning_retina.data.transforms import eval_transforms, train_transforms
from tests.data_fixtures import VOCImage, VOCObject, sample_coco, sample_voc_images, write_coco, write_voc


@pytest.fixture(scope="module")
def shapes_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("shapes")
    DetectionDataModule("shapes", root, shapes_num_train=6, shapes_num_val=5, shapes_image_size=64).prepare_data()
    return root


def _shapes(root: Path, **kwargs) -> DetectionDataModule:
    options = {"shapes_num_train": 6, "shapes_num_val": 5, "shapes_image_size": 64, "num_workers": 0, **kwargs}
    return DetectionDataModule("shapes", root, **options)


def _check_batch(batch, size: int, flag_key: str) -> None:
    images, targets = batch
    assert isinstance(images, list) and isinstance(targets, list) and len(images) == len(targets) == size
    for image, target in zip(images, targets):
        assert image.dtype == torch.float32 and image.shape[0] == 3 and 0 <= image.min() and image.max() <= 1
        assert target["boxes"].shape[1:] == (4,) and type(target["boxes"]) is torch.Tensor
        assert target["labels"].dtype == torch.int64 and target[flag_key].dtype == torch.bool
        assert isinstance(target["image_id"], int)


def test_classes_known_before_setup(tmp_path: Path) -> None:
    assert DetectionDataModule("voc", tmp_path).num_classes == 20
    assert DetectionDataModule("voc", tmp_path).class_names == VOC_CLASSES
    assert DetectionDataModule("shapes", tmp_path).class_names == SHAPES_CLASSES
    write_coco(tmp_path, "val2017", sample_coco())
    coco = DetectionDataModule("coco", tmp_path)
    assert coco.num_classes == 3 and coco.class_names == ("person", "car", "toothbrush")


@pytest.mark.parametrize("stage", ["fit", "validate", "test", "predict"])
def test_setup_builds_the_stage_and_each_loader_yields_a_batch(shapes_root: Path, stage: str) -> None:
    dm = _shapes(shapes_root, batch_size=4, eval_batch_size=3)
    dm.prepare_data()
    dm.setup(stage)
    expected = {"fit": {"train", "val"}, "validate": {"val"}, "test": {"test"}, "predict": {"predict"}}[stage]
    assert set(dm.datasets) == expected
    loaders = {"train": dm.train_dataloader, "val": dm.val_dataloader, "test": dm.test_dataloader,
               "predict": dm.predict_dataloader}  # fmt: skip
    for split in expected:
        _check_batch(next(iter(loaders[split]())), 4 if split == "train" else 3, "iscrowd")
    sizes = {"train": 6, "val": 5, "test": 5, "predict": 5}
    assert {s: len(dm.datasets[s]) for s in expected} == {s: sizes[s] for s in expected}


def test_loader_before_setup_raises(shapes_root: Path) -> None:
    with pytest.raises(MisconfigurationException, match="setup"):
        _shapes(shapes_root).val_dataloader()


def test_shapes_generated_once_and_again_when_the_arguments_change(tmp_path: Path) -> None:
    dm = _shapes(tmp_path, shapes_num_train=2, shapes_num_val=1)
    dm.prepare_data()
    manifest = tmp_path / "shapes.json"
    stamp = manifest.stat().st_mtime_ns
    dm.prepare_data()
    assert manifest.stat().st_mtime_ns == stamp
    bigger = _shapes(tmp_path, shapes_num_train=3, shapes_num_val=1)
    bigger.prepare_data()
    bigger.setup("fit")
    assert len(bigger.datasets["train"]) == 3


def test_shapes_drawing_options_reach_the_set_and_a_mismatch_names_the_option(tmp_path: Path) -> None:
    easy = {"shapes_objects_per_image": (1, 2), "shapes_shape_sizes": (20, 30), "shapes_crowd_probability": 0.0}
    dm = _shapes(tmp_path, shapes_num_train=4, shapes_num_val=2, shapes_image_size=64, batch_size=2, **easy)
    dm.prepare_data()
    dm.setup("fit")
    counts = [len(dm.datasets["train"][i][1]["boxes"]) for i in range(4)]
    assert all(1 <= c <= 2 for c in counts)
    other = _shapes(tmp_path, shapes_num_train=4, shapes_num_val=2, shapes_image_size=64, batch_size=2,
                    **{**easy, "shapes_objects_per_image": (1, 3)})  # fmt: skip
    with pytest.raises(ValueError, match=r"--data.shapes_objects_per_image \[1, 2\] \(asked \[1, 3\]\)"):
        other.spec.prepare(download=False, fitting=False)
    with pytest.raises(ValueError, match="shape_sizes must be"):
        _shapes(tmp_path, shapes_image_size=64, shapes_shape_sizes=(20, 80))


def test_shapes_in_voc_layout(tmp_path: Path) -> None:
    dm = _shapes(tmp_path, shapes_format="voc", shapes_num_train=3, shapes_num_val=2, batch_size=2)
    dm.prepare_data()
    dm.setup("fit")
    assert (tmp_path / "VOCdevkit" / "VOC2007" / "ImageSets" / "Main" / "val.txt").is_file()
    assert dm.datasets["val"].keep_difficult and not dm.datasets["train"].keep_difficult
    _check_batch(next(iter(dm.train_dataloader())), 2, "difficult")


def test_voc_07_plus_12(tmp_path: Path) -> None:
    stems = [image.stem for image in sample_voc_images()]
    write_voc(tmp_path, "2007", sample_voc_images(), {"trainval": stems[:2], "test": stems[2:]})
    write_voc(tmp_path, "2012", [VOCImage("2012_000001", 20, 20, [VOCObject("cow", (1, 1, 9, 9))])],
              {"trainval": ["2012_000001"]})  # fmt: skip
    dm = DetectionDataModule("voc", tmp_path, batch_size=3, num_workers=0)
    dm.prepare_data()
    dm.setup("fit")
    assert len(dm.datasets["train"]) == 3 and len(dm.datasets["val"]) == 1
    assert dm.datasets["val"][0][1]["difficult"].tolist() == [True]  # evaluation keeps difficult objects
    _check_batch(next(iter(dm.train_dataloader())), 3, "difficult")
    _check_batch(next(iter(dm.val_dataloader())), 1, "difficult")


def test_coco(tmp_path: Path) -> None:
    write_coco(tmp_path, "train2017", sample_coco())
    write_coco(tmp_path, "val2017", sample_coco())
    dm = DetectionDataModule("coco", tmp_path, batch_size=2, num_workers=0)
    dm.prepare_data()
    dm.setup("fit")
    _check_batch(next(iter(dm.train_dataloader())), 2, "iscrowd")
    _check_batch(next(iter(dm.val_dataloader())), 2, "iscrowd")


@pytest.mark.parametrize(
    ("dataset", "expected"),
    [("voc", r"VOCdevkit/VOC2007/ImageSets/Main/trainval.txt"), ("coco", r"annotations/instances_train2017.json")],
)
def test_missing_data_says_where_and_how(tmp_path: Path, dataset: str, expected: str) -> None:
    with pytest.raises(FileNotFoundError, match=expected) as info:
        DetectionDataModule(dataset, tmp_path).prepare_data()
    assert "download=True" in str(info.value) and "http" in str(info.value)


def test_eval_loaders_split_the_images_without_padding_under_ddp(shapes_root: Path) -> None:
    seen = []
    for rank in range(2):
        dm = _shapes(shapes_root, eval_batch_size=2)
        dm.trainer = SimpleNamespace(world_size=2, global_rank=rank)
        dm.setup("validate")
        loader = dm.val_dataloader()
        assert isinstance(loader.sampler, UnrepeatedDistributedSampler)
        seen += [t["image_id"] for _, targets in loader for t in targets]
    assert sorted(seen) == sorted(dm.datasets["val"].image_ids)  # 5 images over 2 ranks: each once


def test_eval_set_smaller_than_the_world_raises(shapes_root: Path) -> None:
    dm = _shapes(shapes_root)
    dm.trainer = SimpleNamespace(world_size=8, global_rank=0)
    dm.setup("test")
    with pytest.raises(ValueError, match="5 images cannot be split over 8 processes"):
        dm.test_dataloader()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"dataset": "kitti"}, "dataset must"), ({"batch_size": 0}, "batch_size"), ({"shapes_format": "x"}, "shapes_f")],
)
def test_bad_arguments(tmp_path: Path, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DetectionDataModule(**{"root": tmp_path, **kwargs})


# ------------------------------------------------------------------------------------------------ transforms
def _sample() -> tuple[torch.Tensor, dict]:
    image = torch.rand(3, 40, 60, generator=torch.Generator().manual_seed(0))
    boxes = torch.tensor([[0.0, 0.0, 10.0, 20.0], [50.0, 5.0, 60.0, 40.0], [20.0, 10.0, 31.0, 12.0]])
    target = {"boxes": boxes, "labels": torch.tensor([0, 1, 2]), "difficult": torch.tensor([False, True, False]),
              "image_id": 7}  # fmt: skip
    return image, target


def test_eval_transforms_are_the_identity() -> None:
    image, target = _sample()
    out_image, out_target = eval_transforms()(image, target)
    torch.testing.assert_close(out_image, image)
    assert type(out_target["boxes"]) is torch.Tensor and torch.equal(out_target["boxes"], target["boxes"])
    assert out_target["image_id"] == 7 and torch.equal(out_target["difficult"], target["difficult"])


def test_flip_moves_image_and_boxes_together() -> None:
    image, target = _sample()
    mirrored = target["boxes"][:, [2, 1, 0, 3]] * torch.tensor([-1, 1, -1, 1]) + torch.tensor([60, 0, 60, 0])
    torch.manual_seed(0)
    flips = 0
    for _ in range(20):
        out_image, out_target = train_transforms(flip=True)(image, target)
        flipped = torch.equal(out_image, image.flip(-1))
        assert flipped or torch.equal(out_image, image)
        torch.testing.assert_close(out_target["boxes"], mirrored if flipped else target["boxes"])
        flips += flipped
    assert 0 < flips < 20


def test_scale_jitter_keeps_boxes_inside_and_filters_per_box_entries_together() -> None:
    image, target = _sample()
    torch.manual_seed(0)
    dropped = 0
    for _ in range(30):
        out_image, out = train_transforms(flip=False, photometric=True, scale_jitter=(0.3, 2.0))(image, target)
        dropped += len(out["labels"]) < 3
        assert out_image.shape == image.shape and type(out["boxes"]) is torch.Tensor
        boxes = out["boxes"]
        assert boxes.shape == (len(out["labels"]), 4) and len(out["difficult"]) == len(out["labels"])
        assert (boxes >= 0).all() and (boxes[:, [0, 2]] <= 60).all() and (boxes[:, [1, 3]] <= 40).all()
        assert ((boxes[:, 2:] - boxes[:, :2]) >= 1).all()
        # labels name the source box, so the flags must still belong to it
        assert torch.equal(out["difficult"], target["difficult"][out["labels"]])
    assert dropped > 0


def test_bad_scale_jitter() -> None:
    with pytest.raises(ValueError, match="scale_jitter"):
        train_transforms(scale_jitter=(1.5, 0.5))


def test_transforms_handle_images_without_boxes() -> None:
    empty = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64),
             "iscrowd": torch.zeros(0, dtype=torch.bool), "image_id": 1}  # fmt: skip
    for transforms in (eval_transforms(), train_transforms(photometric=True, scale_jitter=(0.5, 1.5))):
        image, target = transforms(torch.rand(3, 20, 30), empty)
        assert image.shape == (3, 20, 30) and target["boxes"].shape == (0, 4)
        assert target["labels"].shape == target["iscrowd"].shape == (0,)
