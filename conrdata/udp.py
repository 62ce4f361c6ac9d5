"""The Ultra-Dense Pose (UDP) encoding of docs/design.md, and the UDP file forms other tools use.

A UDP image is H x W x 4 float32: channels 0-2 are the A-pose (bind) position
p of the visible surface point, normalised by the character's A-pose height H
(metres) as ``(p.x / H + 0.5, p.y / H, p.z / H + 0.5)`` and clipped to [0, 1];
channel 3 is occupancy (1 on the body, 0 elsewhere). Background pixels are 0
in all four channels.

The official CoNR release (and the community's MMD tools) store a UDP in the *official form*: xyz
multiplied by occupancy, in one of the axis orders :data:`AXIS_ORDERS`, and occupancy (possibly soft,
as rendered with anti-aliasing) in channel 4. Two files hold it:

* ``.npz`` with key ``i``: a float32 H x W x 4 array;
* ``.exr``: a 4-channel half or float OpenEXR image, read and written with the ``openexr`` package.
  Channels are found by name: ``R, G, B, A`` (the official tools, OpenCV, Blender's RGBA passes),
  ``X, Y, Z`` plus an occupancy-style fourth (``A``, ``alpha``, ``occupancy``, ``occ``, ``mask``,
  ``V``, ``W``), case-insensitive, optionally under a layer prefix (``UDP.R``, ``ViewLayer.Pose.X``).
  R/G/B are positional (the axis order says which axis each holds); X/Y/Z are named axes.

Our own shards store our encoding losslessly as ``udpz`` (:mod:`conrdata.dataset.codec`).
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import sys
from pathlib import Path

import numpy as np

from conrdata.errors import FormatError
from conrdata.imageio import DEFAULT_MAX_PIXELS, check_pixel_count

AXIS_ORDERS = ("XYZ", "ZXY", "XZY")
UDP_FILE_FORMATS = ("npz", "exr")
_OCCUPANCY_NAMES = ("a", "alpha", "occupancy", "occ", "mask", "v", "w")


def encode_landmarks(points: np.ndarray, height: float) -> np.ndarray:
    """A-pose positions (N, 3) in metres -> UDP landmarks (N, 3) float32 in [0, 1]."""
    if not height > 0:
        raise ValueError(f"A-pose height must be positive, got {height}")
    p = np.asarray(points, np.float64) / float(height)
    out = np.stack([p[:, 0] + 0.5, p[:, 1], p[:, 2] + 0.5], axis=1)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def decode_landmarks(landmarks: np.ndarray, height: float) -> np.ndarray:
    """Inverse of :func:`encode_landmarks` (exact for unclipped values): (N, 3) metres."""
    l = np.asarray(landmarks, np.float64)
    return np.stack([(l[..., 0] - 0.5) * height, l[..., 1] * height, (l[..., 2] - 0.5) * height], axis=-1)


def to_official(udp: np.ndarray, axis_order: str = "XYZ") -> np.ndarray:
    """Our UDP (H, W, 4) -> the official CoNR release's form: xyz (in the given axis order)
    multiplied by occupancy, occupancy in channel 4; float32."""
    if axis_order not in AXIS_ORDERS:
        raise ValueError(f"axis order must be one of {AXIS_ORDERS}, got {axis_order!r}")
    idx = ["XYZ".index(c) for c in axis_order]
    udp = np.asarray(udp, np.float32)
    occ = udp[..., 3:4]
    return np.concatenate([udp[..., idx] * occ, occ], axis=-1).astype(np.float32)


def official_to_xyz(udp: np.ndarray, axis_order: str = "XYZ") -> np.ndarray:
    """The official form (H, W, 4) in ``axis_order`` -> the same in XYZ order, values as stored
    (soft occupancy kept: what the official loader feeds its networks); float32."""
    if axis_order not in AXIS_ORDERS:
        raise ValueError(f"axis order must be one of {AXIS_ORDERS}, got {axis_order!r}")
    udp = np.asarray(udp, np.float32)
    out = np.empty_like(udp)
    for src, axis in enumerate(axis_order):
        out[..., "XYZ".index(axis)] = udp[..., src]
    out[..., 3] = udp[..., 3]
    return out


def from_official(udp: np.ndarray, axis_order: str = "XYZ") -> np.ndarray:
    """The official form (H, W, 4) -> our UDP, with occupancy binarised at 0.5 and background zeroed."""
    xyz = official_to_xyz(udp, axis_order)
    occ = (xyz[..., 3:4] > 0.5).astype(np.float32)
    return np.concatenate([np.clip(xyz[..., :3], 0, 1) * occ, occ], axis=-1)


# ---------------------------------------------------------------------------------------------- files


def natural_key(text: str) -> list:
    """Sort key for frame file names: ``frame2`` before ``frame10`` (digit runs compare as numbers)."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", text)]


