"""Write a Rig as a skinned glTF 2.0 binary (plain glTF, VRM 0.x or VRM 1.0).

Used by ``conrdata make-character`` (the procedural character as a GLB that
``convert`` reads like any artist's file) and by the tests, which need real
files with the features readers must cope with: bone rest rotations, scaled
armatures, per-material primitives, normalised-integer weights, VRM's -Z
facing (0.x), MToon material properties, licence metadata.

Frames: the Rig is in the project frame (+Y up, facing +Z, metres). With
``vrm="0"`` the whole model is turned 180 degrees about +Y on write, because
VRM 0.x characters face -Z.
"""

from __future__ import annotations

import io
import json
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from conrdata.rig.model import Rig
from conrdata.rig.rotations import quat_from_matrix, shortest_arc

FLOAT, UBYTE, USHORT, UINT = 5126, 5121, 5123, 5125


class _Bin:
    """Accumulates one binary buffer with bufferViews and accessors."""

    def __init__(self):
        self.data = bytearray()
        self.views: list[dict] = []
        self.accessors: list[dict] = []

    def view(self, raw: bytes, target: int | None = None) -> int:
        while len(self.data) % 4:
            self.data.append(0)
        v = {"buffer": 0, "byteOffset": len(self.data), "byteLength": len(raw)}
        if target is not None:
            v["target"] = target
        self.data += raw
        self.views.append(v)
        return len(self.views) - 1

    def accessor(self, arr: np.ndarray, ctype: int, atype: str, target: int | None = None,
                 normalized: bool = False, minmax: bool = False) -> int:
        dtype = {FLOAT: "<f4", UBYTE: "<u1", USHORT: "<u2", UINT: "<u4"}[ctype]
        a = np.ascontiguousarray(arr, dtype=dtype)
        acc = {"bufferView": self.view(a.tobytes(), target), "componentType": ctype,
               "count": int(a.shape[0]), "type": atype}
        if normalized:
            acc["normalized"] = True
        if minmax:
            flat = a.reshape(a.shape[0], -1)
            acc["min"] = [float(x) for x in flat.min(0)]
            acc["max"] = [float(x) for x in flat.max(0)]
        self.accessors.append(acc)
        return len(self.accessors) - 1


def _bone_rotations(rig: Rig, heads: np.ndarray, mode: str) -> np.ndarray:
    """World rest rotation (B, 3, 3) of each joint node: identity, or local +Y along the bone."""
    B = rig.num_bones
    rots = np.tile(np.eye(3), (B, 1, 1))
    if mode == "identity":
        return rots
    if mode != "along_bone":
        raise ValueError(f"bone_axes must be 'identity' or 'along_bone', got {mode!r}")
    first_child = {}
    for b, p in enumerate(rig.bone_parents):
        if p >= 0 and p not in first_child:
            first_child[int(p)] = b
    for b in range(B):
        if b in first_child:
            d = heads[first_child[b]] - heads[b]
        elif rig.bone_parents[b] >= 0:
            d = heads[b] - heads[rig.bone_parents[b]]
        else:
            d = np.array([0.0, 1.0, 0.0])
        if np.linalg.norm(d) < 1e-9:
            d = np.array([0.0, 1.0, 0.0])
        rots[b] = shortest_arc(np.array([0.0, 1.0, 0.0]), d, spare_axes=((1.0, 0.0, 0.0), (0.0, 0.0, 1.0)))
    return rots


def _png(texture: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(texture, np.uint8), "RGBA").save(buf, "PNG")
    return buf.getvalue()


