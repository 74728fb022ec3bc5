"""Pretrained backbone weights without a network: one clear line saying where the file goes (nothing downloaded)."""

from __future__ import annotations

from pathlib import Path
from urllib.error import URLError

import pytest
import torch

from lightning_retina.cli import main
from lightning_retina.backbone import build_resnet_fpn

SHAPES_CONFIG = Path(__file__).parents[1] / "examples" / "configs" / "shapes.yaml"


@pytest.fixture
def offline(tmp_path: Path, monkeypatch) -> Path:
    """An empty torch hub cache and a download that fails as it does without a network."""

    def no_network(url, dst, *args, **kwargs):
        raise URLError(f"[Errno -3] Temporary failure in name resolution: {url}")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    previous = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "hub"))
    yield tmp_path / "hub"
    torch.hub.set_dir(previous)


def test_default_weights_offline_name_the_cache_file(offline: Path) -> None:
    with pytest.raises(FileNotFoundError) as info:
        build_resnet_fpn("resnet18", "DEFAULT", None, 64)
    message = str(info.value)
    assert str(offline / "checkpoints" / "resnet18-f37072fd.pth") in message
    assert "https://download.pytorch.org/models/resnet18-f37072fd.pth" in message and "local" in message
    assert info.value.__cause__ is None and info.value.__suppress_context__  # no urllib traceback chained


def test_cli_offline_weights_is_one_line(offline: Path, tmp_path: Path, capsys) -> None:
    argv = ["fit", "--config", str(SHAPES_CONFIG), "--model.backbone_weights", "DEFAULT", "--data.root",
            str(tmp_path / "shapes"), "--trainer.default_root_dir", str(tmp_path / "run")]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "resnet18-f37072fd.pth" in err[0] and "Traceback" not in err[0]
