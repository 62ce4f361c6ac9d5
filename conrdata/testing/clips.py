"""Small synthetic clips for tests, benchmarks and demos (no renderer needed).

Each image is a few overlapping ellipsoids seen from the front: UDP xyz is the
normalised surface position (smooth, full float32 precision), occupancy 1 on
them and exactly 0 elsewhere, and the RGBA alpha covers the same pixels.
"""

from __future__ import annotations

import numpy as np

from conrdata.dataset.schema import Clip, ClipImage


def synthetic_image(size: int = 64, seed: int = 0, blobs: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """(rgba uint8 size x size x 4, udp float32 size x size x 4) of random ellipsoids."""
    rng = np.random.default_rng(seed)
    udp = np.zeros((size, size, 4), np.float32)
    rgba = np.zeros((size, size, 4), np.uint8)
    depth = np.full((size, size), np.inf)
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    for _ in range(blobs):
        cx, cy = rng.uniform(0.3, 0.7, 2) * size
        rx, ry = rng.uniform(0.06, 0.25, 2) * size
        rz, cz = rng.uniform(0.05, 0.2) * size, rng.uniform(0, size)
        r2 = ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2
        z = cz - rz * np.sqrt(np.clip(1 - r2, 0, 1))
        front = (r2 < 1) & (z < depth)
        depth[front] = z[front]
        xyz = np.stack([xx / size * 0.9 + 0.05, 1 - yy / size, 0.5 + (z - cz) / size], -1)
        udp[front, :3] = np.clip(xyz[front], 0, 1)
        udp[front, 3] = 1
        shade = 0.6 + 0.4 * np.sqrt(np.clip(1 - r2, 0, 1))
        colour = rng.uniform(40, 255, 3)
        rgba[front, :3] = (colour[None, :] * shade[front, None]).astype(np.uint8)
        rgba[front, 3] = 255
    return rgba, udp


def synthetic_clip(
    character_id: str = "char-00000000",
    clip_id: str = "c0000",
    n_images: int = 3,
    size: int = 64,
    seed: int = 0,
    labelled: bool = True,
) -> Clip:
    """A clip of ``n_images`` synthetic images (UDP None when ``labelled`` is False)."""
    images = []
    for i in range(n_images):
        rgba, udp = synthetic_image(size, seed=seed * 1000 + i)
        images.append(
            ClipImage(
                rgba=rgba,
                udp=udp if labelled else None,
                pose_id=f"pose-{seed}-{i}",
                view={"yaw_deg": float(30 * i), "pitch_deg": 0.0},
                camera={"fov_deg": 30.0, "position": np.array([0.0, 1.0, 3.0]), "size": [size, size]},
                source="synthetic",
            )
        )
    return Clip(character_id=character_id, clip_id=clip_id, images=images, meta={"seed": seed})
