"""Humanoid mapping without a humanoid table: name rules per family, topology on scrambled names,
the --bone-map override, stand-ins, one-bone limbs and re-attached bones."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conrdata.cli import main
from conrdata.errors import RigError, UserError
from conrdata.formats import load_model
from conrdata.formats.gltf_writer import glb_bytes, rig_to_gltf
from conrdata.poses.library import poses_for_rig
from conrdata.poses.sampler import sample_poses
from conrdata.rig.apose import align_to_apose
from conrdata.rig.bonemaps import map_bone_names
from conrdata.rig.humanoid import REQUIRED_BONES
from conrdata.rig.humanoid_infer import bone_map_for, read_bone_map, resolve_humanoid
from conrdata.rig.model import Material, Rig, forward_kinematics
from conrdata.rig.procedural import build_character, tpose
from conrdata.rig.rotations import quat_to_matrix
from conrdata.synth.convert import MANIFEST, convert_folder
from conrdata.testing.boxes import box_arrays
from tests.apose_criteria import assert_apose
from tests.conftest import assets_or_skip

# --------------------------------------------------------------------------- name rules per family

_LIMBS = ("UpperArm", "LowerArm", "Hand", "UpperLeg", "LowerLeg", "Foot")


def _family(centre: dict[str, str], sided: dict[str, str], sides=("L", "R")) -> dict[str, str]:
    """humanoid name -> bone name; ``sided`` values hold ``{s}`` for the side spelling."""
    out = dict(centre)
    for hum_side, s in zip(("left", "right"), sides):
        for h, pattern in sided.items():
            out[hum_side + h] = pattern.format(s=s)
    return out


FAMILIES = {
    "mixamo": _family(
        {
            "hips": "mixamorig:Hips",
            "spine": "mixamorig:Spine",
            "chest": "mixamorig:Spine1",
            "neck": "mixamorig:Neck",
            "head": "mixamorig:Head",
        },
        {
            "Shoulder": "mixamorig:{s}Shoulder",
            "UpperArm": "mixamorig:{s}Arm",
            "LowerArm": "mixamorig:{s}ForeArm",
            "Hand": "mixamorig:{s}Hand",
            "UpperLeg": "mixamorig:{s}UpLeg",
            "LowerLeg": "mixamorig:{s}Leg",
            "Foot": "mixamorig:{s}Foot",
            "Toes": "mixamorig:{s}ToeBase",
        },
        ("Left", "Right"),
    ),
    "ready_player_me": _family(
        {
            "hips": "Hips",
            "spine": "Spine",
            "chest": "Spine1",
            "upperChest": "Spine2",
            "neck": "Neck",
            "head": "Head",
        },
        {
            "UpperArm": "{s}Arm",
            "LowerArm": "{s}ForeArm",
            "Hand": "{s}Hand",
            "UpperLeg": "{s}UpLeg",
            "LowerLeg": "{s}Leg",
            "Foot": "{s}Foot",
            "IndexProximal": "{s}HandIndex1",
        },
        ("Left", "Right"),
    ),
    "unity": _family(
        {
            "hips": "Hips",
            "spine": "Spine",
            "chest": "Chest",
            "upperChest": "UpperChest",
            "neck": "Neck",
            "head": "Head",
        },
        {
            "Shoulder": "{s}_Shoulder",
            "UpperArm": "{s}_UpperArm",
            "LowerArm": "{s}_LowerArm",
            "Hand": "{s}_Hand",
            "UpperLeg": "{s}_UpperLeg",
            "LowerLeg": "{s}_LowerLeg",
            "Foot": "{s}_Foot",
            "Toes": "{s}_Toes",
            "ThumbProximal": "{s}_ThumbProximal",
            "IndexIntermediate": "{s}_IndexIntermediate",
        },
        ("Left", "Right"),
    ),
    "unreal": _family(
        {
            "hips": "pelvis",
            "spine": "spine_01",
            "chest": "spine_02",
            "upperChest": "spine_03",
            "neck": "neck_01",
            "head": "head",
        },
        {
            "Shoulder": "clavicle_{s}",
            "UpperArm": "upperarm_{s}",
            "LowerArm": "lowerarm_{s}",
            "Hand": "hand_{s}",
            "UpperLeg": "thigh_{s}",
            "LowerLeg": "calf_{s}",
            "Foot": "foot_{s}",
            "Toes": "ball_{s}",
            "IndexProximal": "index_01_{s}",
            "ThumbMetacarpal": "thumb_01_{s}",
        },
        ("l", "r"),
    ),
    "rigify": _family(
        {
            "hips": "DEF-spine",
            "spine": "DEF-spine.001",
            "chest": "DEF-spine.002",
            "upperChest": "DEF-spine.003",
            "neck": "DEF-spine.004",
            "head": "DEF-spine.006",
        },
        {
            "Shoulder": "DEF-shoulder.{s}",
            "UpperArm": "DEF-upper_arm.{s}",
            "LowerArm": "DEF-forearm.{s}",
            "Hand": "DEF-hand.{s}",
            "UpperLeg": "DEF-thigh.{s}",
            "LowerLeg": "DEF-shin.{s}",
            "Foot": "DEF-foot.{s}",
            "Toes": "DEF-toe.{s}",
            "IndexProximal": "DEF-f_index.01.{s}",
        },
    ),
    "quaternius": _family(
        {"hips": "Hips", "spine": "Abdomen", "chest": "Chest", "neck": "Neck", "head": "Head"},
        {
            "Shoulder": "Shoulder.{s}",
            "UpperArm": "UpperArm.{s}",
            "LowerArm": "LowerArm.{s}",
            "Hand": "Hand.{s}",
            "UpperLeg": "UpperLeg.{s}",
            "LowerLeg": "LowerLeg.{s}",
            "Foot": "Foot.{s}",
            "ThumbMetacarpal": "Thumb1.{s}",
            "ThumbDistal": "Thumb3.{s}",
            "IndexProximal": "Index1.{s}",
        },
    ),
    "quaternius_glued": _family(
        {"hips": "Hips", "spine": "Spine", "head": "Head"},
        {
            "UpperArm": "UpperArm{s}",
            "LowerArm": "LowerArm{s}",
            "Hand": "Wrist{s}",
            "UpperLeg": "UpperLeg{s}",
            "LowerLeg": "LowerLeg{s}",
            "Foot": "Foot{s}",
        },
    ),
    "kenney": _family(
        {"spine": "torso", "head": "head"}, {"UpperArm": "arm-{s}", "UpperLeg": "leg-{s}"}, ("left", "right")
    ),
    "khronos": _family(
        {
            "hips": "torso_joint_1",
            "spine": "torso_joint_2",
            "chest": "torso_joint_3",
            "neck": "neck_joint_1",
            "head": "neck_joint_2",
        },
        {
            "UpperArm": "arm_joint_{s}_1",
            "LowerArm": "arm_joint_{s}_2",
            "Hand": "arm_joint_{s}_3",
            "UpperLeg": "leg_joint_{s}_1",
            "LowerLeg": "leg_joint_{s}_2",
            "Foot": "leg_joint_{s}_3",
            "Toes": "leg_joint_{s}_5",
        },
    ),
    "character_creator": _family(
        {
            "hips": "CC_Base_Hip",
            "spine": "CC_Base_Waist",
            "chest": "CC_Base_Spine01",
            "upperChest": "CC_Base_Spine02",
            "neck": "CC_Base_NeckTwist01",
            "head": "CC_Base_Head",
        },
        {
            "Shoulder": "CC_Base_{s}_Clavicle",
            "UpperArm": "CC_Base_{s}_Upperarm",
            "LowerArm": "CC_Base_{s}_Forearm",
            "Hand": "CC_Base_{s}_Hand",
            "UpperLeg": "CC_Base_{s}_Thigh",
            "LowerLeg": "CC_Base_{s}_Calf",
            "Foot": "CC_Base_{s}_Foot",
            "Toes": "CC_Base_{s}_ToeBase",
        },
    ),
    "daz": _family(
        {
            "hips": "hip",
            "spine": "abdomenLower",
            "chest": "abdomenUpper",
            "upperChest": "chestLower",
            "neck": "neckLower",
            "head": "head",
        },
        {
            "Shoulder": "{s}Collar",
            "UpperArm": "{s}ShldrBend",
            "LowerArm": "{s}ForearmBend",
            "Hand": "{s}Hand",
            "UpperLeg": "{s}ThighBend",
            "LowerLeg": "{s}Shin",
            "Foot": "{s}Foot",
            "Toes": "{s}Toe",
        },
        ("l", "r"),
    ),
    "mmd_english": _family(
        {"hips": "lower body", "spine": "upper body", "chest": "upper body2", "neck": "neck", "head": "head"},
        {
            "Shoulder": "shoulder_{s}",
            "UpperArm": "arm_{s}",
            "LowerArm": "elbow_{s}",
            "Hand": "wrist_{s}",
            "UpperLeg": "leg_{s}",
            "LowerLeg": "knee_{s}",
            "Foot": "ankle_{s}",
            "Toes": "toe_{s}",
            "ThumbMetacarpal": "thumb0_{s}",
        },
    ),
}

#: Bones of each family that are not humanoid bones and must stay unmapped.
DISTRACTORS = {
    "mixamo": ["mixamorig:HeadTop_End", "mixamorig:LeftToe_End"],
    "unreal": ["root", "upperarm_twist_01_l", "ik_foot_root", "spine_04"],
    "rigify": ["DEF-upper_arm.L.001", "DEF-pelvis.L", "DEF-breast.L", "DEF-spine.005"],
    "character_creator": [
        "CC_Base_BoneRoot",
        "CC_Base_Pelvis",
        "CC_Base_NeckTwist02",
        "CC_Base_L_UpperarmTwist01",
    ],
    "daz": ["pelvis", "lShldrTwist", "lForearmTwist", "neckUpper", "chestUpper"],
    "kenney": ["root"],
    "mmd_english": ["center", "groove", "waist", "leg IK_L"],
}


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_name_rules_per_family(family):
    expected = FAMILIES[family]
    names = list(expected.values()) + DISTRACTORS.get(family, [])
    got = {h: names[i] for h, i in map_bone_names(names).items()}
    for h, bone in expected.items():
        assert got.get(h) == bone, (family, h, got.get(h), bone)
    extra = {h: b for h, b in got.items() if b in DISTRACTORS.get(family, [])}
    assert not extra, extra


# --------------------------------------------------------------------------- topology on scrambled names


def scrambled(rig: Rig, yaw_deg: float = 0.0) -> Rig:
    """The rig with meaningless bone names ("b0", "b1", ...), as a plain glTF would carry, turned by yaw."""
    a = np.radians(yaw_deg)
    rot = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
    return rig.replace(
        bone_names=[f"b{i}" for i in range(rig.num_bones)],
        humanoid={},
        vertices=(rig.vertices @ rot.T).astype(np.float32),
        normals=(rig.normals @ rot.T).astype(np.float32),
        bone_heads=(rig.bone_heads @ rot.T).astype(np.float32),
        meta={"format": "glb", "source": "scrambled.glb"},
    )


@pytest.mark.parametrize("seed, yaw", [(0, 0.0), (3, 0.0), (5, 180.0), (7, 90.0)])
def test_topology_recovers_scrambled_procedural_rigs(seed, yaw):
    truth = tpose(build_character(seed))
    rig = scrambled(truth, yaw)
    out = resolve_humanoid(rig)
    for h in REQUIRED_BONES:
        assert out.humanoid[h] == truth.humanoid[h], (h, out.bone_names[out.humanoid[h]])
        assert out.meta["humanoid_sources"][h] == "topology"
    assert_apose(align_to_apose(out), tol_bind=1e-5)


REAL_GLTF = ["quaternius/Witch.glb", "khronos-via-vrmmetalkit/RiggedFigure.glb",
             "kenney/character-female-a.glb"]


@pytest.mark.parametrize("rel", REAL_GLTF)
def test_topology_agrees_with_the_names_on_real_rigs(rel):
    """With every name scrambled, the skeleton's shape alone gives the bones the names gave."""
    path = assets_or_skip("meshes", *rel.split("/"))
    named = resolve_humanoid(load_model(path))
    blind = resolve_humanoid(scrambled(load_model(path)))
    for h in REQUIRED_BONES:
        assert blind.humanoid[h] == named.humanoid[h], h
        assert blind.meta["humanoid_sources"][h] in ("topology", "stand-in", "limb"), h
    np.testing.assert_allclose(blind.bone_heads, named.bone_heads, atol=1e-6)
    np.testing.assert_array_equal(blind.bone_parents, named.bone_parents)


