"""conrdata.rig.rotations: conventions (x, y, z, w; active; right-handed), round trips, batch = single."""

import numpy as np
import pytest

from conrdata.rig.rotations import (
    axis_matrix,
    axis_rotation,
    euler_to_matrix,
    euler_to_quat,
    matrix_from_axis_angle,
    matrix_to_euler,
    quat_angle,
    quat_conj,
    quat_from_axis_angle,
    quat_from_matrix,
    quat_mul,
    quat_rotate,
    quat_slerp,
    quat_to_matrix,
    rotation_between,
    rotation_part,
    scale_rotation,
    shortest_arc,
    twist_part,
)

RNG = np.random.default_rng(7)


def _unit_quats(shape):
    q = RNG.normal(size=shape + (4,))
    q /= np.linalg.norm(q, axis=-1, keepdims=True)
    return np.where(q[..., 3:] < 0, -q, q)


def test_conventions_active_right_handed_xyzw():
    q = axis_rotation("Z", np.pi / 2)
    np.testing.assert_allclose(q, [0, 0, np.sin(np.pi / 4), np.cos(np.pi / 4)], atol=1e-15)
    np.testing.assert_allclose(quat_rotate(q, [1.0, 0, 0]), [0, 1, 0], atol=1e-12)  # X turns to Y
    np.testing.assert_allclose(quat_to_matrix(q) @ [1.0, 0, 0], [0, 1, 0], atol=1e-12)
    np.testing.assert_allclose(axis_matrix("Z", np.pi / 2), quat_to_matrix(q), atol=1e-12)
    a, b = _unit_quats((2,))
    ab = quat_to_matrix(a) @ quat_to_matrix(b)  # "b first, then a"
    np.testing.assert_allclose(quat_to_matrix(quat_mul(a, b)), ab, atol=1e-12)
    np.testing.assert_allclose(quat_mul(a, quat_conj(a)), [0, 0, 0, 1], atol=1e-12)


def test_matrix_quaternion_round_trip_batched_and_single():
    q = _unit_quats((5, 7))
    m = quat_to_matrix(q)
    assert m.shape == (5, 7, 3, 3)
    np.testing.assert_allclose(quat_from_matrix(m), q, atol=1e-9)
    # The single-matrix path gives the batched result, including the branch ties of quarter turns.
    turns = (0.0, np.pi / 2, np.pi, -2.5)
    special = [quat_to_matrix(axis_rotation(ax, ang)) for ax in "XYZ" for ang in turns]
    for r in list(m.reshape(-1, 3, 3)) + special:
        one = quat_from_matrix(r)
        assert one[3] >= 0
        np.testing.assert_allclose(one, quat_from_matrix(r[None])[0], atol=1e-12)
        np.testing.assert_allclose(quat_to_matrix(one), r, atol=1e-12)


@pytest.mark.parametrize("order", ["XYZ", "ZXY", "YXZ", "XZY"])
def test_euler_matrix_and_quaternion_agree(order):
    ang = RNG.uniform(-1.4, 1.4, (20, 3))
    m = euler_to_matrix(ang, order)
    np.testing.assert_allclose(m, quat_to_matrix(euler_to_quat(ang, order)), atol=1e-12)
    for i in range(3):
        np.testing.assert_allclose(euler_to_matrix(ang[i], order), m[i], atol=1e-15)


def test_matrix_to_euler_inverts_xyz_single_and_batched():
    ang = RNG.uniform(-1.4, 1.4, (20, 3))
    m = euler_to_matrix(ang)
    np.testing.assert_allclose(matrix_to_euler(m), ang, atol=1e-12)
    for i in range(3):
        np.testing.assert_allclose(matrix_to_euler(m[i]), ang[i], atol=1e-12)
    lock = euler_to_matrix([0.3, np.pi / 2, 0.2])  # gimbal lock: x folds into z, the rotation survives
    for e in (matrix_to_euler(lock), matrix_to_euler(lock[None])[0]):
        assert e[0] == 0.0
        np.testing.assert_allclose(euler_to_matrix(e), lock, atol=1e-9)


def test_axis_angle_matrix_and_quaternion_agree():
    axis = RNG.normal(size=(10, 3))
    axis /= np.linalg.norm(axis, axis=1, keepdims=True)
    angle = RNG.uniform(-3, 3, 10)
    m = matrix_from_axis_angle(axis, angle)
    np.testing.assert_allclose(m, quat_to_matrix(quat_from_axis_angle(axis, angle)), atol=1e-12)
    np.testing.assert_allclose(matrix_from_axis_angle(axis[3], float(angle[3])), m[3], atol=1e-15)


def test_shortest_arc_and_rotation_between():
    u = RNG.normal(size=(10, 3))
    v = RNG.normal(size=(10, 3))
    q = rotation_between(u, v)
    for i in range(10):
        ui, vi = u[i] / np.linalg.norm(u[i]), v[i] / np.linalg.norm(v[i])
        r = shortest_arc(u[i], v[i])
        np.testing.assert_allclose(r @ ui, vi, atol=1e-12)
        np.testing.assert_allclose(quat_to_matrix(q[i]), r, atol=1e-9)  # the same minimal rotation
        np.testing.assert_allclose(quat_angle(q[i]), np.arccos(np.clip(ui @ vi, -1, 1)), atol=1e-9)
    down = shortest_arc([0, 1.0, 0], [0, -1.0, 0])  # opposite: a half turn about a horizontal axis
    np.testing.assert_allclose(down @ [0, 1.0, 0], [0, -1, 0], atol=1e-12)
    assert abs(np.linalg.det(down) - 1) < 1e-12 and abs(down[1, 1] + 1) < 1e-12
    half = rotation_between(np.array([[1.0, 0, 0]]), np.array([[-1.0, 0, 0]]))[0]
    np.testing.assert_allclose(quat_rotate(half, [1.0, 0, 0]), [-1, 0, 0], atol=1e-12)


def test_slerp_and_scaled_rotations():
    a, b = _unit_quats((2,))
    np.testing.assert_allclose(quat_slerp(a, b, 0.0), a, atol=1e-12)
    np.testing.assert_allclose(np.abs(quat_slerp(a, b, 1.0) @ b), 1.0, atol=1e-12)
    mid = quat_slerp(a, b, 0.5)
    assert quat_angle(mid, a) == pytest.approx(quat_angle(b, a) / 2, abs=1e-9)
    r = quat_to_matrix(b)
    h = scale_rotation(r, 0.5)
    np.testing.assert_allclose(h @ h, r, atol=1e-9)
    np.testing.assert_allclose(scale_rotation(r, -1.0), r.T, atol=1e-9)


def test_twist_part_and_rotation_part():
    axis = np.array([0.0, 0.0, 1.0])
    twist = quat_to_matrix(axis_rotation("Z", 0.7))
    swing = quat_to_matrix(axis_rotation("X", 0.4))
    np.testing.assert_allclose(twist_part(twist, axis), twist, atol=1e-12)
    np.testing.assert_allclose(twist_part(swing, axis), np.eye(3), atol=1e-12)
    np.testing.assert_allclose(twist_part(swing @ twist, axis), twist, atol=1e-12)
    m = np.eye(4)
    m[:3, :3] = twist @ np.diag([2.0, 3.0, 0.5])  # scaled node matrix
    np.testing.assert_allclose(rotation_part(m), twist, atol=1e-12)
    mirrored = twist @ np.diag([1.0, 1.0, -1.0])
    r = rotation_part(np.stack([mirrored, twist]))
    assert np.allclose(np.linalg.det(r), 1.0) and r.shape == (2, 3, 3)
