"""The project's one guarded image reader: every image file is decoded through :func:`read_image`, or,
for other decoders (OpenEXR, the shards' PNG decoder), checked with :func:`check_pixel_count` on the
size its header claims before any pixel is decoded.

- A decompression-bomb guard: the pixel count is read from the header and checked against
  ``max_pixels`` before any pixel is decoded.
- Truncated, corrupt or unsupported files raise :class:`~conrdata.errors.FormatError` naming the file,
  never a PIL traceback.
- EXIF orientation is applied; palette, grey, 16-bit and CMYK images become RGB(A).
"""

from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from conrdata.errors import FormatError

DEFAULT_MAX_PIXELS = 100_000_000
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif")


@dataclass
class LoadedImage:
    """``rgb`` (H, W, 3) uint8; ``alpha`` (H, W) uint8 or None when the file has no alpha channel."""

    rgb: np.ndarray
    alpha: np.ndarray | None
    path: Path

    @property
    def has_transparency(self) -> bool:
        return self.alpha is not None and bool((self.alpha < 250).any())

    def array(self) -> np.ndarray:
        """H x W x 4 RGBA when the file has alpha, else H x W x 3 RGB (uint8)."""
        return self.rgb if self.alpha is None else np.dstack([self.rgb, self.alpha])


def check_pixel_count(width: int, height: int, max_pixels: int = DEFAULT_MAX_PIXELS,
                      path: str | os.PathLike | None = None) -> None:
    """Refuse an image whose header claims more than ``max_pixels`` pixels (or none), before decoding."""
    if width * height > max_pixels:
        raise FormatError(
            f"image is {width}x{height} = {width * height} pixels, over the limit of {max_pixels} "
            f"(raise --max-pixels if this is intended)",
            path,
        )
    if width < 1 or height < 1:
        raise FormatError("image has no pixels", path)


def _open_checked(path: Path, max_pixels: int, data: bytes | None = None) -> Image.Image:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(path if data is None else io.BytesIO(data))
    except FileNotFoundError:
        raise FormatError("file not found", path) from None
    except Image.DecompressionBombError as err:
        raise FormatError(f"refused, decompression bomb guard: {err}", path) from None
    except Image.UnidentifiedImageError:
        raise FormatError("not an image in a format Pillow can read", path) from None
    except (OSError, SyntaxError, ValueError) as err:
        raise FormatError(f"not a readable image ({type(err).__name__}: {err})", path) from None
    try:
        check_pixel_count(*im.size, max_pixels, path)
    except FormatError:
        im.close()
        raise
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


def read_image(path: str | os.PathLike, max_pixels: int = DEFAULT_MAX_PIXELS,
               data: bytes | None = None) -> LoadedImage:
    """Read any common image as RGB plus optional alpha; raises FormatError with the path on failure.

    With ``data`` the image is decoded from those bytes (e.g. a tar member) and ``path`` only names it.
    """
    path = Path(path)
    im = _open_checked(path, max_pixels, data)
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