def test_four_legged_and_chain_skeletons_are_not_humanoid(tmp_path):
    fox = assets_or_skip("meshes", "ige", "Fox.glb")
    with pytest.raises(RigError, match="not a humanoid: its spine runs .* four-legged"):
        resolve_humanoid(load_model(fox))
    chain = build_character(1)
    chain = scrambled(chain.replace(bone_parents=np.arange(chain.num_bones, dtype=np.int32) - 1))
    with pytest.raises(RigError, match="not a humanoid: no pair of mirror-image limbs"):
        resolve_humanoid(chain)


# --------------------------------------------------------------------------- stand-ins, limbs, re-attachment


def drop_bone(rig: Rig, name: str) -> Rig:
    """The rig without bone ``name``: its children and vertices go to its parent."""
    b = rig.bone_names.index(name)
    p = int(rig.bone_parents[b])
    keep = [i for i in range(rig.num_bones) if i != b]
    new_of = {old: new for new, old in enumerate(keep)}
    new_of[b] = new_of[p]
    parents = [-1 if rig.bone_parents[i] < 0 else new_of[int(rig.bone_parents[i])] for i in keep]
    joints = np.vectorize(new_of.get)(rig.joints).astype(np.int32)
    hum = {h: new_of[i] for h, i in rig.humanoid.items() if i != b}
    return rig.replace(
        bone_names=[rig.bone_names[i] for i in keep],
        bone_parents=np.array(parents, np.int32),
        bone_heads=rig.bone_heads[keep],
        joints=joints,
        humanoid=hum,
        meta={"format": "glb", "source": "dropped.glb"},
    )


