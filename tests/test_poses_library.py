"""Pose model: library file round trip, applying poses to rigs of other shapes, FK by hand, the sampler."""

import json

import numpy as np
import pytest

from conrdata.errors import FormatError
from conrdata.poses import (
    PoseLibrary,
    load_pose_library,
    pose_for_rig,
    poses_for_rig,
    sample_poses,
    save_pose_library,
    standard_skeleton,
)
from conrdata.poses.evaluate import evaluate_pose
from conrdata.poses.sampler import LIMITS, self_penetrating
from conrdata.rig.model import Material, Rig, forward_kinematics
from conrdata.rig.rotations import (
    axis_rotation,
    euler_to_quat,
    matrix_to_euler,
    quat_angle,
    quat_from_matrix,
    quat_mul,
    quat_rotate,
    quat_slerp,
    quat_to_matrix,
    rotation_between,
)


def chain_rig(extra: bool = True) -> Rig:
    """root -> hips -> spine -> (no chest) -> neck -> head; hips -> leftUpperLeg; spine -> leftUpperArm ->
    armTwist (non-humanoid, in the middle of the upper arm) -> leftLowerArm -> leftHand; head -> hair_0."""
    names = [
        "root",
        "hips",
        "spine",
        "neck",
        "head",
        "leftUpperArm",
        "armTwist",
        "leftLowerArm",
        "leftHand",
        "hair_0",
        "leftUpperLeg",
    ]
    parents = [-1, 0, 1, 2, 3, 2, 5, 6, 7, 4, 1]
    heads = [
        [0, 0, 0],
        [0, 1, 0],
        [0, 1.1, 0],
        [0, 1.5, 0],
        [0, 1.6, 0],
        [0.2, 1.4, 0],
        [0.3, 1.4, 0],
        [0.4, 1.4, 0],
        [0.6, 1.4, 0],
        [0, 1.8, -0.1],
        [0.1, 0.95, 0],
    ]
    z = np.zeros((0, 3), np.float32)
    return Rig(
        z,
        z.copy(),
        np.zeros((0, 2), np.float32),
        np.zeros((0, 3), np.int32),
        np.zeros(0, np.int32),
        np.zeros((0, 4), np.int32),
        np.zeros((0, 4), np.float32),
        names,
        np.array(parents, np.int32),
        np.array(heads, np.float32),
        {
            "hips": 1,
            "spine": 2,
            "neck": 3,
            "head": 4,
            "leftUpperArm": 5,
            "leftLowerArm": 7,
            "leftHand": 8,
            "leftUpperLeg": 10,
        },
        [Material("m")],
    )


def test_quaternion_helpers():
    q = euler_to_quat(np.radians([10.0, -20.0, 30.0]))
    np.testing.assert_allclose(matrix_to_euler(quat_to_matrix(q)), np.radians([10, -20, 30]), atol=1e-9)
    np.testing.assert_allclose(quat_from_matrix(quat_to_matrix(q)), q * np.sign(q[3]), atol=1e-9)
    qz = axis_rotation("Z", np.pi / 2)
    np.testing.assert_allclose(quat_rotate(qz, [1.0, 0, 0]), [0, 1, 0], atol=1e-12)
    np.testing.assert_allclose(
        quat_rotate(rotation_between([1.0, 0, 0], [0, 0, 2.0]), [1.0, 0, 0]), [0, 0, 1], atol=1e-12
    )
    np.testing.assert_allclose(
        quat_rotate(rotation_between([1.0, 0, 0], [-1.0, 0, 0]), [1.0, 0, 0]), [-1, 0, 0], atol=1e-12
    )
    half = quat_slerp(np.array([0, 0, 0, 1.0]), qz, 0.5)
    assert quat_angle(half) == pytest.approx(np.pi / 4)


def test_library_round_trip(tmp_path):
    lib = sample_poses(5, seed=3)
    lib.meta["note"] = "日本語 ok"
    path = save_pose_library(lib, tmp_path / "lib.npz")
    back = load_pose_library(path)
    assert back.bone_names == lib.bone_names and back.pose_ids == lib.pose_ids
    np.testing.assert_array_equal(back.rotations, lib.rotations)
    np.testing.assert_array_equal(back.root_translation, lib.root_translation)
    assert back.meta == json.loads(json.dumps(lib.meta))
    with np.load(path, allow_pickle=False) as z:
        assert int(z["format_version"]) == 1 and z["rotations"].dtype == np.float32


def test_library_bad_files(tmp_path):
    (tmp_path / "junk.npz").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(FormatError, match="junk.npz"):
        load_pose_library(tmp_path / "junk.npz")
    np.savez(tmp_path / "other.npz", a=np.zeros(3))
    with pytest.raises(FormatError, match="not a pose library"):
        load_pose_library(tmp_path / "other.npz")
    np.savez(
        tmp_path / "shape.npz",
        format_version=1,
        bone_names=np.array(["hips"]),
        rotations=np.zeros((2, 2, 4)),
        root_translation=np.zeros((2, 3)),
        pose_ids=np.array(["a", "b"]),
    )
    with pytest.raises(FormatError, match="inconsistent shapes"):
        load_pose_library(tmp_path / "shape.npz")
    with pytest.raises(FormatError, match="not found"):
        load_pose_library(tmp_path / "missing.npz")


