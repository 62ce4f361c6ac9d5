"""Batched forward kinematics in quaternions (many poses of one skeleton at once).

Same convention as :func:`conrdata.rig.model.forward_kinematics` (normalised bones,
local rotations in world-aligned bind axes), plus an optional per-bone local
translation (MMD/VMD bones may move: centre, IK targets).
"""

from __future__ import annotations

import numpy as np

from conrdata.rig.rotations import quat_identity, quat_mul, quat_normalize, quat_rotate


def fk_batch(
    parents: np.ndarray,
    heads: np.ndarray,
    local_q: np.ndarray,
    root_translation: np.ndarray | None = None,
    local_translation: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """World rotations (N, B, 4) and world head positions (N, B, 3).

    ``parents`` (B,) parent-first with -1 for roots; ``heads`` (B, 3) bind positions
    in metres; ``local_q`` (N, B, 4); ``root_translation`` (N, 3) added to roots;
    ``local_translation`` (N, B, 3) offsets of each bone's head in its parent's
    (posed) axes.
    """
    local_q = quat_normalize(local_q)
    N, B = local_q.shape[:2]
    heads = np.asarray(heads, np.float64)
    wq = np.empty((N, B, 4))
    wp = np.empty((N, B, 3))
    for b, p in enumerate(np.asarray(parents)):
        off = heads[b] - (heads[p] if p >= 0 else 0.0)
        if local_translation is not None:
            off = off + local_translation[:, b]
        if p < 0:
            wq[:, b] = local_q[:, b]
            wp[:, b] = np.broadcast_to(off, (N, 3))
            if root_translation is not None:
                wp[:, b] += root_translation
        else:
            wq[:, b] = quat_mul(wq[:, p], local_q[:, b])
            wp[:, b] = wp[:, p] + quat_rotate(wq[:, p], np.broadcast_to(off, (N, 3)))
    return wq, wp


def world_to_local(parents: np.ndarray, world_q: np.ndarray) -> np.ndarray:
    """Inverse of the rotation part of :func:`fk_batch`: locals (N, B, 4) from world rotations."""
    out = np.empty_like(world_q)
    ident = quat_identity(world_q.shape[:1])
    for b, p in enumerate(np.asarray(parents)):
        pw = world_q[:, p] if p >= 0 else ident
        pw_inv = np.concatenate([-pw[:, :3], pw[:, 3:]], axis=-1)
        out[:, b] = quat_mul(pw_inv, world_q[:, b])
    return out
