"""Toy 2D characters with exact UDP, for tests, benchmarks and smoke runs of the trainer.

A toy character is a flat paper-doll (torso, head, two arms, two legs) in the
canonical A-pose, 1.5 m tall. A pose rotates each limb about its joint; each
pixel's UDP landmark is the A-pose position of the point drawn there (parts
later in the drawing order cover earlier ones), encoded with
:func:`conrdata.udp.encode_landmarks`. Colour is a per-character function of
the landmark (part colour plus stripes), so the renderer's task is learnable
from references: it is the data a tiny model should overfit. RGBA alpha and UDP
occupancy cover the same pixels. Nothing here is realistic; use ``conrdata
synth`` for real renders.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from conrdata.dataset.schema import Clip, ClipImage
from conrdata.dataset.writer import DatasetWriter
from conrdata.udp import encode_landmarks

HEIGHT = 1.5
# name: (kind, canonical centre/joint (x, y), size params, joint (x, y) or None, depth z)
_PARTS = [
    ("left_leg", "capsule", (-0.09, 0.72), (-0.11, 0.02), 0.06, -0.01),
    ("right_leg", "capsule", (0.09, 0.72), (0.11, 0.02), 0.06, -0.01),
    ("torso", "ellipse", (0.0, 0.95), (0.17, 0.30), None, 0.0),
    ("left_arm", "capsule", (-0.17, 1.18), (-0.50, 0.85), 0.045, 0.02),
    ("right_arm", "capsule", (0.17, 1.18), (0.50, 0.85), 0.045, 0.02),
    ("head", "ellipse", (0.0, 1.36), (0.13, 0.14), None, 0.03),
]


def _rot(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s], [s, c]])


def toy_pose(rng: np.random.Generator) -> dict[str, float]:
    """Joint angles (radians) for the four limbs and the head tilt."""
    return {
        "left_arm": float(rng.uniform(-1.0, 1.2)),
        "right_arm": float(rng.uniform(-1.2, 1.0)),
        "left_leg": float(rng.uniform(-0.35, 0.35)),
        "right_leg": float(rng.uniform(-0.35, 0.35)),
        "head": float(rng.uniform(-0.25, 0.25)),
    }


def render_toy(
    character: int,
    pose: dict[str, float],
    size: int = 64,
    scale: float = 0.8,
    offset: tuple[float, float] = (0.0, 0.0),
) -> tuple[np.ndarray, np.ndarray]:
    """(rgba uint8 [S,S,4], udp float32 [S,S,4]) of toy ``character`` in ``pose``.

    The character spans ``scale`` of the image height; ``offset`` moves it (fractions of S).
    """
    crng = np.random.default_rng(1000 + character)
    colours = crng.uniform(30, 230, size=(len(_PARTS), 3))
    stripe_freq = crng.uniform(8, 20)
    px = HEIGHT / (scale * size)  # metres per pixel
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float64)
    wx = (xs + 0.5 - size * (0.5 + offset[0])) * px
    wy = (size * (0.5 + scale / 2 + offset[1]) - (ys + 0.5)) * px  # +Y up, feet at the bottom margin
    rgba = np.zeros((size, size, 4), np.uint8)
    canon = np.zeros((size, size, 3))
    hit = np.zeros((size, size), bool)
    for idx, (name, kind, a, b, radius, z) in enumerate(_PARTS):
        angle = pose.get(name, 0.0)
        pivot = np.array(a) if kind == "capsule" else np.array([0.0, 1.22])
        if kind == "ellipse" and name == "torso":
            angle = 0.0
        inv = _rot(-angle)
        lx = inv[0, 0] * (wx - pivot[0]) + inv[0, 1] * (wy - pivot[1]) + pivot[0]
        ly = inv[1, 0] * (wx - pivot[0]) + inv[1, 1] * (wy - pivot[1]) + pivot[1]
        if kind == "ellipse":
            inside = ((lx - a[0]) / b[0]) ** 2 + ((ly - a[1]) / b[1]) ** 2 <= 1.0
            bump = np.sqrt(np.clip(1 - ((lx - a[0]) / b[0]) ** 2 - ((ly - a[1]) / b[1]) ** 2, 0, 1)) * 0.08
        else:
            seg = np.array(b) - np.array(a)
            t = np.clip(((lx - a[0]) * seg[0] + (ly - a[1]) * seg[1]) / (seg @ seg), 0, 1)
            d2 = (lx - a[0] - t * seg[0]) ** 2 + (ly - a[1] - t * seg[1]) ** 2
            inside = d2 <= radius**2
            bump = np.sqrt(np.clip(1 - d2 / radius**2, 0, 1)) * radius
        canon[inside] = np.stack([lx[inside], ly[inside], z + bump[inside]], axis=-1)
        stripes = 0.75 + 0.25 * np.sign(np.sin(stripe_freq * (ly[inside] + 0.5 * lx[inside])))
        rgba[inside, :3] = np.clip(colours[idx] * stripes[:, None], 0, 255).astype(np.uint8)
        rgba[inside, 3] = 255
        hit |= inside
    udp = np.zeros((size, size, 4), np.float32)
    udp[hit, :3] = encode_landmarks(canon[hit], HEIGHT)
    udp[hit, 3] = 1.0
    return rgba, udp


def toy_clip(
    character: int,
    clip: int,
    images: int = 5,
    size: int = 64,
    labeled: bool = True,
    repeat_poses: bool = False,
):
    """A :class:`conrdata.dataset.Clip` of toy ``character``: ``images`` images in distinct poses
    (with ``repeat_poses`` every pose appears twice), random placement per image."""
    rng = np.random.default_rng([character, clip])
    n_poses = (images + 1) // 2 if repeat_poses else images
    poses = [toy_pose(rng) for _ in range(n_poses)]
    out = []
    for i in range(images):
        p = i % n_poses
        scale = float(rng.uniform(0.6, 0.9))
        off = tuple(float(v) for v in rng.uniform(-0.08, 0.08, size=2))
        rgba, udp = render_toy(character, poses[p], size, scale, off)
        out.append(
            ClipImage(
                rgba=rgba,
                udp=udp if labeled else None,
                pose_id=f"c{clip}p{p}",
                view={"toy": True},
                camera={"scale": scale},
                source=f"toy:{character}",
            )
        )
    return Clip(character_id=f"toy{character:03d}", clip_id=f"clip{clip:03d}", images=out, meta={"toy": True})


def write_toy_dataset(
    out_dir: str | Path,
    characters: int = 2,
    clips: int = 4,
    images: int = 5,
    size: int = 64,
    unlabeled_characters: int = 0,
    val_characters: int = 0,
    max_shard_clips: int = 1000,
) -> Path:
    """Write toy characters as shards with :class:`conrdata.dataset.DatasetWriter`; returns ``out_dir``.

    The first ``val_characters`` characters are pinned to the val split, the rest to train; the
    last ``unlabeled_characters`` have no UDP (like hand-drawn sheets).
    """
    ids = [f"toy{c:03d}" for c in range(characters)]
    pinned = {cid: ("val" if c < val_characters else "train") for c, cid in enumerate(ids)}
    with DatasetWriter(out_dir, max_shard_clips=max_shard_clips, pinned=pinned, seed=0) as writer:
        for c, cid in enumerate(ids):
            writer.add_character(cid, {"source": "toy"})
            labeled = c < characters - unlabeled_characters
            for k in range(clips):
                writer.write(toy_clip(c, k, images, size, labeled=labeled))
    return Path(out_dir)
