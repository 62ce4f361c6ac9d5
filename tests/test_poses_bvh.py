"""BVH: round trip of a file the test writes, CMU names, retargeting a T-pose rest onto the A-pose rig."""

import numpy as np
import pytest

from conrdata.errors import FormatError
from conrdata.poses import pose_for_rig, standard_skeleton
from conrdata.poses.bvh import bvh_text, parse_bvh, read_bvh, write_bvh
from conrdata.poses.retarget import bvh_to_library, map_source_names
from conrdata.rig.model import forward_kinematics
from conrdata.rig.rotations import quat_angle
from tests.poses_testdata import CMU_TO_HUMANOID, apose_frame, cmu_bvh, euler_between


def bone_dir(rig, pos, a, b):
    d = pos[rig.humanoid[b]] - pos[rig.humanoid[a]]
    return d / np.linalg.norm(d)


def test_bvh_round_trip(tmp_path):
    frames = [{}, apose_frame(), {"LeftLeg": np.array([30.0, 0, 0]), "Head": np.array([0, 20.0, 5.0])}]
    hips = [np.zeros(3)] * 2 + [np.ones(3)]
    motion = cmu_bvh(frames, face_minus_z=True, units=100.0, hips_offsets=hips)
    path = write_bvh(tmp_path / "walk.bvh", motion)
    back = read_bvh(path)
    assert back.names == motion.names
    np.testing.assert_array_equal(back.parents, motion.parents)
    np.testing.assert_allclose(back.offsets, motion.offsets, atol=1e-6)
    assert back.channels == motion.channels
    np.testing.assert_allclose(back.frames, motion.frames, atol=1e-6)
    assert back.frame_time == pytest.approx(1 / 30, abs=1e-6)
    assert set(back.end_sites) == set(motion.end_sites)
    assert bvh_text(back) == bvh_text(motion)
    # World FK in file units: the posed left knee turned 30 deg about X moves the ankle forward/back.
    _, wp = back.world()
    np.testing.assert_allclose(wp[0], back.rest_positions() + 0.0, atol=1e-6)


def test_cmu_names_map_to_humanoid():
    motion = cmu_bvh([{}])
    mapped = map_source_names(motion.names)
    for n, h in CMU_TO_HUMANOID.items():
        assert mapped[h] == motion.names.index(n), (n, h)


@pytest.mark.parametrize("face_minus_z,units", [(False, 1.0), (True, 100.0)])
def test_tpose_gives_rig_tpose_and_apose_frame_gives_bind(face_minus_z, units):
    motion = parse_bvh(bvh_text(cmu_bvh([{}, apose_frame(face_minus_z)], face_minus_z, units)))
    rig = standard_skeleton()
    lib = bvh_to_library(motion, rig, name="t")
    # frame 0 (the T-pose rest): the rig's T-pose, i.e. its arms horizontal and everything else at bind
    q, t = pose_for_rig(rig, lib, 0)
    _, pos = forward_kinematics(rig, q, t)
    for side, sg in (("left", 1.0), ("right", -1.0)):
        for a, b in ((f"{side}UpperArm", f"{side}LowerArm"), (f"{side}LowerArm", f"{side}Hand")):
            np.testing.assert_allclose(bone_dir(rig, pos, a, b), [sg, 0, 0], atol=1e-5)
    foot = rig.humanoid["leftFoot"]
    np.testing.assert_allclose(pos[foot], rig.bone_heads[foot], atol=1e-5)
    # frame 1 (arms lowered 45 deg in the file): the bind pose, every bone within 2 degrees
    ang = np.degrees(quat_angle(lib.rotations[1].astype(np.float64)))
    assert ang.max() < 2.0, dict(zip(lib.bone_names, ang.round(2)))
    np.testing.assert_allclose(lib.root_translation, 0, atol=1e-6)