def test_missing_spine_is_stood_in_by_its_nearest_ancestor():
    rig = drop_bone(tpose(build_character(0)), "spine")
    assert "spine" not in rig.bone_names
    out = resolve_humanoid(rig)
    s = out.humanoid["spine"]
    assert out.meta["humanoid_sources"]["spine"] == "stand-in"
    assert out.bone_names[s] == "virtual:spine" and out.meta["humanoid_virtual"] == ["virtual:spine"]
    np.testing.assert_allclose(out.bone_heads[s], out.bone_heads[out.humanoid["hips"]])
    assert out.bone_parents[s] == out.humanoid["hips"] and out.bone_parents[out.humanoid["chest"]] == s
    assert any(n.startswith("spine: stand-in") and "hips" in n for n in out.meta["humanoid_notes"])
    assert not np.any(out.joints == s)  # a virtual bone carries no vertices
    assert_apose(align_to_apose(out), tol_bind=1e-5)


def test_bone_outside_its_chain_is_reattached():
    rig = tpose(build_character(2))
    rig = rig.replace(meta={"format": "glb", "source": "ik.glb"})
    foot = rig.humanoid["leftFoot"]
    parents = rig.bone_parents.copy()
    parents[foot] = rig.humanoid["hips"]  # as an IK-controller rig exports it
    out = resolve_humanoid(rig.replace(bone_parents=parents))
    assert out.bone_parents[out.humanoid["leftFoot"]] == out.humanoid["leftLowerLeg"]
    assert (
        "leftFoot: re-attached from hips to leftLowerLeg (leftLowerLeg) for posing"
        in out.meta["humanoid_notes"]
    )
    np.testing.assert_array_equal(out.bone_heads, rig.bone_heads)  # the bind pose is unchanged


