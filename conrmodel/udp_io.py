"""Read target poses for rendering: UDP files, our shards, or plain images for the detector.

A pose source is a folder (or one file) holding any of:

* ``*.npz`` with key ``"i"``: a float32 H x W x 4 UDP in the official release's form (xyz times
  occupancy, occupancy), the axis order selectable (``XYZ``, ``ZXY``, ``XZY``);
* ``*.exr``: the same as a 4-channel (R, G, B, A) float or half EXR. Scanline files with NONE, RLE,
  ZIPS or ZIP compression are decoded by our own reader (OpenCV builds often lack OpenEXR); other
  compressions (PIZ, DWA, ...) go through OpenCV when it has OpenEXR, else a clear error;
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
import zlib
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
    """A 4-channel float EXR in the official form (channels R, G, B, A) -> our UDP.

    Scanline files with NONE, RLE, ZIPS or ZIP compression (what OpenCV and most tools write for float
    images) are decoded here; other compressions go through OpenCV's OpenEXR codec when this OpenCV has
    one, else a clear error.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise FormatError(f"cannot read ({err.strerror})", path) from err
    try:
        arr = decode_exr_rgba(data, path)
    except _ExrUnsupported as err:
        arr = _read_exr_opencv(path, str(err))
    return from_official(_check_udp(arr, path), axis_order)


def _read_exr_opencv(path: Path, why: str) -> np.ndarray:
    os.environ.setdefault("OPENCV_IO_ENABLE_OPENEXR", "1")
    import cv2  # imported here: the environment variable must be set before OpenCV loads

    hint = f"{why}, and this OpenCV cannot read EXR; save the pose as .npz with key 'i' instead"
    if hasattr(cv2, "haveImageReader") and not cv2.haveImageReader(str(path)):
        raise FormatError(hint, path)
    try:
        arr = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    except cv2.error as err:
        raise FormatError(f"{why}; OpenCV failed too ({str(err).strip()[:100]})", path) from err
    if arr is None or arr.ndim != 3 or arr.shape[2] != 4:
        raise FormatError(f"{why}; OpenCV could not read it as a 4-channel image", path)
    return arr[..., [2, 1, 0, 3]].astype(np.float32)  # OpenCV's BGRA -> RGBA


class _ExrUnsupported(Exception):
    """A valid EXR using a feature the built-in decoder does not handle."""


_EXR_MAGIC = b"\x76\x2f\x31\x01"
_EXR_LINES = {0: 1, 1: 1, 2: 1, 3: 16}  # compression -> scanlines per chunk (NONE, RLE, ZIPS, ZIP)
_EXR_OTHER = {4: "PIZ", 5: "PXR24", 6: "B44", 7: "B44A", 8: "DWAA", 9: "DWAB"}
_EXR_TYPES = {0: np.dtype("<u4"), 1: np.dtype("<f2"), 2: np.dtype("<f4")}


