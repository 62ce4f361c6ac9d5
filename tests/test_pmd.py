"""PMD reader, on files written by tests/mmd_writer.py (no real PMD sample is in the repository)."""

import math

import numpy as np
import pytest

from conrdata.errors import FormatError
from conrdata.formats.pmd import read_pmd, split_texture_field
from conrdata.formats.pmx import read_pmx
from conrdata.rig.humanoid import REQUIRED_BONES
from conrdata.rig.model import identity_rotations, pose_vertices
from tests.conftest import mesh_files_or_skip
from tests.mmd_writer import tiny_humanoid, write_pmd, write_pmx, write_textures


@pytest.fixture
def model_dir(tmp_path):
    write_textures(tmp_path)
    return tmp_path


def test_geometry_and_bones_match_the_pmx_reading(model_dir):
    model = tiny_humanoid()
    pmd = read_pmd(write_pmd(model_dir / "m.pmd", model))
    pmx = read_pmx(write_pmx(model_dir / "m.pmx", model))
    pmd.check()
    assert pmd.bone_names == pmx.bone_names  # Shift-JIS names decoded
    for field in ("vertices", "normals", "uvs", "faces", "bone_parents", "bone_heads", "face_material"):
        np.testing.assert_allclose(getattr(pmd, field), getattr(pmx, field), atol=1e-6, err_msg=field)
    assert pmd.humanoid == pmx.humanoid
    assert set(REQUIRED_BONES) <= set(pmd.humanoid)
    # 左腕 at MMD (1.4, 15.6, 0.2) -> metres, Z negated.
    arm = pmd.bone_names.index("左腕")
    np.testing.assert_allclose(pmd.bone_heads[arm], [0.112, 1.248, -0.016], atol=1e-6)
    np.testing.assert_allclose(pose_vertices(pmd, identity_rotations(pmd)), pmd.vertices, atol=1e-5)


def test_two_bone_weights_from_0_to_100(model_dir):
    rig = read_pmd(write_pmd(model_dir / "m.pmd", tiny_humanoid()))
    names = rig.bone_names

    def weights_of(v):
        return {names[j]: round(float(w), 6) for j, w in zip(rig.joints[v], rig.weights[v]) if w > 0}

    assert weights_of(0) == {"センター": 1.0}
    assert weights_of(1) == {"センター": 0.25, "下半身": 0.75}
    # PMD keeps only two bones: the BDEF4 vertex becomes 20/80 on its first two bones.
    assert weights_of(4) == {"下半身": 0.2, "上半身": 0.8}
    np.testing.assert_allclose(rig.weights.sum(axis=1), 1.0, atol=1e-6)


def test_names_meta_and_optional_english_extension(model_dir):
    rig = read_pmd(write_pmd(model_dir / "m.pmd", tiny_humanoid()))
    assert rig.meta["format"] == "pmd"
    assert rig.meta["name"] == "テストモデル" and rig.meta["name_en"] == "test model"
    assert rig.meta["licence"]["comment"] == "テスト用モデル。改変可・再配布不可"
    assert rig.meta["mmd"]["bone_names_en"][rig.bone_names.index("左ひじ")] == "elbow_L"
    bare = read_pmd(write_pmd(model_dir / "bare.pmd", tiny_humanoid(), english=False, toon_and_physics=False))
    assert bare.bone_names == rig.bone_names
    assert "name_en" not in bare.meta
    assert set(bare.meta["mmd"]["bone_names_en"]) == {""}


def test_ik_list_with_knee_limit_and_inherit_bones(model_dir):
    rig = read_pmd(write_pmd(model_dir / "m.pmd", tiny_humanoid()))
    chains = {rig.bone_names[c.ik_bone]: c for c in rig.ik_chains}
    assert set(chains) == {"左足ＩＫ", "右足ＩＫ"}
    c = chains["右足ＩＫ"]
    assert rig.bone_names[c.target_bone] == "右足首"
    assert [rig.bone_names[k] for k in c.links] == ["右ひざ", "右足"]
    assert c.iterations == 40 and c.max_angle == pytest.approx(2.0)  # stored as 2.0 / 4
    np.testing.assert_allclose(c.limits[0], [[math.radians(0.5), 0, 0], [math.pi, 0, 0]], atol=1e-6)
    assert np.isnan(c.limits[1]).all()
    inherit = {(rig.bone_names[d["bone"]], rig.bone_names[d["source"]], d["weight"])
               for d in rig.meta["mmd"]["inherit"]}
    expected = {(f"{side}{b}D", f"{side}{b}", 1.0) for side in "左右" for b in ("足", "ひざ", "足首")}
    assert inherit == expected  # bone type 5
    folded = {(rig.bone_names[d], rig.bone_names[s]) for d, s in rig.meta["mmd"]["folded"]}
    assert folded == {(d, s) for d, s, _ in expected}


def test_texture_field_with_sphere_and_materials(model_dir):
    assert split_texture_field("a.png*sphere.spa") == "a.png"
    assert split_texture_field("sphere.sph*a.bmp") == "a.bmp"
    assert split_texture_field("only.spa") == ""
    assert split_texture_field("") == ""
    rig = read_pmd(write_pmd(model_dir / "m.pmd", tiny_humanoid()))
    body, hair = rig.materials
    assert body.alpha_mode == "OPAQUE" and not body.double_sided
    assert tuple(body.texture[0, 0, :3]) == (200, 40, 10)  # tex\Body.PNG found as tex/body.png
    # "hair.tga*hair.spa": the TGA is used, the sphere map ignored; alpha 0.5 -> blended, both sides.
    assert hair.texture.shape == (4, 4, 4) and hair.texture[0, 0, 3] == 128
    assert hair.alpha_mode == "BLEND" and hair.double_sided
    assert not rig.warnings


def test_truncated_or_foreign_file_is_a_format_error(tmp_path):
    data = write_pmd(tmp_path / "full.pmd", tiny_humanoid()).read_bytes()
    for cut in (2, 10, 300, len(data) // 3, len(data) // 2):
        p = tmp_path / f"cut{cut}.pmd"
        p.write_bytes(data[:cut])
        with pytest.raises(FormatError) as err:
            read_pmd(p)
        assert str(p) in str(err.value)
    p = tmp_path / "x.pmd"
    p.write_bytes(b"PMX \0\0\0@")
    with pytest.raises(FormatError, match="signature"):
        read_pmd(p)


def test_real_pmd_from_shared_assets():
    rig = read_pmd(mesh_files_or_skip(".pmd")[0])
    rig.check()
    assert set(REQUIRED_BONES) <= set(rig.humanoid)
