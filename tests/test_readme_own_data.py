"""The README's "Train on your own data" commands run as written (with tiny sizes and steps appended)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from lightning_retina.cli import main
from tests.test_own_data import folder_digest

REPO = Path(__file__).resolve().parents[1]
TINY = {
    "make-shapes": ["--num-train", "8", "--num-val", "4", "--image-size", "64"],
    "fit": ["--trainer.max_steps", "2", "--trainer.check_val_every_n_epoch", "1", "--trainer.precision", "32-true",
            "--trainer.accelerator", "cpu", "--trainer.logger", "false", "--trainer.callbacks", "[]",
            "--data.batch_size", "4", "--data.num_workers", "0", "--model.min_size", "64", "--model.max_size", "64"],
    "validate": ["--trainer.accelerator", "cpu", "--trainer.logger", "false"],
}  # fmt: skip


def readme_commands(marker: str) -> list[list[str]]:
    """The ``lightning-retina`` commands of the fenced block after ``<!-- marker -->``, continuation lines joined."""
    text = (REPO / "README.md").read_text()
    block = re.search(rf"<!-- {marker} -->\n```bash\n(.*?)```", text, re.DOTALL)
    assert block, f"README has no block marked {marker}"
    lines = block.group(1).replace("\\\n", " ").splitlines()
    commands = [shlex.split(line) for line in lines if line.strip()]
    assert all(c[0] == "lightning-retina" for c in commands)
    return [c[1:] for c in commands]


@pytest.mark.parametrize("marker", ["own-data-voc", "own-data-coco"])
def test_readme_own_data_commands_run(marker: str, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    commands = readme_commands(marker)
    assert [c[0] for c in commands] == ["make-shapes", "fit", "validate"]
    for argv in commands:
        argv = [str(REPO / a) if a.startswith("examples/") else a for a in argv]
        if argv[0] == "validate":
            data_root = tmp_path / commands[0][1]
            before = folder_digest(data_root)
            (ckpt,) = (tmp_path / "runs").rglob("*.ckpt")
            argv[argv.index("--ckpt_path") + 1] = str(ckpt)
        assert main(argv + TINY[argv[0]]) == 0, argv
    assert folder_digest(data_root) == before  # validate read the data, never wrote it