def _check_official(arr: np.ndarray, path: Path) -> np.ndarray:
    if arr.ndim != 3 or arr.shape[2] != 4:
        raise FormatError(f"UDP must be H x W x 4, got shape {arr.shape}", path)
    arr = arr.astype(np.float32, copy=False)
    if not np.isfinite(arr).all():
        raise FormatError("UDP holds NaN or infinite values", path)
    return arr


def _npy_shape(npz) -> tuple[int, ...]:
    """The shape recorded in the header of member ``i`` of an open ``.npz``, without reading it."""
    with npz.zip.open("i.npy") as member:
        fmt = np.lib.format
        reader = fmt.read_array_header_1_0 if fmt.read_magic(member) == (1, 0) else fmt.read_array_header_2_0
        return reader(member)[0]


def read_official_npz(path: str | os.PathLike, axis_order: str = "XYZ",
                      max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """An official-form ``.npz`` (key ``i``) -> the official form in XYZ order (see
    :func:`official_to_xyz`), float32 H x W x 4."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            if "i" not in data:
                found = ", ".join(data.files) or "none"
                raise FormatError(f"no array 'i' in the .npz (found: {found})", path)
            shape = _npy_shape(data)
            if len(shape) >= 2:  # the bomb guard, on the shape in the array's header
                check_pixel_count(int(shape[1]), int(shape[0]), max_pixels, path)
            arr = data["i"]
    except FormatError:
        raise
    except Exception as err:  # noqa: BLE001 - numpy/zipfile raise many types for a broken file
        raise FormatError(f"not a readable .npz ({type(err).__name__}: {str(err)[:120]})", path) from err
    return official_to_xyz(_check_official(arr, path), axis_order)


def _pick_channels(names: list[str], path: Path) -> tuple[list[str], bool]:
    """The four channel names holding a UDP, in official order, and whether they are positional
    (R, G, B: the axis order applies) rather than named axes (X, Y, Z)."""
    layers: dict[str, dict[str, str]] = {}
    for name in names:
        prefix, _, short = name.rpartition(".")
        layers.setdefault(prefix, {})[short.lower()] = name
    found = []
    for prefix, chans in layers.items():
        occ = next((chans[n] for n in _OCCUPANCY_NAMES if n in chans), None)
        for trio, positional in (("rgb", True), ("xyz", False)):
            if occ is not None and all(c in chans for c in trio) and chans.get(trio[0]) != occ:
                found.append((prefix, [chans[c] for c in trio] + [occ], positional))
                break
    if len(found) > 1:
        named = [f for f in found if "udp" in f[0].lower() or "pose" in f[0].lower()]
        found = named if len(named) == 1 else found
    if len(found) != 1:
        listed = ", ".join(names[:12]) + (" ..." if len(names) > 12 else "")
        why = "several layers could be the UDP" if found else "a UDP needs R, G, B, A or X, Y, Z + occupancy"
        raise FormatError(f"channels {listed}: {why}", path)
    return found[0][1], found[0][2]


@contextlib.contextmanager
def _native_output_silenced():
    """Discard what the OpenEXR library prints itself while reading a broken file (its bindings print
    through Python's ``sys.stdout``, its C core on the process's descriptors 1 and 2): the project
    reports the problem in one line of its own."""
    quiet = contextlib.ExitStack()
    quiet.enter_context(contextlib.redirect_stdout(io.StringIO()))
    quiet.enter_context(contextlib.redirect_stderr(io.StringIO()))
    try:
        sys.__stdout__.flush()
        sys.__stderr__.flush()
        saved = (os.dup(1), os.dup(2))
    except (OSError, ValueError, AttributeError):  # no usable descriptors: silence Python's side only
        with quiet:
            yield
        return
    try:
        with quiet, open(os.devnull, "w") as sink:
            os.dup2(sink.fileno(), 1)
            os.dup2(sink.fileno(), 2)
            yield
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        os.close(saved[0])
        os.close(saved[1])


def read_official_exr(path: str | os.PathLike, axis_order: str = "XYZ",
                      max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """A 4-channel half/float EXR in the official form -> the official form in XYZ order, float32.

    The header is read first and the image refused when larger than ``max_pixels`` (a decompression
    bomb guard); a truncated or corrupt file is a :class:`FormatError` naming it.
    """
    import OpenEXR  # imported here: a compiled extension, loaded only when an EXR is read or written

    path = Path(path)
    if not path.is_file():
        raise FormatError("file not found", path)
    try:
        with _native_output_silenced(), OpenEXR.File(str(path), header_only=True) as head:
            (x0, y0), (x1, y1) = head.header()["dataWindow"]
        check_pixel_count(int(x1) - int(x0) + 1, int(y1) - int(y0) + 1, max_pixels, path)
        with _native_output_silenced(), OpenEXR.File(str(path), separate_channels=True) as exr:
            channels = {name: ch.pixels for name, ch in exr.channels().items()}
    except FormatError:
        raise
    except Exception as err:  # noqa: BLE001 - the bindings raise RuntimeError/ValueError/KeyError
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0][:120]
        if "0 parts" in reason:  # what the bindings say when the pixel data failed to decode
            reason = "truncated or corrupt pixel data"
        raise FormatError(f"not a readable EXR ({reason})", path) from None
    names, positional = _pick_channels(list(channels), path)
    planes = [channels[n] for n in names]
    if any(p.ndim != 2 or p.shape != planes[0].shape for p in planes):
        raise FormatError("UDP channels are sub-sampled or of different sizes", path)
    if any(p.dtype.kind != "f" for p in planes):
        raise FormatError(f"UDP channels must be half or float, got {planes[0].dtype}", path)
    arr = _check_official(np.stack(planes, axis=-1).astype(np.float32), path)
    return official_to_xyz(arr, axis_order if positional else "XYZ")


def read_official_udp(path: str | os.PathLike, axis_order: str = "XYZ",
                      max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """An official-form ``.npz`` or ``.exr`` -> the official form in XYZ order (soft occupancy kept)."""
    suffix = Path(path).suffix.lower()
    if suffix == ".exr":
        return read_official_exr(path, axis_order, max_pixels)
    if suffix == ".npz":
        return read_official_npz(path, axis_order, max_pixels)
    raise FormatError(f"not a UDP file form (expected .npz or .exr, got {suffix or 'no suffix'})", path)


def read_udp_file(path: str | os.PathLike, axis_order: str = "XYZ",
                  max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """An official-form ``.npz`` or ``.exr`` -> our UDP (occupancy binarised at 0.5)."""
    return from_official(read_official_udp(path, axis_order, max_pixels))


def write_official_exr(udp: np.ndarray, path: str | os.PathLike, axis_order: str = "XYZ",
                       half: bool = False) -> Path:
    """Our UDP -> an EXR of the official form (channels R, G, B, A; float, or half with ``half``;
    ZIP compression), written atomically; returns the path."""
    import OpenEXR  # imported here: a compiled extension, loaded only when an EXR is read or written

    arr = to_official(udp, axis_order)
    arr = arr.astype(np.float16) if half else arr
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
    channels = {c: np.ascontiguousarray(arr[..., i]) for i, c in enumerate("RGBA")}
    with OpenEXR.File(header, channels) as exr:
        exr.write(str(tmp))
    os.replace(tmp, path)
    return path
