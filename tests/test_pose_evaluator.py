"""The one pose evaluator (issue 12, parts 1-3): MMD sleeve IK, inherit chains and physics bones stay with
the arm that carries them, for every pose source; the real MMD characters keep their rules."""

from __future__ import annotations

import numpy as np
import pytest

from conrdata.formats.pmd import read_pmd
from conrdata.formats.pmx import read_pmx
from conrdata.poses import poses_for_rig, sample_poses
from conrdata.poses.evaluate import (
    deform_rules,
    evaluate_pose,
    evaluate_poses,
    evaluate_vertices,
    is_control_chain,
    world_corrections,
)
from conrdata.poses.mmd import vmd_to_library
from conrdata.poses.retarget import bvh_to_library
from conrdata.poses.vmd import VmdMotion, make_track
from conrdata.rig.apose import align_to_apose
from conrdata.rig.io import load_character, save_character
from conrdata.rig.model import (
    forward_kinematics,
    identity_rotations,
    quat_to_matrix,
    skin,
    skinning_matrices,
)
from conrdata.rig.rotations import axis_rotation, quat_from_axis_angle, quat_from_matrix
from tests import mmd_writer
from tests.conftest import assets_or_skip
from tests.poses_testdata import apose_frame, cmu_bvh

CHAINS = {"sleeve IK": mmd_writer.SLEEVE_CARRIERS, "inherit": mmd_writer.INHERIT_CARRIERS,
          "physics": mmd_writer.PHYSICS_CARRIERS}


@pytest.fixture(scope="module")
def chains_rig(tmp_path_factory):
    folder = tmp_path_factory.mktemp("chains")
    mmd_writer.write_textures(folder)
    src = read_pmx(mmd_writer.write_pmx(folder / "chains.pmx", mmd_writer.chains_humanoid()))
    return src, align_to_apose(src)


def carried_error(rig, world_r, world_t, carriers: dict[str, str]) -> float:
    """Largest distance (metres) between each chain vertex as posed and where its carrier arm bone puts it."""
    mats = skinning_matrices(rig, world_r, world_t)
    posed = skin(rig, mats)
    joints = rig.joints.copy()
    moved = np.zeros(len(joints), bool)
    for chain_bone, arm_bone in carriers.items():
        hit = joints[:, 0] == rig.bone_names.index(chain_bone)
        joints[hit, 0] = rig.bone_names.index(arm_bone)
        moved |= hit
    assert moved.sum() >= 6, "the chain has no vertices"
    carried = skin(rig.replace(joints=joints), mats)
    return float(np.linalg.norm(posed[moved] - carried[moved], axis=1).max())


def alignment_error(src, rig, carriers: dict[str, str]) -> float:
    """Largest distance (metres) between each chain vertex of the aligned bind and where the alignment's
    move of its carrier arm bone (source rest -> A-pose) takes the source vertex."""
    A = world_corrections(rig)
    worst = 0.0
    for chain_bone, arm_bone in carriers.items():
        c, a = rig.bone_names.index(chain_bone), rig.bone_names.index(arm_bone)
        hit = rig.joints[:, 0] == c
        carried = (src.vertices[hit] - src.bone_heads[a]) @ A[a].T + rig.bone_heads[a]
        worst = max(worst, float(np.linalg.norm(carried - rig.vertices[hit], axis=1).max()))
    return worst


