"""Quaternion and rotation helpers, vectorised over leading axes.

Quaternions are (..., 4) arrays in (x, y, z, w) order, as in :mod:`conrdata.rig`;
``quat_mul(a, b)`` is the rotation "b first, then a" (matrix product A @ B).
Euler angles are radians; ``euler_to_quat(angles, "XYZ")`` means R = Rx @ Ry @ Rz.
"""

from __future__ import annotations

import numpy as np

from conrdata.rig import quat_to_matrix

__all__ = [
    "quat_mul",
    "quat_conj",
    "quat_normalize",
    "quat_identity",
    "quat_from_axis_angle",
    "quat_rotate",
    "quat_from_matrix",
    "quat_to_matrix",
    "quat_slerp",
    "quat_angle",
    "rotation_between",
    "euler_to_quat",
    "matrix_to_euler",
    "axis_rotation",
]


def quat_identity(shape: tuple[int, ...] = ()) -> np.ndarray:
    q = np.zeros(tuple(shape) + (4,), np.float64)
    q[..., 3] = 1.0
    return q


def quat_normalize(q: np.ndarray) -> np.ndarray:
    q = np.asarray(q, np.float64)
    n = np.linalg.norm(q, axis=-1, keepdims=True)
    return np.where(n > 1e-12, q / np.maximum(n, 1e-12), quat_identity(q.shape[:-1]))


def quat_conj(q: np.ndarray) -> np.ndarray:
    q = np.asarray(q, np.float64)
    return np.concatenate([-q[..., :3], q[..., 3:]], axis=-1)


def quat_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    ax, ay, az, aw = np.moveaxis(a, -1, 0)
    bx, by, bz, bw = np.moveaxis(b, -1, 0)
    return np.stack(
        [
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
            aw * bw - ax * bx - ay * by - az * bz,
        ],
        axis=-1,
    )


def quat_from_axis_angle(axis: np.ndarray, angle: np.ndarray | float) -> np.ndarray:
    """Rotation by ``angle`` radians (right-hand rule) about ``axis`` (need not be unit)."""
    axis = np.asarray(axis, np.float64)
    n = np.linalg.norm(axis, axis=-1, keepdims=True)
    axis = axis / np.maximum(n, 1e-12)
    half = 0.5 * np.asarray(angle, np.float64)[..., None]
    return np.concatenate([axis * np.sin(half), np.cos(half)], axis=-1)


def axis_rotation(axis: str, angle: np.ndarray | float) -> np.ndarray:
    """Quaternion of a rotation about the world axis 'X', 'Y' or 'Z'."""
    v = np.zeros(3)
    v["XYZ".index(axis.upper())] = 1.0
    angle = np.asarray(angle, np.float64)
    return quat_from_axis_angle(np.broadcast_to(v, angle.shape + (3,)), angle)


