"""Export UDPs to the official CoNR release's form (``.npz`` key ``i``), so our poses drive its weights."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np

from conrdata.udp import AXIS_ORDERS, to_official


def official_npz_bytes(udp: np.ndarray, axis_order: str = "XYZ") -> bytes:
    """UDP float32 H x W x 4 -> bytes of an ``.npz`` with key ``i``: xyz (axis order XYZ/ZXY/XZY)
    times occupancy, occupancy in channel 4, float32 (compressed)."""
    buf = io.BytesIO()
    np.savez_compressed(buf, i=to_official(udp, axis_order))
    return buf.getvalue()


def write_official_udp(udp: np.ndarray, path: str | os.PathLike, axis_order: str = "XYZ") -> Path:
    """Write :func:`official_npz_bytes` to ``path`` (atomically); returns the path."""
    if axis_order not in AXIS_ORDERS:
        raise ValueError(f"axis order must be one of {AXIS_ORDERS}, got {axis_order!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(official_npz_bytes(udp, axis_order))
    os.replace(tmp, path)
    return path


def export_clips_official(
    source, out_dir: str | os.PathLike, axis_order: str = "XYZ", limit: int | None = None
):
    """Every labelled image of the clips in ``source`` -> ``out_dir/<key>/<NN>.npz`` (+ ``<NN>.png`` RGBA).
    Returns the number of UDPs written."""
    import cv2

    from conrdata.dataset.reader import iter_clips

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
                write_official_udp(udp, folder / f"{i:02d}.npz", axis_order)
                n += 1
    return n
