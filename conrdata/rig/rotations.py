"""All rotation maths of the toolkit: quaternions, matrices, Euler angles, axis-angle, arcs, slerp.

Plain numpy in and out, float64, vectorised over leading axes unless a function says otherwise.
Conventions (docs/design.md, "Poses"):

- quaternions are (..., 4) arrays in (x, y, z, w) order (glTF's order), not necessarily w >= 0
  unless a function says so;
- rotations are active and right-handed: a positive angle turns counter-clockwise seen from the
  tip of the axis, and ``R @ v`` is the rotated vector;
- ``quat_mul(a, b)`` is "b first, then a", the quaternion of the matrix product ``A @ B``;
- Euler angles are radians; ``euler_to_quat(angles, "XYZ")`` and ``euler_to_matrix`` mean
  R = Rx(angles[0]) @ Ry(angles[1]) @ Rz(angles[2]).

The matrix functions take a fast path for a single rotation (plain ``math`` instead of ufuncs on
0-d arrays, about 10x faster): the IK solver calls them once per link per iteration.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "quat_identity",
    "quat_normalize",
    "quat_conj",
    "quat_mul",
    "quat_from_axis_angle",
    "axis_rotation",
    "quat_rotate",
    "quat_to_matrix",
    "quat_from_matrix",
    "quat_slerp",
    "quat_angle",
    "rotation_between",
    "euler_to_quat",
    "matrix_to_euler",
    "axis_matrix",
    "euler_to_matrix",
    "matrix_from_axis_angle",
    "shortest_arc",
    "rotation_part",
    "twist_part",
    "scale_rotation",
]


# --------------------------------------------------------------------------- quaternions


def quat_identity(shape: tuple[int, ...] = ()) -> np.ndarray:
    """Identity quaternions of shape ``shape + (4,)``."""
    q = np.zeros(tuple(shape) + (4,), np.float64)
    q[..., 3] = 1.0
    return q


def quat_normalize(q: np.ndarray) -> np.ndarray:
    """Unit quaternions; a (near) zero quaternion becomes the identity."""
    q = np.asarray(q, np.float64)
    n = np.linalg.norm(q, axis=-1, keepdims=True)
    return np.where(n > 1e-12, q / np.maximum(n, 1e-12), quat_identity(q.shape[:-1]))


def quat_conj(q: np.ndarray) -> np.ndarray:
    """Conjugate (the inverse of a unit quaternion)."""
    q = np.asarray(q, np.float64)
    return np.concatenate([-q[..., :3], q[..., 3:]], axis=-1)


def quat_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product: the rotation ``b`` first, then ``a``."""
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
    """Rotation by ``angle`` radians (right-hand rule) about ``axis`` (..., 3), which need not be unit."""
    axis = np.asarray(axis, np.float64)
    n = np.linalg.norm(axis, axis=-1, keepdims=True)
    axis = axis / np.maximum(n, 1e-12)
    half = 0.5 * np.asarray(angle, np.float64)[..., None]
    return np.concatenate([axis * np.sin(half), np.cos(half)], axis=-1)


def axis_rotation(axis: str, angle: np.ndarray | float) -> np.ndarray:
    """Quaternion of a rotation by ``angle`` radians about the world axis 'X', 'Y' or 'Z'."""
    v = np.zeros(3)
    v["XYZ".index(axis.upper())] = 1.0
    angle = np.asarray(angle, np.float64)
    return quat_from_axis_angle(np.broadcast_to(v, angle.shape + (3,)), angle)