def blocky_rig() -> Rig:
    """A Kenney-style toy: root, torso, head and one box-shaped bone per limb (T-posed arms, feet forward)."""
    parts = [  # (bone, box centre, box size)
        ("torso", (0, 0.75, 0), (0.3, 0.5, 0.2)),
        ("head", (0, 1.15, 0), (0.3, 0.3, 0.3)),
        ("arm-left", (0.4, 0.95, 0), (0.5, 0.1, 0.1)),
        ("arm-right", (-0.4, 0.95, 0), (0.5, 0.1, 0.1)),
        ("leg-left", (0.08, 0.25, 0), (0.12, 0.5, 0.12)),
        ("leg-right", (-0.08, 0.25, 0), (0.12, 0.5, 0.12)),
        ("leg-left", (0.08, 0.03, 0.08), (0.12, 0.06, 0.12)),
        ("leg-right", (-0.08, 0.03, 0.08), (0.12, 0.06, 0.12)),
    ]
    names = ["root", "torso", "head", "arm-left", "arm-right", "leg-left", "leg-right"]
    parents = [-1, 0, 1, 1, 1, 0, 0]
    heads = [
        (0, 0, 0),
        (0, 0.5, 0),
        (0, 1.0, 0),
        (0.15, 0.95, 0),
        (-0.15, 0.95, 0),
        (0.08, 0.5, 0),
        (-0.08, 0.5, 0),
    ]
    v, n, uv, f, j = [], [], [], [], []
    for bone, c, size in parts:
        bv, bn, buv, bf = box_arrays(c, size)
        f.append(bf + sum(len(x) for x in v))
        v.append(bv)
        n.append(bn)
        uv.append(buv)
        j.append(np.full(len(bv), names.index(bone)))
    V = sum(len(x) for x in v)
    joints = np.zeros((V, 4), np.int32)
    joints[:, 0] = np.concatenate(j)
    weights = np.zeros((V, 4), np.float32)
    weights[:, 0] = 1
    faces = np.concatenate(f).astype(np.int32)
    return Rig(
        vertices=np.concatenate(v),
        normals=np.concatenate(n),
        uvs=np.concatenate(uv),
        faces=faces,
        face_material=np.zeros(len(faces), np.int32),
        joints=joints,
        weights=weights,
        bone_names=names,
        bone_parents=np.array(parents, np.int32),
        bone_heads=np.array(heads, np.float32),
        humanoid={},
        materials=[Material("m")],
        meta={"format": "glb", "source": "blocky.glb"},
    )


