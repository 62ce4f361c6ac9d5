"""glTF animations: LINEAR / STEP / CUBICSPLINE sampling by hand, and a T-pose glTF skeleton retargeted."""

import json

import numpy as np
import pytest

from conrdata.errors import FormatError
from conrdata.poses import pose_for_rig, standard_skeleton
from conrdata.poses.gltf_anim import gltf_to_library, sample_channel
from conrdata.rig.model import forward_kinematics
from conrdata.rig.rotations import axis_rotation, quat_angle, quat_mul, rotation_between
from tests.poses_testdata import gltf_animated_skeleton


def test_sampling_hand_computed():
    times = np.array([0.0, 2.0, 4.0])
    vals = np.array([[0.0, 0, 0], [2.0, 4, 0], [2.0, 4, 8]])
    t = np.array([-1.0, 0.5, 2.0, 3.0, 9.0])
    np.testing.assert_allclose(sample_channel(times, vals, "LINEAR", t, False),
                               [[0, 0, 0], [0.5, 1, 0], [2, 4, 0], [2, 4, 4], [2, 4, 8]])
    np.testing.assert_allclose(sample_channel(times, vals, "STEP", t, False),
                               [[0, 0, 0], [0, 0, 0], [2, 4, 0], [2, 4, 0], [2, 4, 8]])
    # Cubic Hermite with zero tangents: at s = 1/4, h01 = -2/64 + 3/16 = 0.15625.
    zero = np.zeros((3, 3))
    cubic = np.stack([zero, vals, zero], axis=1).reshape(9, 3)
    np.testing.assert_allclose(sample_channel(times, cubic, "CUBICSPLINE", np.array([0.5]), False),
                               [[0.3125, 0.625, 0]])
    # ... and with an out-tangent m0 = 1 on x: h10 * dt * m0 = (1/64 - 2/16 + 1/4) * 2 = 0.28125 more.
    tangents = zero.copy()
    tangents[0, 0] = 1.0
    cubic = np.stack([zero, vals, tangents], axis=1).reshape(9, 3)
    np.testing.assert_allclose(sample_channel(times, cubic, "CUBICSPLINE", np.array([0.5]), False)[0, 0],
                               0.3125 + 0.28125)
    # Rotations: LINEAR is a slerp.
    q = np.stack([axis_rotation("Y", 0.0), axis_rotation("Y", np.radians(90))])
    out = sample_channel(np.array([0.0, 1.0]), q, "LINEAR", np.array([0.25]), True)
    assert np.degrees(quat_angle(out[0])) == pytest.approx(22.5)


def lowered_arm_local() -> np.ndarray:
    """glTF local rotation of LeftArm (rest: local +Y along +X) lowered 45 degrees in world."""
    rest = rotation_between(np.array([0, 1.0, 0]), np.array([1.0, 0, 0]))
    return quat_mul(axis_rotation("Z", np.radians(-45)), rest)


@pytest.mark.parametrize("interp", ["LINEAR", "STEP", "CUBICSPLINE"])
def test_gltf_tpose_rest_and_apose_frame(tmp_path, interp):
    rest = rotation_between(np.array([0, 1.0, 0]), np.array([1.0, 0, 0]))
    keys = np.stack([rest, lowered_arm_local()])
    if interp == "CUBICSPLINE":
        z = np.zeros(4)
        keys = np.stack([z, keys[0], z, z, keys[1], z])
    hips = [[0.0, 0.78, 0.0], [0.0, 0.68, 0.1]]
    z3 = [0, 0, 0]
    hips_keys = hips if interp != "CUBICSPLINE" else [z3, hips[0], z3, z3, hips[1], z3]
    path = gltf_animated_skeleton(tmp_path / "wave.gltf", [0.0, 1.0], keys, interp, hips_keys)
    rig = standard_skeleton()
    lib = gltf_to_library(path, rig, fps=4)
    assert len(lib) == 5 and lib.pose_ids[0] == "wave#wave@t0.000"
    # t = 0: the file's rest is a T-pose -> the rig's arms horizontal
    q, t = pose_for_rig(rig, lib, 0)
    _, pos = forward_kinematics(rig, q, t)
    h = rig.humanoid
    for side, sg in (("left", 1.0), ("right", -1.0)):
        d = pos[h[f"{side}Hand"]] - pos[h[f"{side}UpperArm"]]
        np.testing.assert_allclose(d / np.linalg.norm(d), [sg, 0, 0], atol=1e-5)
    # t = 1: the left arm lowered into the A-pose -> bind within 2 degrees; hips moved down 10 cm, fwd 10 cm
    j = lib.bone_names.index("leftUpperArm")
    assert np.degrees(quat_angle(lib.rotations[4, j].astype(np.float64))) < 2.0
    np.testing.assert_allclose(lib.root_translation[4], [0, -0.1, 0.1], atol=1e-5)
    mid = np.degrees(quat_angle(lib.rotations[2, j].astype(np.float64)))
    assert mid == pytest.approx(45.0 if interp == "STEP" else 22.5, abs=0.5)


def test_gltf_errors(tmp_path):
    rest = rotation_between(np.array([0, 1.0, 0]), np.array([1.0, 0, 0]))
    path = gltf_animated_skeleton(tmp_path / "a.gltf", [0.0], [rest])
    doc = json.loads(path.read_text())
    doc["animations"][0]["samplers"][0]["interpolation"] = "BOUNCY"
    path.write_text(json.dumps(doc))
    with pytest.raises(FormatError, match="interpolation"):
        gltf_to_library(path)
    doc["animations"] = []
    path.write_text(json.dumps(doc))
    with pytest.raises(FormatError, match="no animations"):
        gltf_to_library(path)
    doc.pop("animations")
    path.write_text("{broken")
    with pytest.raises(FormatError):
        gltf_to_library(path)
