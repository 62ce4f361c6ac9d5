"""The procedural character: canonical A-pose, skeleton, materials, skinning quality, seeded variation."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from conrdata.rig.apose import measure_apose
from conrdata.rig.humanoid import REQUIRED_BONES
from conrdata.rig.model import forward_kinematics, identity_rotations, pose_vertices
from conrdata.rig.procedural import build_character, tpose, write_character_glb


@pytest.fixture(scope="module")
def rig():
    return build_character(0)


def test_rig_is_consistent_and_small(rig):
    rig.check()
    assert 1000 < len(rig.faces) < 5000
    assert np.allclose(rig.weights.sum(1), 1, atol=1e-6)
    assert np.all(rig.weights >= 0)
    assert np.allclose(np.linalg.norm(rig.normals, axis=1), 1, atol=1e-4)
    assert rig.uvs.min() >= 0 and rig.uvs.max() <= 1


def test_canonical_apose(rig):
    m = measure_apose(rig)
    assert abs(m["left_arm_drop_deg"] - 45) < 0.01 and abs(m["right_arm_drop_deg"] - 45) < 0.01
    assert m["left_arm_outwards"] > 0.7 and m["right_arm_outwards"] > 0.7
    assert m["arm_out_of_plane_deg"] < 0.01
    assert m["leg_tilt_deg"] < 0.01
    assert m["lowest_y"] == pytest.approx(0.0, abs=1e-6)
    assert m["hips_xz"] < 1e-6
    assert m["facing_z"] > 0.999
    assert 1.35 < rig.height() < 1.65


def test_faces_plus_z_and_left_is_plus_x(rig):
    h = rig.humanoid
    assert rig.bone_heads[h["leftUpperArm"], 0] > 0 > rig.bone_heads[h["rightUpperArm"], 0]
    # toes point forward
    assert rig.bone_heads[h["leftToes"], 2] > rig.bone_heads[h["leftFoot"], 2]
    # the face (eye pixels of the face texture) is drawn on the +Z side of the head
    face = rig.materials[rig.face_material[np.flatnonzero(
        [rig.materials[m].name == "face" for m in rig.face_material])[0]]]
    tex = face.texture
    dark = np.argwhere(tex[..., :3].sum(-1) < 200)  # eye outlines/pupils
    assert len(dark)
    u = (dark[:, 1] + 0.5) / tex.shape[1]
    assert np.all(np.abs(u - 0.5) < 0.15)  # u = 0.5 is the +Z direction of the head's UV map
    head_faces = rig.faces[np.array([rig.materials[m].name == "face" for m in rig.face_material])]
    vid = np.unique(head_faces)
    front = vid[np.abs(rig.uvs[vid, 0] - 0.5) < 0.05]
    centre = rig.vertices[vid].mean(0)
    assert np.all(rig.vertices[front, 2] > centre[2] - 1e-3)


def test_humanoid_and_secondary_chains(rig):
    for name in REQUIRED_BONES + ("chest", "neck", "leftShoulder", "rightShoulder", "leftToes"):
        assert name in rig.humanoid, name
    names = rig.bone_names
    head = names.index("head")
    hips = names.index("hips")
    hair_roots = [i for i, n in enumerate(names) if n.startswith("hair_") and n.endswith("_0")]
    skirt_roots = [i for i, n in enumerate(names) if n.startswith("skirt_") and n.endswith("_0")]
    assert len(hair_roots) >= 6 and len(skirt_roots) >= 6
    assert all(rig.bone_parents[i] == head for i in hair_roots)
    assert all(rig.bone_parents[i] == hips for i in skirt_roots)
    # every secondary bone carries skin weight
    used = np.unique(rig.joints[rig.weights > 0])
    for i in hair_roots + skirt_roots:
        assert i in used


def test_triangles_face_outwards(rig):
    """Counter-clockwise seen from outside: the face normal agrees with the vertex normals.

    (A dozen small triangles inside the torso, where the shoulder tube bends, are folded; they are hidden.)
    """
    v = rig.vertices.astype(np.float64)
    f = rig.faces
    fn = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    agree = np.einsum("ij,ij->i", fn, rig.normals[f].mean(1)) > 0
    assert agree.mean() > 0.99
    # and the body's outside normals point away from the body's centre line at the chest
    chest = np.abs(v[:, 1] - rig.bone_heads[rig.humanoid["chest"], 1]) < 0.02
    chest &= np.abs(v[:, 0]) < 0.05
    radial = v[chest] * [1, 0, 1]
    assert (np.einsum("ij,ij->i", radial, rig.normals[chest]) > 0).mean() > 0.95


def test_materials(rig):
    assert any(m.double_sided for m in rig.materials)
    mask = [m for m in rig.materials if m.alpha_mode == "MASK"]
    assert mask
    alpha = mask[0].texture[..., 3]
    assert (alpha == 0).any() and (alpha == 255).any()
    for m in rig.materials:
        assert m.texture is not None and m.texture.dtype == np.uint8 and m.texture.shape[2] == 4
    used = set(np.unique(rig.face_material))
    assert used == set(range(len(rig.materials)))


def test_bind_pose_skins_to_itself(rig):
    np.testing.assert_allclose(pose_vertices(rig, identity_rotations(rig)), rig.vertices, atol=1e-5)


def test_smooth_blend_at_elbow(rig):
    """Bending the elbow 90 degrees: hand follows fully, torso not at all, the elbow region blends."""
    h = rig.humanoid
    q = identity_rotations(rig)
    a = np.radians(90) / 2
    q[h["leftLowerArm"]] = [0, 0, np.sin(a), np.cos(a)]
    posed = pose_vertices(rig, q)
    moved = np.linalg.norm(posed - rig.vertices, axis=1)
    ua, la = h["leftUpperArm"], h["leftLowerArm"]
    only_upper = (rig.joints[:, 0] == ua) & (rig.weights[:, 0] > 0.999)
    assert moved[only_upper].max() < 1e-6
    blended = np.any(rig.joints == ua, axis=1) & np.any(rig.joints == la, axis=1) & (rig.weights.max(1) < 0.9)
    assert blended.sum() >= 12  # at least one ring of vertices shares the two bones
    torso = np.any(rig.joints == h["spine"], axis=1) & (rig.weights.max(1) > 0.999)
    assert moved[torso].max() < 1e-6


def test_seeded_variation_and_determinism():
    a, b, c = build_character(3), build_character(3), build_character(4)
    np.testing.assert_array_equal(a.vertices, b.vertices)
    np.testing.assert_array_equal(a.materials[2].texture, b.materials[2].texture)
    assert abs(a.height() - c.height()) > 1e-4
    heights = [build_character(s).height() for s in range(6)]
    assert max(heights) - min(heights) > 0.05
    colours = {tuple(build_character(s).materials[4].texture[0, 0]) for s in range(6)}
    assert len(colours) >= 4


def test_tpose_helper_raises_arms(rig):
    t = tpose(rig)
    m = measure_apose(t)
    assert abs(m["left_arm_drop_deg"]) < 1e-4 and abs(m["right_arm_drop_deg"]) < 1e-4
    _, heads = forward_kinematics(rig, identity_rotations(rig))
    np.testing.assert_allclose(heads, rig.bone_heads, atol=1e-6)


def test_write_glb_is_a_real_glb(tmp_path):
    import pygltflib

    path = write_character_glb(tmp_path / "c.glb", seed=1)
    data = path.read_bytes()
    assert data[:4] == b"glTF" and int.from_bytes(data[8:12], "little") == len(data)
    g = pygltflib.GLTF2.load(str(path))
    assert len(g.skins) == 1 and len(g.skins[0].joints) == build_character(1).num_bones
    assert any(n.rotation not in (None, [0, 0, 0, 1]) for n in g.nodes)  # bone axes are not identity
    assert {m.alphaMode for m in g.materials} >= {"OPAQUE", "MASK"}
    assert any(m.doubleSided for m in g.materials)


def test_make_character_cli(tmp_path):
    from conrdata.cli import group

    out = tmp_path / "meshes"
    r = CliRunner().invoke(group, ["make-character", "--count", "2", "--seed", "5", str(out)])
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in out.iterdir()) == ["procedural_00005.glb", "procedural_00006.glb"]
    assert "wrote 2" in r.output
    r = CliRunner().invoke(group, ["make-character", "--count", "2", "--seed", "5", str(out)])
    assert r.exit_code == 0 and "kept 2 existing" in r.output
    r = CliRunner().invoke(group, ["make-character", "--help"])
    assert "Example" in r.output