def test_blocky_one_bone_limbs_and_missing_hips():
    out = resolve_humanoid(blocky_rig())
    src, h = out.meta["humanoid_sources"], out.humanoid
    assert src["hips"] == "stand-in" and src["spine"] == "name" and src["leftUpperArm"] == "name"
    for side in ("left", "right"):
        for part in ("LowerArm", "Hand", "LowerLeg", "Foot"):
            assert src[side + part] == "limb" and side + part in out.meta["humanoid_fixed"]
    # the virtual hips sits between the upper legs, carries the torso and (re-attached) the legs
    np.testing.assert_allclose(out.bone_heads[h["hips"]], [0, 0.5, 0], atol=1e-6)
    assert out.bone_parents[h["spine"]] == h["hips"] and out.bone_parents[h["leftUpperLeg"]] == h["hips"]
    # the arm's parts lie along the box, the leg's straight down (the foot box is ignored)
    arm = out.bone_heads[h["leftHand"]] - out.bone_heads[h["leftUpperArm"]]
    np.testing.assert_allclose(arm / np.linalg.norm(arm), [1, 0, 0], atol=1e-3)
    leg = out.bone_heads[h["leftFoot"]] - out.bone_heads[h["leftUpperLeg"]]
    np.testing.assert_allclose(leg / np.linalg.norm(leg), [0, -1, 0], atol=1e-6)
    notes = out.meta["humanoid_notes"]
    assert any("arm-left is the whole limb" in n for n in notes)
    assert "leftUpperLeg: re-attached from root to hips (virtual:hips) for posing" in notes

    aligned = align_to_apose(out)
    assert_apose(aligned, tol_bind=1e-5)
    # the whole arm box turned 45 degrees down, rigidly
    box = aligned.vertices[aligned.joints[:, 0] == aligned.humanoid["leftUpperArm"]]
    axis = np.linalg.svd(box - box.mean(0))[2][0]
    assert abs(abs(axis @ [np.sqrt(0.5), -np.sqrt(0.5), 0]) - 1) < 1e-4

    # sampled poses never bend a rigid limb: the virtual parts keep their carrier's rotation
    lib = sample_poses(8, 3, aligned)
    local, trans = poses_for_rig(aligned, lib)
    for i in range(len(local)):
        r, _ = forward_kinematics(aligned, local[i], trans[i])
        for side in ("left", "right"):
            for a, b in (
                ("UpperArm", "LowerArm"),
                ("LowerArm", "Hand"),
                ("UpperLeg", "LowerLeg"),
                ("LowerLeg", "Foot"),
            ):
                np.testing.assert_allclose(
                    r[aligned.humanoid[side + b]], r[aligned.humanoid[side + a]], atol=1e-5
                )
    assert np.abs(quat_to_matrix(local[:, aligned.humanoid["spine"]]) - np.eye(3)).max() > 0.01


