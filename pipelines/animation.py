"""Inputs for the demo's animation: a character sheet and a sequence of target UDPs of one character.

The sheet is the character in its A-pose seen from a few yaws (RGBA, transparent
background, as an artist's turnaround would be); the targets are the frames of a
pose library (the demo dance) seen from one fixed camera that frames the whole
sequence, written in the official CoNR form (``.npz`` key ``i``) so that
``conrmodel render`` reads them like any other pose folder. Ground-truth frames
are written beside them for comparison.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from conrdata.poses import load_pose_library, pose_for_rig
from conrdata.render import GLRasterizer, Shading, bind_landmarks, frame_points, mesh_from_rig
from conrdata.rig.io import load_character
from conrdata.udp import to_official


def write_animation_inputs(
    character_path: str | os.PathLike,
    pose_library_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    frames: int = 16,
    size: int = 128,
    sheet_views: int = 4,
) -> dict[str, Path]:
    """Write ``out_dir/sheet/*.png``, ``out_dir/poses/*.npz`` and ``out_dir/truth/*.png``.

    Returns the three folders by name."""
    out = Path(out_dir)
    folders = {name: out / name for name in ("sheet", "poses", "truth")}
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
    rig = load_character(character_path)
    library = load_pose_library(pose_library_path)
    landmarks = bind_landmarks(rig)
    shading = Shading()
    count = min(frames, len(library.pose_ids))
    meshes = []
    for index in range(count):
        rotations, translation = pose_for_rig(rig, library, index)
        meshes.append(mesh_from_rig(rig, rotations, translation, landmarks=landmarks))
    with GLRasterizer(size, size) as raster:
        # One camera for the whole sequence, so the character moves inside a still frame.
        all_points = np.concatenate([m.positions for m in meshes])
        camera = frame_points(all_points, 20.0, 5.0, width=size, height=size, margin=0.08)
        for index, mesh in enumerate(meshes):
            result = raster.render(mesh, camera, shading, depth=False)
            np.savez_compressed(folders["poses"] / f"frame_{index:03d}.npz", i=to_official(result.udp))
            Image.fromarray(result.rgba).save(folders["truth"] / f"frame_{index:03d}.png")
        bind = mesh_from_rig(rig, landmarks=landmarks)
        # The sheet: the A-pose turnaround an artist would draw.
        for view, yaw in enumerate(np.linspace(0.0, 360.0, sheet_views, endpoint=False)):
            cam = frame_points(bind.positions, float(yaw), 5.0, width=size, height=size, margin=0.08)
            result = raster.render(bind, cam, shading, depth=False)
            Image.fromarray(result.rgba).save(folders["sheet"] / f"view_{view:02d}_yaw{int(yaw):03d}.png")
    return folders