def _poses(rig):
    """(label, local rotations (B, 4), root translation (3,)) from the sampler, a BVH and a VMD."""
    out = []
    # secondary_deg=0: the sampler's deliberate swing of hair-like bones (the physics chain) is not a tear.
    lib = sample_poses(3, seed=5, rig=rig, secondary_deg=0.0)
    local, trans = poses_for_rig(rig, lib)
    out += [(f"sampled {i}", local[i], trans[i]) for i in range(len(lib))]
    frame = apose_frame()
    frame.update({"LeftArm": np.array([10.0, 20.0, 60.0]), "LeftForeArm": np.array([0.0, 70.0, 0.0]),
                  "RightArm": np.array([-40.0, 0.0, -30.0]), "RightForeArm": np.array([0.0, -80.0, 20.0]),
                  "LeftHand": np.array([0.0, 0.0, 40.0])})
    bvh = bvh_to_library(cmu_bvh([apose_frame(), frame]), rig)
    local, trans = poses_for_rig(rig, bvh, [1])
    out.append(("bvh", local[0], trans[0]))
    m = VmdMotion("chains")
    mmd = np.array([-1.0, -1.0, 1.0, 1.0])  # project-frame rotation -> VMD's (Z mirrored)
    keys = (("左腕", "Z", 0.9), ("左ひじ", "Y", 1.2), ("右腕", "X", 0.8), ("右ひじ", "Y", -1.0))
    for bone, axis, angle in keys:
        m.tracks[bone] = make_track([0, 10], rotations=[[0, 0, 0, 1], axis_rotation(axis, angle) * mmd])
    vmd = vmd_to_library(m, rig, fps=30)
    local, trans = poses_for_rig(rig, vmd, [len(vmd) - 1])
    out.append(("vmd", local[0], trans[0]))
    return out


@pytest.mark.parametrize("chain", sorted(CHAINS))
def test_chains_stay_with_the_arm(chains_rig, chain):
    src, rig = chains_rig
    carriers = CHAINS[chain]
    # The A-pose alignment (arms lowered to 45 degrees) carried the chain along, and the bind is the A-pose.
    assert alignment_error(src, rig, carriers) < 0.01
    np.testing.assert_allclose(evaluate_vertices(rig, identity_rotations(rig)), rig.vertices, atol=1e-5)
    worst_fk = 0.0
    for label, local, trans in _poses(rig):
        err = carried_error(rig, *evaluate_pose(rig, local, trans), carriers)
        assert err < 0.01, f"{chain} chain off its arm by {100 * err:.1f} cm under the {label} pose"
        worst_fk = max(worst_fk, carried_error(rig, *forward_kinematics(rig, local, trans), carriers))
    # Plain FK (the rules not played) leaves the chain behind: the check above can fail.
    assert worst_fk > 0.03


def test_chains_fk_alignment_would_tear(chains_rig):
    """Aligning by FK alone (the old path) puts the deform copies and sleeves off the re-aimed arms."""
    src, _ = chains_rig
    import conrdata.rig.apose as apose

    saved = apose.evaluate_pose
    try:
        apose.evaluate_pose = lambda rig, local, root=None, **kw: forward_kinematics(rig, local, root)
        old = apose.align_to_apose(src)
    finally:
        apose.evaluate_pose = saved
    for carriers in CHAINS.values():
        assert alignment_error(src, old, carriers) > 0.005


def test_rules_found(chains_rig):
    _, rig = chains_rig
    rules = deform_rules(rig)
    names = rig.bone_names
    control = {names[c.ik_bone] for c in rig.ik_chains if is_control_chain(rig, c)}
    carried = {names[c.ik_bone] for c in rig.ik_chains if not is_control_chain(rig, c)}
    assert control == {"左足ＩＫ", "右足ＩＫ"}
    assert carried == {"左腕袖IK", "左手袖IK", "左手首袖IK"}
    assert [(names[d], names[k]) for d, k in rules.physics] == [("右袖飾1", "右ひじ")]
    mmd = rig.meta["mmd"]
    assert [b["mode"] for b in mmd["rigid_bodies"]] == [0, 0, 1, 2, 0]
    assert names[mmd["rigid_bodies"][2]["bone"]] == "右袖飾1"
    assert [(j["a"], j["b"]) for j in mmd["joints"]] == [(2, 1), (2, 3)]


