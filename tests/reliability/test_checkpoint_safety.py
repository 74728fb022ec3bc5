"""Checkpoints written by ``Trainer.fit`` with ALWA load with ``weights_only=True``; code-running pickles are refused.

``tests/test_cli.py`` covers the demo's checkpoint and files that are empty, garbage or a plain tensor dict.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lightning_retina.cli import main
from lightning_retina.data import DetectionDataModule
from lightning_retina.detect import load_module
from tests.reliability.conftest import SIZE, ALWARun, quiet_trainer, tiny_module


def test_fit_checkpoints_with_alwa_load_weights_only(alwa_run: ALWARun) -> None:
    state_key = alwa_run.alwa.state_key
    for step, path in alwa_run.checkpoints.items():
        checkpoint = torch.load(path, weights_only=True)
        assert checkpoint["global_step"] == step
        alwa_state = checkpoint["callbacks"][state_key]
        assert alwa_state["histories"]["loss_cls"].dtype == torch.float32
        w_cls = alwa_state["weights"]["loss_cls"]
        assert w_cls < 1.0 and checkpoint["loss_weights"] == {"loss_cls": w_cls, "loss_reg": 1.0}
        assert checkpoint["optimizer_states"] and checkpoint["lr_schedulers"]

        module = load_module(path)  # what `detect --ckpt` does
        assert module.loss_weights == checkpoint["loss_weights"]
        for name, value in module.state_dict().items():
            assert torch.equal(value, checkpoint["state_dict"][name]), name


@pytest.mark.parametrize(
    "root_type",
    [
        str,
        Path,
    ],
)  # fmt: skip
def test_checkpoint_of_a_fit_with_the_datamodule_loads_weights_only(tmp_path: Path, root_type: type) -> None:
    dm = DetectionDataModule("shapes", root_type(tmp_path / "shapes"), batch_size=2, num_workers=0,
                             shapes_num_train=2, shapes_num_val=1, shapes_image_size=SIZE)  # fmt: skip
    trainer = quiet_trainer(max_steps=1, default_root_dir=tmp_path)
    trainer.fit(tiny_module(), datamodule=dm)
    path = tmp_path / "fit.ckpt"
    trainer.save_checkpoint(path)
    checkpoint = torch.load(path, weights_only=True)
    assert checkpoint["datamodule_hyper_parameters"]["shapes_num_train"] == 2
    assert load_module(path).num_classes == 4


class _RunsCode:
    """Unpickling this calls ``Path.write_text(marker, "pwned")``: a stand-in for any code a hostile file runs."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return Path.write_text, (self.marker, "pwned")


@pytest.fixture
def hostile_checkpoint(tmp_path: Path) -> tuple[Path, Path]:
    """A file laid out like a checkpoint whose unpickling would write ``marker``."""
    marker, path = tmp_path / "pwned.txt", tmp_path / "hostile.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {"num_classes": 1}, "payload": _RunsCode(marker)}, path)
    return path, marker


def test_load_module_refuses_a_pickle_that_runs_code(hostile_checkpoint: tuple[Path, Path]) -> None:
    path, marker = hostile_checkpoint
    with pytest.raises(ValueError, match="hostile.ckpt is not a checkpoint that can be loaded safely"):
        load_module(path)
    assert not marker.exists()
    # the payload is live: a plain unpickler runs it
    torch.load(path, weights_only=False)
    assert marker.read_text() == "pwned"


def test_detect_refuses_a_pickle_that_runs_code(hostile_checkpoint: tuple[Path, Path], tmp_path: Path, capsys) -> None:
    path, marker = hostile_checkpoint
    assert main(["detect", "--ckpt", str(path), str(tmp_path / "any.png")]) == 2
    err = capsys.readouterr().err
    assert "hostile.ckpt is not a checkpoint that can be loaded safely" in err and "Traceback" not in err
    assert not marker.exists()


def test_detect_refuses_another_models_checkpoint(tmp_path: Path, capsys) -> None:
    path = tmp_path / "other.ckpt"
    torch.save({"state_dict": {"layer.weight": torch.zeros(2, 2)}, "hyper_parameters": {"hidden_size": 8}}, path)
    assert main(["detect", "--ckpt", str(path), str(tmp_path / "any.png")]) == 2
    assert "other.ckpt is not a lightning-retina checkpoint" in capsys.readouterr().err


@pytest.mark.parametrize(
    "content", [b"", b'{"state_dict": {}, "hyper_parameters": {}}', b"\x80\x04K\x07.", b"PK\x03\x04 truncated"]
)
def test_a_file_that_is_not_a_torch_zip_archive_is_refused_saying_so(tmp_path: Path, content: bytes) -> None:
    # re-attack: these were refused with torch's "mmap can only be used with files saved with torch.save(...,
    # _use_new_zipfile_serialization=True)", which suggests re-saving a file that never was a checkpoint
    path = tmp_path / "m.ckpt"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=r"m.ckpt is not a checkpoint that can be loaded safely \(not a torch.save zip"):
        load_module(path)


def test_a_folder_named_as_the_checkpoint_is_refused_as_a_folder(tmp_path: Path) -> None:
    (tmp_path / "dir.ckpt").mkdir()
    with pytest.raises(ValueError, match=r"checkpoint .*dir.ckpt is a folder, not a checkpoint file"):
        load_module(tmp_path / "dir.ckpt")  # was FileNotFoundError "... does not exist"
