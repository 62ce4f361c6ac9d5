"""FK and linear-blend skinning against hand-computed answers on tiny rigs."""

import numpy as np

from conrdata.rig.model import (
    Material,
    Rig,
    forward_kinematics,
    identity_rotations,
    pose_vertices,
)
from conrdata.rig.rotations import quat_to_matrix


def two_bone_rig() -> Rig:
    # Root at the origin, child 1 m up +Y; vertex 0 bound to root, vertex 1 to child, vertex 2 half/half.
    verts = np.array([[1, 0, 0], [0, 2, 0], [0, 1, 1]], np.float32)
    return Rig(
        vertices=verts,
        normals=np.tile(np.array([0, 0, 1], np.float32), (3, 1)),
        uvs=np.zeros((3, 2), np.float32),
        faces=np.array([[0, 1, 2]], np.int32),
        face_material=np.zeros(1, np.int32),
        joints=np.array([[0, 0, 0, 0], [1, 0, 0, 0], [0, 1, 0, 0]], np.int32),
        weights=np.array([[1, 0, 0, 0], [1, 0, 0, 0], [0.5, 0.5, 0, 0]], np.float32),
        bone_names=["root", "child"],
        bone_parents=np.array([-1, 0], np.int32),
        bone_heads=np.array([[0, 0, 0], [0, 1, 0]], np.float32),
        humanoid={"hips": 0, "spine": 1},
        materials=[Material("m")],
    )


def quat_z(deg: float) -> np.ndarray:
    a = np.radians(deg) / 2
    return np.array([0, 0, np.sin(a), np.cos(a)])


def test_bind_pose_is_identity():
    rig = two_bone_rig()
    rig.check()
    np.testing.assert_allclose(pose_vertices(rig, identity_rotations(rig)), rig.vertices, atol=1e-6)


def test_fk_child_rotation_about_z():
    rig = two_bone_rig()
    q = identity_rotations(rig)
    q[0] = quat_z(90)  # root turns +90 deg about z: +Y goes to -X
    r, t = forward_kinematics(rig, q)
    np.testing.assert_allclose(t[1], [-1, 0, 0], atol=1e-9)
    np.testing.assert_allclose(r[1], quat_to_matrix(quat_z(90)), atol=1e-9)
    posed = pose_vertices(rig, q, root_translation=np.array([0, 0, 2.0]))
    np.testing.assert_allclose(posed[0], [0, 1, 2], atol=1e-6)  # (1,0,0) -> (0,1,0), then +2 z
    np.testing.assert_allclose(posed[1], [-2, 0, 2], atol=1e-6)


def test_lbs_blends_half_half():
    rig = two_bone_rig()
    q = identity_rotations(rig)
    q[1] = quat_z(90)  # only the child turns, about its head (0, 1, 0)
    posed = pose_vertices(rig, q)
    np.testing.assert_allclose(posed[1], [-1, 1, 0], atol=1e-6)
    # vertex 2 (0,1,1): root keeps it, child maps it to (0,1,1) too (on the axis) -> unchanged
    np.testing.assert_allclose(posed[2], [0, 1, 1], atol=1e-6)
