"""glTF 2.0 documents and skinned glTF/GLB -> Rig, on files these tests write themselves."""

from __future__ import annotations

import base64
import copy
import json
import struct

import numpy as np
import pytest

from conrdata.errors import FormatError, RigError, UserError
from conrdata.formats import load_model
from conrdata.formats.gltf import GltfDocument
from conrdata.formats.gltf_writer import glb_bytes, rig_to_gltf, write_glb
from conrdata.rig.apose import align_to_apose, measure_apose
from conrdata.rig.procedural import build_character, tpose
from conrdata.synth.convert import prepare_model
from tests.apose_criteria import assert_apose
from tests.conftest import mesh_files_or_skip

MIXAMO = {
    "hips": "Hips", "spine": "Spine", "chest": "Spine1", "neck": "Neck", "head": "Head",
    "leftShoulder": "LeftShoulder", "leftUpperArm": "LeftArm", "leftLowerArm": "LeftForeArm",
    "leftHand": "LeftHand", "leftUpperLeg": "LeftUpLeg", "leftLowerLeg": "LeftLeg", "leftFoot": "LeftFoot",
    "leftToes": "LeftToeBase",
}
MIXAMO.update({k.replace("left", "right"): v.replace("Left", "Right") for k, v in list(MIXAMO.items())
               if k.startswith("left")})


@pytest.fixture(scope="module")
def canonical():
    return build_character(2)


@pytest.fixture(scope="module")
def tposed(canonical):
    return tpose(canonical)


def sorted_rows(a: np.ndarray) -> np.ndarray:
    a = np.round(np.asarray(a, np.float64), 5)
    return a[np.lexsort(a.T[::-1])]


def data_uri(raw: bytes) -> str:
    return "data:application/octet-stream;base64," + base64.b64encode(raw).decode()


def doc_with_buffer(raw: bytes, views: list[dict], accessors: list[dict]) -> bytes:
    doc = {"asset": {"version": "2.0"}, "buffers": [{"byteLength": len(raw), "uri": data_uri(raw)}],
           "bufferViews": views, "accessors": accessors}
    return json.dumps(doc).encode()


# --------------------------------------------------------------------------- accessors


def test_accessor_interleaved_normalised_sparse_and_matrices(tmp_path):
    pos = np.array([[1, 2, 3], [4, 5, 6], [7, 8, 9]], np.float32)
    uv = np.array([[0.1, 0.2], [0.3, 0.4], [0.5, 0.6]], np.float32)
    inter = b"".join(pos[i].tobytes() + uv[i].tobytes() for i in range(3))  # stride 20
    weights = np.array([[255, 0, 0, 0], [128, 127, 0, 0]], np.uint8).tobytes()
    shorts = np.array([-32768, 32767, 0, 0], np.int16).tobytes()
    m = np.eye(4)
    m[:3, 3] = [1, 2, 3]
    mat = m.T.astype(np.float32).tobytes()  # glTF stores column-major
    sp_idx = np.array([1, 3], np.uint16).tobytes()
    sp_val = np.array([[1, 2, 3], [4, 5, 6]], np.float32).tobytes()
    chunks = [inter, weights, shorts, mat, sp_idx, sp_val]
    raw, views = b"", []
    for c in chunks:
        raw += b"\0" * (-len(raw) % 4)
        views.append({"buffer": 0, "byteOffset": len(raw), "byteLength": len(c)})
        raw += c
    views[0]["byteStride"] = 20
    accessors = [
        {"bufferView": 0, "componentType": 5126, "count": 3, "type": "VEC3"},
        {"bufferView": 0, "byteOffset": 12, "componentType": 5126, "count": 3, "type": "VEC2"},
        {"bufferView": 1, "componentType": 5121, "count": 2, "type": "VEC4", "normalized": True},
        {"bufferView": 2, "componentType": 5122, "count": 4, "type": "SCALAR", "normalized": True},
        {"bufferView": 3, "componentType": 5126, "count": 1, "type": "MAT4"},
        {"componentType": 5126, "count": 5, "type": "VEC3",
         "sparse": {"count": 2, "indices": {"bufferView": 4, "componentType": 5123},
                    "values": {"bufferView": 5}}},
        {"bufferView": 1, "componentType": 5121, "count": 2, "type": "VEC4"},
    ]
    path = tmp_path / "a.gltf"
    path.write_bytes(doc_with_buffer(raw, views, accessors))
    doc = GltfDocument.open(path)
    np.testing.assert_array_equal(doc.accessor(0), pos)
    np.testing.assert_array_equal(doc.accessor(1), uv)
    np.testing.assert_allclose(doc.accessor(2), [[1, 0, 0, 0], [128 / 255, 127 / 255, 0, 0]], atol=1e-7)
    np.testing.assert_allclose(doc.accessor(3), [-1, 1, 0, 0])
    np.testing.assert_allclose(doc.accessor(4)[0], m)
    expected = np.zeros((5, 3), np.float32)
    expected[1], expected[3] = [1, 2, 3], [4, 5, 6]
    np.testing.assert_array_equal(doc.accessor(5), expected)
    raw_w = doc.accessor(6)
    assert raw_w.dtype == np.uint8 and raw_w[1, 0] == 128
    assert doc.accessor(0) is not doc.accessor(0)  # callers get their own copy
    import pygltflib

    assert isinstance(doc.gltf, pygltflib.GLTF2) and len(doc.gltf.accessors) == 7


