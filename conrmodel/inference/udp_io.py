"""Read target poses for rendering: UDP files, our shards, or plain images for the detector.

A pose source is a folder (or one file) holding any of:

* ``*.npz`` with key ``"i"``: a float32 H x W x 4 UDP in the official release's form (xyz times
  occupancy, occupancy), the axis order selectable (``XYZ``, ``ZXY``, ``XZY``);
* ``*.exr``: the same as a 4-channel float or half EXR, read with the ``openexr`` package (any
  compression; channel names R/G/B/A or X/Y/Z + occupancy, optionally under a layer prefix, see
  :mod:`conrdata.udp`);
* ``*.tar`` shards, or a dataset OUT folder (``shards/``), read with ``conrdata.dataset.iter_clips``:
  every image of every clip is one frame (its UDP when labelled, else its RGBA through the detector);
* ``*.png``, ``*.jpg``, ``*.jpeg``, ``*.webp``, ``*.bmp``: plain images of a character in the wanted
  pose, passed through the UDP detector.

Frames come in natural sort order of the file names (``2.npz`` before ``10.npz``). Arrays are
H x W x C, row 0 at the top, RGB order.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from conrdata.dataset import iter_clips
from conrdata.errors import FormatError, UserError
from conrdata.imageio import DEFAULT_MAX_PIXELS
from conrdata.imageio import read_image as guarded_read_image
from conrdata.udp import (
    AXIS_ORDERS,
    from_official,
    natural_key,
    read_official_exr,
    read_official_npz,
    read_official_udp,
    to_official,
)

UDP_SUFFIXES = (".npz", ".exr")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
SHARD_SUFFIXES = (".tar",)


@dataclass
class PoseFrame:
    """One target pose. Exactly one of ``udp`` (H x W x 4 float32, our encoding) and ``image``
    (H x W x 3 RGB or H x W x 4 RGBA uint8, for the detector) is set. ``official`` is the UDP file's
    official form as stored (XYZ order, soft occupancy kept) when the frame came from one."""

    name: str
    source: str
    udp: np.ndarray | None = None
    image: np.ndarray | None = None
    official: np.ndarray | None = None


def read_npz_udp(path: str | os.PathLike, axis_order: str = "XYZ") -> np.ndarray:
    """An official-form ``.npz`` (key ``"i"``) -> our UDP H x W x 4 float32."""
    return from_official(read_official_npz(path, axis_order))


def read_exr_udp(path: str | os.PathLike, axis_order: str = "XYZ") -> np.ndarray:
    """A 4-channel half/float EXR of the official form -> our UDP (see :mod:`conrdata.udp` for the
    channel names understood)."""
    return from_official(read_official_exr(path, axis_order))


def read_image(path: str | os.PathLike, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """An image file -> H x W x 4 RGBA or H x W x 3 RGB uint8, through the guarded reader
    (:func:`conrdata.imageio.read_image`: decompression-bomb and size guards, EXIF orientation)."""
    return guarded_read_image(path, max_pixels).array()


def _udp_frame(path: Path, axis_order: str) -> PoseFrame:
    official = read_official_udp(path, axis_order)
    return PoseFrame(path.stem, str(path), udp=from_official(official), official=official)


def _is_dataset_dir(path: Path) -> bool:
    return path.is_dir() and (path / "shards").is_dir()


def iter_pose_frames(source: str | os.PathLike, axis_order: str = "XYZ",
                     errors: list[tuple[str, str]] | None = None) -> Iterator[PoseFrame]:
    """Frames of a pose source (see module doc), in order.

    A bad file raises :class:`FormatError` unless ``errors`` is given, in which case ``(path, reason)``
    is appended and the file skipped.
    """
    if axis_order not in AXIS_ORDERS:
        raise UserError(f"axis order must be one of {', '.join(AXIS_ORDERS)}, got {axis_order!r}")
    src = Path(source)
    if not src.exists():
        raise UserError("pose source not found", src)
    if _is_dataset_dir(src) or (src.is_file() and src.suffix.lower() in SHARD_SUFFIXES):
        yield from _shard_frames(src)
        return
    if src.is_file():
        files = [src]
    else:
        visible = (p for p in src.iterdir() if p.is_file() and not p.name.startswith("."))
        files = sorted(visible, key=lambda p: natural_key(p.name))
    usable = [p for p in files if p.suffix.lower() in UDP_SUFFIXES + IMAGE_SUFFIXES + SHARD_SUFFIXES]
    if not usable:
        raise UserError(
            "no poses found (expected .npz with key 'i', .exr, .tar shards, or images for the detector)", src
        )
    for path in usable:
        suffix = path.suffix.lower()
        try:
            if suffix in SHARD_SUFFIXES:
                yield from _shard_frames(path)
            elif suffix in UDP_SUFFIXES:
                yield _udp_frame(path, axis_order)
            else:
                yield PoseFrame(path.stem, str(path), image=read_image(path))
        except FormatError as err:
            if errors is None:
                raise
            errors.append((str(path), err.message))


def _shard_frames(source: Path) -> Iterator[PoseFrame]:
    for clip in iter_clips(source):
        for i, (rgba, udp) in enumerate(zip(clip.rgba, clip.udp)):
            name = f"{clip.key}_{i:02d}"
            if udp is not None:
                udp = np.asarray(udp, np.float32)
                yield PoseFrame(name, f"{source}:{clip.key}", udp=udp, official=to_official(udp))
            else:
                yield PoseFrame(name, f"{source}:{clip.key}", image=np.asarray(rgba, np.uint8))
