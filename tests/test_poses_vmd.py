"""VMD: Bezier interpolation by hand, file round trip, frame conversion, IK on proxy and PMX rigs."""

import numpy as np
import pytest

from conrdata.errors import FormatError
from conrdata.poses import pose_for_rig, standard_skeleton
from conrdata.poses.evaluate import evaluate_pose
from conrdata.poses.mmd import MMD_REST_ARM_DEG, mmd_skeleton_for, vmd_to_library
from conrdata.poses.vmd import (
    VmdMotion,
    bezier_ease,
    make_track,
    parse_vmd,
    read_vmd,
    sample_track,
    vmd_bytes,
    write_vmd,
)
from conrdata.rig.model import forward_kinematics
from conrdata.rig.rotations import axis_rotation, quat_angle

EASE = (127, 0, 0, 127)  # x1, y1, x2, y2: slow in, slow out
LINEAR = (20, 20, 107, 107)


def test_bezier_hand_computed():
    # Control points (1, 0) and (0, 1): at s = 1/4, x = 3(3/4)^2(1/4) + (1/4)^3 = 0.4375 and
    # y = 3(3/4)(1/4)^2 + (1/4)^3 = 0.15625; by symmetry t = 1/2 gives 1/2.
    assert bezier_ease(1, 0, 0, 1, 0.4375) == pytest.approx(0.15625, abs=1e-7)
    # (x is flat at s = 1/2, so s and y are only determined to ~(1e-16)^(1/3) there)
    assert bezier_ease(1, 0, 0, 1, 0.5) == pytest.approx(0.5, abs=1e-5)
    assert bezier_ease(1, 0, 0, 1, 1 - 0.4375) == pytest.approx(1 - 0.15625, abs=1e-7)
    # Any curve whose control points lie on the diagonal is the identity.
    t = np.linspace(0, 1, 11)
    np.testing.assert_allclose(bezier_ease(20 / 127, 20 / 127, 107 / 127, 107 / 127, t), t, atol=1e-7)
    np.testing.assert_allclose(bezier_ease(0, 0, 1, 1, t), t, atol=1e-7)
    # Against an independent solve (numpy polynomial roots) for an asymmetric curve.
    x1, y1, x2, y2 = 90 / 127, 10 / 127, 30 / 127, 120 / 127
    for tt in (0.1, 0.33, 0.8):
        coeffs = [1 + 3 * x1 - 3 * x2, 3 * x2 - 6 * x1, 3 * x1, -tt]  # x(s) - t, highest power first
        s = [r.real for r in np.roots(coeffs) if abs(r.imag) < 1e-9 and -1e-9 <= r.real <= 1 + 1e-9][0]
        y = 3 * (1 - s) ** 2 * s * y1 + 3 * (1 - s) * s * s * y2 + s ** 3
        assert bezier_ease(x1, y1, x2, y2, tt) == pytest.approx(y, abs=1e-6)


def test_track_sampling_uses_the_later_keys_curves():
    curves_eased = np.array([[LINEAR, LINEAR, LINEAR, EASE]] * 2, np.uint8)
    curves_eased[0] = [LINEAR] * 4  # the first key's curves never matter
    tr = make_track([0, 16], positions=[[0, 0, 0], [8, 0, 0]],
                    rotations=[[0, 0, 0, 1], axis_rotation("Z", np.radians(90))], curves=curves_eased)
    pos, rot = sample_track(tr, [0, 7, 16, 20, -3])  # 7/16 = 0.4375
    np.testing.assert_allclose(pos[:, 0], [0, 3.5, 8, 8, 0], atol=1e-6)  # X is linear
    np.testing.assert_allclose(np.degrees(quat_angle(rot)), [0, 90 * 0.15625, 90, 90, 0], atol=1e-4)


