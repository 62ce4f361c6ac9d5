"""PMX 2.0/2.1 reader, on files written by tests/mmd_writer.py (no real PMX sample is in the repository)."""

import dataclasses
import math

import numpy as np
import pytest

from conrdata.errors import FormatError
from conrdata.formats.pmx import read_pmx
from conrdata.rig.humanoid import REQUIRED_BONES
from conrdata.rig.model import identity_rotations, pose_vertices
from tests.conftest import mesh_files_or_skip
from tests.mmd_writer import (
    BODY_RGB,
    WIK,
    WBone,
    WMaterial,
    WModel,
    WVertex,
    tiny_humanoid,
    write_pmx,
    write_textures,
)


@pytest.fixture
def model_dir(tmp_path):
    write_textures(tmp_path)
    return tmp_path


def bone(rig, name):
    return rig.bone_names.index(name)


def test_positions_units_and_axes(model_dir):
    rig = read_pmx(write_pmx(model_dir / "m.pmx", tiny_humanoid()))
    rig.check()
    # 左腕 is at MMD (1.4, 15.6, 0.2): 8 cm units, Z negated.
    b = bone(rig, "左腕")
    np.testing.assert_allclose(rig.bone_heads[b], [0.112, 1.248, -0.016], atol=1e-6)
    # Vertex 3*b sits at the head of file bone b; b = 0 is センター at MMD (0, 8, 0).
    np.testing.assert_allclose(rig.vertices[0], [0.0, 0.64, 0.0], atol=1e-6)
    np.testing.assert_allclose(rig.vertices[2], [0.0, 0.664, 0.0], atol=1e-6)
    # The character's left arm is on +X and it faces +Z (toes in front of the ankles).
    assert rig.bone_heads[rig.humanoid["leftHand"], 0] > 0.3
    assert rig.bone_heads[rig.humanoid["rightHand"], 0] < -0.3
    assert rig.bone_heads[rig.humanoid["leftToes"], 2] > rig.bone_heads[rig.humanoid["leftFoot"], 2] + 0.1
    assert rig.height() == pytest.approx((17.8 + 0.3) * 0.08, abs=1e-5)  # 両目 triangle top, toes at 0


def test_winding_is_counter_clockwise_from_outside(model_dir):
    rig = read_pmx(write_pmx(model_dir / "m.pmx", tiny_humanoid()))
    # Writer triangle (a, a+y, a+x) with normal -Z: MMD clockwise front face. After the mirror the
    # reader must give (a, a+x, a+y) whose right-hand normal is +Z, agreeing with the vertex normal.
    assert rig.faces[0].tolist() == [0, 1, 2]
    np.testing.assert_allclose(rig.normals[0], [0, 0, 1], atol=1e-6)
    v = rig.vertices[rig.faces]
    face_n = np.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0])
    assert np.all(np.einsum("fi,fi->f", face_n, rig.normals[rig.faces[:, 0]]) > 0)


def test_weights_all_deform_types(model_dir):
    rig = read_pmx(write_pmx(model_dir / "m.pmx", tiny_humanoid()))
    names = rig.bone_names

    def weights_of(v):
        return {names[j]: round(float(w), 6) for j, w in zip(rig.joints[v], rig.weights[v]) if w > 0}

    assert weights_of(0) == {"センター": 1.0}  # BDEF1
    assert weights_of(1) == {"センター": 0.25, "下半身": 0.75}  # BDEF2
    # BDEF4 (weights 0.2 each) renormalised
    assert weights_of(4) == {"下半身": 0.25, "上半身": 0.25, "上半身2": 0.25, "首": 0.25}
    assert weights_of(7) == {"上半身": 0.6, "上半身2": 0.4}  # SDEF read as BDEF2
    assert weights_of(10) == {"上半身2": 0.5, "首": 0.5}  # QDEF read as BDEF4, -1 bone ignored
    np.testing.assert_allclose(rig.weights.sum(axis=1), 1.0, atol=1e-6)
    # Bind pose skins to itself.
    np.testing.assert_allclose(pose_vertices(rig, identity_rotations(rig)), rig.vertices, atol=1e-5)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(version=2.0, encoding="utf-16-le", index_sizes=(1, 1, 1, 1, 1, 1)),
        dict(version=2.0, encoding="utf-8", index_sizes=(4, 4, 4, 4, 4, 4), additional_uvs=4),
        dict(version=2.1, encoding="utf-8", index_sizes=(2, 2, 2, 2, 2, 2), additional_uvs=1,
             soft_bodies=True),
    ],
)
def test_index_sizes_encodings_and_versions_agree(model_dir, kwargs):
    ref = read_pmx(write_pmx(model_dir / "ref.pmx", tiny_humanoid()))
    rig = read_pmx(write_pmx(model_dir / "m.pmx", tiny_humanoid(), **kwargs))
    assert rig.bone_names == ref.bone_names
    assert rig.meta["name"] == "テストモデル" and rig.meta["name_en"] == "test model"
    assert rig.meta["encoding"] == kwargs["encoding"]
    assert rig.meta["version"] == kwargs["version"]
    for field in ("vertices", "normals", "uvs", "faces", "joints", "weights", "bone_parents", "bone_heads"):
        np.testing.assert_array_equal(getattr(rig, field), getattr(ref, field), err_msg=field)
    assert rig.humanoid == ref.humanoid
    assert rig.meta["morphs"] == ref.meta["morphs"] + (1 if kwargs["version"] >= 2.1 else 0)
    assert rig.meta["rigid_bodies"] == 2 and rig.meta["joints"] == 1
    if kwargs.get("soft_bodies"):
        assert any("soft bodies" in w for w in rig.warnings)


