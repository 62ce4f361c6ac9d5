"""Bone-name maps: MMD (Japanese/English), Mixamo, VRoid, Blender/Unity-style and CMU BVH names."""

import pytest

from conrdata.rig.bonemaps import (
    CMU_BVH_TO_HUMANOID,
    MIXAMO_TO_HUMANOID,
    MMD_ENGLISH_TO_HUMANOID,
    MMD_TO_HUMANOID,
    humanoid_name,
    map_bone_names,
)
from conrdata.rig.humanoid import HUMANOID_BONES, REQUIRED_BONES

MMD_STANDARD = [
    "全ての親", "センター", "グルーブ", "腰", "下半身", "上半身", "上半身2", "首", "頭",
    "両目", "左目", "右目",
    "左肩", "左腕", "左腕捩", "左ひじ", "左手首", "左親指０", "左親指１", "左親指２", "左人指１", "左人指２",
    "左人指３", "左中指１", "左薬指２", "左小指３",
    "右肩", "右腕", "右ひじ", "右手首",
    "左足", "左ひざ", "左足首", "左つま先", "左足ＩＫ", "左つま先ＩＫ", "左足D", "左ひざD", "左足首D",
    "右足", "右ひざ", "右足首", "右つま先", "右足ＩＫ",
]


def test_mmd_standard_names():
    m = map_bone_names(MMD_STANDARD)
    got = {h: MMD_STANDARD[i] for h, i in m.items()}
    assert got["hips"] == "下半身"
    assert got["spine"] == "上半身"
    assert got["chest"] == "上半身2"
    assert got["neck"] == "首" and got["head"] == "頭"
    assert got["leftEye"] == "左目" and got["rightEye"] == "右目"
    assert got["leftShoulder"] == "左肩"
    assert got["leftUpperArm"] == "左腕"
    assert got["leftLowerArm"] == "左ひじ"
    assert got["leftHand"] == "左手首"
    assert got["leftUpperLeg"] == "左足"
    assert got["leftLowerLeg"] == "左ひざ"
    assert got["leftFoot"] == "左足首"
    assert got["leftToes"] == "左つま先"
    assert got["rightUpperLeg"] == "右足" and got["rightFoot"] == "右足首"
    assert got["leftThumbMetacarpal"] == "左親指０"
    assert got["leftThumbProximal"] == "左親指１"
    assert got["leftThumbDistal"] == "左親指２"
    assert got["leftIndexProximal"] == "左人指１"
    assert got["leftIndexDistal"] == "左人指３"
    assert got["leftMiddleProximal"] == "左中指１"
    assert got["leftRingIntermediate"] == "左薬指２"
    assert got["leftLittleDistal"] == "左小指３"
    # Control, IK, twist and deform-copy bones are never humanoid bones.
    for name in ("全ての親", "センター", "グルーブ", "腰", "両目", "左腕捩", "左足ＩＫ",
                 "左つま先ＩＫ", "左足D", "左ひざD", "左足首D"):
        assert MMD_STANDARD.index(name) not in m.values(), name
    assert set(REQUIRED_BONES) <= set(m)


@pytest.mark.parametrize(
    "full, half", [("左親指０", "左親指0"), ("左人指３", "左人指3"), ("上半身２", "上半身2")]
)
def test_full_and_half_width_digits(full, half):
    assert humanoid_name(full) == humanoid_name(half) is not None


def test_half_width_katakana_center_is_not_hips():
    assert humanoid_name("ｾﾝﾀｰ") is None
    assert humanoid_name("ｸﾞﾙｰﾌﾞ") is None


@pytest.mark.parametrize(
    "name, expected",
    [
        ("lower body", "hips"), ("upper body", "spine"), ("upper body2", "chest"), ("neck", "neck"),
        ("head", "head"), ("shoulder_L", "leftShoulder"), ("arm_L", "leftUpperArm"),
        ("elbow_L", "leftLowerArm"), ("wrist_R", "rightHand"), ("leg_L", "leftUpperLeg"),
        ("knee_L", "leftLowerLeg"), ("ankle_R", "rightFoot"), ("toe_L", "leftToes"),
        ("thumb0_L", "leftThumbMetacarpal"), ("fore2_R", "rightIndexIntermediate"),
        ("third1_L", "leftRingProximal"), ("eye_L", "leftEye"), ("center", None), ("groove", None),
        ("leg IK_L", None),
    ],
)
def test_mmd_english_names(name, expected):
    assert humanoid_name(name) == expected


@pytest.mark.parametrize("prefix", ["", "mixamorig:", "mixamorig1:", "MIXAMORIG:"])
def test_mixamo_names_with_or_without_prefix(prefix):
    names = [prefix + n for n in (
        "Hips", "Spine", "Spine1", "Spine2", "Neck", "Head", "HeadTop_End", "LeftShoulder", "LeftArm",
        "LeftForeArm", "LeftHand", "LeftHandThumb1", "LeftHandIndex2", "LeftHandPinky3", "RightUpLeg",
        "RightLeg", "RightFoot", "RightToeBase", "RightToe_End", "LeftUpLeg", "LeftLeg", "LeftFoot",
    )]
    m = map_bone_names(names)
    got = {h: names[i].split(":")[-1] for h, i in m.items()}
    assert got["hips"] == "Hips" and got["spine"] == "Spine" and got["chest"] == "Spine1"
    assert got["upperChest"] == "Spine2" and got["neck"] == "Neck" and got["head"] == "Head"
    assert got["leftUpperArm"] == "LeftArm" and got["leftLowerArm"] == "LeftForeArm"
    assert got["leftHand"] == "LeftHand" and got["leftShoulder"] == "LeftShoulder"
    assert got["rightUpperLeg"] == "RightUpLeg" and got["rightLowerLeg"] == "RightLeg"
    assert got["rightFoot"] == "RightFoot" and got["rightToes"] == "RightToeBase"
    assert got["leftLowerLeg"] == "LeftLeg"
    assert got["leftThumbMetacarpal"] == "LeftHandThumb1"
    assert got["leftIndexIntermediate"] == "LeftHandIndex2"
    assert got["leftLittleDistal"] == "LeftHandPinky3"
    assert "HeadTop_End" not in got.values() and "RightToe_End" not in got.values()


