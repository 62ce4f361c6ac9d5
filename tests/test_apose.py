"""A-pose alignment: hand-computed stick figure, distorted procedural rigs recovered, errors, corrections."""

from __future__ import annotations

import numpy as np
import pytest

from conrdata.errors import RigError
from conrdata.rig.apose import align_to_apose
from conrdata.rig.model import (
    Material,
    Rig,
    forward_kinematics,
    identity_rotations,
    pose_vertices,
    skin,
    skin_normals,
    skinning_matrices,
)
from conrdata.rig.procedural import build_character
from conrdata.rig.rotations import quat_to_matrix
from tests.apose_criteria import assert_apose
from tests.stick_rig import STICK_BONES, bone_arrays


def axis_quat(axis, deg: float) -> np.ndarray:
    axis = np.asarray(axis, np.float64)
    axis = axis / np.linalg.norm(axis)
    a = np.radians(deg) / 2
    return np.concatenate([axis * np.sin(a), [np.cos(a)]])


def rebind(rig: Rig, pose: dict[str, np.ndarray]) -> Rig:
    """Pose the rig (humanoid name -> local quaternion) and make that pose the bind pose."""
    q = identity_rotations(rig)
    for name, quat in pose.items():
        q[rig.bone_index(name)] = quat
    r, t = forward_kinematics(rig, q)
    m = skinning_matrices(rig, r, t)
    return rig.replace(vertices=skin(rig, m), normals=skin_normals(rig, m), bone_heads=t.astype(np.float32))


def turn(rig: Rig, rot: np.ndarray, offset=(0, 0, 0)) -> Rig:
    return rig.replace(vertices=(rig.vertices @ rot.T + offset).astype(np.float32),
                       normals=(rig.normals @ rot.T).astype(np.float32),
                       bone_heads=(rig.bone_heads @ rot.T + offset).astype(np.float32))


def check_apose(rig: Rig, tol_arm=1.0, tol_leg=2.0):
    assert_apose(rig, tol_arm, tol_leg, tol_bind=1e-5)


@pytest.fixture(scope="module")
def canonical():
    return build_character(0)


# --------------------------------------------------------------------------- hand-computed


def stick_figure() -> Rig:
    """A T-posed stick humanoid, one small triangle per bone, facing +Z, feet 5 cm above the ground."""
    names, parents, heads = bone_arrays(STICK_BONES)
    verts, joints = [], []
    for i, h in enumerate(heads):
        verts += [h, h + [0.01, 0, 0], h + [0, 0, 0.01]]
        joints += [i, i, i]
    verts.append(heads[names.index("leftFoot")] + [0, -0.05, 0])  # the sole: 5 cm below the ankle
    joints.append(names.index("leftFoot"))
    v = np.array(verts, np.float32)
    V = len(v)
    j = np.zeros((V, 4), np.int32)
    j[:, 0] = joints
    w = np.zeros((V, 4), np.float32)
    w[:, 0] = 1
    faces = np.arange(3 * len(names), dtype=np.int32).reshape(-1, 3)
    return Rig(vertices=v, normals=np.tile(np.float32([0, 0, 1]), (V, 1)), uvs=np.zeros((V, 2), np.float32),
               faces=faces, face_material=np.zeros(len(faces), np.int32), joints=j, weights=w,
               bone_names=names, bone_parents=parents, bone_heads=heads,
               humanoid={n: i for i, n in enumerate(names)}, materials=[Material("m")])


def test_stick_figure_hand_computed():
    rig = stick_figure()
    out = align_to_apose(rig)
    c = np.cos(np.radians(45))
    h = out.humanoid
    # ground: the sole was at y = 0.05 -> everything moves down 5 cm; hips already at x = z = 0
    np.testing.assert_allclose(out.bone_heads[h["hips"]], [0, 0.95, 0], atol=1e-6)
    expected = {
        "leftUpperArm": [0.2, 1.35, 0],
        "leftLowerArm": [0.2 + 0.3 * c, 1.35 - 0.3 * c, 0],
        "leftHand": [0.2 + 0.55 * c, 1.35 - 0.55 * c, 0],
        "rightHand": [-0.2 - 0.55 * c, 1.35 - 0.55 * c, 0],
        "leftFoot": [0.1, 0.05, 0],
        "head": [0, 1.45, 0],
    }
    for name, pos in expected.items():
        np.testing.assert_allclose(out.bone_heads[h[name]], pos, atol=1e-6, err_msg=name)
    # the hand's triangle turned with the arm: its +X offset now points along the arm
    hand_v = np.flatnonzero(out.joints[:, 0] == h["leftHand"])[:2]
    np.testing.assert_allclose(out.vertices[hand_v[1]] - out.vertices[hand_v[0]], [0.01 * c, -0.01 * c, 0],
                               atol=1e-6)
    corr = out.meta["apose_correction"]
    np.testing.assert_allclose(corr["leftUpperArm"], axis_quat([0, 0, 1], -45), atol=1e-9)
    np.testing.assert_allclose(corr["rightUpperArm"], axis_quat([0, 0, 1], 45), atol=1e-9)
    assert set(corr) == {"leftUpperArm", "rightUpperArm"}
    assert out.meta["apose_translation"] == pytest.approx([0, -0.05, 0])
    check_apose(out, tol_arm=1e-4, tol_leg=1e-4)


# --------------------------------------------------------------------------- distorted procedural rigs


