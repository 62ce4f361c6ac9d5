"""A quick look at a pose library: a PNG strip of posed skeletons (and skinned points) from a few views.

Each column is one pose; each row one view. Orthographic views: ``front``
(camera on +Z looking at the character, its left on the image's right),
``side`` (camera on the character's left, +X), ``top`` (from above, front
down) and ``three_quarter`` (45 degrees between front and side). Bones are
drawn parent head -> child head: left side red, right side blue, centre grey;
when the rig has a mesh its skinned vertices are drawn as light dots behind.
Poses go through the pose evaluator (:mod:`conrdata.poses.evaluate`), like every render.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from conrdata.poses.evaluate import evaluate_poses
from conrdata.poses.library import PoseLibrary, poses_for_rig
from conrdata.poses.skeleton import is_ik_bone_name, standard_skeleton
from conrdata.rig.model import Rig, skin, skinning_matrices

VIEWS: dict[str, tuple[np.ndarray, np.ndarray]] = {
    # (image-right axis, image-up axis) in world coordinates
    "front": (np.array([1.0, 0, 0]), np.array([0, 1.0, 0])),
    "side": (np.array([0, 0, -1.0]), np.array([0, 1.0, 0])),
    "three_quarter": (np.array([np.sqrt(0.5), 0, -np.sqrt(0.5)]), np.array([0, 1.0, 0])),
    "top": (np.array([1.0, 0, 0]), np.array([0, 0, -1.0])),
}


def _bone_colour(name: str) -> tuple[int, int, int]:
    low = name.lower()
    if low.startswith("left") or low.endswith(("_l", ".l")) or name.startswith("左"):
        return (220, 60, 50)
    if low.startswith("right") or low.endswith(("_r", ".r")) or name.startswith("右"):
        return (50, 90, 220)
    return (90, 90, 90)


def render_strip(
    lib: PoseLibrary,
    rig: Rig | None = None,
    indices=None,
    views: tuple[str, ...] = ("front", "side"),
    cell: int = 160,
    max_poses: int = 8,
) -> np.ndarray:
    """(rows * cell, cols * cell, 3) uint8 RGB image of up to ``max_poses`` poses (evenly spaced)."""
    for v in views:
        if v not in VIEWS:
            raise ValueError(f"unknown view {v!r}; choose from {', '.join(VIEWS)}")
    skel = rig if rig is not None else standard_skeleton()
    if indices is None:
        n = min(max_poses, len(lib))
        indices = np.unique(np.linspace(0, max(len(lib) - 1, 0), n).round().astype(int)) if n else []
    indices = list(indices)
    cols = max(1, len(indices))
    img = Image.new("RGB", (cols * cell, len(views) * cell), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    if not indices:
        draw.text((4, 4), "no poses", fill=(0, 0, 0))
        return np.asarray(img)
    local, trans = poses_for_rig(skel, lib, indices)
    wr, wp = evaluate_poses(skel, local, trans)
    # Framed on the humanoid bones: helper bones may sit far off the body (MMD physics sinkers 錘).
    body = sorted(skel.humanoid.values()) or list(range(skel.num_bones))
    height = max(float(np.ptp(skel.bone_heads[body, 1])) * 1.25, 1e-3)
    if len(skel.vertices):
        height = max(height, skel.height())
    scale = 0.8 * cell / height
    sub = None
    if len(skel.vertices):
        sub = np.random.default_rng(0).choice(
            len(skel.vertices), size=min(4000, len(skel.vertices)), replace=False
        )
    # MMD IK target bones stay where the motion put them, not on the limb: leave them out of the drawing.
    mid = skel.bone_heads[body].mean(axis=0)
    far = np.linalg.norm(skel.bone_heads - mid, axis=1) > height
    hidden = [is_ik_bone_name(n) or bool(far[b]) for b, n in enumerate(skel.bone_names)]
    for c, _ in enumerate(indices):
        pts_mesh = None
        if sub is not None:
            mats = skinning_matrices(skel, wr[c], wp[c])
            pts_mesh = skin(skel, mats)[sub]
        centre = wp[c, body].mean(axis=0)
        for r, v in enumerate(views):
            right, up = VIEWS[v]
            ox, oy = c * cell + cell / 2, r * cell + cell / 2

            def proj(p, right=right, up=up, ox=ox, oy=oy, centre=centre):
                d = np.asarray(p) - centre
                return ox + scale * (d @ right), oy - scale * (d @ up)

            if pts_mesh is not None:
                xs, ys = proj(pts_mesh)
                for x, y in zip(xs, ys):
                    draw.point((float(x), float(y)), fill=(200, 200, 200))
            for b, p in enumerate(skel.bone_parents):
                if p < 0 or hidden[b]:
                    continue
                x0, y0 = proj(wp[c, p])
                x1, y1 = proj(wp[c, b])
                draw.line(
                    [(float(x0), float(y0)), (float(x1), float(y1))],
                    fill=_bone_colour(skel.bone_names[b]),
                    width=2,
                )
            for b in range(skel.num_bones):
                if hidden[b]:
                    continue
                x, y = proj(wp[c, b])
                draw.ellipse([float(x) - 1.5, float(y) - 1.5, float(x) + 1.5, float(y) + 1.5], fill=(0, 0, 0))
            if r == 0:
                draw.text((c * cell + 3, 2), lib.pose_ids[indices[c]][-22:], fill=(0, 0, 0))
            if c == 0:
                draw.text((3, r * cell + cell - 12), v, fill=(120, 120, 120))
    return np.asarray(img)


def save_preview(path: str | os.PathLike, lib: PoseLibrary, rig: Rig | None = None, **kwargs) -> Path:
    """Write :func:`render_strip` as a PNG; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(render_strip(lib, rig, **kwargs)).save(path)
    return path
