"""``COCOPredictionWriter``: detections of ``trainer.predict`` / ``trainer.test`` as a COCO results JSON file."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import BasePredictionWriter
from typing_extensions import override

from lightning_retina.results import coco_results

STAGES = ("predict", "test")


class COCOPredictionWriter(BasePredictionWriter):
    """Write the detections of ``trainer.predict`` (and of ``trainer.test``) as COCO results JSON.

    The file is a list of ``{"image_id", "category_id", "bbox": [x, y, w, h], "score", "category_name"}`` with the
    data set's own ids: ``image_id`` from each target (``RetinaNetModule.predict_step`` copies it into the
    detections) and ``category_id`` from the data set's ``label_to_category_id`` (e.g.
    :class:`~lightning_retina.data.COCODetection`), else from the module's ``category_ids`` hyper-parameter, else
    the label index. So ``pycocotools.COCO(ann_file).loadRes(path)`` evaluates it directly.

    On test batches the writer takes the detections ``test_step`` returns (``{"detections", "targets"}``, what
    ``RetinaNetModule`` returns when it evaluates a metric); when it returns none, it runs ``pl_module.predict_step``
    on the batch. Under DDP each rank writes ``<filename>.rank<k>.json``; after a barrier rank 0 merges them (sorted by
    image id, stable) into ``<filename>`` and removes the parts.

    Args:
        output_dir: folder of the file; default: ``trainer.log_dir`` (the logger's version folder), else
            ``trainer.default_root_dir``.
        filename: the file name; ``{stage}`` is replaced by ``predict`` or ``test``.
        stages: the loops to write for: ``("predict",)``, ``("test",)`` or both.
        overwrite: replace an existing file; without it an existing file is an error, raised before the loop runs.

    Raises:
        ValueError: for an unknown stage.

    Example::

        >>> trainer = Trainer(callbacks=[COCOPredictionWriter()])
        >>> trainer.predict(module, datamodule=DetectionDataModule("coco", root="data/coco"))
        >>> # -> lightning_logs/version_0/predict_results.json
    """

    def __init__(
        self,
        output_dir: str | Path | None = None,
        filename: str = "{stage}_results.json",
        stages: tuple[str, ...] | list[str] = ("predict", "test"),
        overwrite: bool = False,
    ) -> None:
        super().__init__(write_interval="batch")
        unknown = set(stages) - set(STAGES)
        if unknown:
            raise ValueError(f"stages must be among {STAGES}, got {sorted(unknown)}")
        self.output_dir = output_dir
        self.filename = filename
        self.stages = tuple(stages)
        self.overwrite = overwrite
        self.results: list[dict[str, Any]] = []
        self.path: Path | None = None  #: the file written last

    # ---------------------------------------------------------------------------------------------- paths
    def target(self, trainer: Trainer, stage: str) -> Path:
        """The file this writer writes for ``stage``."""
        folder = self.output_dir if self.output_dir is not None else trainer.log_dir or trainer.default_root_dir
        return Path(folder) / self.filename.format(stage=stage)

    def _start(self, trainer: Trainer, stage: str) -> None:
        self.results = []
        path = self.target(trainer, stage)
        if path.exists() and not self.overwrite:
            raise FileExistsError(f"{path} exists; pass overwrite=True to COCOPredictionWriter or another output_dir")

    # ---------------------------------------------------------------------------------------------- hooks
    @override
    def on_predict_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if "predict" in self.stages:
            self._start(trainer, "predict")

    @override
    def on_test_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if "test" in self.stages:
            self._start(trainer, "test")

    @override
    def write_on_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        prediction: Any,
        batch_indices: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int,
    ) -> None:
        if "predict" in self.stages:
            self._add(trainer, pl_module, prediction, trainer.predict_dataloaders)

    @override
    def on_test_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:  # fmt: skip
        if "test" in self.stages:
            detections = _tested_detections(outputs) or pl_module.predict_step(batch, batch_idx)
            self._add(trainer, pl_module, detections, trainer.test_dataloaders)

    @override
    def on_predict_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if "predict" in self.stages:
            self._write(trainer, "predict")

    @override
    def on_test_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if "test" in self.stages:
            self._write(trainer, "test")

    # ------------------------------------------------------------------------------------------- helpers
    def _add(self, trainer: Trainer, pl_module: LightningModule, detections: Any, dataloaders: Any) -> None:
        dataset = getattr(dataloaders[0] if isinstance(dataloaders, list) else dataloaders, "dataset", None)
        mapping = getattr(dataset, "label_to_category_id", None)
        if mapping is None and pl_module.hparams.get("category_ids") is not None:
            mapping = dict(enumerate(pl_module.hparams.category_ids))
        names = getattr(pl_module, "class_names", None)
        for det in detections:
            if "image_id" not in det:
                raise ValueError(
                    "COCOPredictionWriter needs an image id per image: batches of (images, targets) whose targets "
                    "have 'image_id' (DetectionDataModule's), through RetinaNetModule.predict_step"
                )
            self.results += coco_results(det, int(det["image_id"]), mapping, names)

    def _write(self, trainer: Trainer, stage: str) -> None:
        path = self.target(trainer, stage)
        path.parent.mkdir(parents=True, exist_ok=True)
        if trainer.world_size == 1:
            _write_json(path, self.results)
        else:
            _write_json(_part(path, trainer.global_rank), self.results)
            trainer.strategy.barrier("COCOPredictionWriter")
            if trainer.is_global_zero:
                parts = [_part(path, rank) for rank in range(trainer.world_size)]
                merged = [entry for part in parts for entry in json.loads(part.read_text())]
                _write_json(path, sorted(merged, key=lambda entry: entry["image_id"]))
                for part in parts:
                    part.unlink()
            trainer.strategy.barrier("COCOPredictionWriter")
        self.path = path
        self.results = []


def _tested_detections(outputs: Any) -> list[dict[str, Any]] | None:
    """The detections a ``test_step`` returned, each with its target's ``image_id``; ``None`` when it returned none."""
    if not isinstance(outputs, dict) or "detections" not in outputs or "targets" not in outputs:
        return None
    return [
        {**det, "image_id": target["image_id"]} if "image_id" in target else det
        for det, target in zip(outputs["detections"], outputs["targets"])
    ]


def _part(path: Path, rank: int) -> Path:
    return path.with_name(f"{path.stem}.rank{rank}{path.suffix}")


def _write_json(path: Path, data: Any) -> None:
    """Write through a temporary file and rename, so a reader never sees half a file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)
