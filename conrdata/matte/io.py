"""Safe image reading and writing for matting.

- A decompression-bomb guard: the pixel count is read from the header and
  checked against ``max_pixels`` before any pixel is decoded.
- Truncated, corrupt or unsupported files raise :class:`~conrdata.errors.FormatError`
  naming the file, never a PIL traceback.
- EXIF orientation is applied; palette, grey, 16-bit and CMYK images become RGB(A).
- Hint masks: ``NAME.hint.png`` next to ``NAME.<ext>`` (or in a hints folder,
  same relative path). White (>= 192) marks sure foreground, black (<= 63) sure
  background, mid grey or transparent pixels carry no hint.
- PNGs are written to a temporary name and renamed, so a killed run never
  leaves a half-written output.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from conrdata.errors import FormatError

DEFAULT_MAX_PIXELS = 100_000_000
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif")
HINT_SUFFIX = ".hint.png"


@dataclass
class LoadedImage:
    """``rgb`` (H, W, 3) uint8; ``alpha`` (H, W) uint8 or None when the file has no alpha channel."""

    rgb: np.ndarray
    alpha: np.ndarray | None
    path: Path

    @property
    def has_transparency(self) -> bool:
        return self.alpha is not None and bool((self.alpha < 250).any())


def is_hint_file(path: str | os.PathLike) -> bool:
    return os.fspath(path).lower().endswith(HINT_SUFFIX)


def is_image_file(path: str | os.PathLike) -> bool:
    p = Path(path)
    return p.suffix.lower() in IMAGE_SUFFIXES and not is_hint_file(p) and not p.name.startswith(".")


def _open_checked(path: Path, max_pixels: int) -> Image.Image:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(path)
    except FileNotFoundError:
        raise FormatError("file not found", path) from None
    except Image.DecompressionBombError as err:
        raise FormatError(f"refused, decompression bomb guard: {err}", path) from None
    except Image.UnidentifiedImageError:
        raise FormatError("not an image in a format Pillow can read", path) from None
    except (OSError, SyntaxError, ValueError) as err:
        raise FormatError(f"not a readable image ({type(err).__name__}: {err})", path) from None
    w, h = im.size
    if w * h > max_pixels:
        im.close()
        raise FormatError(
            f"image is {w}x{h} = {w * h} pixels, over the limit of {max_pixels} "
            f"(raise --max-pixels if this is intended)",
            path,
        )
    if w < 1 or h < 1:
        im.close()
        raise FormatError("image has no pixels", path)
    return im


def _decode(im: Image.Image, path: Path) -> Image.Image:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im.load()
            return ImageOps.exif_transpose(im)
    except Image.DecompressionBombError as err:
        raise FormatError(f"refused, decompression bomb guard: {err}", path) from None
    except (OSError, SyntaxError, ValueError, EOFError) as err:
        raise FormatError(f"truncated or corrupt image ({type(err).__name__}: {err})", path) from None


def read_image(path: str | os.PathLike, max_pixels: int = DEFAULT_MAX_PIXELS) -> LoadedImage:
    """Read any common image as RGB plus optional alpha; raises FormatError with the path on failure."""
    path = Path(path)
    im = _open_checked(path, max_pixels)
    with im:
        im = _decode(im, path)
        has_alpha = im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info)
        if im.mode in ("I;16", "I;16B", "I;16L", "I"):
            arr = np.asarray(im, np.float64)
            scale = 255.0 / 65535.0 if arr.max() > 255 else 1.0
            im = Image.fromarray(np.clip(arr * scale, 0, 255).astype(np.uint8), "L")
        rgba = np.asarray(im.convert("RGBA" if has_alpha else "RGB"))
    rgb = np.ascontiguousarray(rgba[..., :3])
    alpha = np.ascontiguousarray(rgba[..., 3]) if has_alpha else None
    return LoadedImage(rgb, alpha, path)


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
