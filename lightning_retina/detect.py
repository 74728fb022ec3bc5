"""``lightning-retina detect``: run a checkpoint on image files, folders and globs; draw PNGs and one COCO results file.

Outputs, all inside ``--out``:

- one drawn PNG per image, named after the input's path relative to the inputs' common folder (``a/x.jpg`` and
  ``b/x.png`` become ``a/x.png`` and ``b/x.png``; ``x.jpg`` and ``x.png`` of one folder become ``x_jpg.png`` and
  ``x_png.png``), so no two inputs share an output;
- ``detections.json``: COCO results (``image_id``, ``file_name``, ``drawn``, ``category_id``, ``category_name``,
  ``bbox`` ``[x, y, w, h]`` in original pixels, ``score``); ``image_id`` is the input's position (0-based) in the
  sorted, expanded input list and ``category_id`` the class's id in the training data set when the checkpoint knows
  it (COCO category ids), else the label index;
- :data:`MANIFEST`: what this command wrote, so a later run may write into the folder again.

Nothing that exists is overwritten unless it was written by ``detect`` (listed in the manifest) or ``--overwrite``
is given; an input image is never overwritten. An input that cannot be read (missing, corrupt, over the pixel
limit) is reported on stderr and skipped; the others are still processed and the exit status is 1.
"""

from __future__ import annotations

import glob
import json
import os
import sys
from collections.abc import Sequence
from collections import Counter
from itertools import chain, count
from pathlib import Path, PurePath
from typing import Any

import torch
from tqdm.auto import tqdm

from lightning_retina.checkpoint import load_module
from lightning_retina.data.image_io import DEFAULT_MAX_PIXELS, decode_image
from lightning_retina.output_folder import read_marker, write_marker
from lightning_retina.results import coco_results
from lightning_retina.viz import draw_detections, save_image

IMAGE_SUFFIXES = (".bmp", ".gif", ".jpeg", ".jpg", ".png", ".tif", ".tiff", ".webp")
RESULTS = "detections.json"
MANIFEST = "lightning-retina-detect.json"
WRITER = "lightning-retina detect"


# ------------------------------------------------------------------------------------------------------- inputs
def collect_images(inputs: Sequence[str | Path]) -> list[Path]:
    """Expand image files, folders (the images directly inside, sorted) and glob patterns, in argument order.

    A path given twice is kept once. A file that does not exist is kept (reading it reports the error).

    Raises:
        ValueError: for a folder without images or a pattern that matches no file.
    """
    found: list[Path] = []
    for item in map(str, inputs):
        if os.path.isdir(item):
            files = sorted(p for p in Path(item).iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not files:
                raise ValueError(f"folder {item} holds no images ({', '.join(IMAGE_SUFFIXES)})")
        elif not os.path.exists(item) and glob.has_magic(item):
            files = sorted(Path(p) for p in glob.glob(item, recursive=True) if os.path.isfile(p))
            if not files:
                raise ValueError(f"pattern {item!r} matches no file")
        else:
            files = [Path(item)]
        found.extend(files)
    unique = {os.path.abspath(p): p for p in reversed(found)}  # first occurrence wins
    return [p for p in found if unique.get(os.path.abspath(p)) is p]


def resolve_device(name: str) -> torch.device:
    """``torch.device(name)``, checked to exist on this machine.

    Raises:
        ValueError: for a malformed name or a CUDA / MPS device this machine does not have.
    """
    try:
        device = torch.device(name)
    except RuntimeError as error:
        raise ValueError(f"--device {name!r} is not a device name ({error})") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"--device {name}: CUDA is not available on this machine; use --device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"--device {name}: MPS is not available on this machine; use --device cpu")
    return device


# ------------------------------------------------------------------------------------------------------ outputs
def output_names(paths: Sequence[Path]) -> list[PurePath]:
    """A distinct ``.png`` name per input: its path relative to the inputs' common folder (see the module docstring).

    Inputs that would share a name (``x.jpg``, ``x.png``) all keep their extension in it (``x_jpg.png``,
    ``x_png.png``), whatever their order; a name still taken gets a counter. Names are compared case-insensitively,
    so they stay distinct on case-insensitive file systems.
    """
    absolute = [Path(os.path.abspath(p)) for p in paths]
    root = Path(os.path.commonpath([p.parent for p in absolute])) if paths else Path()
    relative = [p.relative_to(root) for p in absolute]
    plain = [r.with_suffix(".png") for r in relative]
    wanted = Counter(name.as_posix().lower() for name in plain)
    used = {RESULTS.lower(), MANIFEST.lower()}
    names = []
    for rel, name in zip(relative, plain):
        if wanted[name.as_posix().lower()] > 1:
            name = rel.with_name(f"{rel.stem}_{rel.suffix[1:]}.png")
        candidates = chain([name], (rel.with_name(f"{name.stem}_{n}.png") for n in count(2)))
        name = next(c for c in candidates if c.as_posix().lower() not in used)
        used.add(name.as_posix().lower())
        names.append(name)
    return names


def prepare_output(out: Path, files: Sequence[PurePath], inputs: Sequence[Path], overwrite: bool) -> set[str]:
    """Check that writing ``files`` into ``out`` overwrites nothing it must not, before any work.

    ``out`` must be new, empty or made by ``detect`` (holding :data:`MANIFEST`); an existing file there is
    overwritten only when the manifest lists it or with ``overwrite``; an input is never overwritten.

    Returns:
        the files the manifest already lists (relative POSIX paths).

    Raises:
        ValueError: naming ``out`` or the file that would be overwritten.
    """
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is an existing file, not a folder")
    manifest = read_marker(out, MANIFEST, WRITER)  # the shared writers' marker: detect's holds the files it wrote
    owned: set[str] = {*manifest.get("files", []), MANIFEST} if manifest is not None else set()
    if manifest is None and out.is_dir() and any(out.iterdir()) and not overwrite:
        raise ValueError(
            f"--out {out} is not empty and was not written by lightning-retina detect (no {MANIFEST}); "
            "choose a new or empty folder, or pass --overwrite to write into it"
        )
    protected = {os.path.realpath(p) for p in inputs}
    for rel in [*files, PurePath(MANIFEST)]:
        target = out / rel
        if os.path.realpath(target) in protected:
            raise ValueError(f"--out {out}: writing {target} would overwrite an input image; choose another --out")
        if target.exists() and rel.as_posix() not in owned and not overwrite:
            raise ValueError(
                f"{target} exists and was not written by lightning-retina detect; choose another --out or pass "
                "--overwrite"
            )
    return owned


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1) + "\n")