def quat_rotate(q: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Rotate vectors (..., 3) by unit quaternions (..., 4)."""
    q = np.asarray(q, np.float64)
    v = np.asarray(v, np.float64)
    u = q[..., :3]
    w = q[..., 3:]
    t = 2.0 * np.cross(u, v)
    return v + w * t + np.cross(u, t)


def quat_to_matrix(q: np.ndarray) -> np.ndarray:
    """Quaternions (..., 4) (normalised here) to rotation matrices (..., 3, 3)."""
    q = np.asarray(q, dtype=np.float64)
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    x, y, z, w = np.moveaxis(q, -1, 0)
    xx, yy, zz = x * x, y * y, z * z
    xy, xz, yz = x * y, x * z, y * z
    wx, wy, wz = w * x, w * y, w * z
    m = np.stack(
        [
            1 - 2 * (yy + zz), 2 * (xy - wz), 2 * (xz + wy),
            2 * (xy + wz), 1 - 2 * (xx + zz), 2 * (yz - wx),
            2 * (xz - wy), 2 * (yz + wx), 1 - 2 * (xx + yy),
        ],
        axis=-1,
    )
    return m.reshape(q.shape[:-1] + (3, 3))


def quat_from_matrix(m: np.ndarray) -> np.ndarray:
    """Rotation matrices (..., 3, 3) -> unit quaternions (..., 4) with w >= 0 (Shepperd's method)."""
    m = np.asarray(m, np.float64)
    if m.shape == (3, 3):
        return _quat_from_one_matrix(m)
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


def _quat_from_one_matrix(m: np.ndarray) -> np.ndarray:
    """:func:`quat_from_matrix` of one (3, 3) matrix, in scalar code; the same rotation, though for a
    trace > 0 it takes the w branch first where the batched code takes the largest diagonal term."""
    tr = m[0, 0] + m[1, 1] + m[2, 2]
    if tr > 0:
        s = 2.0 * math.sqrt(tr + 1.0)
        q = [(m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s, 0.25 * s]
    elif m[0, 0] > m[1, 1] and m[0, 0] > m[2, 2]:
        s = 2.0 * math.sqrt(1.0 + m[0, 0] - m[1, 1] - m[2, 2])
        q = [0.25 * s, (m[0, 1] + m[1, 0]) / s, (m[0, 2] + m[2, 0]) / s, (m[2, 1] - m[1, 2]) / s]
    elif m[1, 1] > m[2, 2]:
        s = 2.0 * math.sqrt(1.0 + m[1, 1] - m[0, 0] - m[2, 2])
        q = [(m[0, 1] + m[1, 0]) / s, 0.25 * s, (m[1, 2] + m[2, 1]) / s, (m[0, 2] - m[2, 0]) / s]
    else:
        s = 2.0 * math.sqrt(1.0 + m[2, 2] - m[0, 0] - m[1, 1])
        q = [(m[0, 2] + m[2, 0]) / s, (m[1, 2] + m[2, 1]) / s, 0.25 * s, (m[1, 0] - m[0, 1]) / s]
    q = np.asarray(q)
    q /= np.linalg.norm(q)
    return -q if q[3] < 0 else q


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
    """Quaternion of the minimal (swing) rotation taking direction ``u`` to ``v``; shapes (..., 3).

    Opposite directions: the half turn about an axis perpendicular to ``u`` (built from +X, or +Y
    when ``u`` is close to X). :func:`shortest_arc` is the matrix form with a choosable axis.
    """
    u = np.asarray(u, np.float64)
    v = np.asarray(v, np.float64)
    u = u / np.maximum(np.linalg.norm(u, axis=-1, keepdims=True), 1e-12)
    v = v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)
    d = np.sum(u * v, axis=-1, keepdims=True)
    c = np.cross(u, v)
    q = np.concatenate([c, 1.0 + d], axis=-1)
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


# --------------------------------------------------------------------------- matrices


def matrix_to_euler(m: np.ndarray) -> np.ndarray:
    """Rotation matrices (..., 3, 3) -> angles (..., 3) (x, y, z), R = Rx @ Ry @ Rz, y in [-pi/2, pi/2].

    At gimbal lock (y = +-pi/2) x is 0 and z carries the whole remaining turn.
    """
    m = np.asarray(m, np.float64)
    if m.shape == (3, 3):
        sy = max(-1.0, min(1.0, float(m[0, 2])))
        if abs(sy) > 1 - 1e-9:
            return np.array([0.0, math.asin(sy), math.atan2(m[1, 0], m[1, 1])])
        return np.array([math.atan2(-m[1, 2], m[2, 2]), math.asin(sy), math.atan2(-m[0, 1], m[0, 0])])
    sy = np.clip(m[..., 0, 2], -1.0, 1.0)
    y = np.arcsin(sy)
    x = np.arctan2(-m[..., 1, 2], m[..., 2, 2])
    z = np.arctan2(-m[..., 0, 1], m[..., 0, 0])
    gimbal = np.abs(sy) > 1 - 1e-9
    if np.any(gimbal):
        x = np.where(gimbal, 0.0, x)
        z = np.where(gimbal, np.arctan2(m[..., 1, 0], m[..., 1, 1]), z)
    return np.stack([x, y, z], axis=-1)


def axis_matrix(axis: str, angle: np.ndarray | float) -> np.ndarray:
    """Rotation matrices (..., 3, 3) by ``angle`` radians about the world axis 'X', 'Y' or 'Z'."""
    i = "XYZ".index(axis.upper())
    if np.ndim(angle) == 0:
        c, s = math.cos(angle), math.sin(angle)
    else:
        angle = np.asarray(angle, np.float64)
        c, s = np.cos(angle), np.sin(angle)
    j, k = (i + 1) % 3, (i + 2) % 3
    m = np.zeros(np.shape(angle) + (3, 3))
    m[..., i, i] = 1.0
    m[..., j, j] = c
    m[..., k, k] = c
    m[..., j, k] = -s
    m[..., k, j] = s
    return m


def euler_to_matrix(angles: np.ndarray, order: str = "XYZ") -> np.ndarray:
    """Euler angles (..., 3) radians, listed in ``order`` -> R = R_order[0] @ R_order[1] @ R_order[2]."""
    angles = np.asarray(angles, np.float64)
    m = axis_matrix(order[0], angles[..., 0])
    for k in (1, 2):
        m = m @ axis_matrix(order[k], angles[..., k])
    return m


def matrix_from_axis_angle(axis: np.ndarray, angle: np.ndarray | float) -> np.ndarray:
    """Rotation matrices (..., 3, 3) by ``angle`` radians about unit ``axis`` (..., 3) (Rodrigues)."""
    axis = np.asarray(axis, np.float64)
    if axis.shape == (3,) and np.ndim(angle) == 0:
        x, y, z = axis
        c, s = math.cos(angle), math.sin(angle)
        C = 1.0 - c
        return np.array(
            [
                [c + x * x * C, x * y * C - z * s, x * z * C + y * s],
                [y * x * C + z * s, c + y * y * C, y * z * C - x * s],
                [z * x * C - y * s, z * y * C + x * s, c + z * z * C],
            ]
        )
    angle = np.asarray(angle, np.float64)
    x, y, z = np.moveaxis(axis, -1, 0)
    c, s = np.cos(angle), np.sin(angle)
    C = 1.0 - c
    m = np.stack(
        [
            c + x * x * C, x * y * C - z * s, x * z * C + y * s,
            y * x * C + z * s, c + y * y * C, y * z * C - x * s,
            z * x * C - y * s, z * y * C + x * s, c + z * z * C,
        ],
        axis=-1,
    )
    return m.reshape(np.broadcast_shapes(axis.shape[:-1], angle.shape) + (3, 3))


def shortest_arc(
    a: np.ndarray,
    b: np.ndarray,
    spare_axes: tuple[tuple[float, float, float], ...] = ((0.0, 1.0, 0.0), (0.0, 0.0, 1.0)),
) -> np.ndarray:
    """Rotation matrix (3, 3) turning direction ``a`` (3,) onto direction ``b`` (3,) by the smallest angle.

    Opposite directions have no single shortest arc: the result is then the half
    turn about ``a x s`` for the first ``s`` of ``spare_axes`` not parallel to ``a``.
    The default (+Y, then +Z) picks an axis in the horizontal plane.
    """
    a = np.asarray(a)
    b = np.asarray(b)
    a = a / np.linalg.norm(a)
    b = b / np.linalg.norm(b)
    v = np.cross(a, b)
    c = float(np.dot(a, b))
    if c < -1.0 + 1e-10:
        for spare in spare_axes:
            axis = np.cross(a, spare)
            if np.linalg.norm(axis) >= 1e-6:
                break
        axis /= np.linalg.norm(axis)
        return 2.0 * np.outer(axis, axis) - np.eye(3)
    vx = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])
    return np.eye(3) + vx + vx @ vx / (1.0 + c)