# --------------------------------------------------------------------------- the user's bone map


def test_bone_map_yaml(tmp_path):
    p = tmp_path / "bones.yaml"
    p.write_text(
        'hips: Pelvis\nmodels:\n  "char-*.glb":\n    hips: torso\n    leftToes: null\n'
        '  "sub/other.vrm":\n    head: Kopf\n'
    )
    m = read_bone_map(p)
    assert bone_map_for(m, tmp_path / "x.glb") == {"hips": "Pelvis"}
    assert bone_map_for(m, tmp_path / "char-a.glb") == {"hips": "torso", "leftToes": None}
    assert bone_map_for(m, tmp_path / "sub" / "other.vrm") == {"hips": "Pelvis", "head": "Kopf"}
    for bad, words in (
        ("hip: Pelvis\n", "'hip' is not a humanoid bone name"),
        ("Hips: Pelvis\n", "did you mean hips"),
        ("- a\n- b\n", "must be a mapping"),
        ("hips: [a, b]\n", "must name a bone"),
        ("hips: {\n", "not valid YAML"),
        ("models: [1]\n", "'models' must map"),
    ):
        p.write_text(bad)
        with pytest.raises(UserError, match=words) as err:
            read_bone_map(p)
        assert "bones.yaml" in str(err.value)


def test_bone_map_overrides_names_and_topology():
    rig = blocky_rig()
    out = resolve_humanoid(
        rig, {"spine": "torso", "leftUpperArm": "arm-right", "rightUpperArm": "arm-left", "head": "head"}
    )
    assert out.meta["humanoid_sources"]["leftUpperArm"] == "user"
    assert out.bone_names[out.humanoid["leftUpperArm"]] == "arm-right"
    assert out.bone_names[out.humanoid["rightUpperArm"]] == "arm-left"
    with pytest.raises(RigError, match="bone map names bone 'Kopf' for head"):
        resolve_humanoid(rig, {"head": "Kopf"})
    unmapped = resolve_humanoid(tpose(build_character(0)).replace(meta={"format": "glb"}), {"leftToes": None})
    assert (
        "leftToes" not in unmapped.humanoid
        and "leftToes: unmapped by the bone map" in unmapped.meta["humanoid_notes"]
    )


def test_convert_cli_bone_map(tmp_path, capsys):
    meshes = tmp_path / "m"
    meshes.mkdir()
    truth = tpose(build_character(4))
    doc, binary = rig_to_gltf(truth, node_name=lambda n: f"b{len(n)}_{n[::-1]}")
    (meshes / "anon.glb").write_bytes(glb_bytes(doc, binary))
    chars = tmp_path / "c"
    main(["convert", "--quiet", "-j", "1", str(meshes), str(chars)])
    first = convert_folder(meshes, chars, progress=False)
    assert len(first.reused) == 1
    hand = f"b{len('leftHand')}_{'leftHand'[::-1]}"
    (tmp_path / "bones.yaml").write_text(
        f'models:\n  "anon.glb":\n    leftHand: {hand}\n    leftToes: null\n'
    )
    main(["convert", "--quiet", "--bone-map", str(tmp_path / "bones.yaml"), str(meshes), str(chars)])
    assert "converted 1, already converted 0" in capsys.readouterr().out  # the map changed: converted again
    import pyarrow.parquet as pq

    row = pq.read_table(chars / MANIFEST).to_pylist()[0]
    sources = json.loads(row["humanoid_sources"])
    assert sources["leftHand"] == "user" and sources["hips"] == "topology" and "leftToes" not in sources
    assert json.loads(row["bone_map"]) == {"leftHand": hand, "leftToes": None}
    (tmp_path / "bad.yaml").write_text("hip: x\n")
    with pytest.raises(SystemExit) as e:
        main(["convert", "--quiet", "--bone-map", str(tmp_path / "bad.yaml"), str(meshes), str(chars)])
    assert e.value.code == 2 and "bad.yaml" in capsys.readouterr().err