def test_retarget_onto_procedural_character():
    pytest.importorskip("conrdata.rig.procedural")
    from conrdata.rig.procedural import build_character

    rig = build_character(1)
    lib = bvh_to_library(cmu_bvh([{}, apose_frame()]), rig, name="t")
    q, t = pose_for_rig(rig, lib, 0)
    _, pos = forward_kinematics(rig, q, t)
    np.testing.assert_allclose(bone_dir(rig, pos, "leftUpperArm", "leftLowerArm"), [1, 0, 0], atol=1e-4)
    np.testing.assert_allclose(bone_dir(rig, pos, "rightLowerArm", "rightHand"), [-1, 0, 0], atol=1e-4)
    # The A-pose frame: the arms are back at the bind pose; other limbs follow the file's bone
    # directions, which differ from this character's by a few degrees (shoulder slope, knee set-back).
    q, t = pose_for_rig(rig, lib, 1)
    world, pos = forward_kinematics(rig, q, t)
    for b in ("leftUpperArm", "leftLowerArm", "rightUpperArm", "rightLowerArm"):
        assert np.degrees(np.arccos((np.trace(world[rig.humanoid[b]]) - 1) / 2)) < 2.0, b
    assert np.degrees(quat_angle(lib.rotations[1].astype(np.float64))).max() < 5.0


def test_root_translation_is_rescaled_to_the_target():
    # The hips rise 10 cm in a file in centimetres facing -Z; the target has the same proportions.
    motion = cmu_bvh([{}, {}], face_minus_z=True, units=100.0,
                     hips_offsets=[np.zeros(3), np.array([0.0, 0.1, 0.05])])
    lib = bvh_to_library(motion, standard_skeleton())
    np.testing.assert_allclose(lib.root_translation[1], [0, 0.1, 0.05], atol=1e-5)


def test_knee_bend_transfers():
    # Knee flexion in the file (+30 deg about X bends the shin back in a +Z-facing file).
    lib = bvh_to_library(cmu_bvh([{"LeftLeg": np.array([30.0, 0, 0])}]))
    j = lib.bone_names.index("leftLowerLeg")
    assert np.degrees(quat_angle(lib.rotations[0, j].astype(np.float64))) == pytest.approx(30, abs=0.5)
    rig = standard_skeleton()
    q, t = pose_for_rig(rig, lib, 0)
    _, pos = forward_kinematics(rig, q, t)
    assert pos[rig.humanoid["leftFoot"], 2] < rig.bone_heads[rig.humanoid["leftLowerLeg"], 2] - 0.1
    assert euler_between([0, 1, 0], [0, 1, 0]) == pytest.approx([0, 0, 0])


def test_fps_and_max_poses():
    motion = cmu_bvh([{} for _ in range(31)])  # one second at 30 fps
    assert len(bvh_to_library(motion, fps=10)) == 11
    lib = bvh_to_library(motion, max_poses=4, name="m")
    assert len(lib) == 4 and lib.pose_ids[0] == "m@f000000" and lib.pose_ids[-1] == "m@f000030"


@pytest.mark.parametrize("text,match", [
    ("nothing", "not a BVH"),
    ("HIERARCHY\nROOT Hips\n{\nOFFSET 0 0\n}\nMOTION\nFrames: 0\nFrame Time: 0.1\n", "not a number"),
    ("HIERARCHY\nROOT Hips\n{\nOFFSET 0 0 0\nCHANNELS 1 Wrotation\n}\nMOTION\nFrames: 0\nFrame Time: 0.1\n",
     "unknown channel"),
    ("HIERARCHY\nROOT Hips\n{\nOFFSET 0 0 0\nCHANNELS 2 Xrotation Yrotation\n}\nMOTION\nFrames: 2\n"
     "Frame Time: 0.1\n1\n", "truncated"),  # not one whole frame (fewer frames than announced are read)
    ("HIERARCHY\nROOT Hips\n{\nOFFSET 0 0 0\nCHANNELS 1 Xrotation\nMOTION\nFrames: 0\nFrame Time: 0.1\n",
     "unclosed"),
])
def test_bad_bvh(tmp_path, text, match):
    p = tmp_path / "bad.bvh"
    p.write_text(text)
    with pytest.raises(FormatError, match=match) as e:
        read_bvh(p)
    assert "bad.bvh" in str(e.value)
