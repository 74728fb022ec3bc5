"""The one image decoder of the package: data sets, ``detect`` and the demo all read pixels through it.

Decisions (also in the README, "Files you own are safe"):

- **Modes.** 8-bit modes (``1``, ``L``, ``LA``, ``P``, ``PA``, ``RGB``, ``RGBA``, ``CMYK``, ``YCbCr``, ...) become RGB
  with PIL's ``convert("RGB")``, divided by 255; alpha is dropped (the colour channels as stored, no compositing).
  16-bit grayscale (PIL modes ``I;16*``, and ``I`` holding 16-bit values) is divided by 65535 and repeated to three
  channels; a mode ``I`` value outside ``0..65535`` or a floating-point (``F``) image is refused.
- **Several frames** (animated GIF, multi-page TIFF): the first frame is used, with an :class:`ImageWarning` naming
  the file and the number of frames.
- **EXIF orientation** is applied (``PIL.ImageOps.exif_transpose``), as photo viewers, browsers and most annotation
  tools show the image: box coordinates refer to the displayed (upright) image.
- **Pixel limit.** An image with more than ``max_pixels`` pixels (default :data:`DEFAULT_MAX_PIXELS`, 50 Mpx) is
  refused with the file named, from the size in its header, *before* any pixel is decoded (``Image.open`` is lazy).
  PIL's own bomb limit (``2 * Image.MAX_IMAGE_PIXELS``) still applies on top.
- A missing, empty, truncated, corrupt or non-image file is an error naming the file.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import Tensor

#: The default pixel limit of :func:`decode_image` (width × height): 50 Mpx, e.g. 8660 × 5773.
DEFAULT_MAX_PIXELS = 50_000_000

_SIXTEEN_BIT = 65535.0


class ImageWarning(UserWarning):
    """An image was decoded with a choice the user may want to know about (first of several frames, size mismatch)."""


def decode_image(path: str | Path, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> Tensor:
    """Decode an image file into ``float32[3, H, W]`` in ``0..1`` (see the module docstring for each decision).

    Args:
        path: the image file (any format PIL reads: JPEG, PNG, BMP, TIFF, GIF, WebP, ...).
        max_pixels: refuse images with more pixels than this (``None``: only PIL's own limit).

    Returns:
        ``float32[3, H, W]`` in ``0..1``, ``H × W`` the displayed size (after the EXIF orientation).

    Raises:
        FileNotFoundError: when ``path`` does not exist.
        ValueError: naming ``path`` for a folder, an empty, truncated, corrupt or non-image file, an image over the
            pixel limit, a floating-point image or 32-bit values outside ``0..65535``.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"image file not found: {path}")
    if not path.is_file():
        raise ValueError(f"cannot decode image {path}: not a file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit below says more
            with Image.open(path) as img:  # lazy: reads the header only
                _check_size(img, path, max_pixels)
                _warn_frames(img, path)
                img.load()  # decodes the (first) frame: truncation and corrupt data surface here
                ImageOps.exif_transpose(img, in_place=True)  # no copy when there is nothing to turn
                return _to_tensor(img, path)
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError, EOFError) as err:
        raise ValueError(f"cannot decode image {path}: {err}") from err


def _check_size(img: Image.Image, path: Path, max_pixels: int | None) -> None:
    width, height = img.size
    if max_pixels is not None and width * height > max_pixels:
        raise ValueError(
            f"cannot decode image {path}: {width}x{height} = {width * height} pixels is more than the limit of "
            f"{max_pixels} (max_pixels); nothing was decoded"
        )


def _warn_frames(img: Image.Image, path: Path) -> None:
    frames = getattr(img, "n_frames", 1)
    if frames > 1:
        warn_once(path, "frames", f"{path} holds {frames} frames; using the first")


_warned: set[tuple[str, str]] = set()


def warn_once(path: str | Path, kind: str, message: str) -> None:
    """Issue ``message`` as an :class:`ImageWarning` the first time ``(path, kind)`` comes up in this process.

    A data set decodes each image once per epoch; the warning about one file shows once (per loader worker
    process), not every epoch.
    """
    key = (str(path), kind)
    if key not in _warned:
        _warned.add(key)
        warnings.warn(message, ImageWarning, stacklevel=3)


def _to_tensor(img: Image.Image, path: Path) -> Tensor:
    """``float32[3, H, W]`` in ``0..1`` from a loaded PIL image."""
    if img.mode.startswith("I;16") or img.mode == "I":
        gray = np.asarray(img).astype(np.float32)
        if gray.size and (gray.min() < 0 or gray.max() > _SIXTEEN_BIT):
            raise ValueError(
                f"cannot decode image {path}: mode {img.mode!r} values {gray.min():g}..{gray.max():g} are outside "
                "the 16-bit range 0..65535"
            )
        return torch.from_numpy(gray / _SIXTEEN_BIT).expand(3, -1, -1).contiguous()
    if img.mode == "F":
        raise ValueError(f"cannot decode image {path}: floating-point images (PIL mode 'F') are not supported")
    array = np.asarray(img.convert("RGB"), dtype=np.uint8)
    return torch.from_numpy(array.copy()).permute(2, 0, 1).float().div_(255.0)