def test_control_ik_left_to_the_fk_pose(chains_rig):
    """Leg IK is not solved for library poses: the FK legs stand and the IK bone follows the ankle."""
    _, rig = chains_rig
    lib = sample_poses(2, seed=1, rig=rig)
    local, trans = poses_for_rig(rig, lib)
    wr, wt = evaluate_pose(rig, local[1], trans[1])
    fr, ft = forward_kinematics(rig, local[1], trans[1])
    for side in ("left", "right"):
        for h in (f"{side}UpperLeg", f"{side}LowerLeg", f"{side}Foot"):
            b = rig.humanoid[h]
            np.testing.assert_allclose(wt[b], ft[b], atol=1e-9)
            np.testing.assert_allclose(wr[b], fr[b], atol=1e-9)
    for chain in rig.ik_chains:
        if is_control_chain(rig, chain) and "足" in rig.bone_names[chain.ik_bone]:
            bind_offset = rig.bone_heads[chain.ik_bone] - rig.bone_heads[chain.target_bone]
            np.testing.assert_allclose(wt[chain.ik_bone] - wt[chain.target_bone], bind_offset, atol=1e-6)
    # Asked to, the evaluator solves it: the leg reaches an IK bone moved up by 10 cm.
    ik = rig.bone_names.index("左足ＩＫ")
    lt = np.zeros((rig.num_bones, 3))
    lt[ik] = [0.0, 0.1, 0.0]
    _, solved = evaluate_pose(rig, identity_rotations(rig), local_translation=lt, solve_control_ik=True)
    np.testing.assert_allclose(solved[rig.humanoid["leftFoot"]], rig.bone_heads[ik] + [0, 0.1, 0], atol=2e-3)


def test_batch_matches_single(chains_rig):
    _, rig = chains_rig
    lib = sample_poses(3, seed=2, rig=rig)
    local, trans = poses_for_rig(rig, lib)
    br, bt = evaluate_poses(rig, local, trans)
    for i in range(3):
        r, t = evaluate_pose(rig, local[i], trans[i])
        np.testing.assert_allclose(br[i], r, atol=1e-12)
        np.testing.assert_allclose(bt[i], t, atol=1e-12)


def test_character_file_keeps_the_rules(chains_rig, tmp_path):
    _, rig = chains_rig
    back = load_character(save_character(rig, tmp_path / "c.npz"))
    lib = sample_poses(2, seed=3, rig=rig)
    local, trans = poses_for_rig(rig, lib)
    a = evaluate_poses(rig, local, trans)
    b = evaluate_poses(back, local, trans)
    np.testing.assert_allclose(a[1], b[1], atol=1e-5)
    np.testing.assert_allclose(a[0], b[0], atol=1e-5)


def test_pmd_physics_read(tmp_path):
    m = mmd_writer.chains_humanoid()
    rig = read_pmd(mmd_writer.write_pmd(tmp_path / "c.pmd", m))
    mmd = rig.meta["mmd"]
    assert [b["mode"] for b in mmd["rigid_bodies"]] == [0, 0, 1, 2, 0]
    assert [rig.bone_names[b["bone"]] for b in mmd["rigid_bodies"]][:3] == ["頭", "右ひじ", "右袖飾1"]
    assert [(j["a"], j["b"]) for j in mmd["joints"]] == [(2, 1), (2, 3)]


def test_pmd_rotation_linked_bones_read_source_and_weight(tmp_path):
    """PMD type 9 (twist helpers): the source is the tail field, the IK field the percentage."""
    m = mmd_writer.tiny_humanoid(with_d_bones=False)
    src = next(i for i, b in enumerate(m.bones) if b.name == "左腕捩")
    m.bones.append(mmd_writer.WBone("左腕捩1", "twist1", m.bones[src].pos, src, tail=src, pmd_type=9,
                                    inherit=(25, 0.0, True, False)))
    rig = read_pmd(mmd_writer.write_pmd(tmp_path / "t.pmd", m))
    link = next(x for x in rig.meta["mmd"]["inherit"] if rig.bone_names[x["bone"]] == "左腕捩1")
    assert rig.bone_names[link["source"]] == "左腕捩"
    assert link["weight"] == pytest.approx(0.25)


# --- the real MMD characters ---------------------------------------------------------------------------


def _real(path):
    rig = read_pmx(path) if path.suffix.lower() == ".pmx" else read_pmd(path)
    return align_to_apose(rig)