def rig_to_gltf(
    rig: Rig,
    *,
    bone_axes: str = "identity",
    vrm: str | None = None,
    node_name: Callable[[str], str] | None = None,
    armature_scale: float = 1.0,
    weights_format: str = "float",
    licence: dict | None = None,
) -> tuple[dict, bytes]:
    """Build the glTF JSON and the binary buffer for ``rig``.

    ``bone_axes``: "identity" (joint nodes without rotation) or "along_bone"
    (each joint's local +Y points at its first child, as Blender exports).
    ``vrm``: None, "0" (VRM 0.x: ``VRM`` extension, model turned to face -Z,
    MToon ``_MainTex``/``_Color``) or "1" (VRM 1.0: ``VRMC_vrm``, KHR_materials_unlit).
    ``node_name`` renames joint nodes (e.g. to test that VRM maps bones by its
    humanoid table, not names). ``armature_scale`` puts the skeleton under an
    ``Armature`` node of that uniform scale (joint translations divided by it).
    ``weights_format``: "float", "u8" or "u16" (normalised integers).
    """
    flip = np.diag([-1.0, 1.0, -1.0]) if vrm == "0" else np.eye(3)
    verts = rig.vertices.astype(np.float64) @ flip.T
    normals = rig.normals.astype(np.float64) @ flip.T
    heads = rig.bone_heads.astype(np.float64) @ flip.T
    B = rig.num_bones
    rename = node_name or (lambda n: n)
    world_r = _bone_rotations(rig, heads, bone_axes)
    # Joint world matrices include the armature's scale: G_b = [s R_b | head_b].
    world = np.tile(np.eye(4), (B, 1, 1))
    world[:, :3, :3] = world_r * armature_scale
    world[:, :3, 3] = heads
    arm = np.diag([armature_scale] * 3 + [1.0])

    nodes: list[dict] = [{"name": "Armature", "children": []}]
    if armature_scale != 1.0:
        nodes[0]["scale"] = [float(armature_scale)] * 3
    for b in range(B):
        p = int(rig.bone_parents[b])
        local = np.linalg.inv(arm if p < 0 else world[p]) @ world[b]
        node = {"name": rename(rig.bone_names[b]), "translation": [float(x) for x in local[:3, 3]]}
        if bone_axes != "identity":
            node["rotation"] = [float(x) for x in quat_from_matrix(local[:3, :3])]
        nodes.append(node)
        if p < 0:
            nodes[0]["children"].append(b + 1)
        else:
            nodes[p + 1].setdefault("children", []).append(b + 1)
    mesh_node = len(nodes)
    nodes.append({"name": "Body", "mesh": 0, "skin": 0})

    out = _Bin()
    inverse_bind = np.linalg.inv(world)
    ibm = out.accessor(inverse_bind.transpose(0, 2, 1).reshape(B, 16), FLOAT, "MAT4")

    images, textures, materials = [], [], []
    tex_of_mat: list[int | None] = []
    for m in rig.materials:
        t_index = None
        if m.texture is not None:
            images.append({"bufferView": out.view(_png(m.texture)), "mimeType": "image/png",
                           "name": f"{m.name}_tex"})
            textures.append({"source": len(images) - 1, "sampler": 0})
            t_index = len(textures) - 1
        tex_of_mat.append(t_index)
        pbr = {"baseColorFactor": [float(x) for x in m.base_color], "metallicFactor": 0.0,
               "roughnessFactor": 1.0}
        if t_index is not None and vrm != "0":
            pbr["baseColorTexture"] = {"index": t_index}
        mat = {"name": m.name, "pbrMetallicRoughness": pbr, "alphaMode": m.alpha_mode,
               "doubleSided": bool(m.double_sided)}
        if m.alpha_mode == "MASK":
            mat["alphaCutoff"] = float(m.alpha_cutoff)
        if vrm == "1":
            mat["extensions"] = {"KHR_materials_unlit": {}}
        materials.append(mat)

    primitives = []
    for mi in range(len(rig.materials)):
        fm = rig.faces[rig.face_material == mi]
        if not len(fm):
            continue
        used, inv = np.unique(fm.reshape(-1), return_inverse=True)
        idx = inv.reshape(-1, 3)
        attrs = {
            "POSITION": out.accessor(verts[used], FLOAT, "VEC3", 34962, minmax=True),
            "NORMAL": out.accessor(normals[used], FLOAT, "VEC3", 34962),
            "TEXCOORD_0": out.accessor(rig.uvs[used], FLOAT, "VEC2", 34962),
            "JOINTS_0": out.accessor(rig.joints[used], USHORT, "VEC4", 34962),
            "WEIGHTS_0": _weights_accessor(out, rig.weights[used], weights_format),
        }
        ctype = USHORT if len(used) < 65535 else UINT
        indices = out.accessor(idx.reshape(-1), ctype, "SCALAR", 34963)
        primitives.append({"attributes": attrs, "indices": indices, "material": mi, "mode": 4})

    doc: dict = {
        "asset": {"version": "2.0", "generator": "conr-toolkit gltf_writer"},
        "scene": 0,
        "scenes": [{"nodes": [0, mesh_node]}],
        "nodes": nodes,
        "meshes": [{"name": "Body", "primitives": primitives}],
        "skins": [{"joints": list(range(1, B + 1)), "inverseBindMatrices": ibm, "skeleton": 0}],
        "materials": materials,
        "samplers": [{"magFilter": 9729, "minFilter": 9987, "wrapS": 10497, "wrapT": 10497}],
    }
    if images:
        doc["images"] = images
        doc["textures"] = textures
    lic = dict(licence or rig.meta.get("licence") or {})
    if lic.get("copyright") or lic.get("name"):
        text = lic.get("copyright") or f"{lic['name']} {lic.get('author', '')}".strip()
        doc["asset"]["copyright"] = str(text)
    humanoid_nodes = {h: b + 1 for h, b in rig.humanoid.items()}
    if vrm == "0":
        doc["extensionsUsed"] = ["VRM"]
        doc["extensions"] = {"VRM": _vrm0_extension(rig, humanoid_nodes, tex_of_mat, lic)}
    elif vrm == "1":
        doc["extensionsUsed"] = ["VRMC_vrm", "KHR_materials_unlit"]
        doc["extensions"] = {"VRMC_vrm": {
            "specVersion": "1.0",
            "meta": {
                "name": str(lic.get("title", "procedural character")),
                "version": "1",
                "authors": [str(lic.get("author", "conr-toolkit"))],
                "licenseUrl": str(lic.get("url", "https://vrm.dev/licenses/1.0/")),
                "avatarPermission": "everyone",
                "commercialUsage": "corporation",
                "allowRedistribution": True,
                "modification": "allowModificationRedistribution",
            },
            "humanoid": {"humanBones": {h: {"node": n} for h, n in humanoid_nodes.items()}},
        }}
    elif vrm is not None:
        raise ValueError(f"vrm must be None, '0' or '1', got {vrm!r}")
    while len(out.data) % 4:
        out.data.append(0)
    doc["bufferViews"] = out.views
    doc["accessors"] = out.accessors
    doc["buffers"] = [{"byteLength": len(out.data)}]
    return doc, bytes(out.data)


