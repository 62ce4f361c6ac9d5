"""Mesh attribute clean-up shared by every mesh source: vertex normals and skin weights.

Plain numpy in and out; positions in any length unit (the thresholds below suit metres and MMD
units alike), faces (F, 3) vertex indices counter-clockwise seen from outside.
"""

from __future__ import annotations

import numpy as np

__all__ = ["vertex_normals", "normalize_skin_weights", "MAX_INFLUENCES"]

MAX_INFLUENCES = 4  # skin influences kept per vertex, as glTF's JOINTS_0 / WEIGHTS_0 and MMD's BDEF4
_NO_AREA = 1e-12  # a vertex whose summed face normal is shorter than this gets +Y


def vertex_normals(vertices: np.ndarray, faces: np.ndarray, weld_decimals: int | None = None) -> np.ndarray:
    """Area-weighted unit vertex normals (V, 3) float64; +Y where a vertex touches no area.

    With ``weld_decimals``, vertices whose positions agree to that many decimals (the copies a UV
    seam makes) share one normal, so the shading has no crease along the seam.
    """
    v = np.asarray(vertices, np.float64)
    faces = np.asarray(faces, np.int64).reshape(-1, 3)
    fn = np.cross(v[faces[:, 1]] - v[faces[:, 0]], v[faces[:, 2]] - v[faces[:, 0]])
    acc = np.zeros_like(v)
    for k in range(3):
        np.add.at(acc, faces[:, k], fn)
    if weld_decimals is not None and len(v):
        _, inv = np.unique(np.round(v, weld_decimals), axis=0, return_inverse=True)
        inv = inv.reshape(-1)
        welded = np.zeros((inv.max() + 1, 3))
        np.add.at(welded, inv, acc)
        acc = welded[inv]
    norm = np.linalg.norm(acc, axis=1, keepdims=True)
    return np.where(norm > _NO_AREA, acc / np.maximum(norm, _NO_AREA), [0.0, 1.0, 0.0])


def normalize_skin_weights(
    joints: np.ndarray, weights: np.ndarray, max_influences: int = MAX_INFLUENCES
) -> tuple[np.ndarray, np.ndarray, int]:
    """Skin influences (V, K) -> (V, max_influences) joints int64 and weights float64 summing to 1.

    Non-finite weights count as 0; weights are clipped to [0, 1e3] (so row sums stay finite). With
    more than ``max_influences`` columns the largest are kept, in decreasing order (ties in column
    order); otherwise the columns keep their order. A slot of weight 0 points at joint 0, and a
    vertex with no weight at all is bound to joint 0 with weight 1. The caller maps joint indices
    and drops influences on missing joints first. Returns joints, weights and the number of
    vertices that had no weight (for the caller's warning).
    """
    joints = np.asarray(joints, np.int64)
    with np.errstate(invalid="ignore"):
        w = np.where(np.isfinite(weights), weights, 0.0).astype(np.float64)
    w = np.clip(w, 0.0, 1e3)
    if w.shape[1] > max_influences:
        order = np.argsort(-w, axis=1, kind="stable")[:, :max_influences]
        joints = np.take_along_axis(joints, order, axis=1)
        w = np.take_along_axis(w, order, axis=1)
    elif w.shape[1] < max_influences:
        pad = max_influences - w.shape[1]
        joints = np.pad(joints, ((0, 0), (0, pad)))
        w = np.pad(w, ((0, 0), (0, pad)))
    total = w.sum(axis=1, keepdims=True)
    empty = total[:, 0] <= 1e-12
    if empty.any():
        w[empty] = 0.0
        w[empty, 0] = 1.0
        total[empty] = 1.0
    w = w / total
    joints = np.where(w > 0, joints, 0)
    joints[empty] = 0
    return joints, w, int(empty.sum())