def test_fk_hand_computed_on_standard_skeleton():
    skel = standard_skeleton()
    lib = PoseLibrary(
        ["leftUpperArm", "leftLowerArm", "leftUpperLeg"],
        [
            [
                axis_rotation("Z", np.radians(45)),
                axis_rotation("Y", np.radians(-90)),
                axis_rotation("X", np.radians(-90)),
            ]
        ],
        [[0.0, 0.1, 0.0]],
        ["p"],
        {"hips_height": skel.meta["hips_height"]},
    )
    q, t = pose_for_rig(skel, lib, 0)
    _, pos = forward_kinematics(skel, q, t)
    h = skel.humanoid
    ua = skel.bone_heads[h["leftUpperArm"]] + [0, 0.1, 0]
    # upper arm raised to horizontal: elbow 0.23 m straight out along +X
    np.testing.assert_allclose(pos[h["leftLowerArm"]], ua + [0.23, 0, 0], atol=1e-5)
    # elbow turned -90 about Y in bind axes: the bind forearm direction (c, -c, 0) becomes (0, -c, c),
    # then the raised upper arm's +45 deg about Z carries it to (c * c, -c * c, c) = (0.5, -0.5, 0.7071)
    c = np.sqrt(0.5)
    np.testing.assert_allclose(
        pos[h["leftHand"]], ua + [0.23, 0, 0] + 0.20 * np.array([0.5, -0.5, c]), atol=1e-5
    )
    # thigh swung forward 90 deg: knee straight ahead of the hip joint
    hip = skel.bone_heads[h["leftUpperLeg"]] + [0, 0.1, 0]
    np.testing.assert_allclose(pos[h["leftLowerLeg"]], hip + [0, 0.005, 0.33], atol=1e-5)


def test_pose_for_rig_handles_extra_and_missing_bones():
    rig = chain_rig()
    q_spine = axis_rotation("X", np.radians(20))
    q_chest = axis_rotation("X", np.radians(30))  # the rig has no chest: its neck must inherit this
    q_neck = axis_rotation("Y", np.radians(40))
    q_arm = axis_rotation("Z", np.radians(-45))
    q_fore = axis_rotation("Z", np.radians(-45))
    lib = PoseLibrary(
        ["spine", "chest", "neck", "leftUpperArm", "leftLowerArm", "hair_0", "unknownBone"],
        [[q_spine, q_chest, q_neck, q_arm, q_fore, axis_rotation("X", 0.3), axis_rotation("Y", 1.0)]],
        np.zeros((1, 3)),
        ["p"],
    )
    q, _ = pose_for_rig(rig, lib, 0)
    assert q.shape == (rig.num_bones, 4) and q.dtype == np.float32
    world_r, pos = forward_kinematics(rig, q)
    want_neck = quat_mul(quat_mul(q_spine, q_chest), q_neck)
    assert quat_angle(quat_from_matrix(world_r[3]), want_neck) < 1e-5
    np.testing.assert_allclose(q[6], [0, 0, 0, 1], atol=1e-6)  # armTwist keeps its bind rotation
    np.testing.assert_allclose(q[9], axis_rotation("X", 0.3), atol=1e-6)  # hair driven by name
    # The standard tree puts the arm under the chest, so the rig's arm (child of spine) gets spine*chest*arm;
    # the forearm below the non-humanoid twist bone still gets its full world rotation.
    want_fore = quat_mul(quat_mul(quat_mul(q_spine, q_chest), q_arm), q_fore)
    assert quat_angle(quat_from_matrix(world_r[7]), want_fore) < 1e-5
    ua_pos = pos[2] + quat_to_matrix(q_spine) @ (rig.bone_heads[5] - rig.bone_heads[2])
    np.testing.assert_allclose(pos[5], ua_pos, atol=1e-6)


def test_root_translation_scales_with_hips_height():
    rig = chain_rig()  # hips head at 1.0 m above its lowest joint (the root at y=0)
    lib = PoseLibrary(["hips"], [[[0, 0, 0, 1.0]]], [[0.0, 0.0, 0.5]], ["p"], {"hips_height": 0.5})
    _, t = pose_for_rig(rig, lib, 0)
    np.testing.assert_allclose(t, [0, 0, 1.0], atol=1e-6)
    with pytest.raises(IndexError):
        pose_for_rig(rig, lib, 5)


