"""Shared generators of hostile inputs: images, PNG bombs, COCO / VOC base data, user folders,
the base checkpoint (``CKPT``, set by ``cli.main``) and edited copies of it.
"""

from __future__ import annotations

import json
import os
import zlib
from pathlib import Path


def noise(path: Path, size=(64, 48), seed=0) -> Path:
    """Random RGB pixels, ``size`` = (width, height): 64 x 48 like the annotations of the COCO / VOC cases."""
    import numpy as np
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path)
    return path


def bomb_png(path: Path, side: int) -> Path:
    """A ``side`` x ``side`` 1-bit black PNG written without holding its pixels: a few hundred KB on disk."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")

    row = b"\x00" * (1 + (side + 7) // 8)
    comp, parts = zlib.compressobj(9), []
    block = row * 256
    for _ in range(side // 256):
        parts.append(comp.compress(block))
    parts.append(comp.compress(row * (side % 256)))
    parts.append(comp.flush())
    header = side.to_bytes(4, "big") * 2 + bytes([1, 0, 0, 0, 0])  # 1-bit grayscale
    path.parent.mkdir(parents=True, exist_ok=True)
    body = chunk(b"IHDR", header) + chunk(b"IDAT", b"".join(parts)) + chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + body)
    return path


# -------------------------------------------------------------------------------------------------- COCO data
def coco_base() -> dict:
    return {
        "images": [{"id": 1, "file_name": "a.png", "width": 64, "height": 48},
                   {"id": 2, "file_name": "b.png", "width": 64, "height": 48}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [2, 3, 20, 10], "iscrowd": 0, "area": 200},
                        {"id": 2, "image_id": 1, "category_id": 3, "bbox": [30, 5, 10, 30], "iscrowd": 0, "area": 300},
                        {"id": 3, "image_id": 2, "category_id": 3, "bbox": [1, 1, 5, 5], "iscrowd": 1, "area": 25}],
        "categories": [{"id": 1, "name": "cat"}, {"id": 3, "name": "dog"}],
    }  # fmt: skip


# --------------------------------------------------------------------------------------------------- VOC data
VOC_OK = (
    "<annotation><filename>{stem}.jpg</filename><size><width>64</width><height>48</height><depth>3</depth></size>\n"
    "<object><name>cat</name><difficult>0</difficult><bndbox><xmin>2</xmin><ymin>3</ymin><xmax>30</xmax>"
    "<ymax>20</ymax></bndbox></object>\n"
    "<object><name>dog</name><difficult>0</difficult><bndbox><xmin>10</xmin><ymin>10</ymin><xmax>40</xmax>"
    "<ymax>40</ymax></bndbox></object>\n</annotation>"
)


def _raw(data: bytes, name="x.png"):
    def make(d: Path) -> Path:
        d.mkdir(parents=True, exist_ok=True)
        (d / name).write_bytes(data)
        return d / name
    return make


def _animated(fmt: str):
    def make(d: Path) -> Path:
        from PIL import Image

        d.mkdir(parents=True, exist_ok=True)
        frames = [Image.new("RGB", (32, 32), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
        frames[0].save(d / f"x.{fmt}", save_all=True, append_images=frames[1:])
        return d / f"x.{fmt}"
    return make


# ------------------------------------------------------------------------------------------- data loss (writers)
def _user_voc(root: Path) -> list[Path]:
    base = root / "VOCdevkit" / "VOC2007"
    files = [noise(base / "JPEGImages" / "000001.jpg", seed=9)]
    (base / "Annotations").mkdir(parents=True)
    (base / "Annotations" / "000001.xml").write_text(VOC_OK.replace("{stem}", "000001"))
    (base / "ImageSets" / "Main").mkdir(parents=True)
    (base / "ImageSets" / "Main" / "train.txt").write_text("000001\n")
    (base / "ImageSets" / "Main" / "val.txt").write_text("000001\n")
    return [*files, base / "Annotations" / "000001.xml", base / "ImageSets/Main/train.txt",
            base / "ImageSets/Main/val.txt"]  # fmt: skip


def _user_coco(root: Path) -> list[Path]:
    files = [noise(root / "train" / "000001.jpg", seed=3), noise(root / "val" / "000002.jpg", seed=4)]
    (root / "annotations").mkdir(parents=True)
    for split in ("train", "val"):
        (root / "annotations" / f"instances_{split}.json").write_text(json.dumps(coco_base()))
        files.append(root / "annotations" / f"instances_{split}.json")
    return files


# ================================================================================================ the checkpoint
def make_checkpoint(path: Path) -> None:
    """A tiny ResNet-18 RetinaNet checkpoint (3 classes, 64 px), written by ``Trainer.save_checkpoint``."""
    import lightning as L
    import torch
    from lightning_retina import RetinaNetModule

    torch.manual_seed(0)
    module = RetinaNetModule(num_classes=3, class_names=["cat", "dog", "bird"], backbone="resnet18", fpn_channels=32,
                             min_size=64, max_size=64, anchor_sizes=(8, 16, 32, 64, 128), score_thresh=0.0,
                             detections_per_img=5)  # fmt: skip
    trainer = L.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False, max_steps=0)
    trainer.strategy.connect(module)
    trainer.save_checkpoint(path)


CKPT: Path = Path()  # set in main()


def edited_ckpt(d: Path, **changes) -> Path:
    import torch

    checkpoint = torch.load(CKPT, weights_only=True)
    checkpoint["hyper_parameters"].update(changes)
    torch.save(checkpoint, d / "edited.ckpt")
    return d / "edited.ckpt"


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))