# ---------------------------------------------------------------------------------------------------------- run
def run_detect(
    ckpt: str | Path,
    inputs: Sequence[str | Path],
    out: str | Path = "detections",
    score_thresh: float = 0.3,
    device: str = "cpu",
    batch_size: int = 8,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    overwrite: bool = False,
) -> int:
    """Detect objects in images, write one drawn PNG per image and ``detections.json`` into ``out``.

    Args:
        ckpt: a checkpoint written by ``fit``, ``demo`` or ``Trainer.save_checkpoint``.
        inputs: image files, folders and glob patterns (see :func:`collect_images`).
        out: output folder (see :func:`prepare_output`).
        score_thresh: detections below this score are neither drawn nor written.
        device: where the model runs (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ...).
        batch_size: images per forward pass.
        max_pixels: refuse images with more pixels than this.
        overwrite: allow overwriting files that ``detect`` did not write (never an input).

    Returns:
        0 when every image was processed, 1 when some could not be read (each reported on stderr).

    Raises:
        FileNotFoundError: for a missing checkpoint.
        ValueError: for a bad checkpoint, device, output folder or argument, before any output is written.
    """
    if not 0.0 <= score_thresh <= 1.0:  # also refuses NaN
        raise ValueError(f"score_thresh must be in [0, 1], got {score_thresh}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    out = Path(out)
    torch_device = resolve_device(device)
    paths = collect_images(inputs)
    names = output_names(paths)
    owned = prepare_output(out, [*names, PurePath(RESULTS)], paths, overwrite)
    module = load_module(ckpt, map_location=torch_device)
    ids = module.hparams.get("category_ids")
    label_to_category_id = dict(enumerate(ids)) if ids is not None else None
    images_info: list[dict[str, Any]] = [
        {"image_id": i, "file_name": str(p), "drawn": n.as_posix()} for i, (p, n) in enumerate(zip(paths, names))
    ]
    files = sorted((owned - {MANIFEST}) | {RESULTS, *(n.as_posix() for n in names)})
    out.mkdir(parents=True, exist_ok=True)
    write_marker(out, MANIFEST, WRITER, files=files, images=images_info)

    results: list[dict[str, Any]] = []
    failed = 0
    module.eval()
    with torch.inference_mode(), tqdm(total=len(paths), unit="img", desc="Detecting", disable=None) as bar:
        for start in range(0, len(paths), batch_size):
            batch = []
            for i in range(start, min(start + batch_size, len(paths))):
                try:
                    batch.append((i, decode_image(paths[i], max_pixels)))
                except (FileNotFoundError, ValueError) as error:
                    failed += 1
                    images_info[i]["error"] = str(error)
                    tqdm.write(f"lightning-retina detect: error: {error}", file=sys.stderr)
            detections = module([image.to(torch_device) for _, image in batch]) if batch else []
            for (i, image), det in zip(batch, detections):
                det = {k: v.cpu() for k, v in det.items()}
                save_image(draw_detections(image, det, module.class_names, score_thresh=score_thresh), out / names[i])
                results += coco_results(
                    det, i, label_to_category_id, module.class_names, score_thresh,
                    file_name=str(paths[i]), drawn=names[i].as_posix(),
                )  # fmt: skip
            bar.update(min(batch_size, len(paths) - start))
    _write_json(out / RESULTS, results)
    write_marker(out, MANIFEST, WRITER, files=files, images=images_info)
    print(
        f"Wrote {len(paths) - failed} drawn image(s) and {RESULTS} ({len(results)} detections with score >= "
        f"{score_thresh:g}) to {out}" + (f"; {failed} image(s) could not be read" if failed else "")
    )
    return 1 if failed else 0
