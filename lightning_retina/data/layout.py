"""Where the files of a Pascal VOC devkit tree and of a COCO 2017 tree are: the one place that knows both layouts.

VOC: ``<root>/VOCdevkit/VOC<year>/{JPEGImages/<stem>.jpg, Annotations/<stem>.xml, ImageSets/Main/<set>.txt}``
(``root`` may also be the ``VOCdevkit`` folder). COCO 2017: ``<root>/<split>/`` and
``<root>/annotations/instances_<split>.json``. The readers (:mod:`~lightning_retina.data.voc`), the download helpers
(:mod:`~lightning_retina.data.download`), the shapes writer (:mod:`~lightning_retina.data.synthetic`) and the data
set specs all take their paths from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

VOC_DEVKIT = "VOCdevkit"


def voc_year_dir(root: str | Path, year: str) -> Path:
    """``<root>/VOCdevkit/VOC<year>``, or ``<root>/VOC<year>`` when ``root`` is the ``VOCdevkit`` folder itself."""
    root = Path(root)
    inside = root / f"VOC{year}"
    return inside if root.name == VOC_DEVKIT or inside.is_dir() else root / VOC_DEVKIT / f"VOC{year}"


@dataclass(frozen=True)
class VOCYear:
    """The folders of one ``VOC<year>`` directory.

    Attributes:
        base: ``<root>/VOCdevkit/VOC<year>``.
    """

    base: Path

    @classmethod
    def of(cls, root: str | Path, year: str) -> VOCYear:
        """The year folder under ``root`` (see :func:`voc_year_dir`)."""
        return cls(voc_year_dir(root, year))

    @property
    def images(self) -> Path:
        """``JPEGImages/``."""
        return self.base / "JPEGImages"

    @property
    def annotations(self) -> Path:
        """``Annotations/``."""
        return self.base / "Annotations"

    @property
    def image_sets(self) -> Path:
        """``ImageSets/Main/``."""
        return self.base / "ImageSets" / "Main"

    def image(self, stem: str) -> Path:
        """``JPEGImages/<stem>.jpg``."""
        return self.images / f"{stem}.jpg"

    def annotation(self, stem: str) -> Path:
        """``Annotations/<stem>.xml``."""
        return self.annotations / f"{stem}.xml"

    def image_set(self, name: str) -> Path:
        """``ImageSets/Main/<name>.txt``, the list of the image stems of a split."""
        return self.image_sets / f"{name}.txt"


def voc_image_set_file(root: str | Path, year: str, image_set: str) -> Path:
    """``<root>/VOCdevkit/VOC<year>/ImageSets/Main/<image_set>.txt`` (``root`` may be the ``VOCdevkit`` folder)."""
    return VOCYear.of(root, year).image_set(image_set)


def read_image_set(path: Path) -> list[str]:
    """The image stems listed in an ``ImageSets/Main/<set>.txt`` file (first word of each non-blank line).

    Raises:
        FileNotFoundError: naming ``path`` and the expected layout when it is missing.
    """
    if not path.is_file():
        raise FileNotFoundError(
            f"VOC image set list not found: {path} (expected the devkit layout "
            "<root>/VOCdevkit/VOC<year>/ImageSets/Main/<image_set>.txt)"
        )
    return [line.split()[0] for line in path.read_text().splitlines() if line.strip()]


def coco_paths(root: str | Path, split: str) -> tuple[Path, Path]:
    """``(<root>/<split>, <root>/annotations/instances_<split>.json)``, e.g. for ``split="val2017"``."""
    root = Path(root)
    return root / split, root / "annotations" / f"instances_{split}.json"
