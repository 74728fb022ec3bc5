"""make_shapes_dataset: deterministic, both layouts readable, the same objects in both, tight boxes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from lightning_retina.data import SHAPES_CLASSES, COCODetection, VOCDetection, make_shapes_dataset
from lightning_retina.data.synthetic import shapes_manifest


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _readers(root: Path, fmt: str, split: str) -> VOCDetection | COCODetection:
    if fmt == "voc":
        return VOCDetection(root, "2007", split, keep_difficult=True, class_names=SHAPES_CLASSES)
    return COCODetection(root / split, root / "annotations" / f"instances_{split}.json")


@pytest.mark.parametrize("fmt", ["voc", "coco"])
def test_same_seed_same_files_other_seed_other_files(tmp_path: Path, fmt: str) -> None:
    a = _files(make_shapes_dataset(tmp_path / "a", fmt, num_train=4, num_val=2, image_size=64, seed=1))
    b = _files(make_shapes_dataset(tmp_path / "b", fmt, num_train=4, num_val=2, image_size=64, seed=1))
    c = _files(make_shapes_dataset(tmp_path / "c", fmt, num_train=4, num_val=2, image_size=64, seed=2))
    assert a == b
    images = [k for k in a if k.endswith(".jpg")]
    assert len(images) == 6 and all(a[k] != c[k] for k in images)


def test_voc_and_coco_layouts_hold_the_same_objects(tmp_path: Path) -> None:
    voc = make_shapes_dataset(tmp_path / "voc", "voc", num_train=30, num_val=5, image_size=96, seed=0)
    coco = make_shapes_dataset(tmp_path / "coco", "coco", num_train=30, num_val=5, image_size=96, seed=0)
    assert (voc / "VOCdevkit/VOC2007/ImageSets/Main/train.txt").is_file()
    assert (coco / "annotations/instances_val.json").is_file()
    for split, count in (("train", 30), ("val", 5)):
        v, c = _readers(voc, "voc", split), _readers(coco, "coco", split)
        assert len(v) == len(c) == count and v.class_names == c.class_names == SHAPES_CLASSES
        for (vi, vt), (ci, ct) in zip(v, c):
            assert vi.shape == ci.shape == (3, 96, 96)
            torch.testing.assert_close(vt["boxes"], ct["boxes"])  # via 1-based XML and via [x, y, w, h] JSON
            assert torch.equal(vt["labels"], ct["labels"]) and torch.equal(vt["difficult"], ct["iscrowd"])


def test_content_follows_the_spec(tmp_path: Path) -> None:
    root = make_shapes_dataset(tmp_path, "coco", num_train=80, num_val=0, image_size=256, seed=0)
    dataset = _readers(root, "coco", "train")
    per_image, sides, labels, crowd = [], [], [], 0
    for _, target in (dataset[i] for i in range(len(dataset))):
        single = ~target["iscrowd"]
        per_image.append(int(single.sum()))
        wh = target["boxes"][single, 2:] - target["boxes"][single, :2]
        sides.append(wh.max(dim=1).values)
        labels.append(target["labels"])
        crowd += int(target["iscrowd"].sum())
    sides = torch.cat(sides)
    assert min(per_image) >= 1 and max(per_image) <= 8 and len(set(per_image)) >= 6
    assert sides.min() >= 8 and sides.max() <= 120 and sides.min() < 20 and sides.max() > 100
    assert set(torch.cat(labels).tolist()) == set(range(len(SHAPES_CLASSES)))
    assert 1 <= crowd <= len(dataset) // 4  # about one image in ten


def test_boxes_are_tight(tmp_path: Path) -> None:
    """On each side of an isolated box, the first line inside holds shape pixels; 2 px outside is background."""
    root = make_shapes_dataset(tmp_path, "coco", num_train=40, num_val=0, image_size=128, seed=3)
    dataset = _readers(root, "coco", "train")
    inside, outside = [], []
    margin = 4
    for image, target in dataset:
        pixels = image.permute(1, 2, 0).numpy() * 255
        boxes = target["boxes"].long()
        for k, (x1, y1, x2, y2) in enumerate(boxes.tolist()):
            grown = torch.tensor([x1 - margin, y1 - margin, x2 + margin, y2 + margin])
            others = torch.cat([boxes[:k], boxes[k + 1 :]])
            touches = (torch.minimum(others[:, 2:], grown[2:]) > torch.maximum(others[:, :2], grown[:2])).all(dim=1)
            if target["iscrowd"][k] or grown[:2].min() < 0 or grown[2:].max() > 128 or touches.any():
                continue
            ring = np.concatenate([pixels[y1 - margin, x1:x2], pixels[y2 + margin - 1, x1:x2],
                                   pixels[y1:y2, x1 - margin], pixels[y1:y2, x2 + margin - 1]])  # fmt: skip
            background = np.median(ring, axis=0)

            def deviation(line: np.ndarray) -> float:
                return float(np.abs(line - background).mean(axis=-1).max())

            inside += [deviation(pixels[y1, x1:x2]), deviation(pixels[y2 - 1, x1:x2]),
                       deviation(pixels[y1:y2, x1]), deviation(pixels[y1:y2, x2 - 1])]  # fmt: skip
            outside += [deviation(pixels[y1 - 2, x1:x2]), deviation(pixels[y2 + 1, x1:x2]),
                        deviation(pixels[y1:y2, x1 - 2]), deviation(pixels[y1:y2, x2 + 1])]  # fmt: skip
    assert len(inside) >= 100
    assert np.mean(np.array(inside) > 30) >= 0.9 and np.mean(np.array(outside) < 30) >= 0.9


def test_drawing_arguments_set_count_size_and_crowds(tmp_path: Path) -> None:
    """The easy variant the ablation trains on: 1–3 shapes of 20–40 px per 96-px image, no crowd clusters."""
    root = make_shapes_dataset(tmp_path, "coco", num_train=60, num_val=0, image_size=96, seed=0,
                               objects_per_image=(1, 3), shape_sizes=(20, 40), crowd_probability=0.0)  # fmt: skip
    dataset = _readers(root, "coco", "train")
    per_image, sides = [], []
    for _, target in (dataset[i] for i in range(len(dataset))):
        assert not target["iscrowd"].any()
        per_image.append(len(target["boxes"]))
        sides.append((target["boxes"][:, 2:] - target["boxes"][:, :2]).max(dim=1).values)
    sides = torch.cat(sides)
    assert set(per_image) == {1, 2, 3}  # a shape finds room on a 96-px image in 10 tries
    assert sides.min() >= 14 and sides.max() <= 40 and sides.max() > 36  # triangles/stars are narrower than 20
    assert shapes_manifest(root) == {"format": "coco", "num_train": 60, "num_val": 0, "image_size": 96, "seed": 0,
                                     "objects_per_image": [1, 3], "shape_sizes": [20, 40], "crowd_probability": 0.0}


def test_default_drawing_draws_what_it_drew_before(tmp_path: Path) -> None:
    """The defaults spelled out write the same files as no drawing arguments (sets written before are still valid)."""
    implicit = _files(make_shapes_dataset(tmp_path / "a", "voc", num_train=6, num_val=2, image_size=64, seed=4))
    explicit = _files(make_shapes_dataset(tmp_path / "b", "voc", num_train=6, num_val=2, image_size=64, seed=4,
                                          objects_per_image=[1, 8], shape_sizes=None, crowd_probability=0.1))  # fmt: skip
    assert implicit == explicit


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"format": "yolo"}, "format"),
        ({"image_size": 16}, "image_size"),
        ({"num_val": -1}, "num_val"),
        ({"objects_per_image": (3, 2)}, r"objects_per_image must be \(low, high\).*got \(3, 2\)"),
        ({"objects_per_image": (1,)}, "objects_per_image"),
        ({"shape_sizes": (0, 10)}, "shape_sizes"),
        ({"shape_sizes": (10, 300)}, r"shape_sizes .*high <= 256, got \(10, 300\)"),
        ({"shape_sizes": (10.5, 20)}, "shape_sizes"),
        ({"crowd_probability": 1.5}, "crowd_probability must be in"),
        ({"crowd_probability": float("nan")}, "crowd_probability"),
    ],
)
def test_bad_arguments(tmp_path: Path, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_shapes_dataset(tmp_path / "out", **{"num_train": 1, "num_val": 1, **kwargs})
    assert not (tmp_path / "out").exists()  # refused before anything is written
