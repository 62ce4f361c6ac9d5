"""Frames (RGBA PNG files) to a GIF (Pillow) or MP4 (imageio + ffmpeg), flattened on a background colour."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def flatten(rgba: np.ndarray, background: tuple[int, int, int]) -> np.ndarray:
    """Straight-alpha RGBA (H, W, 4) uint8 over an RGB colour -> (H, W, 3) uint8."""
    a = rgba[..., 3:4].astype(np.float32) / 255.0
    out = rgba[..., :3].astype(np.float32) * a + np.asarray(background, np.float32) * (1.0 - a)
    return (out + 0.5).astype(np.uint8)


def write_video(video: Path, frames: list[Path], fps: float, background: tuple[int, int, int]) -> None:
    """Write ``frames`` in order as ``video`` (.gif always works; .mp4 and friends need ffmpeg)."""
    video.parent.mkdir(parents=True, exist_ok=True)
    images = [flatten(np.asarray(Image.open(p).convert("RGBA")), background) for p in frames]
    if video.suffix.lower() == ".gif":
        pil = [Image.fromarray(im) for im in images]
        pil[0].save(video, save_all=True, append_images=pil[1:], duration=int(round(1000 / fps)), loop=0,
                    optimize=False, disposal=2)
        return
    import imageio.v2 as imageio

    shape = images[0].shape
    with imageio.get_writer(video, fps=fps, macro_block_size=1) as writer:
        for im in images:
            if im.shape != shape:  # frames of different sizes: pad to the first frame's size
                canvas = np.zeros(shape, np.uint8)
                canvas[: im.shape[0], : im.shape[1]] = im[: shape[0], : shape[1]]
                im = canvas
            writer.append_data(im)
