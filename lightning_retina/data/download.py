"""Checking for Pascal VOC and COCO on disk (paths from :mod:`~lightning_retina.data.layout`) and fetching them."""

from __future__ import annotations

from pathlib import Path

from torchvision.datasets.utils import download_and_extract_archive
from torchvision.datasets.voc import DATASET_YEAR_DICT

from lightning_retina.data.layout import coco_paths, voc_image_set_file

COCO_URL = "http://images.cocodataset.org"


def _voc_archive(year: str, image_set: str) -> dict[str, str]:
    key = "2007-test" if (year, image_set) == ("2007", "test") else year
    if key not in DATASET_YEAR_DICT:
        raise ValueError(f"no VOC archive for year {year!r}; expected one of {sorted(DATASET_YEAR_DICT)}")
    return DATASET_YEAR_DICT[key]


def ensure_voc(root: str | Path, year: str, image_set: str, download: bool = False) -> None:
    """Make sure the VOC ``year`` / ``image_set`` split is on disk, downloading it when asked.

    Raises:
        FileNotFoundError: when it is missing and ``download`` is ``False``, saying where it is expected and how to
            get it.
    """
    expected = voc_image_set_file(root, year, image_set)
    if expected.is_file():
        return
    archive = _voc_archive(year, image_set)
    if not download:
        raise FileNotFoundError(
            f"Pascal VOC {year} {image_set} not found: expected {expected}. Pass download=True, or download "
            f"{archive['url']} and extract it into {root} (it unpacks to VOCdevkit/VOC{year})."
        )
    root = Path(root)
    extract_to = root.parent if root.name == "VOCdevkit" else root
    download_and_extract_archive(archive["url"], str(extract_to), filename=archive["filename"], md5=archive["md5"])


def ensure_coco(root: str | Path, split: str, download: bool = False) -> None:
    """Make sure the COCO ``split`` (``"train2017"``, ``"val2017"``, …) and its annotations are on disk.

    Raises:
        FileNotFoundError: when they are missing and ``download`` is ``False``, saying where they are expected and
            how to get them.
    """
    image_dir, ann_file = coco_paths(root, split)
    archives = {
        image_dir: f"{COCO_URL}/zips/{split}.zip",
        ann_file: f"{COCO_URL}/annotations/annotations_trainval{split[-4:]}.zip",
    }
    missing = {path: url for path, url in archives.items() if not path.exists()}
    if missing and not download:
        raise FileNotFoundError(
            f"COCO {split} not found: expected {' and '.join(map(str, missing))}. Pass download=True, or download "
            f"{' and '.join(missing.values())} and extract them into {root}."
        )
    for url in missing.values():
        download_and_extract_archive(url, str(root))
