"""glTF 2.0 / VRM 0.x / VRM 1.0 skinned models -> :class:`~conrdata.rig.model.Rig`.

What is read
------------
- The node hierarchy; bones are the joints of every skin (plus nodes the VRM
  humanoid names), ordered parent-first; a bone's parent is its nearest
  ancestor that is a bone.
- Rest pose = the nodes' own transforms. Bind vertices are the mesh skinned at
  that rest pose in world space (``sum_j w_j * G_j * IBM_j * v``), bone heads
  are the joints' world positions. Rest rotations are thereby folded away: the
  Rig's bones are normalised (identity world rotation at bind), as
  :mod:`conrdata.rig.model` requires.
- Every mesh primitive (triangles, strips, fans), merged into one vertex array
  with ``face_material``; primitives sharing attribute accessors share vertices.
  POSITION, NORMAL (computed if absent), TEXCOORD_0, JOINTS_n/WEIGHTS_n (the
  four largest influences kept, renormalised). A mesh without a skin on a node
  below a joint gets weight 1 to that joint.
- Materials: base colour factor and texture (embedded, data-URI or external
  file; missing or undecodable -> grey texture + warning), alphaMode,
  alphaCutoff, doubleSided. VRM 0.x MToon ``_MainTex``/``_Color``/``_BlendMode``/
  ``_Cutoff``/``_CullMode`` from ``materialProperties`` take precedence.
- Humanoid map: VRM 0.x ``VRM.humanoid.humanBones`` (list) or VRM 1.0
  ``VRMC_vrm.humanoid.humanBones`` (dict); otherwise bone names that are VRM
  humanoid names, then :func:`conrdata.rig.bonemaps.map_bone_names` (Mixamo, MMD, ...).
  What names leave open (topology, stand-ins, one-bone limbs, re-attached bones, a
  user's bone map) is :func:`conrdata.rig.humanoid_infer.resolve_humanoid`'s job, which
  ``convert`` runs after reading.
- VRM 0.x faces -Z: the model is turned 180 degrees about +Y to face +Z.
- Licence fields of VRM meta (or glTF ``asset.copyright``) go to ``meta["licence"]``.
- VRM 1.0 node constraints (``VRMC_node_constraint`` on bone nodes: roll, aim,
  rotation) go to ``meta["vrm_constraints"]``: ``{"bone", "source", "kind", "weight",
  "axis", "rest_offset"}`` with bone indices, ``axis`` the roll / aim axis as a
  world direction at bind (project frame) and ``rest_offset`` the quaternion
  (x, y, z, w) G_dst_rest G_src_rest^-1 of the two nodes' rest world rotations;
  :mod:`conrdata.poses.evaluate` plays them.

Ignored, with a warning in ``rig.warnings``: morph targets, extra UV sets,
non-triangle primitives (points, lines), KHR_texture_transform.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from conrdata.errors import FormatError, RigError
from conrdata.formats.gltf import GltfDocument, _floats
from conrdata.formats.textures import decode_texture, grey_texture
from conrdata.rig.bonemaps import map_bone_names
from conrdata.rig.humanoid import HUMANOID_BONES, VRM0_RENAMES
from conrdata.rig.mesh import normalize_skin_weights, vertex_normals
from conrdata.rig.model import Material, Rig
from conrdata.rig.rotations import quat_from_matrix, rotation_part

#: Refuse models larger than this many vertices (a guard, far above any real character).
MAX_VERTICES = 20_000_000
#: Largest coordinate accepted (in file units, after node transforms): anything beyond is corrupt.
MAX_COORDINATE = 1e7


def read_gltf(path) -> Rig:
    """Read a .glb / .gltf / .vrm file into a Rig (world frame, +Z facing, not yet A-pose-aligned)."""
    doc = GltfDocument.open(path)
    return rig_from_document(doc)


def rig_from_document(doc: GltfDocument) -> Rig:
    """Build the Rig from a parsed :class:`GltfDocument` (see the module docstring)."""
    reader = _RigReader(doc)
    return reader.build()


class _RigReader:
    def __init__(self, doc: GltfDocument):
        self.doc = doc
        self.path = doc.path
        self.warnings: list[str] = []
        ext = doc.extensions
        self.vrm0 = ext.get("VRM") if isinstance(ext.get("VRM"), dict) else None
        self.vrm1 = ext.get("VRMC_vrm") if isinstance(ext.get("VRMC_vrm"), dict) else None

    def fail(self, message: str) -> FormatError:
        return FormatError(message, self.path)

    # ------------------------------------------------------------------ hierarchy

    def hierarchy(self) -> None:
        nodes = self.doc.list("nodes")
        n = len(nodes)
        parent = np.full(n, -1, np.int64)
        for i in range(n):
            node = self.doc.item("nodes", i)
            children = node.get("children", [])
            if not isinstance(children, list):
                raise self.fail(f"nodes[{i}].children is not an array")
            for c in children:
                if isinstance(c, bool) or not isinstance(c, int) or not 0 <= c < n:
                    raise self.fail(f"nodes[{i}] has an invalid child {c!r}")
                if parent[c] != -1 or c == i:
                    raise self.fail(f"nodes[{c}] has more than one parent (the node graph is not a tree)")
                parent[c] = i
        order: list[int] = []
        stack = [i for i in range(n - 1, -1, -1) if parent[i] < 0]
        while stack:
            i = stack.pop()
            order.append(i)
            children = self.doc.item("nodes", i).get("children", [])
            stack.extend(reversed(children))
        if len(order) != n:
            raise self.fail("the node graph has a cycle")
        world = np.zeros((n, 4, 4))
        with np.errstate(over="ignore", invalid="ignore"):  # overflow is reported just below
            for i in order:
                local = self.doc.node_local_matrix(i)
                world[i] = local if parent[i] < 0 else world[parent[i]] @ local
        if not np.all(np.isfinite(world)):
            raise self.fail("node transforms overflow to non-finite values")
        self.node_parent = parent
        self.node_order = order
        self.world = world

    # ------------------------------------------------------------------ bones

    def bones(self) -> None:
        skins = self.doc.list("skins")
        joint_nodes: set[int] = set()
        self.skin_joints: list[list[int]] = []
        for s in range(len(skins)):
            skin = self.doc.item("skins", s)
            joints = skin.get("joints")
            if not isinstance(joints, list) or not joints:
                raise self.fail(f"skins[{s}] has no joints")
            for j in joints:
                if isinstance(j, bool) or not isinstance(j, int) or not 0 <= j < len(self.world):
                    raise self.fail(f"skins[{s}] names an invalid joint node {j!r}")
            self.skin_joints.append(list(joints))
            joint_nodes.update(joints)
        if not joint_nodes:
            raise RigError("the model has no skin (no skeleton): it cannot be posed", self.path)
        joint_nodes.update(n for n in self._vrm_humanoid_nodes().values() if 0 <= n < len(self.world))
        bone_nodes = [i for i in self.node_order if i in joint_nodes]
        self.bone_of_node = {node: b for b, node in enumerate(bone_nodes)}
        parents = []
        for node in bone_nodes:
            p = self.node_parent[node]
            while p >= 0 and p not in self.bone_of_node:
                p = self.node_parent[p]
            parents.append(-1 if p < 0 else self.bone_of_node[p])
        self.bone_nodes = bone_nodes
        self.bone_parents = np.asarray(parents, np.int32)
        self.bone_heads = self.world[bone_nodes, :3, 3].copy()
        names = self.doc.node_names
        seen: dict[str, int] = {}
        self.bone_names = []
        for node in bone_nodes:
            name = names[node]
            if name in seen:  # duplicate node names happen; keep bone names unique
                seen[name] += 1
                name = f"{name}.{seen[name]}"
            else:
                seen[name] = 0
            self.bone_names.append(name)

    def nearest_bone(self, node: int) -> int | None:
        while node >= 0:
            if node in self.bone_of_node:
                return self.bone_of_node[node]
            node = int(self.node_parent[node])
        return None

    # ------------------------------------------------------------------ geometry

    def geometry(self) -> None:
        pos, nrm, uvs, jnt, wts, faces, fmat = [], [], [], [], [], [], []
        count = 0
        self.morph_warned = False
        mesh_nodes = [i for i in self.node_order if self.doc.item("nodes", i).get("mesh") is not None]
        if not mesh_nodes:
            raise RigError("the model has no mesh", self.path)
        material_slots: dict[int | None, int] = {}
        for node_index in mesh_nodes:
            node = self.doc.item("nodes", node_index)
            mesh = self.doc.item("meshes", node["mesh"])
            skin_index = node.get("skin")
            if skin_index is not None:
                self.doc.item("skins", skin_index)  # validates the index
                skin_mats = self._skin_matrices(skin_index)
            prims = mesh.get("primitives")
            if not isinstance(prims, list) or not prims:
                raise self.fail(f"meshes[{node['mesh']}] has no primitives")
            shared: dict[tuple, int] = {}
            for pi, prim in enumerate(prims):
                if not isinstance(prim, dict) or not isinstance(prim.get("attributes"), dict):
                    raise self.fail(f"meshes[{node['mesh']}].primitives[{pi}] has no attributes")
                attrs = prim["attributes"]
                mode = prim.get("mode", 4)
                if mode not in (4, 5, 6):
                    self.warnings.append(f"mesh {node['mesh']} primitive {pi}: mode {mode} ignored "
                                         "(points or lines)")
                    continue
                if prim.get("targets"):
                    if not self.morph_warned:
                        self.warnings.append("morph targets (blend shapes) ignored")
                        self.morph_warned = True
                if "POSITION" not in attrs:
                    raise self.fail(f"meshes[{node['mesh']}].primitives[{pi}] has no POSITION")
                key = (node_index,) + tuple(sorted((k, v) for k, v in attrs.items() if isinstance(v, int)))
                if key in shared:
                    base, nv = shared[key]
                else:
                    p, nn, uv, jj, ww = self._vertices(attrs, node_index, skin_index,
                                                       skin_mats if skin_index is not None else None)
                    base, nv = count, len(p)
                    shared[key] = (base, nv)
                    if nn is None:
                        nn = np.full((nv, 3), np.nan)
                    pos.append(p)
                    nrm.append(nn)
                    uvs.append(uv)
                    jnt.append(jj)
                    wts.append(ww)
                    count += nv
                    if count > MAX_VERTICES:
                        raise self.fail(f"more than {MAX_VERTICES} vertices")
                tri = self._triangles(prim, nv, mode)
                if skin_index is None and np.linalg.det(self.world[node_index][:3, :3]) < 0:
                    tri = tri[:, ::-1]
                faces.append(tri + base)
                mat = prim.get("material")
                if mat is not None:
                    self.doc.item("materials", mat)
                slot = material_slots.setdefault(mat, len(material_slots))
                fmat.append(np.full(len(tri), slot, np.int32))
        if not pos or not sum(len(f) for f in faces):
            raise RigError("the model has no triangles", self.path)
        self.vertices = np.concatenate(pos)
        self.normals = np.concatenate(nrm)
        self.uvs = np.concatenate(uvs).astype(np.float32)
        self.joints = np.concatenate(jnt)
        self.weights = np.concatenate(wts)
        self.faces = np.concatenate(faces).astype(np.int32)
        self.face_material = np.concatenate(fmat)
        self.material_slots = material_slots
        if not np.all(np.isfinite(self.vertices)):
            raise self.fail("vertex positions are not finite")
        missing = np.isnan(self.normals).any(axis=1)
        if missing.any():
            self.normals[missing] = vertex_normals(self.vertices, self.faces)[missing]

    def _skin_matrices(self, skin_index: int) -> np.ndarray:
        """(J, 4, 4) joint matrices G_j @ IBM_j of a skin at the rest pose."""
        skin = self.doc.item("skins", skin_index)
        joints = self.skin_joints[skin_index]
        if skin.get("inverseBindMatrices") is not None:
            ibm = self.doc.accessor(skin["inverseBindMatrices"])
            if ibm.shape != (len(joints), 4, 4):
                raise self.fail(f"skins[{skin_index}].inverseBindMatrices has {len(ibm)} matrices for "
                                f"{len(joints)} joints")
            ibm = ibm.astype(np.float64)
            if not np.all(np.isfinite(ibm)):
                raise self.fail(f"skins[{skin_index}].inverseBindMatrices are not finite")
        else:
            ibm = np.tile(np.eye(4), (len(joints), 1, 1))
        return self.world[joints] @ ibm

    def _vertices(self, attrs: dict, node_index: int, skin_index, skin_mats):
        p = self._attr(attrs, "POSITION", (3,)).astype(np.float64)
        nv = len(p)
        n = self._attr(attrs, "NORMAL", (3,), nv)
        uv = self._attr(attrs, "TEXCOORD_0", (2,), nv)
        if "TEXCOORD_1" in attrs and not getattr(self, "_uv1_warned", False):
            self.warnings.append("extra UV sets (TEXCOORD_1+) ignored")
            self._uv1_warned = True
        if uv is None:
            uv = np.zeros((nv, 2), np.float32)
        if skin_index is not None and "JOINTS_0" in attrs and "WEIGHTS_0" in attrs:
            jl, wl = [], []
            k = 0
            while f"JOINTS_{k}" in attrs and f"WEIGHTS_{k}" in attrs:
                j = self._attr(attrs, f"JOINTS_{k}", (4,), nv)
                w = self._attr(attrs, f"WEIGHTS_{k}", (4,), nv)
                if j.dtype.kind not in "iu":
                    raise self.fail(f"JOINTS_{k} must be unsigned integers")
                jl.append(j.astype(np.int64))
                wl.append(w.astype(np.float64))
                k += 1
            j_all = np.concatenate(jl, axis=1)
            w_all = np.concatenate(wl, axis=1)
            njoints = len(self.skin_joints[skin_index])
            bad = (j_all >= njoints) & (w_all > 0)
            if bad.any():
                raise self.fail(f"JOINTS_0 refers to joint {int(j_all[bad].max())} of a skin with {njoints}")
            j4, w4, empty = normalize_skin_weights(np.where(j_all < njoints, j_all, 0), w_all)
            if empty:
                self.warnings.append(f"{empty} vertices had no skin weight; bound to the skin's first joint")
            mats = np.einsum("vk,vkij->vij", w4, skin_mats[j4])
            world_p = np.einsum("vij,vj->vi", mats[:, :3, :3], p) + mats[:, :3, 3]
            world_n = None if n is None else np.einsum("vij,vj->vi", mats[:, :3, :3], n.astype(np.float64))
            bone_of_joint = np.array([self.bone_of_node[j] for j in self.skin_joints[skin_index]], np.int64)
            joints = bone_of_joint[j4]
            weights = w4
        else:
            if skin_index is not None:
                self.warnings.append(f"node {node_index}: skinned mesh without JOINTS_0/WEIGHTS_0 "
                                     "bound rigidly")
            bone = self.nearest_bone(node_index)
            if bone is None:
                bone = int(np.flatnonzero(self.bone_parents < 0)[0])
                self.warnings.append(f"node {self.doc.node_names[node_index]}: mesh not attached to "
                                     f"the skeleton; bound to {self.bone_names[bone]}")
            m = self.world[node_index]
            world_p = p @ m[:3, :3].T + m[:3, 3]
            world_n = None if n is None else n.astype(np.float64) @ np.linalg.inv(m[:3, :3])
            joints = np.zeros((nv, 4), np.int64)
            joints[:, 0] = bone
            weights = np.zeros((nv, 4))
            weights[:, 0] = 1.0
        if world_n is not None:
            norm = np.linalg.norm(world_n, axis=1, keepdims=True)
            world_n = np.where(norm > 1e-12, world_n / np.maximum(norm, 1e-12), [0.0, 1.0, 0.0])
        return world_p, world_n, uv, joints.astype(np.int32), weights.astype(np.float32)

    def _attr(self, attrs: dict, name: str, shape: tuple, count: int | None = None):
        if name not in attrs:
            return None
        a = self.doc.accessor(attrs[name])
        if a.shape[1:] != shape:
            raise self.fail(f"attribute {name} has shape {a.shape[1:]}, expected {shape}")
        if count is not None and len(a) != count:
            raise self.fail(f"attribute {name} has {len(a)} items, POSITION has {count}")
        return a

    def _triangles(self, prim: dict, nv: int, mode: int) -> np.ndarray:
        if prim.get("indices") is not None:
            idx = self.doc.accessor(prim["indices"])
            if idx.ndim != 1 or idx.dtype.kind not in "iu":
                raise self.fail("primitive indices must be an integer SCALAR accessor")
            idx = idx.astype(np.int64)
        else:
            idx = np.arange(nv, dtype=np.int64)
        if len(idx) and (idx.max() >= nv):
            raise self.fail(f"primitive index {int(idx.max())} out of range ({nv} vertices)")
        if mode == 4:
            tri = idx[: len(idx) - len(idx) % 3].reshape(-1, 3)
        elif mode == 5:  # strip: alternate winding
            k = np.arange(max(len(idx) - 2, 0))
            tri = np.stack([idx[k], idx[k + 1 + k % 2], idx[k + 2 - k % 2]], 1)
        else:  # fan
            k = np.arange(1, max(len(idx) - 1, 1))
            tri = np.stack([np.full(len(k), idx[0] if len(idx) else 0), idx[k], idx[k + 1]], 1)
        keep = (tri[:, 0] != tri[:, 1]) & (tri[:, 1] != tri[:, 2]) & (tri[:, 0] != tri[:, 2])
        return tri[keep]

    # ------------------------------------------------------------------ materials

    def materials(self) -> list[Material]:
        props = {}
        if self.vrm0 is not None and isinstance(self.vrm0.get("materialProperties"), list):
            for i, mp in enumerate(self.vrm0["materialProperties"]):
                if isinstance(mp, dict):
                    props.setdefault(("name", str(mp.get("name"))), mp)
                    props[("index", i)] = mp
        self._tex_cache: dict[int, np.ndarray] = {}
        out = [None] * len(self.material_slots)
        for mat_index, slot in self.material_slots.items():
            if mat_index is None:
                out[slot] = Material("default")
                continue
            m = self.doc.item("materials", mat_index)
            name = str(m.get("name") or f"material{mat_index}")
            pbr = m.get("pbrMetallicRoughness") or {}
            if not isinstance(pbr, dict):
                raise self.fail(f"materials[{mat_index}].pbrMetallicRoughness is not an object")
            color = _floats(pbr.get("baseColorFactor", [1, 1, 1, 1]), 4,
                            f"materials[{mat_index}].baseColorFactor", self.path)
            tex_info = pbr.get("baseColorTexture")
            tex_index = tex_info.get("index") if isinstance(tex_info, dict) else None
            if isinstance(tex_info, dict) and tex_info.get("texCoord", 0) != 0:
                self.warnings.append(f"material {name}: base colour texture uses texCoord != 0; "
                                     "read with UV 0")
            tex_ext = tex_info.get("extensions") if isinstance(tex_info, dict) else None
            if isinstance(tex_ext, dict) and "KHR_texture_transform" in tex_ext:
                self.warnings.append(f"material {name}: KHR_texture_transform ignored")
            alpha_mode = m.get("alphaMode", "OPAQUE")
            if alpha_mode not in ("OPAQUE", "MASK", "BLEND"):
                raise self.fail(f"materials[{mat_index}].alphaMode {alpha_mode!r} is not valid")
            cutoff = m.get("alphaCutoff", 0.5)
            double = bool(m.get("doubleSided", False))
            mp = props.get(("name", str(m.get("name")))) or props.get(("index", mat_index))
            if mp is not None:
                tex_props = mp.get("textureProperties") or {}
                vec_props = mp.get("vectorProperties") or {}
                float_props = mp.get("floatProperties") or {}
                if isinstance(tex_props, dict) and isinstance(tex_props.get("_MainTex"), int):
                    tex_index = tex_props["_MainTex"]
                if isinstance(vec_props, dict) and vec_props.get("_Color") is not None:
                    color = _floats(vec_props["_Color"], 4, f"materialProperties {name} _Color", self.path)
                if isinstance(float_props, dict):
                    blend = float_props.get("_BlendMode")
                    if blend in (0, 1, 2, 3):
                        alpha_mode = ("OPAQUE", "MASK", "BLEND", "BLEND")[int(blend)]
                    if isinstance(float_props.get("_Cutoff"), (int, float)):
                        cutoff = float_props["_Cutoff"]
                    if float_props.get("_CullMode") in (0, 1, 2):
                        double = float_props["_CullMode"] == 0
            if not isinstance(cutoff, (int, float)) or isinstance(cutoff, bool):
                raise self.fail(f"materials[{mat_index}].alphaCutoff is not a number")
            texture = None if tex_index is None else self._texture(tex_index, name)
            out[slot] = Material(name=name, base_color=np.clip(color, 0, 1).astype(np.float32),
                                 texture=texture, alpha_mode=alpha_mode, alpha_cutoff=float(cutoff),
                                 double_sided=double)
        return out

    def _texture(self, tex_index, material_name: str) -> np.ndarray:
        tex = self.doc.item("textures", tex_index)
        source = tex.get("source")
        if source is not None:
            self.doc.item("images", source)  # validates the index
        if source is None:
            self.warnings.append(f"material {material_name}: texture {tex_index} has no PNG/JPEG source "
                                 "(extension-only image); using grey")
            return grey_texture()
        if source in self._tex_cache:
            return self._tex_cache[source]
        data, label = self.doc.image_bytes(source)
        if data is None:
            self.warnings.append(f"material {material_name}: texture file {label} not found; using grey")
            img = grey_texture()
        else:
            try:
                img = decode_texture(data, name=label)
            except FormatError as err:
                self.warnings.append(f"material {material_name}: {err.message} ({label}); using grey")
                img = grey_texture()
        self._tex_cache[source] = img
        return img

    # ------------------------------------------------------------------ humanoid and meta

    def _vrm_humanoid_nodes(self) -> dict[str, int]:
        out: dict[str, int] = {}
        if self.vrm1 is not None:
            bones = (self.vrm1.get("humanoid") or {}).get("humanBones") or {}
            if isinstance(bones, dict):
                for name, spec in bones.items():
                    if isinstance(spec, dict) and isinstance(spec.get("node"), int):
                        out[str(name)] = spec["node"]
        elif self.vrm0 is not None:
            bones = (self.vrm0.get("humanoid") or {}).get("humanBones") or []
            if isinstance(bones, list):
                for spec in bones:
                    if isinstance(spec, dict) and isinstance(spec.get("node"), int) and spec.get("bone"):
                        name = str(spec["bone"])
                        out[VRM0_RENAMES.get(name, name)] = spec["node"]
        return out

    def humanoid(self) -> dict[str, int]:
        known = set(HUMANOID_BONES)
        if self.vrm0 is not None or self.vrm1 is not None:
            out = {}
            for name, node in self._vrm_humanoid_nodes().items():
                if name not in known:
                    continue
                if node in self.bone_of_node:
                    out[name] = self.bone_of_node[node]
                else:
                    self.warnings.append(f"humanoid bone {name} names node {node}, which is not a bone")
            return out
        lower = {n.lower(): n for n in HUMANOID_BONES}
        out = {}
        for b, name in enumerate(self.bone_names):
            h = lower.get(name.lower())
            if h is not None and h not in out:
                out[h] = b
        if len(out) < 10:
            mapped = map_bone_names(list(self.bone_names))
            nb = len(self.bone_names)
            out = {h: int(b) for h, b in mapped.items() if h in known and 0 <= int(b) < nb}
        return out

    def licence(self) -> dict:
        if self.vrm1 is not None and isinstance(self.vrm1.get("meta"), dict):
            meta = {k: v for k, v in self.vrm1["meta"].items() if k != "thumbnailImage"}
            meta["spec"] = "VRM 1.0"
            return meta
        if self.vrm0 is not None and isinstance(self.vrm0.get("meta"), dict):
            meta = {k: v for k, v in self.vrm0["meta"].items() if k != "texture"}
            meta["spec"] = "VRM 0.x"
            return meta
        asset = self.doc.json.get("asset") or {}
        return {"copyright": str(asset["copyright"])} if asset.get("copyright") else {}

    # ------------------------------------------------------------------ assembly

    def build(self) -> Rig:
        self.hierarchy()
        self.bones()
        self.geometry()
        materials = self.materials()
        humanoid = self.humanoid()
        vertices, normals, heads = self.vertices, self.normals, self.bone_heads
        for what, arr in (("vertex positions", vertices), ("joint positions", heads)):
            if not np.all(np.abs(arr) < MAX_COORDINATE):
                raise self.fail(f"{what} are out of range (beyond {MAX_COORDINATE:g} or not finite)")
        source_forward = "+Z"
        if self.vrm0 is not None:
            turn = np.array([-1.0, 1.0, -1.0])  # 180 degrees about +Y
            vertices, normals, heads = vertices * turn, normals * turn, heads * turn
            source_forward = "-Z"
        fmt = Path(self.path).suffix[1:].lower()
        if self.vrm1 is not None or self.vrm0 is not None:
            fmt = "vrm1" if self.vrm1 is not None else "vrm0"
        rig = Rig(
            vertices=vertices.astype(np.float32),
            normals=normals.astype(np.float32),
            uvs=self.uvs,
            faces=self.faces,
            face_material=self.face_material,
            joints=self.joints.astype(np.int32),
            weights=self.weights.astype(np.float32),
            bone_names=list(self.bone_names),
            bone_parents=self.bone_parents,
            bone_heads=heads.astype(np.float32),
            humanoid=humanoid,
            materials=materials,
            meta={
                "source": str(self.path),
                "format": fmt,
                "generator": str((self.doc.json.get("asset") or {}).get("generator", "")),
                "licence": self.licence(),
                "source_forward": source_forward,
                "source_up_axis": "+Y",
            },
            warnings=list(dict.fromkeys(self.warnings)),
        )
        constraints = self.node_constraints()
        if constraints:
            rig.meta["vrm_constraints"] = constraints
        try:
            rig.check()
        except ValueError as err:
            raise self.fail(f"inconsistent model ({err})") from None
        return rig


    _AXES = {"X": (1.0, 0.0, 0.0), "Y": (0.0, 1.0, 0.0), "Z": (0.0, 0.0, 1.0)}

    def node_constraints(self) -> list[dict]:
        """``VRMC_node_constraint`` of bone nodes (see the module docstring); malformed ones are warned."""
        out = []
        for node, b in self.bone_of_node.items():
            ext = (self.doc.item("nodes", node).get("extensions") or {}).get("VRMC_node_constraint")
            if not isinstance(ext, dict) or not isinstance(ext.get("constraint"), dict):
                continue
            for kind, c in ext["constraint"].items():
                src = c.get("source") if isinstance(c, dict) else None
                if kind not in ("roll", "aim", "rotation") or src not in self.bone_of_node:
                    self.warnings.append(f"node constraint {kind!r} on {self.bone_names[b]} ignored "
                                         "(unknown kind or its source is not a bone)")
                    continue
                axis_name = str(c.get("rollAxis" if kind == "roll" else "aimAxis", "X"))
                sign = -1.0 if axis_name.startswith("Negative") else 1.0
                letter = axis_name.replace("Positive", "").replace("Negative", "")
                local_axis = sign * np.asarray(self._AXES.get(letter, (1.0, 0.0, 0.0)))
                rd, rs = rotation_part(self.world[node]), rotation_part(self.world[src])
                axis = rd @ local_axis
                offset = rd @ rs.T
                if self.vrm0 is not None:  # the model is turned to face +Z: turn directions with it
                    turn = np.diag([-1.0, 1.0, -1.0])
                    axis, offset = turn @ axis, turn @ offset @ turn
                weight = float(c.get("weight", 1.0))
                rest_offset = [float(x) for x in quat_from_matrix(offset)]
                out.append({"bone": int(b), "source": int(self.bone_of_node[src]), "kind": kind,
                            "weight": min(max(weight, 0.0), 1.0) if np.isfinite(weight) else 1.0,
                            "axis": [float(x) for x in axis], "rest_offset": rest_offset})
        return out
