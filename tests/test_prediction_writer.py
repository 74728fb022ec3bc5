"""COCOPredictionWriter: its COCO results file, evaluated by pycocotools' COCOeval, gives the in-loop test/map."""

from __future__ import annotations

import contextlib
import io
import json

import lightning as L
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from lightning_retina import RetinaNetModule
from lightning_retina.callbacks import COCOPredictionWriter
from lightning_retina.data import DetectionDataModule

#: |COCOeval AP - in-loop test/map| allowed (the model-out issue's bound; measured here: 2.6e-11).
AP_TOLERANCE = 1e-6


def _coco_ap(ann_file, results_file) -> float:
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(ann_file))
        evaluation = COCOeval(gt, gt.loadRes(str(results_file)), "bbox")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return float(evaluation.stats[0])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("writer")
    L.seed_everything(0, verbose=False)
    datamodule = DetectionDataModule(
        "shapes", root=str(root / "shapes"), shapes_format="coco", shapes_num_train=8, shapes_num_val=6,
        shapes_image_size=64, batch_size=4, num_workers=0, train_flip=False,
    )  # fmt: skip
    module = RetinaNetModule(
        num_classes=4, class_names=datamodule.class_names, category_ids=datamodule.category_ids, backbone="resnet18",
        fpn_channels=32, head_norm="group", min_size=64, max_size=64, anchor_sizes=(8, 16, 32, 64, 128),
        optimizer="adamw", lr=1e-2, warmup_steps=1, lr_schedule="constant", score_thresh=0.0,
    )  # fmt: skip
    # 30 steps at lr 1e-2 so the detections hit some boxes (COCO AP 0.008 on an AVX2 EPYC, the CPU tried): after 6
    # steps at 2e-3 the AP was above 0 on an AVX512 CPU but exactly 0 on the AVX2 one, and 0 == 0 proves nothing
    trainer = L.Trainer(
        max_steps=30, accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, default_root_dir=str(root / "run"), limit_val_batches=0,
        callbacks=[COCOPredictionWriter(output_dir=root / "out")],
    )  # fmt: skip
    trainer.fit(module, datamodule=datamodule)
    return root, trainer, module, datamodule


def test_predict_file_evaluates_like_the_in_loop_test_map(trained):
    root, trainer, module, datamodule = trained
    (in_loop,) = trainer.test(module, datamodule=datamodule, verbose=False)
    trainer.predict(module, datamodule=datamodule, return_predictions=False)
    ann_file = root / "shapes" / "annotations" / "instances_val.json"
    predicted = root / "out" / "predict_results.json"
    results = json.loads(predicted.read_text())
    annotations = json.loads(ann_file.read_text())
    assert {r["image_id"] for r in results} == {i["id"] for i in annotations["images"]}
    assert {r["category_id"] for r in results} <= {c["id"] for c in annotations["categories"]}
    assert {r["category_id"]: r["category_name"] for r in results} == {
        c["id"]: c["name"] for c in annotations["categories"] if c["id"] in {r["category_id"] for r in results}
    }
    ap = _coco_ap(ann_file, predicted)
    print(f"COCOeval AP {ap:.8f}, in-loop test/map {in_loop['test/map']:.8f}, diff {ap - in_loop['test/map']:.3g}")
    assert ap > 0.0
    assert abs(ap - in_loop["test/map"]) <= AP_TOLERANCE
    # the same detections written during test give the same file
    assert json.loads((root / "out" / "test_results.json").read_text()) == results


def test_an_existing_file_is_not_overwritten(trained, tmp_path):
    _, _, module, datamodule = trained
    (tmp_path / "predict_results.json").write_text("a user's file")
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False,
                        callbacks=[COCOPredictionWriter(output_dir=tmp_path)])  # fmt: skip
    with pytest.raises(FileExistsError, match="predict_results.json exists"):
        trainer.predict(module, datamodule=datamodule, return_predictions=False)
    assert (tmp_path / "predict_results.json").read_text() == "a user's file"


def test_unknown_stage_is_refused():
    with pytest.raises(ValueError, match="stages must be among"):
        COCOPredictionWriter(stages=("fit",))
