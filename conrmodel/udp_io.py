"""Read target poses for rendering: UDP files, our shards, or plain images for the detector.

A pose source is a folder (or one file) holding any of:

* ``*.npz`` with key ``"i"``: a float32 H x W x 4 UDP in the official release's form (xyz times
  occupancy, occupancy), the axis order selectable (``XYZ``, ``ZXY``, ``XZY``);
* ``*.exr``: the same as a 4-channel float EXR (needs an OpenCV built with OpenEXR; otherwise a clear
  error saying so);
* ``*.tar`` shards, or a dataset OUT folder (``shards/``), read with ``conrdata.dataset.iter_clips``:
  every image of every clip is one frame (its UDP when labelled, else its RGBA through the detector);
* ``*.png``, ``*.jpg``, ``*.jpeg``, ``*.webp``, ``*.bmp``: plain images of a character in the wanted
  pose, passed through the UDP detector.

Frames come in natural sort order of the file names (``2.npz`` before ``10.npz``). Arrays are
H x W x C, row 0 at the top, RGB order.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from conrdata.errors import FormatError, UserError
from conrdata.udp import AXIS_ORDERS, from_official

UDP_SUFFIXES = (".npz", ".exr")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
SHARD_SUFFIXES = (".tar",)


@dataclass
class PoseFrame:
    """One target pose. Exactly one of ``udp`` (H x W x 4 float32, our encoding) and ``image``
    (H x W x 3 RGB or H x W x 4 RGBA uint8, for the detector) is set."""

    name: str
    source: str
    udp: np.ndarray | None = None
    image: np.ndarray | None = None


def natural_key(text: str) -> list:
    """Sort key putting ``frame2`` before ``frame10``."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", text)]


def _check_udp(arr: np.ndarray, path: Path) -> np.ndarray:
    if arr.ndim != 3 or arr.shape[2] != 4:
        raise FormatError(f"UDP must be H x W x 4, got shape {arr.shape}", path)
    arr = arr.astype(np.float32, copy=False)
    if not np.isfinite(arr).all():
        raise FormatError("UDP holds NaN or infinite values", path)
    return arr


def read_npz_udp(path: str | os.PathLike, axis_order: str = "XYZ") -> np.ndarray:
    """An official-form ``.npz`` (key ``"i"``) -> our UDP H x W x 4 float32."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            if "i" not in data:
                found = ", ".join(data.files) or "none"
                raise FormatError(f"no array 'i' in the .npz (found: {found})", path)
            arr = data["i"]
    except FormatError:
        raise
    except Exception as err:
        raise FormatError(f"not a readable .npz ({type(err).__name__}: {str(err)[:120]})", path) from err
    return from_official(_check_udp(arr, path), axis_order)


def read_exr_udp(path: str | os.PathLike, axis_order: str = "XYZ") -> np.ndarray:
    """A 4-channel float EXR in the official form -> our UDP (through OpenCV's OpenEXR codec)."""
    path = Path(path)
    os.environ.setdefault("OPENCV_IO_ENABLE_OPENEXR", "1")
    import cv2  # imported here: the environment variable must be set before OpenCV loads

    if hasattr(cv2, "haveImageReader") and not cv2.haveImageReader(str(path)):
        raise FormatError(
            "this OpenCV build cannot read EXR (no OpenEXR codec); save the pose as .npz with key 'i' "
            "(e.g. np.savez(path, i=udp)) instead",
            path,
        )
    try:
        arr = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    except cv2.error as err:
        raise FormatError(f"OpenCV cannot read this EXR ({str(err).strip()[:120]})", path) from err
    if arr is None:
        raise FormatError("OpenCV cannot read this EXR (corrupt, or no OpenEXR support in this build)", path)
    if arr.ndim != 3 or arr.shape[2] != 4:
        raise FormatError(f"EXR must have 4 channels, got shape {arr.shape}", path)
    arr = arr[..., [2, 1, 0, 3]]  # OpenCV's BGRA -> RGBA
    return from_official(_check_udp(arr, path), axis_order)


def read_image(path: str | os.PathLike) -> np.ndarray:
    """An image file -> H x W x 4 RGBA or H x W x 3 RGB uint8."""
    path = Path(path)
    try:
        with Image.open(path) as im:
            im.load()
            has_alpha = im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info)
            return np.asarray(im.convert("RGBA" if has_alpha else "RGB"))
    except (OSError, ValueError, Image.DecompressionBombError) as err:
        raise FormatError(f"not a readable image ({str(err)[:120]})", path) from err


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
            elif suffix == ".npz":
                yield PoseFrame(path.stem, str(path), udp=read_npz_udp(path, axis_order))
            elif suffix == ".exr":
                yield PoseFrame(path.stem, str(path), udp=read_exr_udp(path, axis_order))
            else:
                yield PoseFrame(path.stem, str(path), image=read_image(path))
        except FormatError as err:
            if errors is None:
                raise
            errors.append((str(path), err.message))


def _shard_frames(source: Path) -> Iterator[PoseFrame]:
    from conrdata.dataset import iter_clips

    for clip in iter_clips(source):
        for i, (rgba, udp) in enumerate(zip(clip.rgba, clip.udp)):
            name = f"{clip.key}_{i:02d}"
            if udp is not None:
                yield PoseFrame(name, f"{source}:{clip.key}", udp=np.asarray(udp, np.float32))
            else:
                yield PoseFrame(name, f"{source}:{clip.key}", image=np.asarray(rgba, np.uint8))