def test_sampler_is_seeded_and_within_limits():
    a = sample_poses(40, seed=11)
    b = sample_poses(40, seed=11)
    c = sample_poses(40, seed=12)
    np.testing.assert_array_equal(a.rotations, b.rotations)
    assert not np.array_equal(a.rotations, c.rotations)
    assert len(a) == 40 and len(set(a.pose_ids)) == 40
    a.validate()
    j = a.bone_names.index("head")
    ang = np.degrees(matrix_to_euler(quat_to_matrix(a.rotations[:, j])))
    lo = np.array([r[0] for r in LIMITS["head"].ranges])
    hi = np.array([r[1] for r in LIMITS["head"].ranges])
    assert np.all(ang >= lo - 1e-3) and np.all(ang <= hi + 1e-3)
    assert np.ptp(ang[:, 1]) > 10  # it does vary
    # knees are hinges about +X bending backwards only
    k = a.bone_names.index("rightLowerLeg")
    q = a.rotations[:, k].astype(np.float64)
    assert np.allclose(q[:, 1:3], 0, atol=1e-6) and np.all(q[:, 0] >= -1e-6)
    assert np.degrees(quat_angle(q)).max() <= 130 + 1e-3


def test_sampler_rejects_self_penetration():
    skel = standard_skeleton()
    lib = sample_poses(60, seed=5, spread=1.5)
    assert lib.meta["rejected_candidates"] > 0
    local, trans = poses_for_rig(skel, lib)
    pos = np.stack([forward_kinematics(skel, local[i], trans[i])[1] for i in range(len(lib))])
    assert not self_penetrating(skel, pos).any()
    # Known cases: the bind pose is fine; a hand folded into the chest is not.
    bind = skel.bone_heads[None].astype(np.float64)
    assert not self_penetrating(skel, bind)[0]
    bad = bind.copy()
    bad[0, skel.humanoid["leftHand"]] = skel.bone_heads[skel.humanoid["chest"]]
    assert self_penetrating(skel, bad)[0]


def test_sampler_on_procedural_character():
    pytest.importorskip("conrdata.rig.procedural")
    from conrdata.rig.procedural import build_character

    rig = build_character(0)
    lib = sample_poses(10, seed=1, rig=rig)
    assert any(n.startswith("hair_") for n in lib.bone_names) and any(
        n.startswith("skirt_") for n in lib.bone_names
    )
    for name in lib.bone_names:
        if name.startswith(("hair_", "skirt_")):
            j = lib.bone_names.index(name)
            assert np.degrees(quat_angle(lib.rotations[:, j].astype(np.float64))).max() < 12 * np.sqrt(3) + 1
    q, t = pose_for_rig(rig, lib, 3)
    _, pos = forward_kinematics(rig, q, t)
    assert np.all(np.isfinite(pos)) and not self_penetrating(rig, pos[None])[0]


def test_concatenate_unions_bones_rescales_and_keeps_ids_unique():
    a = PoseLibrary(["hips", "head"], [[[0, 0, 0, 1.0], axis_rotation("Y", 0.5)]], [[0, 0, 0.1]], ["m@f0"],
                    {"hips_height": 1.0})
    b = PoseLibrary(["hair_0"], [[axis_rotation("X", 0.2)]], [[0, 0, 0.1]], ["m@f0"], {"hips_height": 0.5})
    c = PoseLibrary.concatenate([a, b])
    assert c.bone_names == ["hips", "head", "hair_0"]
    assert c.pose_ids == ["m@f0", "m@f0~2"]
    np.testing.assert_allclose(c.rotations[0, 2], [0, 0, 0, 1])
    np.testing.assert_allclose(c.rotations[1, :2], [[0, 0, 0, 1]] * 2)
    np.testing.assert_allclose(c.root_translation[:, 2], [0.1, 0.2], atol=1e-7)
    assert c.meta["hips_height"] == 1.0
    assert len(c.select([1])) == 1 and c.select([1]).pose_ids == ["m@f0~2"]


def test_sampler_leaves_mmd_helper_bones_alone(tmp_path):
    mmd_writer = pytest.importorskip("tests.mmd_writer")
    pmx = pytest.importorskip("conrdata.formats.pmx")
    from conrdata.poses.sampler import secondary_bones

    mmd_writer.write_textures(tmp_path)
    rig = pmx.read_pmx(mmd_writer.write_pmx(tmp_path / "m.pmx", mmd_writer.tiny_humanoid()))
    names = {rig.bone_names[b] for b in secondary_bones(rig)}
    assert names and not names & {"左足D", "左ひざD", "左足ＩＫ", "センター", "左目"}
    lib = sample_poses(4, seed=0, rig=rig)
    q, t = pose_for_rig(rig, lib, 2)
    world, _ = evaluate_pose(rig, q, t)  # the evaluator plays the MMD rules
    # D bones copy their source exactly (inherit weight 1)
    np.testing.assert_allclose(world[rig.bone_names.index("左ひざD")], world[rig.humanoid["leftLowerLeg"]],
                               atol=1e-5)