@pytest.mark.parametrize("rel", ["gene/Gene_light.pmx", "mei/mei.pmd"])
def test_real_mmd_rules_hold(rel):
    path = assets_or_skip("meshes", *rel.split("/"))
    rig = _real(path)
    rules = deform_rules(rig)
    assert rules.physics, "no physics bones found"
    np.testing.assert_allclose(evaluate_vertices(rig, identity_rotations(rig)), rig.vertices, atol=1e-4)
    lib = sample_poses(4, seed=11, rig=rig)
    local, trans = poses_for_rig(rig, lib)
    wr, wt = evaluate_poses(rig, local, trans)
    carried = [c for c in rig.ik_chains if not is_control_chain(rig, c)]
    worst_fk = 0.0
    for i in range(len(lib)):
        _, ft = forward_kinematics(rig, local[i], trans[i])
        for chain in carried:
            name = rig.bone_names[chain.ik_bone]
            gap = np.linalg.norm(wt[i, chain.target_bone] - wt[i, chain.ik_bone])
            assert gap <= np.linalg.norm(ft[chain.target_bone] - ft[chain.ik_bone]) + 1e-6, name
            if len(chain.links) == 1 and np.all(np.isnan(chain.limits)):  # a free aim points at its IK bone
                top = int(chain.links[0])
                u, v = wt[i, chain.target_bone] - wt[i, top], wt[i, chain.ik_bone] - wt[i, top]
                cos = u @ v / np.linalg.norm(u) / np.linalg.norm(v)
                assert cos > np.cos(np.radians(0.5)), (name, np.degrees(np.arccos(min(cos, 1.0))))
        for d, k in rules.physics:  # physics tops keep their bind offset from the kinematic bone
            off = wr[i, k].T @ (wt[i, d] - wt[i, k])
            np.testing.assert_allclose(off, rig.bone_heads[d] - rig.bone_heads[k], atol=1e-6)
            np.testing.assert_allclose(wr[i, d], wr[i, k] @ quat_to_matrix(local[i, d]), atol=1e-6)
        worst_fk = max([worst_fk] + [float(np.linalg.norm(ft[c.target_bone] - ft[c.ik_bone]) -
                                           np.linalg.norm(wt[i, c.target_bone] - wt[i, c.ik_bone]))
                                     for c in carried])
    if carried:
        assert worst_fk > 0.02  # FK alone leaves the sleeves (Gene's cloak) behind



# --- VRM 1.0 node constraints --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def constrained_vrm(tmp_path_factory):
    """The procedural character as a VRM 1.0 with joint rest rotations (+Y along the bone) and three
    node constraints: hair_0_0 rolls with leftLowerArm (Y), hair_1_0 takes half of leftUpperArm's
    rotation, hair_2_0 aims its +Y at leftHand."""
    from conrdata.formats.gltf import GltfDocument
    from conrdata.formats.gltf_rig import _RigReader, read_gltf
    from conrdata.formats.gltf_writer import rig_to_gltf, write_glb
    from conrdata.rig.procedural import build_character

    doc, binary = rig_to_gltf(build_character(3), bone_axes="along_bone", vrm="1")
    node = {n.get("name"): i for i, n in enumerate(doc["nodes"])}
    specs = {"hair_0_0": {"roll": {"source": node["leftLowerArm"], "rollAxis": "Y", "weight": 1.0}},
             "hair_1_0": {"rotation": {"source": node["leftUpperArm"], "weight": 0.5}},
             "hair_2_0": {"aim": {"source": node["leftHand"], "aimAxis": "PositiveY", "weight": 1.0}}}
    for name, constraint in specs.items():
        doc["nodes"][node[name]].setdefault("extensions", {})["VRMC_node_constraint"] = {
            "specVersion": "1.0", "constraint": constraint}
    doc.setdefault("extensionsUsed", []).append("VRMC_node_constraint")
    path = write_glb(tmp_path_factory.mktemp("vrm") / "constrained.vrm", doc, binary)
    reader = _RigReader(GltfDocument.open(path))
    reader.hierarchy()
    rest = {name: reader.world[i][:3, :3] for name, i in node.items()}  # node rest world rotations
    return align_to_apose(read_gltf(path)), rest


def _axis_angle(r):
    q = quat_from_matrix(r)
    angle = 2 * np.arctan2(np.linalg.norm(q[:3]), q[3])
    return q[:3] / max(np.linalg.norm(q[:3]), 1e-12), angle


