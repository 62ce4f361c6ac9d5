"""Export UDPs to the official CoNR release's forms (``.npz`` key ``i``, or EXR), so our poses drive its
weights (and the community's tools read them)."""

from __future__ import annotations

import io
import os
from pathlib import Path

import cv2
import numpy as np

from conrdata.dataset.reader import iter_clips
from conrdata.udp import AXIS_ORDERS, UDP_FILE_FORMATS, to_official, write_official_exr


def official_npz_bytes(udp: np.ndarray, axis_order: str = "XYZ") -> bytes:
    """UDP float32 H x W x 4 -> bytes of an ``.npz`` with key ``i``: xyz (axis order XYZ/ZXY/XZY)
    times occupancy, occupancy in channel 4, float32 (compressed)."""
    buf = io.BytesIO()
    np.savez_compressed(buf, i=to_official(udp, axis_order))
    return buf.getvalue()


def write_official_udp(udp: np.ndarray, path: str | os.PathLike, axis_order: str = "XYZ",
                       format: str = "npz", half: bool = False) -> Path:
    """Write our UDP in the official form to ``path`` (atomically); returns the path.

    ``format`` is ``"npz"`` (:func:`official_npz_bytes`) or ``"exr"`` (channels R, G, B, A, float32,
    or half with ``half``; :func:`conrdata.udp.write_official_exr`).
    """
    if axis_order not in AXIS_ORDERS:
        raise ValueError(f"axis order must be one of {AXIS_ORDERS}, got {axis_order!r}")
    if format not in UDP_FILE_FORMATS:
        raise ValueError(f"format must be one of {UDP_FILE_FORMATS}, got {format!r}")
    if format == "exr":
        return write_official_exr(udp, path, axis_order, half=half)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(official_npz_bytes(udp, axis_order))
    os.replace(tmp, path)
    return path


def export_clips_official(
    source, out_dir: str | os.PathLike, axis_order: str = "XYZ", limit: int | None = None,
    udp_format: str = "npz", half: bool = False,
):
    """Every labelled image of the clips in ``source`` -> ``out_dir/<key>/<NN>.<npz|exr>`` (+ ``<NN>.png``
    RGBA). Returns the number of UDPs written. ``half`` stores EXRs as half floats."""
    out_dir = Path(out_dir)
    n = 0
    for c, clip in enumerate(iter_clips(source)):
        if limit is not None and c >= limit:
            break
        for i, (rgba, udp) in enumerate(zip(clip.rgba, clip.udp)):
            folder = out_dir / clip.key
            folder.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(folder / f"{i:02d}.png"), cv2.cvtColor(rgba, cv2.COLOR_RGBA2BGRA))
            if udp is not None:
                write_official_udp(udp, folder / f"{i:02d}.{udp_format}", axis_order, udp_format, half)
                n += 1
    return n
