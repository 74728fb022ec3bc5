"""Two-process CPU DDP (gloo) of the real RetinaNetModule with ALWA, launched by torchrun under a timeout.

One ``torchrun --nproc-per-node 2`` job (this file run as a module, ``strategy="ddp"`` as under any launcher)
trains the tiny model on shapes, writes each rank's parameters, ALWA weights and raw losses, then validates the
saved checkpoint with the module's own metrics — also with a model that finds nothing in rank 1's shard — and
writes every rank's mAP and validation losses. The tests compare the ranks with each other, ALWA with the official
rule over both ranks' losses, and each mAP and loss with one process validating the same checkpoint. A hang
anywhere fails the tests when the job outlives ``TIMEOUT_S`` (gloo collectives also time out after
``COLLECTIVE_TIMEOUT``).

``tests/test_datamodule_ddp.py`` checks the unpadded sampler with a stand-in module; ``tests/test_alwa_ddp.py``
checks ALWA's pooling with prescribed losses.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import torch
from lightning.pytorch.strategies import DDPStrategy

from lightning_retina import RetinaNetModule
from lightning_retina.callbacks import ALWA
from lightning_retina.detect import load_module
from tests.reliability.conftest import ALWA_KWARGS, RawLosses, quiet_trainer, shapes_datamodule, tiny_module
from tests.test_alwa import official_alwa

WORLD = 2
NUM_TRAIN = 4  # 2 per rank, batch 1: 2 optimizer steps, one ALWA window pooled from 4 losses
VAL_SIZES = (4, 5)  # 5 is odd: the unpadded eval sampler gives the ranks 3 and 2 images
TIMEOUT_S = 420
COLLECTIVE_TIMEOUT = timedelta(seconds=90)
REPO = Path(__file__).resolve().parents[2]
LOSS_KEYS = ("val/loss", "val/loss_cls", "val/loss_reg")
MODEL = dict(score_thresh=0.0)  # an untrained model scores below 0.05; keep every candidate so the mAP is > 0

pytestmark = pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is not available")


class BlindOnOddImages(RetinaNetModule):
    """Detects nothing in the validation images at odd positions of the set.

    Shards are unshuffled strides (image ``rank + world_size * batch_idx`` at eval batch size 1), so with two
    processes rank 1 has no detections at all, and one process blanks the same images.
    """

    blind = False

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        assert len(batch[0]) == 1, "the image position is derived for eval batch size 1"
        self.blind = (self.global_rank + self.trainer.world_size * batch_idx) % 2 == 1
        super().validation_step(batch, batch_idx)

    def setup(self, stage: str) -> None:
        super().setup(stage)
        detect = self.model.detect

        def blind_detect(out: Any, original_sizes: list[tuple[int, int]]) -> list[dict[str, torch.Tensor]]:
            detections = detect(out, original_sizes)
            return [{k: v[:0] for k, v in d.items()} for d in detections] if self.blind else detections

        self.model.detect = blind_detect


# validation runs on the DDP checkpoint: name -> (module class, metric, number of val images)
VALIDATIONS = {
    "voc blind": (BlindOnOddImages, "voc", 5),
    "coco": (RetinaNetModule, "coco", 4),
    "coco blind": (BlindOnOddImages, "coco", 4),
    "coco uneven": (RetinaNetModule, "coco", 5),  # last: a sync that aborts the job would hide nothing else
}


def _datamodule(data: Path, num_val: int):
    return shapes_datamodule(data / f"val{num_val}", NUM_TRAIN, num_val, batch_size=1, eval_batch_size=1)


# --------------------------------------------------------------------------------------- the torchrun job
def _worker(out: Path, data: Path) -> None:
    """One rank: fit with ALWA (VOC mAP on 5 images), then validate the checkpoint in every way listed."""
    torch.set_num_threads(1)
    strategy = lambda: DDPStrategy(process_group_backend="gloo", timeout=COLLECTIVE_TIMEOUT)  # noqa: E731
    ddp = lambda **kw: quiet_trainer(devices=WORLD, strategy=strategy(), limit_val_batches=1.0, **kw)  # noqa: E731
    results: dict[str, Any] = {}

    module, alwa, losses = tiny_module(metric="voc", **MODEL), ALWA(**ALWA_KWARGS), RawLosses()
    trainer = ddp(max_epochs=1, callbacks=[alwa, losses])
    trainer.fit(module, datamodule=_datamodule(data, 5))
    rank, checkpoint = trainer.global_rank, out / "ddp.ckpt"

    def record(name: str, value: Any) -> None:
        results[name] = value
        (out / f"rank{rank}.json").write_text(json.dumps(results))

    torch.save({name: p.detach() for name, p in module.named_parameters()}, out / f"params{rank}.pt")
    trainer.save_checkpoint(checkpoint)
    record("fit", {"steps": trainer.global_step, "alwa": alwa.weights, "loss_weights": module.loss_weights,
                   "losses": losses.steps, "map": trainer.callback_metrics["val/map"].item(),
                   "val_losses": _val_losses(trainer.callback_metrics)})  # fmt: skip
    try:
        ddp(max_steps=1).fit(tiny_module(skip_nonfinite=True), datamodule=_datamodule(data, 5))
        record("skip_nonfinite", "no error")
    except ValueError as error:
        record("skip_nonfinite", str(error))
    for name, (cls, metric, num_val) in VALIDATIONS.items():
        validator = ddp()
        validator.validate(tiny_module(cls=cls, metric=metric, **MODEL), datamodule=_datamodule(data, num_val),
                           ckpt_path=checkpoint, verbose=False)  # fmt: skip
        record(name, validator.callback_metrics["val/map"].item())
        record(f"{name} losses", _val_losses(validator.callback_metrics))


def _val_losses(metrics: dict[str, torch.Tensor]) -> dict[str, float]:
    return {key: metrics[key].item() for key in LOSS_KEYS}


# ------------------------------------------------------------------------------------------- the test side
@dataclass
class DDPRun:
    returncode: int
    output: str
    ranks: list[dict[str, Any]]
    out: Path
    data: Path

    def result(self, name: str) -> list[Any]:
        """``name``'s value on every rank; fails showing the job's output tail when a rank did not get there."""
        values = [r.get(name) for r in self.ranks]
        tail = self.output[-4000:]
        assert None not in values, f"no {name!r} result on some rank (exit code {self.returncode}):\n{tail}"
        return values


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory: pytest.TempPathFactory) -> DDPRun:
    out, data = tmp_path_factory.mktemp("ddp"), tmp_path_factory.mktemp("ddp_data")
    for num_val in VAL_SIZES:  # written once here, not raced by the ranks
        _datamodule(data, num_val).prepare_data()
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={WORLD}",
               "-m", __name__, str(out), str(data)]  # fmt: skip
    job = subprocess.Popen(
        command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    try:
        output, _ = job.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(job.pid, signal.SIGKILL)  # torchrun and its two workers
        output, _ = job.communicate()
        pytest.fail(f"the 2-process job hung: no exit within {TIMEOUT_S} s\n{output[-4000:]}")
    ranks = [json.loads(p.read_text()) if (p := out / f"rank{r}.json").exists() else {} for r in range(WORLD)]
    return DDPRun(job.returncode, output, ranks, out, data)


def one_process_metrics(run: DDPRun, cls: type[RetinaNetModule], metric: str, num_val: int) -> dict[str, float]:
    """What one process validating the DDP checkpoint logs (one thread, like each rank)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        trainer = quiet_trainer(limit_val_batches=1.0)
        trainer.validate(tiny_module(cls=cls, metric=metric, **MODEL), datamodule=_datamodule(run.data, num_val),
                         ckpt_path=run.out / "ddp.ckpt", verbose=False)  # fmt: skip
    finally:
        torch.set_num_threads(threads)
    return {key: value.item() for key, value in trainer.callback_metrics.items()}


