"""A short MMD dance the project writes itself, so the demo needs no motion from outside.

`write_demo_vmd(path)` writes a real VMD file (MMD's own format, standard
Japanese bone names, Bezier-eased keys, leg IK targets) that
``conrdata poses`` reads like any downloaded dance: two beats of arm waves,
a body sway and a knee dip driven through the legs' IK bones.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from conrdata.poses.vmd import VmdMotion, make_track, write_vmd
from conrdata.rig.rotations import axis_rotation

#: Ease-in-out curve control points (x1, y1, x2, y2), 0..127, as MMD writes them.
EASE = (64, 0, 64, 127)


def _rot(axis: str, degrees: float) -> list[float]:
    """Quaternion (x, y, z, w) of a rotation about one MMD axis."""
    return [float(x) + 0.0 for x in axis_rotation(axis, np.radians(degrees))]  # + 0.0: no -0.0


def _track(frames, rotations=None, positions=None):
    curves = np.tile(np.array(EASE, np.uint8), (len(frames), 4, 1))
    return make_track(frames, positions=positions, rotations=rotations, curves=curves)


def demo_motion(beats: int = 2, frames_per_beat: int = 30) -> VmdMotion:
    """The demo dance as a :class:`VmdMotion` (MMD frame and units, 30 fps)."""
    keys = np.arange(0, beats * frames_per_beat + 1, frames_per_beat // 2)
    up = [(i % 2) for i in range(len(keys))]  # 0, 1, 0, 1 ... half-beat alternation
    tracks = {
        # Arms: wave up and down, mirrored; elbows bend on the up beat.
        "左腕": _track(keys, [_rot("z", 35 * u - 10) for u in up]),
        "右腕": _track(keys, [_rot("z", -(35 * (1 - u) - 10)) for u in up]),
        "左ひじ": _track(keys, [_rot("y", -50 * u) for u in up]),
        "右ひじ": _track(keys, [_rot("y", 50 * (1 - u)) for u in up]),
        # Body: sway and a little twist; the head answers.
        "上半身": _track(keys, [_rot("z", 8 if u else -8) for u in up]),
        "首": _track(keys, [_rot("x", 10 * u) for u in up]),
        "頭": _track(keys, [_rot("y", 20 if u else -20) for u in up]),
        # A knee dip: the centre goes down, the foot IK targets stay on the floor.
        "センター": _track(keys, positions=[[0.0, -1.2 * u, 0.0] for u in up]),
        "左足ＩＫ": _track(keys, positions=[[0.0, 0.0, 0.0] for _ in up]),
        "右足ＩＫ": _track(keys, positions=[[0.0, 0.0, 0.0] for _ in up]),
    }
    return VmdMotion(model_name="conr demo", tracks=tracks)


def write_demo_vmd(path: str | os.PathLike, beats: int = 2) -> Path:
    """Write the demo dance to ``path`` (a .vmd file) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_vmd(path, demo_motion(beats=beats))
