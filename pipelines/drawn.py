"""Stand-ins for hand-drawn art in the demo: our own renders pasted on paper-like backgrounds.

Each picked image is composited (straight alpha) over a flat, gradient, noisy-paper or two-tone
background and saved as an opaque RGB PNG in a folder per character, exactly as a user's folder
of illustrations would look; ``conrdata matte`` then has to recover the alpha.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from conrdata.dataset import iter_clips
from conrdata.testing.figures import BACKGROUND_KINDS, composite, make_background


def composite_renders(data_dir: str | os.PathLike, out_dir: str | os.PathLike, count: int = 8,
                      size: int = 128, seed: int = 0) -> list[Path]:
    """Write ``count`` composites as ``out_dir/<character>/<key>_<n>.png``; returns their paths."""
    out = Path(out_dir)
    written: list[Path] = []
    for clip in iter_clips(data_dir, udp=False):
        for n, rgba in enumerate(clip.rgba[:2]):
            if len(written) >= count:
                return written
            if rgba.shape[0] != size:
                rgba = cv2.resize(rgba, (size, size), interpolation=cv2.INTER_AREA)
            kind = BACKGROUND_KINDS[len(written) % len(BACKGROUND_KINDS)]
            rgb = composite(rgba, make_background(kind, size, seed=seed + len(written)))
            path = out / clip.character_id / f"{clip.key}_{n:02d}_{kind}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.ascontiguousarray(rgb)).save(path)
            written.append(path)
    return written
