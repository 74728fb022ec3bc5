"""DetectionDataModule: Pascal VOC, COCO, synthetic shapes or your own data set, for 1 CPU, 1 GPU or DDP."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import torch
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch import LightningDataModule
from lightning.pytorch.trainer.states import TrainerFn
from torch.utils.data import DataLoader, Dataset

from lightning_retina._compat import UnrepeatedDistributedSampler
from lightning_retina.data.collate import collate_detection
from lightning_retina.data.image_io import DEFAULT_MAX_PIXELS
from lightning_retina.data.sampler import ResumableDistributedSampler
from lightning_retina.data.specs import DatasetSpec, Split, dataset_spec
from lightning_retina.data.transforms import eval_transforms, train_transforms

_STAGE_SPLITS = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",), "predict": ("predict",)}
_SPEC_SPLIT: dict[str, Split] = {"train": "train", "val": "val", "test": "test", "predict": "test"}


class DetectionDataModule(LightningDataModule):
    """Pascal VOC (07, 12, 07+12), COCO, the synthetic shapes set or your own data in the VOC or COCO format, as
    list-collated ``(images, targets)`` batches.

    Each ``dataset`` name is a :class:`~lightning_retina.data.specs.DatasetSpec` registered by name (``"voc"``,
    ``"coco"``, ``"shapes"``; a new data set is one file, see :mod:`lightning_retina.data.specs`): the spec knows the
    class names, the folder layout, how to check / download / generate the files and how to read each split; this
    class only runs it. ``prepare_data`` only checks for (and, when asked, downloads or generates) the files;
    ``setup(stage)`` builds the data sets on every process; one factory makes all loaders. Batches are
    ``(list[Tensor[3, H, W]], list[dict])`` (see :func:`collate_detection`). Training drops VOC ``difficult``
    objects; evaluation keeps them (flagged). Validate / test / predict never rewrite files.

    Splits: VOC trains on ``voc_train_sets`` and validates / tests on ``voc_test_sets``; COCO trains on
    ``train_images`` + ``train_annotations`` (default: ``coco_train`` in the COCO 2017 layout) and validates on
    ``val_images`` + ``val_annotations`` (default: ``coco_val``), tests on ``test_*`` (default: the validation split);
    shapes uses its ``train`` and ``val`` splits. Predict reads the test split. ``root`` is the data set folder: the
    one holding ``VOCdevkit`` (or ``VOCdevkit`` itself); the one holding ``train2017/``, ``val2017/`` and
    ``annotations/`` (or your COCO export, the ``*_images`` / ``*_annotations`` paths being relative to it); or where
    the shapes set is (or will be) written.

    Under DDP (``trainer.world_size > 1``) the validation and test loaders carry an unpadded
    :class:`~lightning_retina._compat.UnrepeatedDistributedSampler` (Lightning's), which Lightning keeps, so each
    image is evaluated exactly once over all ranks (Lightning's own sampler would pad with repeated images and
    skew the mAP; lightning #5060, #7929). Ranks may then run one batch more or less than each other.

    The training loader shuffles with a :class:`~lightning_retina.data.sampler.ResumableDistributedSampler` (one
    replica in a single process, the trainer's world size and rank under DDP) seeded with ``shuffle_seed``:
    Lightning calls its ``set_epoch`` at the start of every epoch, so epoch ``e`` has the same order whether the
    run went through it or resumed from a checkpoint (a plain ``shuffle=True`` loader would replay epoch 0's order).
    The DataModule's ``state_dict`` (which Lightning saves in checkpoints) holds the training position, the epoch
    and the batches of it already trained on, and a resumed run's loader starts right after them, mid-epoch too.
    Each training image's random augmentation is seeded from ``(shuffle_seed, epoch, index)``, so a resumed run
    (any ``num_workers``, any number of processes) sees exactly the batches and augmentations of an uninterrupted
    one.

    Args:
        dataset: a registered data set name: ``"voc"``, ``"coco"`` or ``"shapes"``.
        root: the data set folder (see above).
        batch_size: training images per batch (per process).
        num_workers: loader worker processes.
        pin_memory: pin batches in page-locked memory when CUDA is available.
        persistent_workers: keep the workers alive between epochs (when ``num_workers > 0``).
        download: let ``prepare_data`` download VOC / COCO with torchvision's helpers when missing.
        class_names: VOC layout only: your classes in label order, a list or the path of a text file with one name
            a line. Default: the 20 VOC classes (a folder whose annotations name others is refused, listing them).
        voc_train_sets: ``(year, image_set)`` pairs concatenated for training (07+12 trainval by default).
        voc_test_sets: ``(year, image_set)`` pairs for validation and test (07 test by default).
        coco_train: COCO 2017 layout: the training split (``"train2017"``).
        coco_val: COCO 2017 layout: the validation split (``"val2017"``).
        train_images: COCO: the training image folder (relative to ``root`` unless absolute).
        train_annotations: COCO: the training annotation JSON file.
        val_images: COCO: the validation image folder.
        val_annotations: COCO: the validation annotation JSON file (its categories are the class names).
        test_images: COCO: the test image folder (default: the validation split).
        test_annotations: COCO: the test annotation JSON file.
        shapes_format: on-disk layout of the shapes set, ``"coco"`` (crowd clusters flagged ``iscrowd``) or
            ``"voc"`` (flagged ``difficult``).
        shapes_num_train: shapes training images.
        shapes_num_val: shapes validation images.
        shapes_image_size: side of the square shapes images.
        shapes_objects_per_image: ``(fewest, most)`` shapes drawn on one shapes image.
        shapes_shape_sizes: ``(smallest, largest)`` side of a drawn shape in pixels; ``None``: 12–120 px at 256 px,
            scaled with the image.
        shapes_crowd_probability: the chance that a shapes image holds a crowd cluster.
        train_flip: random horizontal flips in training.
        photometric: random photometric distortion in training.
        scale_jitter: ``(min_scale, max_scale)`` zoom in/out in training, or ``None``.
        eval_batch_size: images per validation / test / predict batch (default: ``batch_size``).
        seed: seed of the generated shapes set, and of the training shuffle unless ``shuffle_seed`` is given.
        shuffle_seed: seed of the training order (epoch ``e`` uses ``shuffle_seed + e``) and of the augmentations
            (default: ``seed``). Change it to train on the same shapes set in another order.
        max_pixels: refuse an image with more pixels than this before decoding it, naming the file (decompression
            bombs); ``None`` leaves only PIL's own limit.

    Raises:
        ValueError: for an unknown ``dataset`` or ``shapes_format``, a shapes drawing option out of range, a
            non-positive batch size, ``class_names`` with COCO, or half of a ``<split>_images`` /
            ``<split>_annotations`` pair.

    Example::

        >>> dm = DetectionDataModule("shapes", root="data/shapes", batch_size=4)
        >>> dm.num_classes, dm.class_names
        (4, ('circle', 'square', 'triangle', 'star'))
        >>> mine = DetectionDataModule("voc", root="my_voc", class_names=["cat", "dog"],
        ...                            voc_train_sets=[("2007", "train")], voc_test_sets=[("2007", "val")])
        >>> export = DetectionDataModule("coco", root="export", train_images="images/train",  # doctest: +SKIP
        ...     train_annotations="train.json", val_images="images/val", val_annotations="val.json")
    """

    def __init__(
        self,
        dataset: Literal["voc", "coco", "shapes"] = "shapes",
        root: str | Path = "data",
        batch_size: int = 8,
        num_workers: int = 2,
        pin_memory: bool = True,
        persistent_workers: bool = True,
        download: bool = False,
        class_names: Sequence[str] | str | None = None,
        voc_train_sets: Sequence[tuple[str, str]] = (("2007", "trainval"), ("2012", "trainval")),
        voc_test_sets: Sequence[tuple[str, str]] = (("2007", "test"),),
        coco_train: str = "train2017",
        coco_val: str = "val2017",
        train_images: str | None = None,
        train_annotations: str | None = None,
        val_images: str | None = None,
        val_annotations: str | None = None,
        test_images: str | None = None,
        test_annotations: str | None = None,
        shapes_format: Literal["coco", "voc"] = "coco",
        shapes_num_train: int = 1500,
        shapes_num_val: int = 200,
        shapes_image_size: int = 256,
        shapes_objects_per_image: tuple[int, int] = (1, 8),
        shapes_shape_sizes: tuple[int, int] | None = None,
        shapes_crowd_probability: float = 0.1,
        train_flip: bool = True,
        photometric: bool = False,
        scale_jitter: tuple[float, float] | None = None,
        eval_batch_size: int | None = None,
        seed: int = 0,
        shuffle_seed: int | None = None,
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
    ) -> None:
        super().__init__()
        for name, value in (("batch_size", batch_size), ("eval_batch_size", eval_batch_size or batch_size)):
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {num_workers}")
        # hyper-parameters hold plain types only, so checkpoints load with weights_only=True
        root = str(root)
        class_names = str(class_names) if isinstance(class_names, Path) else class_names
        # saved in checkpoints (validate/test/predict reuse them) but not merged into the loggers' hparams: the
        # module's `class_names` (the resolved names) and ours (as given: None, a list or a file) would clash there
        self.save_hyperparameters(logger=False)
        self.dataset = dataset
        self.root = Path(root)
        self.spec: DatasetSpec = dataset_spec(dataset, self.root, self.hparams)
        self.train_transforms = train_transforms(flip=train_flip, photometric=photometric, scale_jitter=scale_jitter)
        self.eval_transforms = eval_transforms()
        self.datasets: dict[str, Dataset] = {}
        self._train_position: dict[str, int] | None = None  # where a resumed run continues (load_state_dict)

    # ------------------------------------------------------------------------------------------------ classes
    @property
    def class_names(self) -> tuple[str, ...]:
        """The class names in label order, known before ``setup`` (from the data set's spec).

        COCO reads them from the validation annotation file, which must be on disk already; a VOC-layout folder
        without ``class_names`` has its annotations checked against the 20 VOC classes.

        Raises:
            FileNotFoundError: for COCO data that is not there, saying where it is expected and how to get it.
            ValueError: for a VOC-layout folder with other classes and no ``class_names``, listing the names found.
        """
        return self.spec.class_names()

    @property
    def category_ids(self) -> tuple[int, ...] | None:
        """The data set's id of each class in label order (COCO category ids), ``None`` for VOC layouts (no ids).

        Raises:
            FileNotFoundError: for COCO data that is not there (as :attr:`class_names`).
        """
        return self.spec.category_ids()

    @property
    def num_classes(self) -> int:
        """The number of foreground classes (no background slot): 20 for VOC, 80 for COCO, 4 for shapes."""
        return len(self.class_names)

    # -------------------------------------------------------------------------------------------------- files
    def prepare_data(self) -> None:
        """Check that the files exist; generate the shapes set, or download VOC / COCO when ``download=True``.

        Under validate / test / predict nothing already on disk is rewritten.

        Raises:
            FileNotFoundError: for a missing VOC / COCO split without ``download``, saying where it is expected
                and how to get it.
            ValueError: outside fit, for a shapes folder made with other settings.
        """
        trainer = self.trainer
        fitting = trainer is None or trainer.state.fn in (None, TrainerFn.FITTING)
        self.spec.prepare(self.hparams.download, fitting=fitting)

    # ----------------------------------------------------------------------------------------------- datasets
    def setup(self, stage: str) -> None:
        """Build the data sets of ``stage`` (``"fit"``: train and val; ``"validate"``; ``"test"``; ``"predict"``).

        Raises:
            ValueError: for an unknown stage.
        """
        if stage not in _STAGE_SPLITS:
            raise ValueError(f"stage must be one of {tuple(_STAGE_SPLITS)}, got {stage!r}")
        for split in _STAGE_SPLITS[stage]:
            if split not in self.datasets:
                transforms = self.train_transforms if split == "train" else self.eval_transforms
                self.datasets[split] = self.spec.build(_SPEC_SPLIT[split], transforms)

    # -------------------------------------------------------------------------------------------- dataloaders
    def train_dataloader(self) -> DataLoader:
        return self._dataloader("train")

    def val_dataloader(self) -> DataLoader:
        return self._dataloader("val")

    def test_dataloader(self) -> DataLoader:
        return self._dataloader("test")

    def predict_dataloader(self) -> DataLoader:
        return self._dataloader("predict")

    def _dataloader(self, split: str) -> DataLoader:
        dataset = self.datasets.get(split)
        if dataset is None:
            raise MisconfigurationException(
                f"{type(self).__name__}.setup() has not built the {split} data set; call setup() for its stage first"
            )
        if len(dataset) == 0:
            raise ValueError(f"the {split} data set of {self.dataset!r} in {self.root} has no images")
        hp, train = self.hparams, split == "train"
        workers = hp.num_workers
        sampler = self._train_sampler(dataset) if train else None if split == "predict" else self._eval_sampler(dataset)
        return DataLoader(
            dataset,
            batch_size=hp.batch_size if train else hp.eval_batch_size or hp.batch_size,
            sampler=sampler,
            num_workers=workers,
            collate_fn=collate_detection,
            pin_memory=hp.pin_memory and torch.cuda.is_available(),
            persistent_workers=hp.persistent_workers and workers > 0,
            generator=torch.Generator().manual_seed(self._shuffle_seed) if train else None,  # the workers' RNGs
        )

    @property
    def _shuffle_seed(self) -> int:
        hp = self.hparams
        return hp.seed if hp.shuffle_seed is None else hp.shuffle_seed

    def _train_sampler(self, dataset: Dataset) -> ResumableDistributedSampler:
        """The shuffling sampler of the training set, split over the trainer's processes (one when unattached).

        After :meth:`load_state_dict` its first iteration starts where the checkpointed run stopped.
        """
        trainer = self.trainer
        replicas, rank = (trainer.world_size, trainer.global_rank) if trainer is not None else (1, 0)
        sampler = ResumableDistributedSampler(dataset, num_replicas=replicas, rank=rank, seed=self._shuffle_seed)
        if self._train_position is not None:
            position, self._train_position = self._train_position, None
            sampler.start_at(position["epoch"], position["batches_done"] * self.hparams.batch_size)
        return sampler

    # ------------------------------------------------------------------------------------------ checkpointing
    def state_dict(self) -> dict[str, Any]:
        """The training position saved in checkpoints: the epoch and how many of its batches were trained on.

        Read from the trainer's progress when the checkpoint is written (``{}`` outside ``fit``); a finished epoch
        is saved as the start of the next one.
        """
        trainer = self.trainer
        if trainer is None or trainer.state.fn != "fit" or not trainer.num_training_batches:
            return {}
        # the batch progress counts the batches of the last epoch started; `current_epoch` has already moved past
        # it when the checkpoint is written after `fit` returned
        epoch = max(trainer.fit_loop.epoch_progress.current.started - 1, 0)
        done = trainer.fit_loop.epoch_loop.batch_progress.current.processed
        if done >= trainer.num_training_batches:
            epoch, done = epoch + 1, 0
        return {"train_position": {"epoch": epoch, "batches_done": done}}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the training position: the next training loader starts there."""
        self._train_position = state_dict.get("train_position")

    def _eval_sampler(self, dataset: Dataset) -> UnrepeatedDistributedSampler | None:
        """An unpadded distributed sampler under DDP (each image once over all ranks), else ``None``."""
        trainer = self.trainer
        if trainer is None or trainer.world_size <= 1:
            return None
        if len(dataset) < trainer.world_size:
            raise ValueError(
                f"an evaluation set of {len(dataset)} images cannot be split over {trainer.world_size} processes "
                "(each needs at least one image)"
            )
        return UnrepeatedDistributedSampler(
            dataset, num_replicas=trainer.world_size, rank=trainer.global_rank, shuffle=False
        )
