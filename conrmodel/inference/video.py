"""Frames (RGBA PNG files) to a GIF (Pillow) or MP4 (imageio + ffmpeg), flattened on a background colour."""

from __future__ import annotations

from pathlib import Path

import imageio.v2 as imageio
import numpy as np
from PIL import Image

from conrdata.imageio import read_image


def flatten(rgba: np.ndarray, background: tuple[int, int, int], premultiplied: bool = False) -> np.ndarray:
    """RGBA (H, W, 4) uint8, straight alpha (or ``premultiplied``), over an RGB colour -> (H, W, 3) uint8."""
    a = rgba[..., 3:4].astype(np.float32) / 255.0
    rgb = rgba[..., :3].astype(np.float32) * (1.0 if premultiplied else a)
    out = np.clip(rgb + np.asarray(background, np.float32) * (1.0 - a), 0, 255)
    return (out + 0.5).astype(np.uint8)


def _read_rgba(path: Path) -> np.ndarray:
    img = read_image(path)
    alpha = img.alpha if img.alpha is not None else np.full(img.rgb.shape[:2], 255, np.uint8)
    return np.dstack([img.rgb, alpha])


def write_video(video: Path, frames: list[Path], fps: float, background: tuple[int, int, int],
                premultiplied: bool = False) -> None:
    """Write ``frames`` in order as ``video`` (.gif always works; .mp4 and friends need ffmpeg);
    ``premultiplied``: the frames' colour is premultiplied by alpha (``--premultiplied-png``)."""
    video.parent.mkdir(parents=True, exist_ok=True)
    images = [flatten(_read_rgba(p), background, premultiplied) for p in frames]
    if video.suffix.lower() == ".gif":
        pil = [Image.fromarray(im) for im in images]
        pil[0].save(video, save_all=True, append_images=pil[1:], duration=int(round(1000 / fps)), loop=0,
                    optimize=False, disposal=2)
        return
    shape = images[0].shape
    with imageio.get_writer(video, fps=fps, macro_block_size=1) as writer:
        for im in images:
            if im.shape != shape:  # frames of different sizes: pad to the first frame's size
                canvas = np.zeros(shape, np.uint8)
                canvas[: im.shape[0], : im.shape[1]] = im[: shape[0], : shape[1]]
                im = canvas
            writer.append_data(im)
