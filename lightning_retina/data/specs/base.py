"""What a data set is to the DataModule: a :class:`DatasetSpec` registered by name.

A spec knows a data set's class names, where its files are, how to check (and download or generate) them and how
to build the reader of one split. :class:`~lightning_retina.data.DetectionDataModule` looks the spec up by its
``dataset`` name and never branches on it, so a new data set is one file::

    from lightning_retina.data.specs import DatasetSpec, register_dataset

    @register_dataset("kitti")
    class KittiSpec(DatasetSpec):
        def class_names(self): return ("car", "pedestrian", "cyclist")
        def prepare(self, download, fitting=True): ...  # check the files; raise FileNotFoundError naming them
        def build(self, split, transforms): return KittiDetection(self.root / split, transforms=transforms)

    DetectionDataModule("kitti", root="data/kitti")  # once the module defining KittiSpec is imported
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from torch.utils.data import Dataset

from lightning_retina.data._records import Transforms
from lightning_retina.data.image_io import DEFAULT_MAX_PIXELS

Split = Literal["train", "val", "test"]
_REGISTRY: dict[str, type[DatasetSpec]] = {}


class DatasetSpec(ABC):
    """One data set: its class names, its files and the reader of each split.

    Args:
        root: the data set folder (``DetectionDataModule(root=...)``).
        options: the DataModule's keyword arguments (its hyper-parameters); a spec reads the ones it needs.
    """

    def __init__(self, root: Path, options: Mapping[str, Any]) -> None:
        self.root = Path(root)
        self.options = options
        self.max_pixels: int | None = options.get("max_pixels", DEFAULT_MAX_PIXELS)  # per image, for the readers

    @abstractmethod
    def class_names(self) -> tuple[str, ...]:
        """The class names in label order (labels ``0..K-1``), known before the readers are built."""

    def category_ids(self) -> tuple[int, ...] | None:
        """The data set's own id of each class in label order (e.g. COCO category ids), ``None`` when it has none."""
        return None

    @abstractmethod
    def prepare(self, download: bool, fitting: bool = True) -> None:
        """Check that the files are there; download or generate them where the data set allows it.

        Args:
            download: the user allowed a download of missing files.
            fitting: ``False`` under validate / test / predict: then no existing file may be rewritten.

        Raises:
            FileNotFoundError: naming what is missing, where it is expected and how to get it.
        """

    @abstractmethod
    def build(self, split: Split, transforms: Transforms) -> Dataset:
        """The reader of ``split`` (``"train"``, ``"val"`` or ``"test"``), its items ``(image, target)``."""


def register_dataset(name: str) -> Callable[[type[DatasetSpec]], type[DatasetSpec]]:
    """Class decorator: register a :class:`DatasetSpec` under ``name`` (``DetectionDataModule(dataset=name)``).

    Raises:
        ValueError: when ``name`` is taken by another spec.
    """

    def register(spec: type[DatasetSpec]) -> type[DatasetSpec]:
        if _REGISTRY.get(name, spec) is not spec:
            raise ValueError(f"a data set named {name!r} is already registered ({_REGISTRY[name].__name__})")
        _REGISTRY[name] = spec
        return spec

    return register


def registered_datasets() -> tuple[str, ...]:
    """The names of the registered data sets, in registration order."""
    return tuple(_REGISTRY)


def dataset_spec(name: str, root: str | Path, options: Mapping[str, Any]) -> DatasetSpec:
    """The spec registered as ``name``, for the data set in ``root``.

    Raises:
        ValueError: for a name nobody registered (listing the registered ones).
    """
    if name not in _REGISTRY:
        raise ValueError(f"dataset must be one of {registered_datasets()}, got {name!r}")
    return _REGISTRY[name](Path(root), options)


def load_class_names(value: Sequence[str] | str | Path | None) -> tuple[str, ...] | None:
    """Class names given as a list, or as the path of a text file with one name a line (blank lines skipped).

    Returns:
        the names in label order; ``None`` for ``None``.

    Raises:
        FileNotFoundError: for a path that is not a file.
        ValueError: for no names, an empty name or a repeated name (naming the file when there is one).
    """
    if value is None:
        return None
    where = "class_names"
    if isinstance(value, (str, Path)):
        path = Path(value)
        if not path.is_file():
            raise FileNotFoundError(
                f"class_names file not found: {path} (a text file with one class name a line; or pass a list)"
            )
        where = str(path)
        names = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    else:
        names = [str(name).strip() for name in value]
    if not names or not all(names):
        raise ValueError(f"{where}: needs at least one class name and no empty names, got {names}")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"{where}: each class name may appear once, repeated: {repeated}")
    return tuple(names)
