"""PMX 2.0 / 2.1 (MikuMikuDance extended model) reader: bytes -> :class:`~conrdata.rig.Rig`.

Frames and units: MMD is left-handed, +Y up, the model faces -Z, its left side on
+X, lengths in "MMD units" of 8 cm. The project is right-handed, +Y up, facing +Z,
metres. Negating Z does both jobs (fixes handedness and turns the model to face
+Z with its left still on +X), so a point ``(x, y, z)`` becomes
``0.08 * (x, y, -z)``; normals become ``(x, y, -z)``; the mirror flips triangle
winding, so ``(a, b, c)`` becomes ``(a, c, b)`` (MMD front faces are clockwise,
the project's counter-clockwise). A rotation by angle t about X or Y in MMD is a
rotation by -t in the project frame; about Z it is unchanged (used for IK limits).

What is read: header globals (text encoding, additional UVs, index sizes; 1- and
2-byte vertex indices are unsigned, all other indices signed with -1 = none),
vertices (BDEF1/2/4; SDEF read as BDEF2 and QDEF as BDEF4; weights renormalised),
faces, textures, materials (diffuse RGBA, texture, double-sided flag 0x01; alpha
< 1 or a texture with transparent texels -> BLEND; sphere and toon maps ignored),
bones (parents reordered parent-first, tails, inherit, fixed/local axes, deform
layer and after-physics flag, IK with angle limits -> :class:`~conrdata.rig.IKChain`),
rigid bodies and joints (which bone each body moves, its mode, which bodies each
joint links; shapes and spring parameters are not kept). Morphs and display frames
are parsed only to validate and count them; PMX 2.1 soft bodies are ignored.

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
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from conrdata.bonemaps import map_bone_names
from conrdata.errors import FormatError
from conrdata.formats.binreader import BinReader
from conrdata.formats.textures import load_texture
from conrdata.mesh import normalize_skin_weights, vertex_normals
from conrdata.rig import IKChain, Material, Rig

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


# --------------------------------------------------------------------------- PMX parsing

_ENCODINGS = {0: "utf-16-le", 1: "utf-8"}


def _index_struct(size: int, signed: bool) -> str:
    return {(1, True): "b", (1, False): "B", (2, True): "h", (2, False): "H", (4, True): "i",
            (4, False): "i"}[(size, signed)]


def parse_pmx(data: bytes, path: str | os.PathLike | None = None) -> MMDModel:
    """Parse PMX bytes into an :class:`MMDModel`; FormatError on anything malformed."""
    r = BinReader(data, path, "PMX file")
    if r.bytes(4, "signature") != b"PMX ":
        raise FormatError("not a PMX file (no 'PMX ' signature)", path)
    version = r.f32("version")
    if not (1.99 < version < 2.11):
        raise r.error(f"unsupported PMX version {version:.3g} (2.0 and 2.1 are read)")
    version = round(version, 1)
    nglobals = r.u8("globals count")
    if nglobals < 8:
        raise r.error(f"PMX header has {nglobals} globals, needs 8")
    g = r.bytes(nglobals, "globals")
    enc = _ENCODINGS.get(g[0])
    if enc is None:
        raise r.error(f"unknown PMX text encoding {g[0]}")
    n_add_uv = g[1]
    if n_add_uv > 4:
        raise r.error(f"PMX declares {n_add_uv} additional UVs (at most 4)")
    vsize, tsize, msize, bsize, morph_size, rsize = g[2], g[3], g[4], g[5], g[6], g[7]
    for label, s in (("vertex", vsize), ("texture", tsize), ("material", msize), ("bone", bsize),
                     ("morph", morph_size), ("rigid body", rsize)):
        if s not in (1, 2, 4):
            raise r.error(f"bad {label} index size {s} (1, 2 or 4)")

    def text(what: str) -> str:
        return r.sized_text(enc, what)

    meta = {
        "version": version,
        "encoding": enc,
        "name": text("model name"),
        "name_en": text("model English name"),
        "comment": text("model comment"),
        "comment_en": text("model English comment"),
    }
    model_warnings: list[str] = []

    # Vertices --------------------------------------------------------------------------------------
    base = struct.Struct(f"<{8 + 4 * n_add_uv}f")
    bi = _index_struct(bsize, True)
    st_bdef1 = struct.Struct(f"<{bi}")
    st_bdef2 = struct.Struct(f"<2{bi}f")
    st_bdef4 = struct.Struct(f"<4{bi}4f")
    st_sdef = struct.Struct(f"<2{bi}10f")
    st_f = struct.Struct("<f")
    nv = r.count(base.size + 1 + bsize + 4, "vertices")
    pos_l, jw_l = [], []
    buf, p = r.data, r.pos
    try:
        for _ in range(nv):
            pos_l.append(base.unpack_from(buf, p)[:8])
            p += base.size
            kind = buf[p]
            p += 1
            if kind == 0:
                (b0,) = st_bdef1.unpack_from(buf, p)
                p += st_bdef1.size
                jw_l.append((b0, -1, -1, -1, 1.0, 0.0, 0.0, 0.0))
            elif kind == 1:
                b0, b1, w0 = st_bdef2.unpack_from(buf, p)
                p += st_bdef2.size
                jw_l.append((b0, b1, -1, -1, w0, 1.0 - w0, 0.0, 0.0))
            elif kind in (2, 4):  # BDEF4, QDEF (dual quaternion) read as BDEF4
                jw_l.append(st_bdef4.unpack_from(buf, p))
                p += st_bdef4.size
            elif kind == 3:  # SDEF read as BDEF2 (its C, R0, R1 vectors are dropped)
                v = st_sdef.unpack_from(buf, p)
                p += st_sdef.size
                jw_l.append((v[0], v[1], -1, -1, v[2], 1.0 - v[2], 0.0, 0.0))
            else:
                r.pos = p - 1
                raise r.error(f"unknown vertex weight type {kind} (vertex {len(pos_l) - 1})")
            st_f.unpack_from(buf, p)  # edge scale: read, not used
            p += 4
    except (struct.error, IndexError):
        r.pos = min(p, len(buf))
        raise r.error(f"truncated PMX file: vertex {len(pos_l)} of {nv} is cut off") from None
    r.pos = p
    va = np.asarray(pos_l, np.float64).reshape(nv, 8)
    jw = np.asarray(jw_l, np.float64).reshape(nv, 8)

    # Faces -----------------------------------------------------------------------------------------
    nidx = r.count(vsize, "face indices")
    if nidx % 3:
        raise r.error(f"face index count {nidx} is not a multiple of 3")
    indices = r.array({1: np.uint8, 2: np.uint16, 4: np.int32}[vsize], nidx, "face indices").astype(np.int64)

    # Textures --------------------------------------------------------------------------------------
    ntex = r.count(4, "textures")
    textures = [text("texture path") for _ in range(ntex)]

    # Materials -------------------------------------------------------------------------------------
    nmat = r.count(8 + 44 + 1 + 20 + 2 * tsize + 3 + 4 + 4, "materials")
    materials = []
    for _ in range(nmat):
        name, name_en = text("material name"), text("material English name")
        vals = r.floats(11, "material colours")  # diffuse 4, specular 3, specularity 1, ambient 3
        flags = r.u8("material flags")
        r.floats(5, "edge colour and size")
        tex = r.int_of_size(tsize, True, "texture index")
        r.int_of_size(tsize, True, "sphere texture index")
        r.u8("sphere mode")
        shared_toon = r.u8("toon flag")
        if shared_toon == 0:
            r.int_of_size(tsize, True, "toon texture index")
        elif shared_toon == 1:
            r.u8("shared toon index")
        else:
            raise r.error(f"bad toon reference flag {shared_toon}")
        text("material memo")
        count = r.i32("material face index count")
        if count < 0 or count % 3:
            raise r.error(f"material {name!r} has a bad face index count {count}")
        materials.append(MMDMaterial(name, name_en, tuple(vals[:4]), flags, tex, count))

    # Bones -----------------------------------------------------------------------------------------
    nbones = r.count(8 + 12 + 2 * bsize + 6, "bones")
    bones = []
    for _ in range(nbones):
        name, name_en = text("bone name"), text("bone English name")
        position = r.floats(3, "bone position")
        parent = r.int_of_size(bsize, True, "parent bone index")
        layer = r.i32("bone layer")
        flags = r.u16("bone flags")
        bone = MMDBone(name, name_en, position, parent, flags, layer=layer)
        if flags & BONE_TAIL_IS_BONE:
            bone.tail_bone = r.int_of_size(bsize, True, "tail bone index")
        else:
            bone.tail_offset = r.floats(3, "tail offset")
        if flags & (BONE_INHERIT_ROTATION | BONE_INHERIT_TRANSLATION):
            bone.inherit_source = r.int_of_size(bsize, True, "inherit bone index")
            bone.inherit_weight = r.f32("inherit weight")
        if flags & BONE_FIXED_AXIS:
            bone.fixed_axis = r.floats(3, "fixed axis")
        if flags & BONE_LOCAL_AXIS:
            bone.local_x = r.floats(3, "local X axis")
            bone.local_z = r.floats(3, "local Z axis")
        if flags & BONE_EXTERNAL_PARENT:
            r.i32("external parent key")
        if flags & BONE_IK:
            target = r.int_of_size(bsize, True, "IK target index")
            loops = r.i32("IK loop count")
            limit = r.f32("IK limit angle")
            nlinks = r.count(bsize + 1, "IK links", limit=4096)
            ik = MMDIK(target, loops, limit)
            for _ in range(nlinks):
                link = r.int_of_size(bsize, True, "IK link bone index")
                has_limits = r.u8("IK link limit flag")
                if has_limits:
                    lo, hi = r.floats(3, "IK lower limit"), r.floats(3, "IK upper limit")
                    ik.links.append((link, lo, hi))
                else:
                    ik.links.append((link, None, None))
            bone.ik = ik
        bones.append(bone)

    # Sections parsed only to validate and count them ----------------------------------------------
    meta["morphs"] = _skip_morphs(r, version, vsize, bsize, msize, morph_size, rsize, text)
    meta["display_frames"] = _skip_display_frames(r, bsize, morph_size, text)
    rigid_bodies = _read_rigid_bodies(r, bsize, text)
    joints = _read_joints(r, rsize, text)
    meta["rigid_bodies"] = len(rigid_bodies)
    meta["joints"] = len(joints)
    if not r.at_end():
        if version >= 2.1:
            model_warnings.append("PMX 2.1 soft bodies ignored")
        else:
            model_warnings.append(f"{r.remaining} trailing bytes after the joints ignored")

    bone_idx = np.rint(jw[:, :4]).astype(np.int64)
    return MMDModel(
        format="pmx", version=version, positions=va[:, 0:3], normals=va[:, 3:6], uvs=va[:, 6:8],
        bone_indices=bone_idx, bone_weights=jw[:, 4:8], indices=indices, textures=textures,
        materials=materials, bones=bones, meta=meta, warnings=model_warnings,
        rigid_bodies=rigid_bodies, joints=joints,
    )


def _skip_morphs(r: BinReader, version, vsize, bsize, msize, morph_size, rsize, text) -> int:
    offset_sizes = {
        0: morph_size + 4,  # group
        1: vsize + 12,  # vertex
        2: bsize + 28,  # bone
        3: vsize + 16, 4: vsize + 16, 5: vsize + 16, 6: vsize + 16, 7: vsize + 16,  # UV, extra UV 1-4
        8: msize + 1 + 112,  # material
        9: morph_size + 4,  # flip (2.1)
        10: rsize + 1 + 24,  # impulse (2.1)
    }
    n = r.count(8 + 2 + 4, "morphs")
    for _ in range(n):
        text("morph name")
        text("morph English name")
        r.u8("morph panel")
        kind = r.u8("morph type")
        size = offset_sizes.get(kind)
        if size is None:
            raise r.error(f"unknown morph type {kind}")
        count = r.count(size, "morph offsets")
        r.skip(count * size, "morph offsets")
    return n


def _skip_display_frames(r: BinReader, bsize, morph_size, text) -> int:
    n = r.count(8 + 1 + 4, "display frames")
    for _ in range(n):
        text("display frame name")
        text("display frame English name")
        r.u8("display frame flag")
        count = r.count(1 + min(bsize, morph_size), "display frame items")
        for _ in range(count):
            kind = r.u8("display item type")
            if kind not in (0, 1):
                raise r.error(f"unknown display frame item type {kind}")
            r.skip(bsize if kind == 0 else morph_size, "display item index")
    return n


def _read_rigid_bodies(r: BinReader, bsize, text) -> list[MMDRigidBody]:
    rest = 2 + 1 + 36 + 20  # collision mask, shape, size/position/rotation, mass and four coefficients
    n = r.count(8 + bsize + 1 + rest + 1, "rigid bodies")
    out = []
    for _ in range(n):
        name = text("rigid body name")
        text("rigid body English name")
        bone = r.int_of_size(bsize, True, "rigid body bone index")
        group = r.u8("rigid body group")
        r.skip(rest, "rigid body")
        mode = r.u8("rigid body mode")
        out.append(MMDRigidBody(name, bone, mode, group))
    return out


def _read_joints(r: BinReader, rsize, text) -> list[MMDJoint]:
    n = r.count(8 + 1 + 2 * rsize + 96, "joints")
    out = []
    for _ in range(n):
        name = text("joint name")
        text("joint English name")
        r.u8("joint type")
        a = r.int_of_size(rsize, True, "joint rigid body A")
        b = r.int_of_size(rsize, True, "joint rigid body B")
        r.skip(96, "joint")
        out.append(MMDJoint(name, a, b))
    return out


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


def build_rig(model: MMDModel, path: str | os.PathLike) -> Rig:
    """Convert a parsed MMD model into a project :class:`Rig` (frame, units, order, textures)."""
    path = Path(path)
    warns = list(model.warnings)
    V = len(model.positions)
    B = len(model.bones)

    # Geometry in the project frame.
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

    # Bones: fold exact deform copies ("D" bones), then order parent-first.
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

    def new_index(i: int) -> int:
        return int(remap[i]) if 0 <= i < B else -1

    bones = [model.bones[i] for i in order]
    heads = np.asarray([b.position for b in bones], np.float64).reshape(B, 3)
    if not np.all(np.isfinite(heads)) or (B and np.abs(heads).max() > 1e6):
        raise FormatError("bone positions contain NaN, infinity or absurd values", path)
    bone_heads = heads * MMD_POSITION_SCALE + 0.0
    bone_parents = np.array([new_index(parents[i]) for i in order], np.int32)

    # Skin weights.
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
        joints = remap[alias[joints]]
    joints, weights, empty = normalize_skin_weights(joints, weights)
    if empty:
        warns.append(f"{empty} vertices had no bone weight; bound to bone 0")

    # Materials, textures and per-face material index.
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
    F = len(faces)
    face_material = np.zeros(F, np.int32)
    start = 0
    for k, m in enumerate(model.materials):
        n = m.index_count // 3
        face_material[start : start + n] = k
        start += n
    if start != F:
        if start > F:
            warns.append(f"materials claim {start} faces but the mesh has {F}; extra claims ignored")
        else:
            if not materials:
                grey = np.array([0.5, 0.5, 0.5, 1], np.float32)
                materials.append(Material(name="default", base_color=grey))
            warns.append(f"{F - start} faces have no material; given the last material")
            face_material[start:] = len(materials) - 1

    # IK chains.
    ik_chains = []
    for b_new, bone in enumerate(bones):
        ik = bone.ik
        if ik is None:
            continue
        target = new_index(ik.target)
        links = [new_index(link) for link, _, _ in ik.links]
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

    names = [b.name for b in bones]
    names_en = [b.name_en for b in bones]
    humanoid = map_bone_names(names)
    for h, i in map_bone_names(names_en).items():
        if h not in humanoid and i not in humanoid.values():
            humanoid[h] = i

    tails, inherit = [], []
    for bone in bones:
        if bone.tail_offset is not None:
            tail = (np.asarray(bone.position) + np.asarray(bone.tail_offset)) * MMD_POSITION_SCALE
            tails.append([float(x) for x in tail] if np.all(np.isfinite(tail)) else None)
        elif 0 <= bone.tail_bone < B:
            tails.append([float(x) for x in bone_heads[new_index(bone.tail_bone)]])
        else:
            tails.append(None)
    for b_new, bone in enumerate(bones):
        src = new_index(bone.inherit_source)
        if bone.flags & (BONE_INHERIT_ROTATION | BONE_INHERIT_TRANSLATION) and src >= 0:
            inherit.append({
                "bone": b_new, "source": src,
                "weight": float(bone.inherit_weight) if np.isfinite(bone.inherit_weight) else 0.0,
                "rotation": bool(bone.flags & BONE_INHERIT_ROTATION),
                "translation": bool(bone.flags & BONE_INHERIT_TRANSLATION),
            })

    def direction(v) -> list[float] | None:
        if v is None or not np.all(np.isfinite(v)):
            return None
        return [float(x) + 0.0 for x in np.asarray(v, np.float64) * _MIRROR]

    fixed_axes = [direction(b.fixed_axis) for b in bones]
    local_axes = [None if b.local_x is None else [direction(b.local_x), direction(b.local_z)] for b in bones]
    nbody = len(model.rigid_bodies)
    rigid_bodies = [{"name": rb.name, "bone": new_index(rb.bone), "mode": int(rb.mode),
                     "group": int(rb.group)} for rb in model.rigid_bodies]
    joints_mmd = [{"name": j.name, "a": int(j.a), "b": int(j.b)} for j in model.joints
                  if 0 <= j.a < nbody and 0 <= j.b < nbody]
    if len(joints_mmd) != len(model.joints):
        warns.append(f"{len(model.joints) - len(joints_mmd)} physics joints link missing rigid bodies; "
                     "ignored")

    meta = dict(model.meta)
    meta.update({
        "format": model.format,
        "source": str(path),
        "licence": {"comment": model.meta.get("comment", ""), "comment_en": model.meta.get("comment_en", "")},
        "unit_metres": MMD_UNIT_METRES,
        "mmd": {
            "bone_names_en": names_en,
            "bone_flags": [int(b.flags) for b in bones],
            "tails": tails,
            "inherit": inherit,
            "folded": [[new_index(d), new_index(src)] for d, src in folded],
            "fixed_axes": fixed_axes,
            "local_axes": local_axes,
            "layers": [int(b.layer) for b in bones],
            "rigid_bodies": rigid_bodies,
            "joints": joints_mmd,
        },
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


def read_pmx(path: str | os.PathLike) -> Rig:
    """Read a PMX 2.0/2.1 file into a :class:`Rig` in the project frame (metres, +Z facing).

    The rig is NOT yet aligned to the canonical A-pose (see :mod:`conrdata.apose`).
    Raises :class:`~conrdata.errors.FormatError` naming the file on any malformed input.
    """
    data = read_file_bytes(path)
    return build_rig(parse_pmx(data, path), path)