def grid_model(n_vertices: int) -> WModel:
    """n vertices on a line, one bone; triangles that use the highest vertex indices."""
    verts = [WVertex((0.01 * i, 0.0, 0.0)) for i in range(n_vertices)]
    n = n_vertices
    faces = [(n - 1, n - 3, n - 2), (0, 2, 1)]
    return WModel(vertices=verts, faces=faces, materials=[WMaterial("m", triangles=2)],
                  bones=[WBone("センター", "center", (0, 0, 0))])


@pytest.mark.parametrize("n, vsize", [(200, 1), (40000, 2)])
def test_small_vertex_indices_are_unsigned(tmp_path, n, vsize):
    rig = read_pmx(write_pmx(tmp_path / "g.pmx", grid_model(n), index_sizes=(vsize, 1, 1, 1, 1, 1)))
    assert len(rig.vertices) == n
    assert rig.faces[0].tolist() == [n - 1, n - 2, n - 3]  # winding flipped, indices above 127 / 32767
    assert rig.faces.max() == n - 1


def permuted(model: WModel, perm: list[int]) -> WModel:
    """The same model with bones stored in file order ``perm`` (new file index k holds old bone perm[k])."""
    inv = {old: new for new, old in enumerate(perm)}

    def m(i):
        return inv[i] if i >= 0 else -1

    bones = []
    for old in perm:
        b = model.bones[old]
        bones.append(dataclasses.replace(
            b, parent=m(b.parent), tail=m(b.tail) if isinstance(b.tail, int) else b.tail,
            inherit=None if b.inherit is None else (m(b.inherit[0]), *b.inherit[1:]),
            ik=None if b.ik is None else WIK(m(b.ik.target), b.ik.loops, b.ik.limit,
                                             [(m(k), lo, hi) for k, lo, hi in b.ik.links]),
        ))
    verts = [dataclasses.replace(v, bones=tuple(m(k) for k in v.bones)) for v in model.vertices]
    return dataclasses.replace(model, bones=bones, vertices=verts)


def test_bones_reordered_parent_first_with_all_indices_remapped(model_dir):
    model = tiny_humanoid()
    ref = read_pmx(write_pmx(model_dir / "ref.pmx", model))
    perm = list(reversed(range(len(model.bones))))  # every child now comes before its parent
    rig = read_pmx(write_pmx(model_dir / "rev.pmx", permuted(model, perm)))
    rig.check()
    assert any("reordered" in w for w in rig.warnings)
    assert np.all(rig.bone_parents < np.arange(rig.num_bones))
    assert sorted(rig.bone_names) == sorted(ref.bone_names)

    def named_parent(r, name):
        p = r.bone_parents[r.bone_names.index(name)]
        return None if p < 0 else r.bone_names[p]

    for name in ref.bone_names:
        assert named_parent(rig, name) == named_parent(ref, name), name
        np.testing.assert_array_equal(rig.bone_heads[bone(rig, name)], ref.bone_heads[bone(ref, name)])
    for v in range(len(ref.vertices)):
        a = {ref.bone_names[j]: w for j, w in zip(ref.joints[v], ref.weights[v]) if w > 0}
        b = {rig.bone_names[j]: w for j, w in zip(rig.joints[v], rig.weights[v]) if w > 0}
        assert a == b
    assert {h: ref.bone_names[i] for h, i in ref.humanoid.items()} == {
        h: rig.bone_names[i] for h, i in rig.humanoid.items()}
    ref_chains = sorted(ref.ik_chains, key=lambda c: ref.bone_names[c.ik_bone])
    for ik_ref, ik in zip(ref_chains, sorted(rig.ik_chains, key=lambda c: rig.bone_names[c.ik_bone])):
        assert rig.bone_names[ik.ik_bone] == ref.bone_names[ik_ref.ik_bone]
        assert rig.bone_names[ik.target_bone] == ref.bone_names[ik_ref.target_bone]
        assert [rig.bone_names[k] for k in ik.links] == [ref.bone_names[k] for k in ik_ref.links]
    src = {(rig.bone_names[d["bone"]], rig.bone_names[d["source"]]) for d in rig.meta["mmd"]["inherit"]}
    assert ("左足D", "左足") in src