@pytest.mark.parametrize(
    "name, expected",
    [
        ("UpperArm.L", "leftUpperArm"), ("upper_arm.L", "leftUpperArm"), ("LowerArm_R", "rightLowerArm"),
        ("Thigh_L", "leftUpperLeg"), ("shin.R", "rightLowerLeg"), ("forearm.L", "leftLowerArm"),
        ("LeftUpperLeg", "leftUpperLeg"), ("RightLowerLeg", "rightLowerLeg"), ("Hand_L", "leftHand"),
        ("J_Bip_C_Hips", "hips"), ("J_Bip_C_UpperChest", "upperChest"), ("J_Bip_L_UpperArm", "leftUpperArm"),
        ("J_Bip_R_LowerLeg", "rightLowerLeg"), ("J_Bip_L_Index1", "leftIndexProximal"),
        ("Bip01 L UpperArm", "leftUpperArm"), ("DEF-upper_arm.L", "leftUpperArm"), ("Armature|Hips", "hips"),
        ("Pelvis", "hips"), ("clavicle_l", "leftShoulder"),
        # Blender duplicates, glued sides (Quaternius, Daz), tool prefixes, Unreal / Unity fingers
        ("Hand.L.001", "leftHand"), ("UpperArmL", "leftUpperArm"), ("WristR", "rightHand"),
        ("lShldrBend", "leftUpperArm"), ("rThighBend", "rightUpperLeg"), ("CC_Base_L_Calf", "leftLowerLeg"),
        ("index_02_r", "rightIndexIntermediate"), ("Left_LittleDistal", "leftLittleDistal"),
        ("ball_l", "leftToes"), ("Bip01 R Toe0", "rightToes"), ("Abdomen", "spine"), ("spine_01", "spine"),
        ("leg-left", "leftUpperLeg"), ("arm-right", "rightUpperArm"), ("torso", "spine"),
        # case and separator insensitivity
        ("LEFT_ARM", "leftUpperArm"), ("left-fore-arm", "leftLowerArm"), ("upper-arm.l", "leftUpperArm"),
        ("Upper Arm R", "rightUpperArm"),
        # things that must not map
        ("hair_1_2", None), ("skirt_0_1", None), ("Armature", None), ("", None), ("arm", None),
        ("lShldrTwist", None), ("Spinal", None), ("b_Hip_01", None),
    ],
)
def test_blender_unity_vroid_names(name, expected):
    assert humanoid_name(name) == expected


def test_leg_is_resolved_by_context():
    # MMD English: leg = upper leg (with knee); Mixamo: LeftLeg = lower leg (with UpLeg).
    assert map_bone_names(["leg_L", "knee_L"]) == {"leftUpperLeg": 0, "leftLowerLeg": 1}
    assert map_bone_names(["LeftUpLeg", "LeftLeg"]) == {"leftUpperLeg": 0, "leftLowerLeg": 1}
    assert map_bone_names(["Leg_L", "Thigh_L"])["leftLowerLeg"] == 0


def test_first_candidate_wins_and_order_follows_vocabulary():
    m = map_bone_names(["Head", "mixamorig:Hips", "Hips", "Spine"])
    assert m == {"hips": 1, "spine": 3, "head": 0}
    assert list(m) == ["hips", "spine", "head"]


def test_tables_are_consistent_with_the_matcher():
    vocab = set(HUMANOID_BONES)
    for table in (MMD_TO_HUMANOID, MMD_ENGLISH_TO_HUMANOID, MIXAMO_TO_HUMANOID, CMU_BVH_TO_HUMANOID):
        assert set(table.values()) <= vocab
    for name, hum in MMD_TO_HUMANOID.items():
        assert humanoid_name(name) == hum, name
    for name, hum in MMD_ENGLISH_TO_HUMANOID.items():
        assert humanoid_name(name, leg_is_lower=False) == hum, name
    for name, hum in MIXAMO_TO_HUMANOID.items():
        assert humanoid_name("mixamorig:" + name, leg_is_lower=True) == hum, name
    # The MMD table uses MMD's full-width digits.
    assert MMD_TO_HUMANOID["左親指０"] == "leftThumbMetacarpal"
    assert MMD_TO_HUMANOID["上半身2"] == "chest"


def test_cmu_bvh_table():
    t = CMU_BVH_TO_HUMANOID
    assert t["Hips"] == "hips" and t["LowerBack"] == "spine" and t["Spine"] == "chest"
    assert t["Spine1"] == "upperChest" and t["Neck"] == "neck" and t["Head"] == "head"
    assert t["LeftShoulder"] == "leftShoulder" and t["LeftArm"] == "leftUpperArm"
    assert t["LeftForeArm"] == "leftLowerArm" and t["LeftHand"] == "leftHand"
    assert t["RightUpLeg"] == "rightUpperLeg" and t["RightLeg"] == "rightLowerLeg"
    assert t["RightFoot"] == "rightFoot" and t["RightToeBase"] == "rightToes"
    assert "Neck1" not in t and "LHipJoint" not in t