@pytest.mark.parametrize(
    "change, message",
    [
        ({"count": 10**12}, "more than the buffers hold"),
        ({"count": 4}, "claims|needs"),
        ({"byteOffset": 36}, "needs"),
        ({"componentType": 1}, "componentType"),
        ({"type": "VEC7"}, "type"),
        ({"bufferView": 9}, "bufferViews"),
        ({"count": -1}, "non-negative"),
    ],
)
def test_accessor_errors(tmp_path, change, message):
    raw = np.zeros(9, np.float32).tobytes()
    acc = {"bufferView": 0, "componentType": 5126, "count": 3, "type": "VEC3"}
    acc.update(change)
    path = tmp_path / "bad.gltf"
    path.write_bytes(doc_with_buffer(raw, [{"buffer": 0, "byteLength": 36}], [acc]))
    with pytest.raises(FormatError, match=message) as err:
        GltfDocument.open(path).accessor(0)
    assert str(path) in str(err.value)


def test_stride_smaller_than_element(tmp_path):
    raw = np.zeros(9, np.float32).tobytes()
    path = tmp_path / "s.gltf"
    path.write_bytes(doc_with_buffer(raw, [{"buffer": 0, "byteLength": 36, "byteStride": 4}],
                                     [{"bufferView": 0, "componentType": 5126, "count": 3, "type": "VEC3"}]))
    with pytest.raises(FormatError, match="byteStride"):
        GltfDocument.open(path).accessor(0)


# --------------------------------------------------------------------------- rigs from files


def check_same_geometry(loaded, original):
    np.testing.assert_allclose(loaded.bone_heads, original.bone_heads, atol=1e-5)
    assert len(loaded.bone_names) == len(original.bone_names)
    np.testing.assert_array_equal(loaded.bone_parents, original.bone_parents)
    used = np.unique(original.faces)
    np.testing.assert_allclose(sorted_rows(loaded.vertices), sorted_rows(original.vertices[used]), atol=2e-5)
    assert len(loaded.faces) == len(original.faces)
    np.testing.assert_allclose(loaded.weights.sum(1), 1, atol=1e-6)


def test_glb_with_bone_axes_and_tpose(tmp_path, tposed):
    path = write_glb(tmp_path / "t.glb", *rig_to_gltf(tposed, bone_axes="along_bone"))
    rig = load_model(path)
    check_same_geometry(rig, tposed)
    assert rig.humanoid == tposed.humanoid  # bone names are humanoid names
    assert rig.meta["format"] == "glb"
    # materials survive: textures, alpha modes, double-sided
    by_name = {m.name: m for m in rig.materials}
    for m in tposed.materials:
        got = by_name[m.name]
        np.testing.assert_array_equal(got.texture, m.texture)
        assert (got.alpha_mode, got.double_sided) == (m.alpha_mode, m.double_sided)
        assert got.alpha_cutoff == pytest.approx(m.alpha_cutoff)
    # the skin is the file's: posing an arm moves the hand vertices
    np.testing.assert_allclose(np.linalg.norm(rig.normals, axis=1), 1, atol=1e-5)


def test_scaled_armature_and_integer_weights(tmp_path, tposed):
    for fmt in ("u8", "u16"):
        doc, binary = rig_to_gltf(tposed, bone_axes="along_bone", armature_scale=0.01, weights_format=fmt)
        assert doc["nodes"][0]["scale"] == [0.01] * 3
        rig = load_model(write_glb(tmp_path / f"s_{fmt}.glb", doc, binary))
        check_same_geometry(rig, tposed)