def test_bone_cycle_is_a_format_error(tmp_path):
    model = WModel(bones=[WBone("a", "a", (0, 0, 0), parent=1), WBone("b", "b", (0, 1, 0), parent=0)])
    with pytest.raises(FormatError, match="cycle"):
        read_pmx(write_pmx(tmp_path / "c.pmx", model))


def test_ik_chain_and_limits_in_project_frame(model_dir):
    rig = read_pmx(write_pmx(model_dir / "m.pmx", tiny_humanoid()))
    chains = {rig.bone_names[c.ik_bone]: c for c in rig.ik_chains}
    assert set(chains) == {"左足ＩＫ", "右足ＩＫ"}
    c = chains["左足ＩＫ"]
    assert rig.bone_names[c.target_bone] == "左足首"
    assert [rig.bone_names[k] for k in c.links] == ["左ひざ", "左足"]
    assert c.iterations == 40 and c.max_angle == pytest.approx(2.0)
    # MMD knee limit X in [-180, -0.5] deg becomes [0.5, 180] deg (X and Y rotations flip sign with Z).
    np.testing.assert_allclose(c.limits[0, 0], [math.radians(0.5), 0, 0], atol=1e-6)
    np.testing.assert_allclose(c.limits[0, 1], [math.pi, 0, 0], atol=1e-6)
    assert np.isnan(c.limits[1]).all()


def test_materials_flags_and_face_assignment(model_dir):
    rig = read_pmx(write_pmx(model_dir / "m.pmx", tiny_humanoid()))
    body, hair = rig.materials
    assert body.name == "体" and body.double_sided and body.alpha_mode == "OPAQUE"
    np.testing.assert_allclose(body.base_color, [1.0, 0.9, 0.8, 1.0], atol=1e-6)
    assert hair.alpha_mode == "BLEND" and not hair.double_sided
    assert hair.base_color[3] == pytest.approx(0.5)
    nf = len(rig.faces)
    assert rig.face_material.tolist() == [0] * (nf - 4) + [1] * 4


def test_texture_lookup_is_case_insensitive_with_backslashes(model_dir):
    rig = read_pmx(write_pmx(model_dir / "m.pmx", tiny_humanoid()))
    body, hair = rig.materials
    assert body.texture.shape == (8, 8, 4) and body.texture.dtype == np.uint8
    assert tuple(body.texture[0, 0]) == (*BODY_RGB, 255)
    assert hair.texture.shape == (4, 4, 4) and hair.texture[0, 0, 3] == 128 and hair.texture[0, 0, 2] == 255
    assert not rig.warnings


def test_bmp_decoded_and_dds_or_missing_give_grey_with_warning(model_dir):
    model = tiny_humanoid(textures=("FACE.BMP", "sphere.dds", "missing.png"))
    model.materials.append(WMaterial("missing", texture=2, triangles=0))
    rig = read_pmx(write_pmx(model_dir / "m.pmx", model))
    face, dds, missing = (m.texture for m in rig.materials)
    assert face.shape == (2, 4, 4) and tuple(face[0, 0]) == (0, 255, 0, 255)
    for tex in (dds, missing):
        assert tex is not None and np.all(tex[..., :3] == 128) and np.all(tex[..., 3] == 255)
    assert any("sphere.dds" in w for w in rig.warnings)
    assert any("missing.png" in w for w in rig.warnings)


def test_humanoid_map_and_meta(model_dir):
    rig = read_pmx(write_pmx(model_dir / "m.pmx", tiny_humanoid()))
    assert set(REQUIRED_BONES) <= set(rig.humanoid)
    assert rig.bone_names[rig.humanoid["hips"]] == "下半身"
    assert rig.meta["format"] == "pmx"
    assert rig.meta["licence"]["comment"] == "テスト用モデル。改変可・再配布不可"
    assert rig.meta["mmd"]["bone_names_en"][bone(rig, "左腕")] == "arm_L"
    twist = bone(rig, "右腕捩")
    assert rig.meta["mmd"]["fixed_axes"][twist] == pytest.approx([-0.6, -0.8, 0.0])
    assert rig.meta["mmd"]["local_axes"][twist] == [pytest.approx([-0.6, -0.8, 0.0]), [0.0, 0.0, -1.0]]
    assert rig.meta["mmd"]["fixed_axes"][bone(rig, "頭")] is None
    tail = rig.meta["mmd"]["tails"][bone(rig, "頭")]
    np.testing.assert_allclose(tail, [0, 19.0 * 0.08, 0], atol=1e-6)


