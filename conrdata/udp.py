"""The Ultra-Dense Pose (UDP) encoding of DESIGN.md, and export to the official CoNR form.

A UDP image is H x W x 4 float32: channels 0-2 are the A-pose (bind) position
p of the visible surface point, normalised by the character's A-pose height H
(metres) as ``(p.x / H + 0.5, p.y / H, p.z / H + 0.5)`` and clipped to [0, 1];
channel 3 is occupancy (1 on the body, 0 elsewhere). Background pixels are 0
in all four channels.
"""

from __future__ import annotations

import numpy as np

AXIS_ORDERS = ("XYZ", "ZXY", "XZY")


def encode_landmarks(points: np.ndarray, height: float) -> np.ndarray:
    """A-pose positions (N, 3) in metres -> UDP landmarks (N, 3) float32 in [0, 1]."""
    if not height > 0:
        raise ValueError(f"A-pose height must be positive, got {height}")
    p = np.asarray(points, np.float64) / float(height)
    out = np.stack([p[:, 0] + 0.5, p[:, 1], p[:, 2] + 0.5], axis=1)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def decode_landmarks(landmarks: np.ndarray, height: float) -> np.ndarray:
    """Inverse of :func:`encode_landmarks` (exact for unclipped values): (N, 3) metres."""
    l = np.asarray(landmarks, np.float64)
    return np.stack([(l[..., 0] - 0.5) * height, l[..., 1] * height, (l[..., 2] - 0.5) * height], axis=-1)


def to_official(udp: np.ndarray, axis_order: str = "XYZ") -> np.ndarray:
    """Our UDP (H, W, 4) -> the official CoNR release's form: xyz (in the given axis order)
    multiplied by occupancy, occupancy in channel 4; float32."""
    if axis_order not in AXIS_ORDERS:
        raise ValueError(f"axis order must be one of {AXIS_ORDERS}, got {axis_order!r}")
    idx = ["XYZ".index(c) for c in axis_order]
    udp = np.asarray(udp, np.float32)
    occ = udp[..., 3:4]
    return np.concatenate([udp[..., idx] * occ, occ], axis=-1).astype(np.float32)


def from_official(udp: np.ndarray, axis_order: str = "XYZ") -> np.ndarray:
    """The official form (H, W, 4) -> our UDP, with occupancy binarised at 0.5 and background zeroed."""
    if axis_order not in AXIS_ORDERS:
        raise ValueError(f"axis order must be one of {AXIS_ORDERS}, got {axis_order!r}")
    udp = np.asarray(udp, np.float32)
    occ = (udp[..., 3:4] > 0.5).astype(np.float32)
    xyz = np.empty_like(udp[..., :3])
    for src, axis in enumerate(axis_order):
        xyz[..., "XYZ".index(axis)] = udp[..., src]
    return np.concatenate([np.clip(xyz, 0, 1) * occ, occ], axis=-1)
