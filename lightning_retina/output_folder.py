"""The writers' rule: write only into a new or empty folder, one the writer made itself, or with ``overwrite``.

A writer marks a folder it made with a small JSON file (its *marker*) holding ``"written_by": <writer>``; a folder
with that marker is its own and may be written again. Anything else that is not empty holds a user's files, and
the writer refuses it before writing anything.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def read_marker(folder: str | Path, marker: str, writer: str) -> dict[str, Any] | None:
    """The JSON object in ``folder / marker`` when ``writer`` wrote it (its ``"written_by"``), else ``None``."""
    path = Path(folder) / marker
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):  # absent, unreadable, not JSON: not a marker of ours
        return None
    return data if isinstance(data, dict) and data.get("written_by") == writer else None


def write_marker(folder: str | Path, marker: str, writer: str, **fields: Any) -> None:
    """Write ``folder / marker``: ``{"written_by": writer, **fields}``."""
    (Path(folder) / marker).write_text(json.dumps({"written_by": writer, **fields}, indent=1) + "\n")


def claim_output_folder(folder: str | Path, marker: str, writer: str, *, overwrite: bool, option: str) -> Path:
    """Create ``folder`` (with parents) and mark it as ``writer``'s, unless it holds files someone else wrote.

    Args:
        folder: the output folder.
        marker: the marker file's name inside ``folder``.
        writer: who writes (``"lightning-retina demo"``); stored in the marker and named in errors.
        overwrite: write into a folder with other files all the same (the user asked for it).
        option: how the user asks for ``overwrite`` (named in the error), e.g. ``"--overwrite"``.

    Returns:
        ``Path(folder)``.

    Raises:
        ValueError: naming ``folder`` when it is a file, cannot be created, or holds files and is neither marked
            by ``writer`` nor ``overwrite`` is set. Nothing is written then.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{folder} is a file, not a folder; {writer} writes a folder there")
    others = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
    if others and not overwrite and read_marker(folder, marker, writer) is None:
        shown = ", ".join(others[:5]) + (", ..." if len(others) > 5 else "")
        raise ValueError(
            f"{folder} already holds files that {writer} did not write ({shown}); nothing was written. "
            f"Choose a new or empty folder, or pass {option} to write into it anyway"
        )
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ValueError(f"cannot create the folder {folder}: {err}") from err
    if read_marker(folder, marker, writer) is None:
        write_marker(folder, marker, writer)
    return folder
