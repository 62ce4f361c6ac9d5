"""VRM 0.x and 1.0: humanoid tables, orientation, MToon materials, licence; files written by the tests."""

from __future__ import annotations

import numpy as np
import pytest

from conrdata.errors import RigError
from conrdata.formats import load_model
from conrdata.formats.gltf_writer import rig_to_gltf, write_glb
from conrdata.rig.apose import align_to_apose
from conrdata.rig.procedural import build_character, tpose
from tests.apose_criteria import assert_apose
from tests.conftest import mesh_files_or_skip

LICENCE = {"title": "Test Girl", "author": "Tester", "name": "CC_BY", "url": "https://example.org/licence"}


def vrm_name(n: str) -> str:
    return "J_Bip_" + n  # node names that are NOT humanoid names: the map must come from the extension


def sorted_rows(a):
    a = np.round(np.asarray(a, np.float64), 5)
    return a[np.lexsort(a.T[::-1])]


@pytest.fixture(scope="module")
def tposed():
    return tpose(build_character(1))


def check_geometry(rig, original):
    np.testing.assert_allclose(rig.bone_heads, original.bone_heads, atol=1e-5)
    used = np.unique(original.faces)
    np.testing.assert_allclose(sorted_rows(rig.vertices), sorted_rows(original.vertices[used]), atol=2e-5)


def check_apose(rig):
    assert_apose(rig)


def test_vrm0_faces_minus_z_and_is_turned(tmp_path, tposed):
    doc, binary = rig_to_gltf(tposed, bone_axes="identity", vrm="0", node_name=vrm_name, licence=LICENCE)
    # the file really faces -Z: the left leg is on -X
    left_leg_node = doc["nodes"][tposed.humanoid["leftUpperLeg"] + 1]
    assert left_leg_node["translation"][0] < 0
    rig = load_model(write_glb(tmp_path / "girl.vrm", doc, binary))
    assert rig.meta["format"] == "vrm0" and rig.meta["source_forward"] == "-Z"
    assert rig.humanoid == tposed.humanoid
    assert rig.bone_names[0] == "J_Bip_hips"
    check_geometry(rig, tposed)
    check_apose(align_to_apose(rig))


def test_vrm0_mtoon_material_properties(tmp_path, tposed):
    doc, binary = rig_to_gltf(tposed, vrm="0", node_name=vrm_name, licence=LICENCE)
    # glTF materials say nothing useful; the MToon properties must win
    for m in doc["materials"]:
        m["alphaMode"] = "OPAQUE"
        m["doubleSided"] = False
        assert "baseColorTexture" not in m["pbrMetallicRoughness"]
    doc["extensions"]["VRM"]["materialProperties"][2]["vectorProperties"]["_Color"] = [1, 0.5, 0.25, 1]
    rig = load_model(write_glb(tmp_path / "mtoon.vrm", doc, binary))
    by_name = {m.name: m for m in rig.materials}
    for m in tposed.materials:
        got = by_name[m.name]
        np.testing.assert_array_equal(got.texture, m.texture)
        assert got.alpha_mode == m.alpha_mode
        assert got.double_sided == m.double_sided
    hair = by_name["hair"]
    assert hair.alpha_mode == "MASK" and hair.alpha_cutoff == pytest.approx(0.5)
    np.testing.assert_allclose(by_name[tposed.materials[2].name].base_color, [1, 0.5, 0.25, 1])


def test_vrm0_licence_and_thumb_rename(tmp_path, tposed):
    doc, binary = rig_to_gltf(tposed, vrm="0", node_name=vrm_name, licence=LICENCE)
    hand = tposed.humanoid["leftHand"] + 1
    doc["extensions"]["VRM"]["humanoid"]["humanBones"].append({"bone": "leftThumbIntermediate", "node": hand})
    doc["extensions"]["VRM"]["humanoid"]["humanBones"].append({"bone": "notABone", "node": hand})
    rig = load_model(write_glb(tmp_path / "lic.vrm", doc, binary))
    lic = rig.meta["licence"]
    assert lic["spec"] == "VRM 0.x"
    assert lic["author"] == "Tester" and lic["licenseName"] == "CC_BY" and lic["title"] == "Test Girl"
    assert lic["commercialUssageName"] == "Allow"
    assert rig.humanoid["leftThumbProximal"] == tposed.humanoid["leftHand"]
    assert "notABone" not in rig.humanoid


def test_vrm1(tmp_path, tposed):
    doc, binary = rig_to_gltf(tposed, bone_axes="along_bone", vrm="1", node_name=vrm_name, licence=LICENCE)
    assert "VRMC_vrm" in doc["extensionsUsed"]
    rig = load_model(write_glb(tmp_path / "girl1.vrm", doc, binary))
    assert rig.meta["format"] == "vrm1" and rig.meta["source_forward"] == "+Z"
    assert rig.humanoid == tposed.humanoid
    check_geometry(rig, tposed)
    lic = rig.meta["licence"]
    assert lic["spec"] == "VRM 1.0" and lic["authors"] == ["Tester"]
    assert lic["licenseUrl"] == LICENCE["url"] and lic["name"] == "Test Girl"
    by_name = {m.name: m for m in rig.materials}
    for orig in tposed.materials:
        np.testing.assert_array_equal(by_name[orig.name].texture, orig.texture)
        assert by_name[orig.name].alpha_mode == orig.alpha_mode
    check_apose(align_to_apose(rig))


def test_vrm_without_humanoid_table(tmp_path, tposed):
    doc, binary = rig_to_gltf(tposed, vrm="1", node_name=vrm_name)
    doc["extensions"]["VRMC_vrm"]["humanoid"]["humanBones"] = {}
    rig = load_model(write_glb(tmp_path / "nohum.vrm", doc, binary))
    with pytest.raises(RigError, match="humanoid bones not found: hips"):
        align_to_apose(rig)


def test_vrm_humanoid_node_out_of_range_is_ignored(tmp_path, tposed):
    doc, binary = rig_to_gltf(tposed, vrm="1", node_name=vrm_name)
    doc["extensions"]["VRMC_vrm"]["humanoid"]["humanBones"]["jaw"] = {"node": 10_000}
    rig = load_model(write_glb(tmp_path / "oor.vrm", doc, binary))
    assert "jaw" not in rig.humanoid and rig.humanoid["hips"] == 0


@pytest.mark.parametrize("sub", ["vrm0", "vrm1"])
def test_real_vrm_assets_convert(sub):
    for f in mesh_files_or_skip(".vrm", vrm=sub[-1]):
        check_apose(align_to_apose(load_model(f)))