def rotation_part(m: np.ndarray) -> np.ndarray:
    """The rotation (..., 3, 3) of linear maps (..., 3, 3), or of the 3x3 blocks of (..., 4, 4) affine
    matrices: the orthogonal factor of the polar decomposition (scale and shear removed), det +1."""
    m = np.asarray(m, np.float64)[..., :3, :3]
    shape = m.shape
    u, _, vt = np.linalg.svd(m.reshape(-1, 3, 3))
    r = u @ vt
    flip = np.linalg.det(r) < 0
    if np.any(flip):
        r[flip] = u[flip] @ np.diag([1.0, 1.0, -1.0]) @ vt[flip]
    return r.reshape(shape)


def twist_part(r: np.ndarray, axis: np.ndarray) -> np.ndarray:
    """The twist about unit ``axis`` (3,) of one rotation matrix ``r`` (3, 3) (swing-twist split)."""
    q = quat_from_matrix(r)
    v = axis * float(q[:3] @ axis)
    t = np.array([v[0], v[1], v[2], q[3]])
    n = np.linalg.norm(t)
    return np.eye(3) if n < 1e-12 else quat_to_matrix(t / n)


def scale_rotation(r: np.ndarray, w: float) -> np.ndarray:
    """One rotation matrix ``r`` (3, 3) scaled by ``w``: the same axis, ``w`` times the angle (slerp from
    the identity); a negative ``w`` turns the other way."""
    q = quat_from_matrix(r)
    if w < 0:
        q, w = q * np.array([-1.0, -1.0, -1.0, 1.0]), -w
    return quat_to_matrix(quat_slerp(quat_identity(), q, w))