def quat_rotate(q: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Rotate vectors (..., 3) by quaternions (..., 4)."""
    q = np.asarray(q, np.float64)
    v = np.asarray(v, np.float64)
    u = q[..., :3]
    w = q[..., 3:]
    t = 2.0 * np.cross(u, v)
    return v + w * t + np.cross(u, t)


def quat_from_matrix(m: np.ndarray) -> np.ndarray:
    """Rotation matrices (..., 3, 3) -> unit quaternions (..., 4) with w >= 0 (Shepperd's method)."""
    m = np.asarray(m, np.float64)
    shape = m.shape[:-2]
    m = m.reshape(-1, 3, 3)
    tr = m[:, 0, 0] + m[:, 1, 1] + m[:, 2, 2]
    diag = np.stack([m[:, 0, 0], m[:, 1, 1], m[:, 2, 2], tr], axis=1)
    k = np.argmax(diag, axis=1)
    q = np.empty((len(m), 4))
    for case in range(4):
        sel = k == case
        if not np.any(sel):
            continue
        s = m[sel]
        if case == 3:
            r = np.sqrt(np.maximum(1.0 + tr[sel], 1e-30)) * 2
            q[sel] = np.stack(
                [
                    (s[:, 2, 1] - s[:, 1, 2]) / r,
                    (s[:, 0, 2] - s[:, 2, 0]) / r,
                    (s[:, 1, 0] - s[:, 0, 1]) / r,
                    0.25 * r,
                ],
                axis=1,
            )
        else:
            i, j, l = case, (case + 1) % 3, (case + 2) % 3
            r = np.sqrt(np.maximum(1.0 + s[:, i, i] - s[:, j, j] - s[:, l, l], 1e-30)) * 2
            out = np.empty((len(s), 4))
            out[:, i] = 0.25 * r
            out[:, j] = (s[:, j, i] + s[:, i, j]) / r
            out[:, l] = (s[:, l, i] + s[:, i, l]) / r
            out[:, 3] = (s[:, l, j] - s[:, j, l]) / r
            q[sel] = out
    q = quat_normalize(q)
    q = np.where(q[:, 3:] < 0, -q, q)
    return q.reshape(shape + (4,))


def quat_slerp(a: np.ndarray, b: np.ndarray, t: np.ndarray | float) -> np.ndarray:
    """Spherical interpolation along the shorter arc; ``t`` broadcasts against (...)."""
    a = quat_normalize(a)
    b = quat_normalize(b)
    t = np.asarray(t, np.float64)[..., None]
    d = np.sum(a * b, axis=-1, keepdims=True)
    b = np.where(d < 0, -b, b)
    d = np.abs(d)
    theta = np.arccos(np.clip(d, -1.0, 1.0))
    s = np.sin(theta)
    small = s < 1e-6
    s_safe = np.where(small, 1.0, s)
    wa = np.where(small, 1.0 - t, np.sin((1.0 - t) * theta) / s_safe)
    wb = np.where(small, t, np.sin(t * theta) / s_safe)
    return quat_normalize(wa * a + wb * b)


def quat_angle(a: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
    """Rotation angle (radians, in [0, pi]) of ``a``, or of the rotation taking ``b`` to ``a``."""
    a = quat_normalize(a)
    if b is not None:
        a = quat_mul(a, quat_conj(quat_normalize(b)))
    w = np.clip(np.abs(a[..., 3]), 0.0, 1.0)
    return 2.0 * np.arccos(w)


def rotation_between(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """The minimal (swing) rotation taking direction ``u`` to direction ``v``; shapes (..., 3)."""
    u = np.asarray(u, np.float64)
    v = np.asarray(v, np.float64)
    u = u / np.maximum(np.linalg.norm(u, axis=-1, keepdims=True), 1e-12)
    v = v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)
    d = np.sum(u * v, axis=-1, keepdims=True)
    c = np.cross(u, v)
    q = np.concatenate([c, 1.0 + d], axis=-1)
    # Opposite vectors: any axis perpendicular to u, half-turn.
    opposite = d[..., 0] < -1.0 + 1e-9
    if np.any(opposite):
        uo = u[opposite]
        alt = np.where(np.abs(uo[:, :1]) < 0.9, np.array([1.0, 0, 0]), np.array([0, 1.0, 0]))
        axis = np.cross(uo, alt)
        axis /= np.linalg.norm(axis, axis=-1, keepdims=True)
        q[opposite] = np.concatenate([axis, np.zeros((len(axis), 1))], axis=-1)
    return quat_normalize(q)


def euler_to_quat(angles: np.ndarray, order: str = "XYZ") -> np.ndarray:
    """Euler angles (..., 3) radians, listed in ``order`` -> quaternion R = R_order[0] @ R_order[1] @ ..."""
    angles = np.asarray(angles, np.float64)
    q = quat_identity(angles.shape[:-1])
    for k, ax in enumerate(order.upper()):
        q = quat_mul(q, axis_rotation(ax, angles[..., k]))
    return q


def matrix_to_euler(m: np.ndarray) -> np.ndarray:
    """Rotation matrices (..., 3, 3) -> angles (..., 3) (x, y, z), R = Rx @ Ry @ Rz, y in [-pi/2, pi/2]."""
    m = np.asarray(m, np.float64)
    sy = np.clip(m[..., 0, 2], -1.0, 1.0)
    y = np.arcsin(sy)
    x = np.arctan2(-m[..., 1, 2], m[..., 2, 2])
    z = np.arctan2(-m[..., 0, 1], m[..., 0, 0])
    gimbal = np.abs(sy) > 1 - 1e-9
    if np.any(gimbal):
        x = np.where(gimbal, 0.0, x)
        z = np.where(gimbal, np.arctan2(m[..., 1, 0], m[..., 1, 1]), z)
    return np.stack([x, y, z], axis=-1)
