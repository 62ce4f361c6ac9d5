"""Training-time augmentation on numpy images: backgrounds and character-centred crops.

Arrays: RGBA uint8 H x W x 4 and UDP float32 H x W x 4 (docs/design.md), row 0 at
the top. A UDP is only ever cropped, zero-padded and resized with
nearest-neighbour sampling, so every landmark in the output exists in the input
(a blended landmark is a point that is not on the body). Randomness comes from
the ``numpy.random.Generator`` the caller passes; nothing here keeps state.
"""

from __future__ import annotations

import os
import tarfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from conrdata.errors import FormatError, UserError
from conrdata.imageio import read_image

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp"}


@dataclass(frozen=True)
class CropBox:
    """A square crop: top-left (y0, x0) and side in source pixels; may reach outside the image."""

    y0: int
    x0: int
    side: int


def character_bbox(alpha: np.ndarray, threshold: int = 0) -> tuple[int, int, int, int] | None:
    """(y0, y1, x0, x1), half-open, of the pixels with alpha > threshold; None if there are none."""
    rows = np.flatnonzero((alpha > threshold).any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero((alpha > threshold).any(axis=0))
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def random_crop_box(
    rng: np.random.Generator | None,
    alpha: np.ndarray,
    margin: tuple[float, float] = (1.05, 1.35),
    jitter: float = 0.08,
) -> CropBox:
    """A square box auto-centred on the character: side = bbox side x U(margin), centre = bbox centre
    + U(-jitter, jitter) x side. With ``rng=None`` the box is deterministic (mean margin, no jitter)."""
    h, w = alpha.shape[:2]
    bbox = character_bbox(alpha)
    if bbox is None:
        y0, y1, x0, x1 = 0, h, 0, w
    else:
        y0, y1, x0, x1 = bbox
    base = max(y1 - y0, x1 - x0, 1)
    if rng is None:
        scale, dy, dx = 0.5 * (margin[0] + margin[1]), 0.0, 0.0
    else:
        scale = rng.uniform(margin[0], margin[1])
        dy, dx = rng.uniform(-jitter, jitter, size=2)
    side = max(int(round(base * scale)), 2)
    cy = 0.5 * (y0 + y1) + dy * side
    cx = 0.5 * (x0 + x1) + dx * side
    return CropBox(int(round(cy - side / 2)), int(round(cx - side / 2)), side)


def _cut(img: np.ndarray, box: CropBox) -> np.ndarray:
    """The box's pixels, zero outside the image."""
    h, w = img.shape[:2]
    out = np.zeros((box.side, box.side) + img.shape[2:], img.dtype)
    sy0, sx0 = max(box.y0, 0), max(box.x0, 0)
    sy1, sx1 = min(box.y0 + box.side, h), min(box.x0 + box.side, w)
    if sy1 > sy0 and sx1 > sx0:
        out[sy0 - box.y0 : sy1 - box.y0, sx0 - box.x0 : sx1 - box.x0] = img[sy0:sy1, sx0:sx1]
    return out


def crop_rgba(rgba: np.ndarray, box: CropBox, size: int) -> np.ndarray:
    """Crop and resize RGBA (uint8) to size x size; area filter when shrinking, bilinear when growing.
    Colour is resized premultiplied by alpha, so transparent pixels do not bleed into the edge."""
    cut = _cut(rgba, box).astype(np.float32)
    a = cut[..., 3:4] / 255.0
    pm = np.concatenate([cut[..., :3] * a, cut[..., 3:4]], axis=-1)
    interp = cv2.INTER_AREA if box.side > size else cv2.INTER_LINEAR
    res = cv2.resize(pm, (size, size), interpolation=interp)
    alpha = res[..., 3:4]
    rgb = np.where(alpha > 0, res[..., :3] / np.maximum(alpha / 255.0, 1e-6), 0.0)
    return np.clip(np.concatenate([rgb, alpha], -1) + 0.5, 0, 255).astype(np.uint8)


def crop_udp(udp: np.ndarray, box: CropBox, size: int) -> np.ndarray:
    """Crop and resize a UDP (float32) to size x size with nearest-neighbour sampling only."""
    cut = _cut(np.asarray(udp, np.float32), box)
    # Index arithmetic rather than cv2 so the rule is explicit: output pixel i samples
    # source pixel floor((i + 0.5) * side / size), a value that exists in the input.
    idx = np.minimum(((np.arange(size) + 0.5) * box.side / size).astype(np.int64), box.side - 1)
    return np.ascontiguousarray(cut[idx][:, idx])


def procedural_background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A random size x size x 3 uint8 background: flat colour, gradient, smooth noise or stripes."""
    kind = int(rng.integers(4))
    c0, c1 = rng.uniform(0, 255, size=(2, 3))
    if kind == 0:
        img = np.broadcast_to(c0, (size, size, 3)).copy()
    elif kind == 1:
        ang = rng.uniform(0, 2 * np.pi)
        yy, xx = np.mgrid[0:size, 0:size] / max(size - 1, 1)
        t = np.cos(ang) * xx + np.sin(ang) * yy
        t = (t - t.min()) / max(np.ptp(t), 1e-6)
        img = c0 + t[..., None] * (c1 - c0)
    elif kind == 2:
        cells = int(rng.integers(2, 9))
        noise = rng.uniform(0, 255, size=(cells, cells, 3)).astype(np.float32)
        img = cv2.resize(noise, (size, size), interpolation=cv2.INTER_CUBIC)
    else:
        period = rng.uniform(4, max(size / 2, 5))
        ang = rng.uniform(0, np.pi)
        yy, xx = np.mgrid[0:size, 0:size]
        t = ((np.cos(ang) * xx + np.sin(ang) * yy) / period) % 1.0 < 0.5
        img = np.where(t[..., None], c0, c1)
    return np.clip(img, 0, 255).astype(np.uint8)


class Backgrounds:
    """Random backgrounds: random square crops of images from ``source``, or procedural when None.

    ``source`` is a folder of images (searched recursively) or a ``.tar`` file / folder of ``.tar``
    files of images (e.g. background shards); tar members are indexed once (headers only) and read
    on demand. At most ``cache`` decoded images are kept in memory (bounded memory).
    """

    def __init__(self, source: str | os.PathLike | None = None, cache: int = 32):
        self.files: list[tuple[Path, str | None, int, int]] = []  # (file, tar member, offset, size)
        self.cache: dict[int, np.ndarray] = {}
        self.cache_size = cache
        if source is None:
            return
        source = Path(source)
        if not source.exists():
            raise UserError("backgrounds folder or tar not found", source)
        paths = [source] if source.is_file() else sorted(p for p in source.rglob("*") if p.is_file())
        for p in paths:
            if p.suffix.lower() in IMAGE_SUFFIXES:
                self.files.append((p, None, 0, 0))
            elif p.suffix.lower() == ".tar":
                try:
                    with tarfile.open(p) as tar:
                        for m in tar:
                            if m.isfile() and Path(m.name).suffix.lower() in IMAGE_SUFFIXES:
                                self.files.append((p, m.name, m.offset_data, m.size))
                except (tarfile.TarError, OSError) as err:
                    raise UserError(f"cannot read backgrounds tar: {err}", p) from err
        if not self.files:
            raise UserError("no images (png/jpg/webp/bmp, loose or in .tar) for backgrounds", source)

    def _image(self, i: int) -> np.ndarray | None:
        if i not in self.cache:
            path, member, offset, size = self.files[i]
            try:  # through the project's guarded reader (decompression-bomb and size guards)
                if member is None:
                    arr = read_image(path).rgb
                else:
                    with open(path, "rb") as f:
                        f.seek(offset)
                        data = f.read(size)
                    arr = read_image(f"{path}:{member}", data=data).rgb
            except (OSError, FormatError):
                return None
            if len(self.cache) >= self.cache_size:
                self.cache.pop(next(iter(self.cache)))
            self.cache[i] = arr
        return self.cache[i]

    def sample(self, rng: np.random.Generator, size: int) -> np.ndarray:
        """size x size x 3 uint8."""
        if not self.files:
            return procedural_background(rng, size)
        img = self._image(int(rng.integers(len(self.files))))
        if img is None:  # an unreadable file: fall back rather than stop training
            return procedural_background(rng, size)
        h, w = img.shape[:2]
        side = int(rng.integers(max(min(h, w) // 2, 1), min(h, w) + 1))
        y0, x0 = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
        crop = img[y0 : y0 + side, x0 : x0 + side]
        return cv2.resize(
            crop, (size, size), interpolation=cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
        )


def composite(rgba: np.ndarray, background: np.ndarray) -> np.ndarray:
    """RGBA uint8 over an RGB uint8 background -> RGB uint8."""
    a = rgba[..., 3:4].astype(np.float32) / 255.0
    out = rgba[..., :3].astype(np.float32) * a + background.astype(np.float32) * (1 - a)
    return (out + 0.5).astype(np.uint8)