def test_gltf_with_external_files_case_insensitive(tmp_path, tposed):
    doc, binary = rig_to_gltf(tposed, bone_axes="along_bone")
    (tmp_path / "model.bin").write_bytes(binary)
    doc["buffers"][0]["uri"] = "model.bin"
    (tmp_path / "Tex").mkdir()
    for i, img in enumerate(doc["images"]):
        view = doc["bufferViews"][img.pop("bufferView")]
        raw = binary[view["byteOffset"]: view["byteOffset"] + view["byteLength"]]
        (tmp_path / "Tex" / f"IMAGE_{i}.PNG").write_bytes(raw)
        img["uri"] = f"tex/image_{i}.png"  # different case on disk
    path = tmp_path / "model.gltf"
    path.write_text(json.dumps(doc))
    rig = load_model(path)
    check_same_geometry(rig, tposed)
    assert not rig.warnings
    assert all(m.texture.shape[0] > 4 for m in rig.materials)

    # data-URI buffer, same result
    doc2 = copy.deepcopy(doc)
    doc2["buffers"][0]["uri"] = data_uri(binary)
    (tmp_path / "inline.gltf").write_text(json.dumps(doc2))
    check_same_geometry(load_model(tmp_path / "inline.gltf"), tposed)


def test_missing_texture_gives_grey_and_warning(tmp_path, tposed):
    doc, binary = rig_to_gltf(tposed)
    doc["images"][1] = {"uri": "nowhere/face.png"}
    rig = load_model(write_glb(tmp_path / "m.glb", doc, binary))
    assert any("not found" in w for w in rig.warnings)
    grey = [m for m in rig.materials if m.texture is not None and m.texture.shape == (4, 4, 4)]
    assert grey and np.all(grey[0].texture[..., :3] == 128)


def test_mixamo_names_map_to_humanoid(tmp_path, tposed):
    doc, binary = rig_to_gltf(tposed, bone_axes="along_bone",
                              node_name=lambda n: "mixamorig:" + MIXAMO.get(n, n))
    rig = load_model(write_glb(tmp_path / "mixamo.glb", doc, binary))
    for h, b in tposed.humanoid.items():
        assert rig.humanoid.get(h) == b, h
    aligned = align_to_apose(rig)
    assert abs(measure_apose(aligned)["left_arm_drop_deg"] - 45) < 1


def append_accessor(doc: dict, binary: bytearray, arr: np.ndarray, ctype: int, atype: str) -> int:
    while len(binary) % 4:
        binary.append(0)
    doc["bufferViews"].append({"buffer": 0, "byteOffset": len(binary), "byteLength": arr.nbytes})
    binary += arr.tobytes()
    doc["buffers"][0]["byteLength"] = len(binary)
    acc = {"bufferView": len(doc["bufferViews"]) - 1, "componentType": ctype, "count": len(arr),
           "type": atype}
    if atype == "VEC3" and ctype == 5126:
        acc["min"], acc["max"] = arr.min(0).tolist(), arr.max(0).tolist()
    doc["accessors"].append(acc)
    return len(doc["accessors"]) - 1


def test_unskinned_mesh_under_a_joint_and_morph_targets(tmp_path, tposed):
    doc, binary = rig_to_gltf(tposed)
    binary = bytearray(binary)
    tri = np.array([[0, 0, 0], [0.1, 0, 0], [0, 0.1, 0]], np.float32)
    pos = append_accessor(doc, binary, tri, 5126, "VEC3")
    idx = append_accessor(doc, binary, np.array([0, 1, 2], np.uint16), 5123, "SCALAR")
    doc["meshes"].append({"name": "hat", "primitives": [{"attributes": {"POSITION": pos}, "indices": idx,
                                                          "targets": [{"POSITION": pos}]}]})
    head_node = tposed.humanoid["head"] + 1
    doc["nodes"].append({"name": "hat", "mesh": 1, "translation": [0, 0.2, 0]})
    doc["nodes"][head_node].setdefault("children", []).append(len(doc["nodes"]) - 1)
    rig = load_model(write_glb(tmp_path / "hat.glb", doc, bytes(binary)))
    default = [m.name for m in rig.materials].index("default")  # the hat has no material
    hat = np.unique(rig.faces[rig.face_material == default])
    assert len(hat) == 3
    assert np.all(rig.joints[hat, 0] == tposed.humanoid["head"]) and np.all(rig.weights[hat, 0] == 1)
    expected = tri + tposed.bone_heads[tposed.humanoid["head"]] + [0, 0.2, 0]
    np.testing.assert_allclose(rig.vertices[hat], expected, atol=1e-6)
    assert any("morph targets" in w for w in rig.warnings)