def _rot(axis, angle):
    return quat_to_matrix(quat_from_axis_angle(np.asarray(axis, float), angle))


def test_vrm_constraints_read_and_kept(constrained_vrm, tmp_path):
    rig, _ = constrained_vrm
    kinds = {rig.bone_names[c["bone"]]: (c["kind"], rig.bone_names[c["source"]])
             for c in rig.meta["vrm_constraints"]}
    assert kinds == {"hair_0_0": ("roll", "leftLowerArm"), "hair_1_0": ("rotation", "leftUpperArm"),
                     "hair_2_0": ("aim", "leftHand")}
    back = load_character(save_character(rig, tmp_path / "v.npz"))
    assert back.meta["vrm_constraints"] == rig.meta["vrm_constraints"]
    assert len(deform_rules(back).constraints) == 3


def test_vrm_roll_and_rotation_constraints(constrained_vrm):
    rig, rest = constrained_vrm
    q = identity_rotations(rig)
    local = quat_to_matrix(q)
    # leftLowerArm: twist 0.7 rad about its own local Y (the bone), then a swing perpendicular to it.
    u_src = rest["leftLowerArm"][:, 1]
    swing_axis = np.cross(u_src, [0.0, 0.0, 1.0])
    la = rig.humanoid["leftLowerArm"]
    local[la] = _rot(swing_axis, 0.4) @ _rot(u_src, 0.7)
    # leftUpperArm: 0.6 rad about its local X.
    ua = rig.humanoid["leftUpperArm"]
    local[ua] = _rot(rest["leftUpperArm"][:, 0], 0.6)
    wr, _ = evaluate_pose(rig, local)
    head = rig.humanoid["head"]
    roll = wr[head].T @ wr[rig.bone_names.index("hair_0_0")]
    axis, angle = _axis_angle(roll)  # only the twist, about hair_0_0's own Y
    assert angle == pytest.approx(0.7, abs=1e-6)
    np.testing.assert_allclose(axis, rest["hair_0_0"][:, 1], atol=1e-6)
    rot = wr[head].T @ wr[rig.bone_names.index("hair_1_0")]
    axis, angle = _axis_angle(rot)  # half the upper arm's turn, about hair_1_0's own X
    assert angle == pytest.approx(0.3, abs=1e-6)
    np.testing.assert_allclose(axis, rest["hair_1_0"][:, 0], atol=1e-6)


def test_vrm_aim_constraint(constrained_vrm):
    rig, rest = constrained_vrm
    lib = sample_poses(2, seed=4, rig=rig)
    local, trans = poses_for_rig(rig, lib)
    d, s = rig.bone_names.index("hair_2_0"), rig.humanoid["leftHand"]
    for i in range(len(lib)):
        wr, wt = evaluate_pose(rig, local[i], trans[i])
        A = world_corrections(rig)
        # hair_2_0's +Y in the pose: its rest +Y, through the alignment's correction and the pose.
        y = wr[d] @ A[d] @ rest["hair_2_0"][:, 1]
        to = wt[s] - wt[d]
        assert y @ to / np.linalg.norm(to) == pytest.approx(1.0, abs=1e-6)


def test_vrm_spring_bones_follow_their_parents():
    """Godette's VRM 0.x spring bones (hair, ribbon) are plain bones to the evaluator: they follow."""
    from conrdata.formats.gltf import GltfDocument
    from conrdata.formats.gltf_rig import read_gltf

    path = assets_or_skip("meshes", "godot-vrm", "Godette_vrm_v4.vrm")
    doc = GltfDocument.open(path)
    groups = doc.extensions["VRM"]["secondaryAnimation"]["boneGroups"]
    roots = {doc.node_names[n] for g in groups for n in g.get("bones", [])}
    rig = align_to_apose(read_gltf(path))
    spring = [b for b, n in enumerate(rig.bone_names) if n in roots]
    assert len(spring) == len(roots) >= 5
    local, trans = poses_for_rig(rig, sample_poses(2, seed=6, rig=rig, secondary_deg=0.0))
    wr, wt = evaluate_poses(rig, local, trans)
    heads = rig.bone_heads.astype(np.float64)
    below = [b for b in range(rig.num_bones) if any(a in spring for a in [b, *_chain_up(rig, b)])]
    for i in range(2):
        for b in below:
            p = rig.bone_parents[b]
            np.testing.assert_allclose(wr[i, b], wr[i, p], atol=1e-9)
            np.testing.assert_allclose(wt[i, b], wt[i, p] + wr[i, p] @ (heads[b] - heads[p]), atol=1e-9)


