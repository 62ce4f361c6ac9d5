"""The parsed MMD model that PMX and PMD share, and its conversion to a :class:`~conrdata.rig.model.Rig`.

:func:`conrdata.formats.pmx.parse_pmx` and :func:`conrdata.formats.pmd.parse_pmd` turn bytes into an
:class:`MMDModel` (MMD's frame and units, bones in file order); :func:`build_rig` makes the rig.

Frames and units: MMD is left-handed, +Y up, the model faces -Z, its left side on
+X, lengths in "MMD units" of 8 cm. The project is right-handed, +Y up, facing +Z,
metres. Negating Z does both jobs (fixes handedness and turns the model to face
+Z with its left still on +X), so a point ``(x, y, z)`` becomes
``0.08 * (x, y, -z)``; normals become ``(x, y, -z)``; the mirror flips triangle
winding, so ``(a, b, c)`` becomes ``(a, c, b)`` (MMD front faces are clockwise,
the project's counter-clockwise). A rotation by angle t about X or Y in MMD is a
rotation by -t in the project frame; about Z it is unchanged (used for IK limits).

MMD-specific bone data with no place in the Rig goes to ``rig.meta["mmd"]``
(JSON-friendly lists, indices already in the rig's bone order, positions in
project metres, directions in the project frame): ``bone_names_en``,
``bone_flags``, ``tails`` ([x, y, z] or None), ``inherit``
(``{"bone", "source", "weight", "rotation", "translation"}``), ``folded``,
``fixed_axes`` (twist bones; [x, y, z] or None), ``local_axes`` ([X, Z] or None),
``layers`` (deform layer per bone, int), ``rigid_bodies`` (``{"name", "bone", "mode",
"group"}``; bone -1 for none; mode 0 follows its bone, 1 is simulated, 2 is simulated with
the bone's position kept) and ``joints`` (``{"name", "a", "b"}`` indices into
``rigid_bodies``). :mod:`conrdata.poses.evaluate` plays all of these.

Inheritance: MMD skins legs to "D" bones (足D, ひざD, 足首D) that copy the
rotation of the bones motions drive. Where such a copy is exact (weight 1, same
head, equivalent parent) the reader folds it: its vertex weights and children go
to the source bone and ``meta["mmd"]["folded"]`` lists the pairs, so the rig
poses correctly through the humanoid bones alone. Other inheritance (eyes, twist
and shoulder-cancel bones, partial weights) stays in ``meta["mmd"]["inherit"]``
for posers that want it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from conrdata.errors import FormatError
from conrdata.formats.textures import load_texture
from conrdata.rig.bonemaps import map_bone_names
from conrdata.rig.mesh import normalize_skin_weights, vertex_normals
from conrdata.rig.model import IKChain, Material, Rig

#: Metres per MMD unit.
MMD_UNIT_METRES = 0.08
#: Multiply MMD positions by this to get project metres (the Z mirror included).
MMD_POSITION_SCALE = np.array([MMD_UNIT_METRES, MMD_UNIT_METRES, -MMD_UNIT_METRES])
_MIRROR = np.array([1.0, 1.0, -1.0])


# PMX bone flags.
BONE_TAIL_IS_BONE = 0x0001
BONE_TRANSLATABLE = 0x0004
BONE_IK = 0x0020
BONE_INHERIT_ROTATION = 0x0100
BONE_INHERIT_TRANSLATION = 0x0200
BONE_FIXED_AXIS = 0x0400
BONE_LOCAL_AXIS = 0x0800
BONE_AFTER_PHYSICS = 0x1000
BONE_EXTERNAL_PARENT = 0x2000

MATERIAL_DOUBLE_SIDED = 0x01
#: IK loop counts above this (corrupt or absurd files) are clamped, so a solver cannot hang.
MAX_IK_ITERATIONS = 1000


# --------------------------------------------------------------------------- parsed, still in MMD frame


@dataclass
class MMDIK:
    """IK of one bone: ``links`` are (bone, min xyz or None, max xyz or None), MMD frame, radians."""

    target: int
    loops: int
    limit_angle: float
    links: list[tuple[int, tuple | None, tuple | None]] = field(default_factory=list)


@dataclass
class MMDBone:
    name: str
    name_en: str
    position: tuple  # MMD frame, MMD units
    parent: int
    flags: int = 0
    tail_bone: int = -1
    tail_offset: tuple | None = None
    inherit_source: int = -1
    inherit_weight: float = 0.0
    fixed_axis: tuple | None = None
    local_x: tuple | None = None
    local_z: tuple | None = None
    ik: MMDIK | None = None
    layer: int = 0


@dataclass
class MMDRigidBody:
    """A rigid body: the bone it moves (file index, -1 for none), its physics mode and collision group."""

    name: str
    bone: int
    mode: int
    group: int = 0


@dataclass
class MMDJoint:
    """A joint between rigid bodies ``a`` and ``b`` (indices into the model's rigid bodies)."""

    name: str
    a: int
    b: int


@dataclass
class MMDMaterial:
    name: str
    name_en: str
    diffuse: tuple  # RGBA
    flags: int
    texture: int  # index into the texture list, -1 for none
    index_count: int  # number of face *indices* (3 per triangle)


@dataclass
class MMDModel:
    """A parsed PMX/PMD file, still in MMD's frame and units, bones in file order."""

    format: str
    version: float
    positions: np.ndarray  # (V, 3) float
    normals: np.ndarray  # (V, 3)
    uvs: np.ndarray  # (V, 2)
    bone_indices: np.ndarray  # (V, 4) int, file bone indices, -1 unused
    bone_weights: np.ndarray  # (V, 4) float
    indices: np.ndarray  # (F*3,) int vertex indices
    textures: list[str]
    materials: list[MMDMaterial]
    bones: list[MMDBone]
    meta: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    rigid_bodies: list[MMDRigidBody] = field(default_factory=list)
    joints: list[MMDJoint] = field(default_factory=list)


# --------------------------------------------------------------------------- textures


def load_textures(paths: list[str], base_dir: Path, used: set[int]) -> tuple[list, list[str]]:
    """(textures, warnings): one RGBA array per used texture index (None for unused ones).

    Look-up is case-insensitive with '\\' or '/' separators; a missing, unsupported
    or undecodable file gives the grey texture and a warning (see :mod:`conrdata.formats.textures`).
    """
    out: list[np.ndarray | None] = [None] * len(paths)
    warns: list[str] = []
    for i in sorted(used):
        out[i] = load_texture(paths[i], base_dir, warns)
    return out, warns


# --------------------------------------------------------------------------- MMD -> Rig


def parent_first_order(parents: list[int], path=None) -> list[int]:
    """Old bone indices in a parent-first order that keeps file order where it can.

    Raises FormatError on a parent index out of range or a cycle.
    """
    n = len(parents)
    for b, p in enumerate(parents):
        if p < -1 or p >= n:
            raise FormatError(f"bone {b} has parent index {p} out of range (0..{n - 1})", path)
    placed = [False] * n
    order: list[int] = []
    for b in range(n):
        chain = []
        cur = b
        seen = set()
        while cur >= 0 and not placed[cur]:
            if cur in seen:
                raise FormatError(f"bone hierarchy has a cycle through bone {cur}", path)
            seen.add(cur)
            chain.append(cur)
            cur = parents[cur]
        for c in reversed(chain):
            placed[c] = True
            order.append(c)
    return order


def fold_deform_copies(bones: list[MMDBone], order: list[int]) -> tuple[np.ndarray, list[int]]:
    """Find MMD bones that are exact copies of another bone and fold them into it.

    MMD rigs skin the legs to "D" bones (足D, ひざD, 足首D) that copy the rotation of
    the bones motions drive (足, ひざ, 足首) through rotation inheritance with weight 1.
    A bone D is an exact copy of its inherit source S when the weight is 1, D has the
    same head as S, no IK, D's parent is (a copy of) S's parent, and S cannot translate
    unless D inherits translation too. Then D moves exactly like S in every pose, so
    skinning to S is the same, and the rig works for posers that know nothing about
    inheritance. Returns ``alias`` (B,) (alias[b] = the bone b's weights go to) and the
    parents with children of folded bones re-attached to their source; file indices.
    """
    B = len(bones)
    alias = np.arange(B)
    for b in order:
        bone = bones[b]
        s = bone.inherit_source
        if not (bone.flags & BONE_INHERIT_ROTATION) or not (0 <= s < B) or s == b or bone.ik is not None:
            continue
        src = bones[s]
        if not np.isfinite(bone.inherit_weight) or abs(bone.inherit_weight - 1.0) > 1e-6:
            continue
        if src.flags & (BONE_INHERIT_ROTATION | BONE_INHERIT_TRANSLATION):
            continue  # the source itself copies something: not a plain copy
        if src.flags & BONE_TRANSLATABLE and not bone.flags & BONE_INHERIT_TRANSLATION:
            continue
        head_d, head_s = np.asarray(bone.position, np.float64), np.asarray(src.position, np.float64)
        if not np.all(np.isfinite(head_d - head_s)) or np.abs(head_d - head_s).max() > 1e-3:
            continue
        pd = alias[bone.parent] if bone.parent >= 0 else -1
        ps = alias[src.parent] if src.parent >= 0 else -1
        if pd != ps:
            continue
        alias[b] = alias[s]
    parents = [int(alias[p]) if p >= 0 and alias[p] != p else p for p in (bn.parent for bn in bones)]
    for b in range(B):
        if alias[b] != b:
            parents[b] = bones[b].parent  # a folded bone itself keeps its place
    return alias, parents


def _convert_limits(lo, hi) -> tuple[np.ndarray, np.ndarray]:
    """MMD Euler limits (radians) -> project frame: X and Y negate (and swap min/max), Z unchanged."""
    lo, hi = np.asarray(lo, np.float64), np.asarray(hi, np.float64)
    new_lo = np.array([-hi[0], -hi[1], lo[2]])
    new_hi = np.array([-lo[0], -lo[1], hi[2]])
    return np.minimum(new_lo, new_hi) + 0.0, np.maximum(new_lo, new_hi) + 0.0


def _geometry(model: MMDModel, path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Vertices (metres), faces (winding flipped by the mirror), unit normals and UVs in the project frame."""
    V = len(model.positions)
    pos = np.asarray(model.positions, np.float64)
    if not np.all(np.isfinite(pos)):
        raise FormatError("vertex positions contain NaN or infinity", path)
    if V and np.abs(pos).max() > 1e6:
        raise FormatError(f"absurd vertex coordinate {np.abs(pos).max():.3g} MMD units", path)
    vertices = pos * MMD_POSITION_SCALE + 0.0  # + 0.0 turns -0.0 into 0.0
    idx = np.asarray(model.indices, np.int64)
    if len(idx) and (idx.min() < 0 or idx.max() >= V):
        raise FormatError(f"face indexes vertex {int(idx.max())} but there are {V} vertices", path)
    faces = idx.reshape(-1, 3)[:, [0, 2, 1]].astype(np.int32)  # mirror flips winding

    raw_n = np.asarray(model.normals, np.float64)
    with np.errstate(invalid="ignore"):
        normals = np.where(np.isfinite(raw_n) & (np.abs(raw_n) < 1e6), raw_n, 0.0) * _MIRROR
    length = np.linalg.norm(normals, axis=1)
    bad = length < 1e-8
    if bad.any():
        normals[bad] = vertex_normals(vertices, faces)[bad]
        length[bad] = 1.0
    normals = normals / length[:, None]
    uvs = np.where(np.isfinite(model.uvs), model.uvs, 0.0)
    return vertices, faces, normals, uvs


@dataclass
class _BoneOrder:
    """The file's bones folded (exact deform copies onto their originals) and ordered parent-first."""

    order: list[int]  # new index -> file index
    alias: np.ndarray  # file index -> the file bone it folds onto (itself if kept)
    parents: list[int]  # file index -> file parent after folding
    remap: np.ndarray  # file index -> new index
    folded: list[tuple[int, int]]  # (file index of a folded copy, file index it folds onto)

    def new_index(self, i: int) -> int:
        """The new index of file bone ``i``; -1 for an index outside the file's bones."""
        return int(self.remap[i]) if 0 <= i < len(self.remap) else -1


def _order_bones(model: MMDModel, path: Path, warns: list[str]) -> _BoneOrder:
    """Fold exact deform copies ("D" bones), then order parent-first."""
    B = len(model.bones)
    file_parents = [b.parent for b in model.bones]
    order = parent_first_order(file_parents, path)
    alias, parents = fold_deform_copies(model.bones, order)
    try:
        order = parent_first_order(parents, path)
    except FormatError:  # folding would make a cycle in an odd file: keep the file's hierarchy
        alias, parents = np.arange(B), file_parents
    folded = [(d, int(alias[d])) for d in range(B) if alias[d] != d]
    remap = np.empty(B, np.int64)
    remap[order] = np.arange(B)
    if order != list(range(B)):
        warns.append("bones reordered so that parents come before children")
    return _BoneOrder(order, alias, parents, remap, folded)


def _skin_weights(model: MMDModel, bo: _BoneOrder, warns: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Per-vertex joints (new bone indices) and normalised weights; weights to missing bones dropped."""
    B = len(model.bones)
    joints = np.asarray(model.bone_indices, np.int64).copy()
    weights = np.asarray(model.bone_weights, np.float64).copy()
    invalid = (joints < 0) | (joints >= B)
    with np.errstate(invalid="ignore"):
        dropped = np.any(invalid & np.isfinite(weights) & (weights > 0), axis=1)
    if dropped.any():
        warns.append(f"{int(dropped.sum())} vertices weighted to missing bones; those weights dropped")
    weights[invalid] = 0.0
    joints[invalid] = 0
    if B:
        joints = bo.remap[bo.alias[joints]]
    joints, weights, empty = normalize_skin_weights(joints, weights)
    if empty:
        warns.append(f"{empty} vertices had no bone weight; bound to bone 0")
    return joints, weights


def _materials(
    model: MMDModel, path: Path, n_faces: int, warns: list[str]
) -> tuple[list[Material], np.ndarray]:
    """Materials with their textures, and each face's material index (unclaimed faces get the last)."""
    used_tex = {m.texture for m in model.materials if 0 <= m.texture < len(model.textures)}
    texture_arrays, tex_warns = load_textures(model.textures, path.parent, used_tex)
    warns += tex_warns
    materials: list[Material] = []
    for m in model.materials:
        color = np.clip(np.nan_to_num(np.asarray(m.diffuse, np.float32), nan=1.0), 0.0, 1.0)
        tex = None
        if m.texture >= len(model.textures):
            warns.append(f"material {m.name!r} refers to missing texture {m.texture}; ignored")
        elif m.texture >= 0:
            tex = texture_arrays[m.texture]
        transparent = color[3] < 1.0 or (tex is not None and bool((tex[..., 3] < 255).any()))
        materials.append(Material(
            name=m.name, base_color=color, texture=tex, alpha_mode="BLEND" if transparent else "OPAQUE",
            double_sided=bool(m.flags & MATERIAL_DOUBLE_SIDED),
        ))
    face_material = np.zeros(n_faces, np.int32)
    start = 0
    for k, m in enumerate(model.materials):
        n = m.index_count // 3
        face_material[start : start + n] = k
        start += n
    if start > n_faces:
        warns.append(f"materials claim {start} faces but the mesh has {n_faces}; extra claims ignored")
    elif start < n_faces:
        if not materials:
            grey = np.array([0.5, 0.5, 0.5, 1], np.float32)
            materials.append(Material(name="default", base_color=grey))
        warns.append(f"{n_faces - start} faces have no material; given the last material")
        face_material[start:] = len(materials) - 1
    return materials, face_material


def _ik_chains(bones: list[MMDBone], bo: _BoneOrder, warns: list[str]) -> list[IKChain]:
    """The IK chains of the (ordered) bones; a chain naming a missing bone is skipped with a warning."""
    ik_chains = []
    for b_new, bone in enumerate(bones):
        ik = bone.ik
        if ik is None:
            continue
        target = bo.new_index(ik.target)
        links = [bo.new_index(link) for link, _, _ in ik.links]
        if target < 0 or any(k < 0 for k in links):
            warns.append(f"IK of bone {bone.name!r} refers to missing bones; ignored")
            continue
        limits = np.full((len(links), 2, 3), np.nan)
        for k, (_, lo, hi) in enumerate(ik.links):
            if lo is not None:
                limits[k, 0], limits[k, 1] = _convert_limits(lo, hi)
        if ik.loops > MAX_IK_ITERATIONS:
            warns.append(f"IK of bone {bone.name!r}: {ik.loops} iterations clamped to {MAX_IK_ITERATIONS}")
        max_angle = float(ik.limit_angle) if np.isfinite(ik.limit_angle) else 2.0
        ik_chains.append(IKChain(
            ik_bone=b_new, target_bone=target, links=np.asarray(links, np.int32),
            iterations=int(min(max(ik.loops, 0), MAX_IK_ITERATIONS)), max_angle=max_angle, limits=limits,
        ))
    return ik_chains


def _humanoid_map(names: list[str], names_en: list[str]) -> dict[str, int]:
    """Humanoid bones from the Japanese names, completed from the English ones."""
    humanoid = map_bone_names(names)
    for h, i in map_bone_names(names_en).items():
        if h not in humanoid and i not in humanoid.values():
            humanoid[h] = i
    return humanoid


def _direction(v) -> list[float] | None:
    """A file direction in the project frame, or None when absent or not finite."""
    if v is None or not np.all(np.isfinite(v)):
        return None
    return [float(x) + 0.0 for x in np.asarray(v, np.float64) * _MIRROR]


def _mmd_meta(model: MMDModel, bones: list[MMDBone], bone_heads: np.ndarray, bo: _BoneOrder,
              warns: list[str]) -> dict:
    """``meta["mmd"]``: what the pose evaluator needs beyond the rig (tails, inherit, axes, layers,
    physics)."""
    B = len(model.bones)
    tails, inherit = [], []
    for bone in bones:
        if bone.tail_offset is not None:
            tail = (np.asarray(bone.position) + np.asarray(bone.tail_offset)) * MMD_POSITION_SCALE
            tails.append([float(x) for x in tail] if np.all(np.isfinite(tail)) else None)
        elif 0 <= bone.tail_bone < B:
            tails.append([float(x) for x in bone_heads[bo.new_index(bone.tail_bone)]])
        else:
            tails.append(None)
    for b_new, bone in enumerate(bones):
        src = bo.new_index(bone.inherit_source)
        if bone.flags & (BONE_INHERIT_ROTATION | BONE_INHERIT_TRANSLATION) and src >= 0:
            inherit.append({
                "bone": b_new, "source": src,
                "weight": float(bone.inherit_weight) if np.isfinite(bone.inherit_weight) else 0.0,
                "rotation": bool(bone.flags & BONE_INHERIT_ROTATION),
                "translation": bool(bone.flags & BONE_INHERIT_TRANSLATION),
            })
    nbody = len(model.rigid_bodies)
    rigid_bodies = [{"name": rb.name, "bone": bo.new_index(rb.bone), "mode": int(rb.mode),
                     "group": int(rb.group)} for rb in model.rigid_bodies]
    joints_mmd = [{"name": j.name, "a": int(j.a), "b": int(j.b)} for j in model.joints
                  if 0 <= j.a < nbody and 0 <= j.b < nbody]
    if len(joints_mmd) != len(model.joints):
        warns.append(f"{len(model.joints) - len(joints_mmd)} physics joints link missing rigid bodies; "
                     "ignored")
    return {
        "bone_names_en": [b.name_en for b in bones],
        "bone_flags": [int(b.flags) for b in bones],
        "tails": tails,
        "inherit": inherit,
        "folded": [[bo.new_index(d), bo.new_index(src)] for d, src in bo.folded],
        "fixed_axes": [_direction(b.fixed_axis) for b in bones],
        "local_axes": [None if b.local_x is None else [_direction(b.local_x), _direction(b.local_z)]
                       for b in bones],
        "layers": [int(b.layer) for b in bones],
        "rigid_bodies": rigid_bodies,
        "joints": joints_mmd,
    }


def build_rig(model: MMDModel, path: str | os.PathLike) -> Rig:
    """Convert a parsed MMD model into a project :class:`Rig` (frame, units, order, textures)."""
    path = Path(path)
    warns = list(model.warnings)
    B = len(model.bones)
    vertices, faces, normals, uvs = _geometry(model, path)

    bo = _order_bones(model, path, warns)
    bones = [model.bones[i] for i in bo.order]
    heads = np.asarray([b.position for b in bones], np.float64).reshape(B, 3)
    if not np.all(np.isfinite(heads)) or (B and np.abs(heads).max() > 1e6):
        raise FormatError("bone positions contain NaN, infinity or absurd values", path)
    bone_heads = heads * MMD_POSITION_SCALE + 0.0
    bone_parents = np.array([bo.new_index(bo.parents[i]) for i in bo.order], np.int32)

    joints, weights = _skin_weights(model, bo, warns)
    materials, face_material = _materials(model, path, len(faces), warns)
    ik_chains = _ik_chains(bones, bo, warns)
    names = [b.name for b in bones]
    humanoid = _humanoid_map(names, [b.name_en for b in bones])
    mmd = _mmd_meta(model, bones, bone_heads, bo, warns)

    meta = dict(model.meta)
    meta.update({
        "format": model.format,
        "source": str(path),
        "licence": {"comment": model.meta.get("comment", ""), "comment_en": model.meta.get("comment_en", "")},
        "unit_metres": MMD_UNIT_METRES,
        "mmd": mmd,
    })
    rig = Rig(
        vertices=vertices.astype(np.float32),
        normals=normals.astype(np.float32),
        uvs=uvs.astype(np.float32),
        faces=faces,
        face_material=face_material,
        joints=joints.astype(np.int32),
        weights=weights.astype(np.float32),
        bone_names=names,
        bone_parents=bone_parents,
        bone_heads=bone_heads.astype(np.float32),
        humanoid=humanoid,
        materials=materials,
        ik_chains=ik_chains,
        meta=meta,
        warnings=warns,
    )
    try:
        rig.check()
    except ValueError as err:
        raise FormatError(f"inconsistent model: {err}", path) from None
    return rig


def read_file_bytes(path: str | os.PathLike, max_bytes: int = 2 << 30) -> bytes:
    """The file's bytes; UserError-family errors for missing/unreadable/huge files."""
    p = Path(path)
    try:
        size = p.stat().st_size
        if size > max_bytes:
            raise FormatError(f"file is {size} bytes, larger than the {max_bytes} byte limit", p)
        return p.read_bytes()
    except FileNotFoundError:
        raise FormatError("file not found", p) from None
    except IsADirectoryError:
        raise FormatError("is a directory, not a model file", p) from None
    except OSError as err:
        raise FormatError(f"cannot read: {err.strerror or err}", p) from None