Z, Y, X = [0, 0, 1], [0, 1, 0], [1, 0, 0]
DISTORTIONS = {
    "tpose": {"leftUpperArm": axis_quat(Z, 45), "rightUpperArm": axis_quat(Z, -45)},
    "arms_low_elbows_bent": {"leftUpperArm": axis_quat(Z, -30), "rightUpperArm": axis_quat(Z, 20),
                             "leftLowerArm": axis_quat(Z, 40), "rightLowerArm": axis_quat(Z, -25)},
    "arms_forward": {"leftUpperArm": axis_quat([0, 1, 0], -35), "rightUpperArm": axis_quat([0, 1, 0], 35)},
    "legs_spread": {"leftUpperLeg": axis_quat([0, 0, 1], 20), "rightUpperLeg": axis_quat([0, 0, 1], -15)},
    "knees_bent": {"leftLowerLeg": axis_quat([1, 0, 0], 30), "rightLowerLeg": axis_quat([1, 0, 0], 10)},
    "spine_bent": {"spine": axis_quat([1, 0, 0], 25)},
}


#: swings about an axis perpendicular to the bone are undone exactly by the smallest aiming rotation
SWING_ONLY = {"tpose", "arms_low_elbows_bent", "legs_spread", "knees_bent", "spine_bent"}


@pytest.mark.parametrize("name", sorted(DISTORTIONS))
def test_single_distortion_is_undone(canonical, name):
    distorted = rebind(canonical, DISTORTIONS[name])
    out = align_to_apose(distorted)
    check_apose(out)
    np.testing.assert_allclose(out.bone_heads, canonical.bone_heads, atol=1e-4)
    if name in SWING_ONLY:
        # vertices bound to one bone come back exactly; blended ones only nearly (LBS does not invert)
        rigid = canonical.weights.max(1) > 0.9999
        np.testing.assert_allclose(out.vertices[rigid], canonical.vertices[rigid], atol=1e-4)
        assert np.abs(out.vertices - canonical.vertices).max() < 0.02


@pytest.mark.parametrize("rot_name", ["yaw180", "z_up", "lying_yaw90"])
def test_whole_body_orientation_is_fixed(canonical, rot_name):
    rot = {
        "yaw180": quat_to_matrix(axis_quat([0, 1, 0], 180)),
        "z_up": quat_to_matrix(axis_quat([1, 0, 0], 90)),
        "lying_yaw90": quat_to_matrix(axis_quat([0, 1, 0], 90)) @ quat_to_matrix(axis_quat([0, 0, 1], 90)),
    }[rot_name]
    src = turn(rebind(canonical, DISTORTIONS["tpose"]), rot, offset=(3.0, -2.0, 1.0))
    out = align_to_apose(src)
    check_apose(out)
    np.testing.assert_allclose(out.bone_heads, canonical.bone_heads, atol=1e-4)
    # the recorded correction reproduces the aligned rig from the source rest pose
    q = identity_rotations(src)
    for bone, quat in out.meta["apose_correction"].items():
        q[src.bone_names.index(bone)] = quat
    posed = pose_vertices(src, q) + np.asarray(out.meta["apose_translation"], np.float32)
    np.testing.assert_allclose(posed, out.vertices, atol=1e-4)


def test_combined_random_distortions(canonical):
    rng = np.random.default_rng(7)
    bones = ["spine", "chest", "neck", "leftUpperArm", "rightUpperArm", "leftLowerArm", "rightLowerArm",
             "leftUpperLeg", "rightUpperLeg", "leftLowerLeg", "rightLowerLeg", "hips"]
    for _ in range(3):
        pose = {b: axis_quat(rng.normal(size=3), rng.uniform(-30, 30)) for b in bones}
        out = align_to_apose(rebind(canonical, pose))
        check_apose(out)
        # secondary chains followed their parents rigidly: hair offsets from the head are kept in length
        h = out.humanoid["head"]
        for i, n in enumerate(out.bone_names):
            if n.startswith("hair_") and n.endswith("_0"):
                d_out = np.linalg.norm(out.bone_heads[i] - out.bone_heads[h])
                d_can = np.linalg.norm(canonical.bone_heads[i] - canonical.bone_heads[h])
                assert d_out == pytest.approx(d_can, abs=1e-5)


def test_correction_quaternions_are_unit_and_local(canonical):
    out = align_to_apose(rebind(canonical, DISTORTIONS["spine_bent"]))
    corr = out.meta["apose_correction"]
    assert set(corr) == {"spine"}
    np.testing.assert_allclose(corr["spine"], axis_quat([1, 0, 0], -25), atol=1e-6)
    for q in corr.values():
        assert np.linalg.norm(q) == pytest.approx(1)




# --------------------------------------------------------------------------- errors


def test_missing_humanoid_bones(canonical):
    rig = canonical.replace(humanoid={k: v for k, v in canonical.humanoid.items() if k != "leftHand"})
    with pytest.raises(RigError, match="humanoid bones not found: leftHand"):
        align_to_apose(rig)


@pytest.mark.parametrize("scale, hint", [(100.0, "centimetres"), (0.05, "tall")])
def test_absurd_sizes(canonical, scale, hint):
    rig = turn(canonical, np.eye(3) * scale)
    with pytest.raises(RigError, match=hint):
        align_to_apose(rig)


def test_disconnected_humanoid_chain(canonical):
    h = dict(canonical.humanoid)
    h["leftLowerArm"] = canonical.humanoid["rightLowerArm"]
    with pytest.raises(RigError, match="is not below"):
        align_to_apose(canonical.replace(humanoid=h))


def test_coincident_bones(canonical):
    heads = canonical.bone_heads.copy()
    heads[canonical.humanoid["rightUpperLeg"]] = heads[canonical.humanoid["leftUpperLeg"]]
    heads[canonical.humanoid["rightUpperArm"]] = heads[canonical.humanoid["leftUpperArm"]]
    with pytest.raises(RigError, match="orientation"):
        align_to_apose(canonical.replace(bone_heads=heads))
