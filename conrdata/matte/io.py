"""Image reading and writing for matting.

- Images are read by the project's one guarded reader, :func:`conrdata.imageio.read_image`
  (decompression-bomb and size guards, one-line errors naming the file, EXIF orientation),
  re-exported here with its names.
- Hint masks: ``NAME.hint.png`` next to ``NAME.<ext>`` (or in a hints folder,
  same relative path). White (>= 192) marks sure foreground, black (<= 63) sure
  background, mid grey or transparent pixels carry no hint.
- PNGs are written to a temporary name and renamed, so a killed run never
  leaves a half-written output.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from conrdata.errors import FormatError
from conrdata.imageio import (
    DEFAULT_MAX_PIXELS,
    IMAGE_SUFFIXES,
    LoadedImage,
    check_pixel_count,
    read_image,
)

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "HINT_SUFFIX",
    "IMAGE_SUFFIXES",
    "LoadedImage",
    "check_pixel_count",
    "hint_path_for",
    "is_hint_file",
    "is_image_file",
    "read_hint",
    "read_image",
    "write_rgba_png",
]

HINT_SUFFIX = ".hint.png"


def is_hint_file(path: str | os.PathLike) -> bool:
    return os.fspath(path).lower().endswith(HINT_SUFFIX)


def is_image_file(path: str | os.PathLike) -> bool:
    p = Path(path)
    return p.suffix.lower() in IMAGE_SUFFIXES and not is_hint_file(p) and not p.name.startswith(".")


def hint_path_for(
    image_path: str | os.PathLike,
    in_dir: str | os.PathLike | None = None,
    hints_dir: str | os.PathLike | None = None,
) -> Path | None:
    """The hint file of an image, if one exists: ``NAME.hint.png`` beside it, or under ``hints_dir``
    at the image's path relative to ``in_dir``."""
    image_path = Path(image_path)
    beside = image_path.with_name(image_path.stem + HINT_SUFFIX)
    if beside.is_file():
        return beside
    if hints_dir is not None and in_dir is not None:
        rel = image_path.relative_to(in_dir)
        other = Path(hints_dir) / rel.parent / (rel.stem + HINT_SUFFIX)
        if other.is_file():
            return other
    return None


def read_hint(
    path: str | os.PathLike, shape: tuple[int, int], max_pixels: int = DEFAULT_MAX_PIXELS
) -> np.ndarray:
    """A hint mask as (H, W) uint8 with 255 = foreground, 0 = background, 128 = no hint.

    Transparent pixels (alpha < 128) carry no hint. A hint of another size is
    resized (nearest neighbour) when its aspect ratio matches the image's.
    """
    img = read_image(path, max_pixels)
    grey = img.rgb.astype(np.float32).mean(-1)
    hint = np.full(grey.shape, 128, np.uint8)
    hint[grey >= 192] = 255
    hint[grey <= 63] = 0
    if img.alpha is not None:
        hint[img.alpha < 128] = 128
    h, w = shape
    if hint.shape != (h, w):
        hh, hw = hint.shape
        if abs(hw / hh - w / h) > 0.02:
            raise FormatError(f"hint is {hw}x{hh} but the image is {w}x{h} (aspect ratios differ)", path)
        hint = np.asarray(Image.fromarray(hint).resize((w, h), Image.NEAREST))
    return hint


def write_rgba_png(
    path: str | os.PathLike, rgb: np.ndarray, alpha: np.ndarray, compress_level: int = 6
) -> Path:
    """Write RGB (H, W, 3) + alpha (H, W) uint8 as an RGBA PNG, atomically; RGB is zeroed where alpha is 0."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rgba = np.dstack([rgb[..., :3], alpha]).astype(np.uint8)
    rgba[alpha == 0, :3] = 0
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        Image.fromarray(rgba, "RGBA").save(tmp, format="PNG", compress_level=compress_level)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path