def decode_exr_rgba(data: bytes, path: str | os.PathLike | None = None) -> np.ndarray:
    """Decode a single-part scanline OpenEXR file -> H x W x 4 float32 (channels R, G, B, A).

    Follows the OpenEXR file layout: magic, version flags, header attributes, chunk offset table,
    chunks of (y, size, data); data per scanline is each channel's row, channels in header order.
    """
    def bad(msg: str) -> FormatError:
        return FormatError(f"not a valid EXR ({msg})", path)

    if data[:4] != _EXR_MAGIC:
        raise bad("wrong magic number")
    flags = int.from_bytes(data[4:8], "little")
    if flags & 0x200 or flags & 0x1000 or flags & 0x800:
        raise _ExrUnsupported("tiled, multi-part or deep EXR")
    pos, attrs = 8, {}
    try:
        while True:
            end = data.index(b"\0", pos)
            name = data[pos:end].decode("latin-1")
            pos = end + 1
            if not name:
                break
            end = data.index(b"\0", pos)
            kind = data[pos:end].decode("latin-1")
            size = int.from_bytes(data[end + 1 : end + 5], "little", signed=True)
            attrs[name] = (kind, data[end + 5 : end + 5 + size])
            pos = end + 5 + size
    except ValueError:
        raise bad("truncated header") from None
    for required in ("channels", "compression", "dataWindow"):
        if required not in attrs:
            raise bad(f"no {required} attribute")
    compression = attrs["compression"][1][0]
    if compression not in _EXR_LINES:
        raise _ExrUnsupported(f"{_EXR_OTHER.get(compression, compression)} compression")
    channels, raw = [], attrs["channels"][1]
    i = 0
    while i < len(raw) and raw[i] != 0:
        end = raw.index(b"\0", i)
        cname = raw[i:end].decode("latin-1")
        # name, int32 pixel type, uint8 pLinear + 3 reserved bytes, int32 x sampling, int32 y sampling
        ptype, xs, ys = (int.from_bytes(raw[end + k : end + k + 4], "little") for k in (1, 9, 13))
        if ptype not in _EXR_TYPES:
            raise bad(f"channel {cname} has pixel type {ptype}")
        if xs != 1 or ys != 1:
            raise _ExrUnsupported("sub-sampled channels")
        channels.append((cname, _EXR_TYPES[ptype]))
        i = end + 17
    x0, y0, x1, y1 = np.frombuffer(attrs["dataWindow"][1][:16], "<i4")
    width, height = int(x1 - x0 + 1), int(y1 - y0 + 1)
    if width <= 0 or height <= 0 or width * height > 1 << 28:
        raise bad(f"data window {width} x {height}")
    lines = _EXR_LINES[compression]
    n_chunks = -(-height // lines)
    if pos + 8 * n_chunks > len(data):
        raise bad("truncated offset table")
    offsets = np.frombuffer(data, "<u8", count=n_chunks, offset=pos)
    planes = {name: np.empty((height, width), np.float32) for name, _ in channels}
    row_bytes = sum(dt.itemsize for _, dt in channels) * width
    for offset in offsets.tolist():
        if offset + 8 > len(data):
            raise bad("chunk offset past the end of the file")
        y = int.from_bytes(data[offset : offset + 4], "little", signed=True) - int(y0)
        size = int.from_bytes(data[offset + 4 : offset + 8], "little", signed=True)
        chunk = data[offset + 8 : offset + 8 + size]
        rows = min(lines, height - y)
        if y < 0 or rows <= 0 or len(chunk) != size:
            raise bad("bad chunk")
        expected = rows * row_bytes
        if compression != 0 and size < expected:  # stored raw when compressing did not help
            chunk = _exr_unpredict(_exr_inflate(chunk, compression, expected, bad))
        if len(chunk) != expected:
            raise bad("chunk size does not match the data window")
        at = 0
        for r in range(rows):
            for name, dt in channels:
                n = dt.itemsize * width
                planes[name][y + r] = np.frombuffer(chunk, dt, count=width, offset=at).astype(np.float32)
                at += n
    by_short = {name.rsplit(".", 1)[-1].upper(): plane for name, plane in planes.items()}
    if not all(c in by_short for c in "RGBA"):
        found = ", ".join(n for n, _ in channels)
        raise bad(f"channels {found}; a UDP needs R, G, B, A")
    return np.stack([by_short[c] for c in "RGBA"], axis=-1)


def _exr_inflate(chunk: bytes, compression: int, expected: int, bad) -> bytes:
    if compression in (2, 3):
        try:
            out = zlib.decompress(chunk)
        except zlib.error as err:
            raise bad(f"corrupt ZIP data ({err})") from None
    else:  # RLE: a signed count byte; negative = that many literal bytes, else one byte repeated count + 1
        buf, i, parts = chunk, 0, []
        while i < len(buf):
            count = buf[i] - 256 if buf[i] > 127 else buf[i]
            if count < 0:
                parts.append(buf[i + 1 : i + 1 - count])
                i += 1 - count
            else:
                parts.append(buf[i + 1 : i + 2] * (count + 1))
                i += 2
        out = b"".join(parts)
    if len(out) != expected:
        raise bad("decompressed chunk has the wrong size")
    return out


def _exr_unpredict(buf: bytes) -> bytes:
    """Undo OpenEXR's byte predictor (deltas + 128) and its even/odd byte split."""
    d = np.frombuffer(buf, np.uint8).astype(np.int64) - 128
    d[0] += 128
    t = (np.cumsum(d) % 256).astype(np.uint8)
    out = np.empty_like(t)
    half = (t.size + 1) // 2
    out[0::2] = t[:half]
    out[1::2] = t[half:]
    return out.tobytes()


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