def _chain_up(rig, b):
    p = int(rig.bone_parents[b])
    while p >= 0:
        yield p
        p = int(rig.bone_parents[p])


def test_fixed_axis_and_inherit_translation(tmp_path):
    """A keyed twist bone turns only about its fixed axis; a translation-inheriting bone moves by its
    weight times its source's offset."""
    m = mmd_writer.tiny_humanoid(with_d_bones=False)
    centre = next(i for i, b in enumerate(m.bones) if b.name == "センター")
    lower = next(i for i, b in enumerate(m.bones) if b.name == "下半身")
    m.bones.append(mmd_writer.WBone("移動D", "moveD", (0.0, 10.0, 1.0), lower,
                                    inherit=(centre, 0.5, False, True)))
    rig = read_pmx(mmd_writer.write_pmx(tmp_path / "t.pmx", m))
    twist = rig.bone_names.index("左腕捩")
    axis = np.asarray(rig.meta["mmd"]["fixed_axes"][twist])
    axis /= np.linalg.norm(axis)
    local = quat_to_matrix(identity_rotations(rig))
    local[twist] = _rot([0.0, 0.0, 1.0], 0.5) @ _rot(axis, 0.8)  # a swing off the axis, then a twist
    wr, _ = evaluate_pose(rig, local)
    turn = wr[rig.bone_parents[twist]].T @ wr[twist]
    got_axis, angle = _axis_angle(turn)
    np.testing.assert_allclose(got_axis, axis, atol=1e-6)
    assert angle == pytest.approx(0.8, abs=1e-6)
    lt = np.zeros((rig.num_bones, 3))
    lt[rig.bone_names.index("センター")] = [0.0, 0.1, 0.0]
    _, wt = evaluate_pose(rig, identity_rotations(rig), local_translation=lt)
    moved = wt[rig.bone_names.index("移動D")] - rig.bone_heads[rig.bone_names.index("移動D")]
    # 0.1 carried by the centre, 0.05 inherited from it
    np.testing.assert_allclose(moved, [0.0, 0.15, 0.0], atol=1e-9)


def test_vrm_constrained_bind_is_the_apose(constrained_vrm):
    rig, _ = constrained_vrm
    np.testing.assert_allclose(evaluate_vertices(rig, identity_rotations(rig)), rig.vertices, atol=1e-5)


@pytest.mark.parametrize("layer, after_physics, follows",
                         [(0, False, False), (2, False, True), (0, True, True)])
def test_deform_order_layer_then_after_physics(tmp_path, layer, after_physics, follows):
    """MMD's order: a bone copying the sleeve's IK-turned rotation sees it only when it deforms after the
    IK bone (a higher deform layer, or the after-physics flag); the sleeve IK bones are on layer 1."""
    m = mmd_writer.chains_humanoid()
    ix = {b.name: i for i, b in enumerate(m.bones)}
    for name in ("左腕袖IK", "左手袖IK", "左手首袖IK"):
        m.bones[ix[name]].layer = 1
    m.bones.append(mmd_writer.WBone("左腕袖写", "copy", m.bones[ix["左腕袖"]].pos, ix["左肩"],
                                    inherit=(ix["左腕袖"], 1.0, True, False), layer=layer,
                                    after_physics=after_physics))
    rig = read_pmx(mmd_writer.write_pmx(tmp_path / "o.pmx", m))
    local, trans = poses_for_rig(rig, sample_poses(1, seed=9, rig=rig, secondary_deg=0.0))
    wr, _ = evaluate_pose(rig, local[0], trans[0])
    same = np.allclose(wr[rig.bone_names.index("左腕袖写")], wr[rig.bone_names.index("左腕袖")], atol=1e-9)
    assert same == follows