def motion_fixture() -> VmdMotion:
    m = VmdMotion("テストモデル")
    m.tracks["左腕"] = make_track([0, 30], rotations=[[0, 0, 0, 1], axis_rotation("Z", np.radians(30))],
                                 curves=np.array([[LINEAR] * 4, [LINEAR, LINEAR, LINEAR, EASE]], np.uint8))
    m.tracks["センター"] = make_track([0, 15, 30], positions=[[0, 0, 0], [1, -1, 2], [0, 0, 0]])
    m.tracks["左足ＩＫ"] = make_track([0, 30], positions=[[0, 0, 0], [0, 2.5, -3.0]])
    m.tracks["頭"] = make_track([0], rotations=[axis_rotation("X", np.radians(20))])
    m.tracks["しっぽ"] = make_track([0])  # a bone no humanoid has
    m.ik_keys = [(0, {"左足ＩＫ": True, "右足ＩＫ": True})]
    return m


def test_vmd_round_trip(tmp_path):
    m = motion_fixture()
    path = write_vmd(tmp_path / "dance.vmd", m)
    back = read_vmd(path)
    assert back.model_name == m.model_name
    assert set(back.tracks) == set(m.tracks)
    for name, tr in m.tracks.items():
        b = back.tracks[name]
        np.testing.assert_array_equal(b.frames, tr.frames)
        np.testing.assert_allclose(b.positions, tr.positions, atol=1e-6)
        np.testing.assert_allclose(b.rotations, tr.rotations, atol=1e-6)
        np.testing.assert_array_equal(b.curves, tr.curves)
    assert back.ik_keys == m.ik_keys
    assert vmd_bytes(back) == vmd_bytes(m)


def test_vmd_name_padding_and_old_signature():
    m = VmdMotion("x")
    m.tracks["右ひじ"] = make_track([5])
    data = bytearray(vmd_bytes(m))
    rec = 30 + 20 + 4
    name = "右ひじ".encode("cp932")
    data[rec + len(name) + 1: rec + 15] = b"\xfd" * (15 - len(name) - 1)  # MMD's junk after the NUL
    assert list(parse_vmd(bytes(data)).tracks) == ["右ひじ"]
    old = b"Vocaloid Motion Data file\0\0\0\0\0" + b"model\0\0\0\0\0" + bytes(data[50:])
    assert list(parse_vmd(old).tracks) == ["右ひじ"]
    with pytest.raises(FormatError, match="truncated"):
        parse_vmd(bytes(data[:60]), "cut.vmd")
    with pytest.raises(FormatError, match="signature"):
        parse_vmd(b"Vocaloid Motion Data 0003" + bytes(40))


def arm_drop_deg(rig, pos, side="left"):
    d = pos[rig.humanoid[f"{side}LowerArm"]] - pos[rig.humanoid[f"{side}UpperArm"]]
    return np.degrees(np.arctan2(-d[1], abs(d[0])))


def test_vmd_on_standard_skeleton_frames_rest_and_ik():
    m = motion_fixture()
    rig = standard_skeleton()
    lib = vmd_to_library(m, None, fps=30, name="dance")
    assert len(lib) == 31 and lib.pose_ids[0] == "dance@f0000" and lib.meta["missing_bones"] == ["しっぽ"]
    # Frame 0: the VMD's identity is MMD's rest: arms 37.5 degrees below horizontal (ours is 45).
    q, t = pose_for_rig(rig, lib, 0)
    _, pos = forward_kinematics(rig, q, t)
    assert arm_drop_deg(rig, pos, "left") == pytest.approx(MMD_REST_ARM_DEG, abs=1e-3)
    assert arm_drop_deg(rig, pos, "right") == pytest.approx(MMD_REST_ARM_DEG, abs=1e-3)
    # Head: +20 deg about MMD's X tilts it back (MMD faces -Z), i.e. towards -Z for us.
    head_up = pos[rig.humanoid["leftEye"]] - pos[rig.humanoid["head"]]
    assert head_up[2] < 0.075 * np.cos(np.radians(20)) - 0.01
    # Frame 30: the left arm raised 30 deg about Z from MMD's rest.
    q, t = pose_for_rig(rig, lib, 30)
    _, pos = forward_kinematics(rig, q, t)
    assert arm_drop_deg(rig, pos, "left") == pytest.approx(MMD_REST_ARM_DEG - 30, abs=1e-3)
    # Leg IK: the ankle sits on the IK target, i.e. the bind ankle plus the (scaled, Z-flipped) offset.
    skel = mmd_skeleton_for(None)
    target = rig.bone_heads[rig.humanoid["leftFoot"]] + np.array([0, 2.5, 3.0]) * skel.translation_scale
    np.testing.assert_allclose(pos[rig.humanoid["leftFoot"]], target, atol=1e-3)
    knee = lib.rotations[30, lib.bone_names.index("leftLowerLeg")].astype(np.float64)
    assert abs(knee[1]) < 1e-6 and abs(knee[2]) < 1e-6 and knee[0] > 0.3  # hinge about +X, bent back
    # The centre's translation moved the hips and the right foot stayed planted by its IK.
    q, t = pose_for_rig(rig, lib, 15)
    _, pos = forward_kinematics(rig, q, t)
    np.testing.assert_allclose(t, np.array([1, -1, -2]) * skel.translation_scale, atol=1e-5)
    foot = rig.humanoid["rightFoot"]
    np.testing.assert_allclose(pos[foot], rig.bone_heads[foot], atol=1e-3)