# --------------------------------------------------------------------------- bad input


@pytest.fixture(scope="module")
def glb_bytes_ok(tposed):
    return glb_bytes(*rig_to_gltf(tposed))


def test_truncated_glb(tmp_path, glb_bytes_ok):
    for cut in (0, 7, 20, len(glb_bytes_ok) // 2, len(glb_bytes_ok) - 1):
        path = tmp_path / f"cut{cut}.glb"
        path.write_bytes(glb_bytes_ok[:cut])
        with pytest.raises(FormatError) as err:
            load_model(path)
        assert str(path) in str(err.value)


def test_corrupt_json(tmp_path, glb_bytes_ok):
    data = bytearray(glb_bytes_ok)
    data[20] = ord("}")  # first bytes of the JSON chunk
    path = tmp_path / "json.glb"
    path.write_bytes(bytes(data))
    with pytest.raises(FormatError, match="corrupt glTF JSON"):
        load_model(path)
    (tmp_path / "x.gltf").write_text('{"asset": {"version": "2.0"}, "nodes": [')
    with pytest.raises(FormatError, match="corrupt glTF JSON"):
        load_model(tmp_path / "x.gltf")
    (tmp_path / "v1.gltf").write_text('{"asset": {"version": "1.0"}}')
    with pytest.raises(FormatError, match="2.0"):
        load_model(tmp_path / "v1.gltf")


def test_not_a_model_and_unsupported_extension(tmp_path):
    (tmp_path / "a.glb").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 30)
    with pytest.raises(FormatError):
        load_model(tmp_path / "a.glb")
    (tmp_path / "a.fbx").write_bytes(b"x")
    with pytest.raises(UserError, match="unsupported model format"):
        load_model(tmp_path / "a.fbx")
    with pytest.raises(FormatError, match="cannot read"):
        load_model(tmp_path / "missing.glb")


def test_no_skin(tmp_path, tposed):
    doc, binary = rig_to_gltf(tposed)
    del doc["skins"]
    del doc["nodes"][-1]["skin"]
    with pytest.raises(RigError, match="no skin"):
        load_model(write_glb(tmp_path / "static.glb", doc, binary))


def test_no_humanoid_bones(tmp_path, tposed):
    doc, binary = rig_to_gltf(tposed, node_name=lambda n: "b" + str(abs(hash(n)) % 10**6))
    rig = load_model(write_glb(tmp_path / "anon.glb", doc, binary))
    with pytest.raises(RigError, match="humanoid bones not found"):
        align_to_apose(rig)


def test_missing_external_buffer(tmp_path, tposed):
    doc, _ = rig_to_gltf(tposed)
    doc["buffers"][0]["uri"] = "gone.bin"
    (tmp_path / "m.gltf").write_text(json.dumps(doc))
    with pytest.raises(FormatError, match="gone.bin"):
        load_model(tmp_path / "m.gltf")


def test_index_out_of_range(tmp_path, tposed):
    doc, binary = rig_to_gltf(tposed)
    prim = doc["meshes"][0]["primitives"][0]
    acc = doc["accessors"][prim["indices"]]
    view = doc["bufferViews"][acc["bufferView"]]
    binary = bytearray(binary)
    struct.pack_into("<H", binary, view["byteOffset"], 60000)
    with pytest.raises(FormatError, match="out of range"):
        load_model(write_glb(tmp_path / "idx.glb", doc, bytes(binary)))


def test_node_cycle(tmp_path, tposed):
    doc, binary = rig_to_gltf(tposed)
    doc["nodes"][2].setdefault("children", []).append(1)  # spine -> hips: a cycle
    with pytest.raises(FormatError, match="parent|cycle"):
        load_model(write_glb(tmp_path / "cyc.glb", doc, binary))


def test_real_gltf_assets_convert():
    for f in mesh_files_or_skip(".glb", ".gltf"):
        assert_apose(prepare_model(f))