def one_process_map(run: DDPRun, cls: type[RetinaNetModule], metric: str, num_val: int) -> float:
    """The mAP of one process validating the DDP checkpoint."""
    return one_process_metrics(run, cls, metric, num_val)["val/map"]


def test_parameters_identical_on_both_ranks_and_trained(ddp_run: DDPRun) -> None:
    fit = ddp_run.result("fit")
    assert [f["steps"] for f in fit] == [NUM_TRAIN // WORLD] * WORLD
    rank0, rank1 = (torch.load(ddp_run.out / f"params{r}.pt", weights_only=True) for r in range(WORLD))
    assert rank0.keys() == rank1.keys()
    for name in rank0:
        assert torch.equal(rank0[name], rank1[name]), name
    initial = dict(tiny_module().named_parameters())
    assert any(not torch.equal(rank0[name], initial[name]) for name in rank0)


def test_alwa_weights_identical_and_pooled_over_ranks(ddp_run: DDPRun) -> None:
    fit = ddp_run.result("fit")
    assert fit[0]["alwa"] == fit[1]["alwa"] and fit[0]["loss_weights"] == fit[1]["loss_weights"]
    assert fit[0]["loss_weights"]["loss_cls"] == fit[0]["alwa"]["loss_cls"]
    cls_by_rank = [[s["loss_cls"] for s in f["losses"]] for f in fit]
    reg_by_rank = [[s["loss_reg"] for s in f["losses"]] for f in fit]
    window = ALWA_KWARGS["interval"]
    kwargs = dict(window=window, statistic=ALWA_KWARGS["statistic"], record=ALWA_KWARGS["record"])
    _, _, pooled = official_alwa(cls_by_rank, reg_by_rank, **kwargs)
    _, _, rank0_alone = official_alwa(cls_by_rank[:1], reg_by_rank[:1], **kwargs)
    assert fit[0]["alwa"]["loss_cls"] == pytest.approx(pooled, rel=1e-6)
    assert pooled < 1.0 and pooled != pytest.approx(rank0_alone, rel=1e-4)  # pooling changes the weight here


@pytest.mark.parametrize(
    ("name", "cls", "metric", "num_val"),
    [
        ("fit", RetinaNetModule, "voc", 5),
        *[(name, *spec) for name, spec in VALIDATIONS.items() if "uneven" not in name],
    ],
)
def test_validation_map_equals_one_process(ddp_run: DDPRun, name: str, cls, metric: str, num_val: int) -> None:
    values = ddp_run.result(name)
    ddp_map = [v["map"] for v in values] if name == "fit" else values
    assert ddp_map[0] == ddp_map[1]
    expected = one_process_map(ddp_run, cls, metric, num_val)
    assert ddp_map[0] == pytest.approx(expected, abs=1e-6)
    assert expected > 0


def test_a_rank_without_detections_finishes_with_its_own_map(ddp_run: DDPRun) -> None:
    """Rank 1 found nothing: every rank still synced (the job went on) and blinding changed the mAP (the one-process
    value of the same blinding is checked above)."""
    assert ddp_run.result("voc blind")[0] != ddp_run.result("fit")[0]["map"]
    assert ddp_run.result("coco blind")[0] != ddp_run.result("coco")[0]


def test_skip_nonfinite_is_refused_under_ddp(ddp_run: DDPRun) -> None:
    for message in ddp_run.result("skip_nonfinite"):
        assert "skip_nonfinite=True needs a single process, got 2" in message


def test_coco_map_with_uneven_shards_equals_one_process(ddp_run: DDPRun) -> None:
    """Ranks hold 3 and 2 val images: plain torchmetrics gathers its list states tensor by tensor, so the ranks
    would issue different numbers of collectives (gloo aborts, NCCL hangs); COCOMeanAveragePrecision must not."""
    values = ddp_run.result("coco uneven")
    assert values[0] == values[1] == pytest.approx(one_process_map(ddp_run, RetinaNetModule, "coco", 5), abs=1e-6)


@pytest.mark.parametrize("name", ["fit", "voc blind", "coco uneven"])
def test_validation_losses_with_uneven_shards_equal_one_process(ddp_run: DDPRun, name: str) -> None:
    """5 val images on 2 ranks (3 and 2, batch 1): the logged losses are the per-image means over all 5 images.

    Logged as floats with ``sync_dist=True`` they were the mean of the two ranks' means (1.4206 vs 1.1365 found by
    an outside check). The one-process value is checked against per-image losses computed directly.
    """
    by_rank = [f["val_losses"] for f in ddp_run.result("fit")] if name == "fit" else ddp_run.result(f"{name} losses")
    assert by_rank[0] == by_rank[1]
    expected = one_process_metrics(ddp_run, RetinaNetModule, "voc", 5)
    for key in LOSS_KEYS:
        assert by_rank[0][key] == pytest.approx(expected[key], abs=1e-6, rel=0), key
    module = load_module(ddp_run.out / "ddp.ckpt").eval()
    datamodule = _datamodule(ddp_run.data, 5)
    datamodule.setup("validate")
    with torch.no_grad():
        per_image = [module.compute_losses([image], [target]) for image, target in datamodule.datasets["val"]]
    for key in ("loss_cls", "loss_reg"):
        reference = sum(image_losses[key].item() for image_losses in per_image) / len(per_image)
        assert expected[f"val/{key}"] == pytest.approx(reference, abs=1e-6, rel=0), key


if __name__ == "__main__":
    _worker(Path(sys.argv[1]), Path(sys.argv[2]))