def test_english_names_fill_in_the_humanoid_map(tmp_path):
    model = tiny_humanoid(textures=())
    model.materials[0].texture = -1
    for b in model.bones:
        b.name = "bone_" + b.name_en.replace(" ", "")  # local names unknown to the map
    rig = read_pmx(write_pmx(tmp_path / "en.pmx", model))
    assert rig.bone_names[rig.humanoid["leftUpperArm"]] == "bone_arm_L"
    assert rig.bone_names[rig.humanoid["hips"]] == "bone_lowerbody"


def test_truncated_file_is_a_format_error_naming_it(tmp_path):
    data = (write_pmx(tmp_path / "full.pmx", tiny_humanoid())).read_bytes()
    for cut in (3, 20, 100, len(data) // 2, len(data) - 5):
        p = tmp_path / f"cut{cut}.pmx"
        p.write_bytes(data[:cut])
        with pytest.raises(FormatError) as err:
            read_pmx(p)
        assert str(p) in str(err.value)


def test_not_a_pmx_and_bad_header(tmp_path):
    p = tmp_path / "x.pmx"
    p.write_bytes(b"PMD \0\0\0@")
    with pytest.raises(FormatError, match="signature"):
        read_pmx(p)
    data = bytearray(write_pmx(tmp_path / "ok.pmx", tiny_humanoid()).read_bytes())
    data[9] = 7  # text encoding
    p.write_bytes(bytes(data))
    with pytest.raises(FormatError, match="encoding"):
        read_pmx(p)
    with pytest.raises(FormatError, match="not found"):
        read_pmx(tmp_path / "absent.pmx")


def test_absurd_vertex_count_is_refused_before_allocating(tmp_path):
    data = bytearray(write_pmx(tmp_path / "ok.pmx", WModel(name="", name_en="")).read_bytes())
    # The vertex count follows the 4 empty name/comment strings (4 x int32 0) after the 17-byte header.
    off = 17 + 16
    assert data[off:off + 4] == b"\0\0\0\0"
    data[off:off + 4] = (2**31 - 1).to_bytes(4, "little")
    p = tmp_path / "huge.pmx"
    p.write_bytes(bytes(data))
    with pytest.raises(FormatError, match="vertices"):
        read_pmx(p)


def test_real_pmx_from_shared_assets():
    rig = read_pmx(mesh_files_or_skip(".pmx")[0])
    rig.check()
    assert set(REQUIRED_BONES) <= set(rig.humanoid)
    assert 0.5 < rig.height() < 3.0


def test_leg_deform_copies_are_folded_into_the_driven_bones(model_dir):
    rig = read_pmx(write_pmx(model_dir / "m.pmx", tiny_humanoid()))
    model = tiny_humanoid()
    file_index = {b.name: i for i, b in enumerate(model.bones)}

    def bones_of_triangle(name):  # the writer puts 3 vertices per file bone, at 3 * file index
        v = 3 * file_index[name]
        return {rig.bone_names[j] for j, w in zip(rig.joints[v:v + 3].ravel(), rig.weights[v:v + 3].ravel())
                if w > 0}

    assert bones_of_triangle("左足D") == {"左足"}
    assert bones_of_triangle("左ひざD") == {"左ひざ"}
    assert bones_of_triangle("右足首D") == {"右足首"}
    assert bones_of_triangle("左目") == {"左目"}  # copies 両目, but from another head: not folded
    ex = bone(rig, "左足先EX")
    assert rig.bone_names[rig.bone_parents[ex]] == "左足首"  # child of 足首D re-attached
    folded = {(rig.bone_names[d], rig.bone_names[s]) for d, s in rig.meta["mmd"]["folded"]}
    assert ("左足首D", "左足首") in folded and ("左目", "両目") not in folded
    # Posing the driven ankle moves the toe-EX triangle about the ankle head.
    q = identity_rotations(rig)
    a = math.radians(30) / 2
    q[bone(rig, "左足首")] = [math.sin(a), 0, 0, math.cos(a)]
    posed = pose_vertices(rig, q)
    v = 3 * file_index["左足先EX"]
    c, s_ = math.cos(2 * a), math.sin(2 * a)
    rot = np.array([[1, 0, 0], [0, c, -s_], [0, s_, c]])
    head = rig.bone_heads[bone(rig, "左足首")]
    np.testing.assert_allclose(posed[v], rot @ (rig.vertices[v] - head) + head, atol=1e-5)