def test_ik_can_be_switched_off():
    m = motion_fixture()
    m.ik_keys = [(0, {"左足ＩＫ": False})]
    lib = vmd_to_library(m, None, fps=1)
    j = lib.bone_names.index("leftLowerLeg")
    np.testing.assert_allclose(quat_angle(lib.rotations[:, j].astype(np.float64)), 0, atol=1e-6)


def test_vmd_drives_the_procedural_character():
    pytest.importorskip("conrdata.rig.procedural")
    from conrdata.rig.procedural import build_character

    rig = build_character(2)
    lib = vmd_to_library(motion_fixture(), rig, fps=10, name="d")
    skel = mmd_skeleton_for(rig)
    q, t = pose_for_rig(rig, lib, len(lib) - 1)
    _, pos = forward_kinematics(rig, q, t)
    foot = rig.humanoid["leftFoot"]
    target = rig.bone_heads[foot] + np.array([0, 2.5, 3.0]) * skel.translation_scale
    np.testing.assert_allclose(pos[foot], target, atol=1e-3)


def test_vmd_drives_a_pmx_rig_with_its_own_ik(tmp_path):
    mmd_writer = pytest.importorskip("tests.mmd_writer")
    pmx = pytest.importorskip("conrdata.formats.pmx")
    apose = pytest.importorskip("conrdata.rig.apose")
    mmd_writer.write_textures(tmp_path)
    path = mmd_writer.write_pmx(tmp_path / "m.pmx", mmd_writer.tiny_humanoid())
    rig = apose.align_to_apose(pmx.read_pmx(path))
    assert rig.ik_chains and rig.meta.get("apose_correction")
    m = VmdMotion("m")
    m.tracks["左足ＩＫ"] = make_track([0, 10], positions=[[0, 0, 0], [0, 4, -3]])
    lib = vmd_to_library(m, rig, fps=30)
    assert lib.meta["skeleton"] == "mmd rig"
    q, t = pose_for_rig(rig, lib, len(lib) - 1)
    _, pos = forward_kinematics(rig, q, t)
    ik = rig.bone_names.index("左足ＩＫ")
    # The PMX's IK bone rest is the ankle's rest; the A-pose re-bind moved the ankle, not the IK bone.
    target = rig.bone_heads[ik] + np.array([0, 4, 3]) * 0.08
    np.testing.assert_allclose(pos[rig.humanoid["leftFoot"]], target, atol=1e-3)
    # The deform copy follows the IK-driven thigh (inherit rotation, played by the pose evaluator).
    world, _ = evaluate_pose(rig, q, t)
    np.testing.assert_allclose(world[rig.bone_names.index("左足D")], world[rig.humanoid["leftUpperLeg"]],
                               atol=1e-5)
    # Frame 0 (VMD identity = the model's own rest) differs from the A-pose where the rest did.
    assert pytest.approx(0, abs=1e-6) != float(np.abs(lib.rotations[0] - [0, 0, 0, 1]).max())