def _weights_accessor(out: _Bin, w: np.ndarray, fmt: str) -> int:
    if fmt == "float":
        return out.accessor(w, FLOAT, "VEC4", 34962)
    top = {"u8": 255, "u16": 65535}.get(fmt)
    if top is None:
        raise ValueError(f"weights_format must be float, u8 or u16, got {fmt!r}")
    q = np.round(w * top).astype(np.int64)
    q[:, 0] += top - q.sum(1)  # exact sums, as exporters do
    return out.accessor(q, UBYTE if fmt == "u8" else USHORT, "VEC4", 34962, normalized=True)


def _vrm0_extension(rig: Rig, humanoid_nodes: dict[str, int], tex_of_mat: list, lic: dict) -> dict:
    props = []
    for m, t in zip(rig.materials, tex_of_mat):
        blend = {"OPAQUE": 0, "MASK": 1, "BLEND": 2}[m.alpha_mode]
        props.append({
            "name": m.name,
            "shader": "VRM/MToon",
            "renderQueue": 2000 if blend == 0 else 2450,
            "floatProperties": {"_Cutoff": float(m.alpha_cutoff), "_BlendMode": blend,
                                "_CullMode": 0 if m.double_sided else 2},
            "vectorProperties": {"_Color": [float(x) for x in m.base_color]},
            "textureProperties": {} if t is None else {"_MainTex": t},
            "keywordMap": {"_ALPHATEST_ON": True} if blend == 1 else {},
            "tagMap": {"RenderType": ["Opaque", "TransparentCutout", "Transparent"][blend]},
        })
    return {
        "exporterVersion": "conr-toolkit",
        "specVersion": "0.0",
        "meta": {
            "title": str(lic.get("title", "procedural character")),
            "version": "1",
            "author": str(lic.get("author", "conr-toolkit")),
            "allowedUserName": "Everyone",
            "violentUssageName": "Disallow",
            "sexualUssageName": "Disallow",
            "commercialUssageName": "Allow",
            "licenseName": str(lic.get("name", "CC0")),
            "otherLicenseUrl": "",
        },
        "humanoid": {"humanBones": [{"bone": h, "node": n, "useDefaultValues": True}
                                    for h, n in humanoid_nodes.items()]},
        "materialProperties": props,
    }


def glb_bytes(doc: dict, binary: bytes) -> bytes:
    """Pack JSON and binary into a GLB container (JSON padded with spaces, BIN with zeros)."""
    js = json.dumps(doc, separators=(",", ":")).encode("utf-8")
    js += b" " * (-len(js) % 4)
    binary = bytes(binary) + b"\0" * (-len(binary) % 4)
    chunks = struct.pack("<II", len(js), 0x4E4F534A) + js
    if binary:
        chunks += struct.pack("<II", len(binary), 0x004E4942) + binary
    return struct.pack("<4sII", b"glTF", 2, 12 + len(chunks)) + chunks


def write_glb(path, doc: dict, binary: bytes) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(glb_bytes(doc, binary))
    return path


def rig_to_glb(rig: Rig, path, **kwargs) -> Path:
    """Write ``rig`` as a .glb (or .vrm) file; keyword arguments as :func:`rig_to_gltf`."""
    doc, binary = rig_to_gltf(rig, **kwargs)
    return write_glb(path, doc, binary)
