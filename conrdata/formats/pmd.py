"""PMD (MikuMikuDance model, version 1.0) reader: bytes -> :class:`~conrdata.rig.model.Rig`.

Names and comments are Shift-JIS (read as cp932) in fixed NUL-terminated fields.
Vertices carry two bones and the first bone's weight as 0..100; materials carry
a 20-byte texture field that may combine a colour texture and a sphere map as
``"a.png*sphere.spa"`` (the .sph/.spa part is ignored). Bones have a type byte:
2 = IK, 5 = rotation-influenced (copies the rotation of the bone in its "IK"
field), 9 = rotation-linked (copies the rotation of the bone in its tail field times
``ik / 100``); 5 and 9 go to
``rig.meta["mmd"]["inherit"]`` like PMX inherit bones. The IK list gives target,
links (effector's parent first), iterations and the per-iteration limit
(PMD stores it divided by 4). PMD has no IK angle limits in the file; like MMD
itself, links whose name contains ``ひざ`` (knee) get the knee limit. Morphs and
display lists are validated and skipped; the optional English extension gives
English bone names; toon texture names are skipped; rigid bodies (bone, group,
mode) and joints (the two bodies) are read as in PMX, for the pose evaluator's
physics bones. A truncated physics section is dropped with a warning.

Frame, units and the conversion to the project frame are the same as PMX
(see :mod:`conrdata.formats.mmd_model`): ``0.08 * (x, y, -z)``, winding flipped.
"""

from __future__ import annotations

import math
import os

import numpy as np

from conrdata.errors import FormatError
from conrdata.formats.binreader import BinReader
from conrdata.formats.mmd_model import (
    BONE_INHERIT_ROTATION,
    BONE_TAIL_IS_BONE,
    BONE_TRANSLATABLE,
    MMDIK,
    MMDBone,
    MMDJoint,
    MMDMaterial,
    MMDModel,
    MMDRigidBody,
    build_rig,
    read_file_bytes,
)
from conrdata.rig.model import Rig

_ENC = "cp932"
#: MMD's built-in knee limit (MMD frame, radians): bend about -X only.
KNEE_LIMIT = ((-math.pi, 0.0, 0.0), (math.radians(-0.5), 0.0, 0.0))
_SPHERE_EXTENSIONS = (".sph", ".spa")

_VERTEX_DTYPE = np.dtype([
    ("pos", "<f4", 3), ("normal", "<f4", 3), ("uv", "<f4", 2), ("bones", "<u2", 2), ("weight", "u1"),
    ("edge", "u1"),
])
_MATERIAL_DTYPE = np.dtype([
    ("diffuse", "<f4", 3), ("alpha", "<f4"), ("specularity", "<f4"), ("specular", "<f4", 3),
    ("ambient", "<f4", 3), ("toon", "u1"), ("edge", "u1"), ("index_count", "<u4"), ("texture", "S20"),
])
_BONE_DTYPE = np.dtype([
    ("name", "S20"), ("parent", "<u2"), ("tail", "<u2"), ("type", "u1"), ("ik", "<u2"), ("pos", "<f4", 3),
])


def _text(raw: bytes) -> str:
    cut = raw.find(b"\0")
    return (raw if cut < 0 else raw[:cut]).decode(_ENC, errors="replace")


def split_texture_field(field: str) -> str:
    """The colour texture of a PMD texture field ('a.png*s.spa' -> 'a.png'; 's.sph' -> '')."""
    for part in field.split("*"):
        part = part.strip()
        if part and not part.lower().endswith(_SPHERE_EXTENSIONS):
            return part
    return ""


def parse_pmd(data: bytes, path: str | os.PathLike | None = None) -> MMDModel:
    """Parse PMD bytes into an :class:`~conrdata.formats.mmd_model.MMDModel`; FormatError when malformed."""
    r = BinReader(data, path, "PMD file")
    if r.bytes(3, "signature") != b"Pmd":
        raise FormatError("not a PMD file (no 'Pmd' signature)", path)
    version = r.f32("version")
    if not (0.99 < version < 1.01):
        raise r.error(f"unsupported PMD version {version:.3g} (1.0 is read)")
    meta = {"version": 1.0, "encoding": "shift_jis"}
    meta["name"] = r.fixed_text(20, _ENC, "model name")
    meta["comment"] = r.fixed_text(256, _ENC, "model comment")
    warns: list[str] = []

    nv = r.count(_VERTEX_DTYPE.itemsize, "vertices", signed=False)
    verts = r.array(_VERTEX_DTYPE, nv, "vertices")
    nidx = r.count(2, "face indices", signed=False)
    if nidx % 3:
        raise r.error(f"face index count {nidx} is not a multiple of 3")
    indices = r.array("<u2", nidx, "face indices").astype(np.int64)
    nmat = r.count(_MATERIAL_DTYPE.itemsize, "materials", signed=False)
    mats = r.array(_MATERIAL_DTYPE, nmat, "materials")
    nbones = r.count(_BONE_DTYPE.itemsize, "bones", size=2, signed=False)
    bone_rec = r.array(_BONE_DTYPE, nbones, "bones")

    niks = r.count(11, "IK definitions", size=2, signed=False)
    iks: list[tuple[int, MMDIK]] = []
    for _ in range(niks):
        ik_bone = r.u16("IK bone index")
        target = r.u16("IK target index")
        nlinks = r.u8("IK link count")
        loops = r.u16("IK iterations")
        weight = r.f32("IK limit angle")
        links = [r.u16("IK link bone index") for _ in range(nlinks)]
        iks.append((ik_bone, MMDIK(target, loops, 4.0 * weight, [(k, None, None) for k in links])))

    nmorph = r.count(25, "morphs", size=2, signed=False)
    for _ in range(nmorph):
        r.skip(20, "morph name")
        count = r.count(16, "morph vertices", signed=False)
        r.skip(1 + 16 * count, "morph vertices")
    r.skip(2 * r.u8("morph display count"), "morph display list")
    nframes = r.u8("bone frame count")
    r.skip(50 * nframes, "bone frame names")
    ndisp = r.count(3, "bone display entries", signed=False)
    r.skip(3 * ndisp, "bone display list")

    names_en: list[str] = [""] * nbones
    if not r.at_end():
        has_english = r.u8("English flag")
        if has_english:
            start = r.pos
            try:
                meta["name_en"] = r.fixed_text(20, _ENC, "English model name")
                meta["comment_en"] = r.fixed_text(256, _ENC, "English comment")
                names_en = [r.fixed_text(20, _ENC, "English bone name") for _ in range(nbones)]
                r.skip(20 * max(nmorph - 1, 0) + 50 * nframes, "English morph and frame names")
            except FormatError:
                r.pos = start
                names_en = [""] * nbones
                warns.append("truncated English name section ignored")
    # Toon texture names (skipped), then rigid bodies and joints.
    rigid_bodies, joints = _read_physics(r, nbones, warns)

    bones = []
    for b, rec in enumerate(bone_rec):
        parent = int(rec["parent"])
        parent = -1 if parent == 0xFFFF else parent
        btype = int(rec["type"])
        tail = int(rec["tail"])
        bone = MMDBone(
            name=_text(rec["name"]), name_en=names_en[b], position=tuple(float(x) for x in rec["pos"]),
            parent=parent, flags=BONE_TAIL_IS_BONE, tail_bone=tail if 0 < tail < nbones else -1,
        )
        if btype in (1, 2):  # rotate+move, IK
            bone.flags |= BONE_TRANSLATABLE
        if btype == 5:
            bone.flags |= BONE_INHERIT_ROTATION
            bone.inherit_source = int(rec["ik"])
            bone.inherit_weight = 1.0
        elif btype == 9:
            # Rotation-linked (twist helpers 腕捩1..3): the tail field names the source bone and the
            # IK field holds the percentage (mei.pmd: 右腕捩1 -> tail 右腕捩, ik 25).
            bone.flags = (bone.flags & ~BONE_TAIL_IS_BONE) | BONE_INHERIT_ROTATION
            bone.inherit_source = tail
            bone.inherit_weight = int(rec["ik"]) / 100.0
            bone.tail_bone = -1
        bones.append(bone)
    for ik_bone, ik in iks:
        if ik_bone >= nbones:
            warns.append(f"IK definition for missing bone {ik_bone} ignored")
            continue
        is_knee = [k < nbones and "ひざ" in bones[k].name for k, _, _ in ik.links]
        links = [k for k, _, _ in ik.links]
        ik.links = [(k, *KNEE_LIMIT) if knee else (k, None, None) for k, knee in zip(links, is_knee)]
        bones[ik_bone].ik = ik
    meta["pmd_bone_types"] = [int(t) for t in bone_rec["type"]]
    meta["morphs"] = nmorph

    materials = []
    textures: list[str] = []
    for k, m in enumerate(mats):
        count = int(m["index_count"])
        if count % 3:
            raise r.error(f"material {k} has a face index count {count} that is not a multiple of 3")
        tex_name = split_texture_field(_text(bytes(m["texture"])))
        tex = -1
        if tex_name:
            if tex_name not in textures:
                textures.append(tex_name)
            tex = textures.index(tex_name)
        diffuse = (*[float(x) for x in m["diffuse"]], float(m["alpha"]))
        # MMD draws PMD materials with alpha < 1 without back-face culling.
        flags = 0x01 if diffuse[3] < 1.0 else 0x00
        materials.append(MMDMaterial(f"material{k}", "", diffuse, flags, tex, count))

    w0 = np.minimum(verts["weight"].astype(np.float64), 100.0) / 100.0
    if np.any(verts["weight"] > 100):
        warns.append("vertex weights above 100 clamped")
    bone_idx = np.full((nv, 4), -1, np.int64)
    bone_idx[:, :2] = verts["bones"]
    bone_w = np.zeros((nv, 4), np.float64)
    bone_w[:, 0] = w0
    bone_w[:, 1] = 1.0 - w0
    with np.errstate(invalid="ignore"):  # signalling NaNs in a damaged file are rejected later
        positions, normals, uvs = (verts[k].astype(np.float64) for k in ("pos", "normal", "uv"))
    return MMDModel(
        format="pmd", version=1.0, positions=positions, normals=normals, uvs=uvs,
        bone_indices=bone_idx, bone_weights=bone_w, indices=indices, textures=textures,
        materials=materials, bones=bones, meta=meta, warnings=warns,
        rigid_bodies=rigid_bodies, joints=joints,
    )


_RIGID_SIZE = 83  # name 20, bone u16, group u8, mask u16, shape u8, 9 floats geometry, 5 floats, mode u8
_JOINT_SIZE = 124  # name 20, bodies 2 x u32, 24 floats


def _read_physics(r: BinReader, nbones: int, warns: list[str]) -> tuple[list, list]:
    """Rigid bodies and joints after the toon names; ([], []) when the file ends before them."""
    if r.remaining < 1000 + 4:
        return [], []
    start = r.pos
    try:
        r.skip(1000, "toon texture names")
        bodies = []
        for _ in range(r.count(_RIGID_SIZE, "rigid bodies", size=4, signed=False)):
            name = r.fixed_text(20, _ENC, "rigid body name")
            bone = r.u16("rigid body bone")
            group = r.u8("rigid body group")
            r.skip(2 + 1 + 36 + 20, "rigid body")
            mode = r.u8("rigid body mode")
            bodies.append(MMDRigidBody(name, -1 if bone >= nbones else bone, mode, group))
        joints = []
        if r.remaining:
            for _ in range(r.count(_JOINT_SIZE, "joints", size=4, signed=False)):
                name = r.fixed_text(20, _ENC, "joint name")
                a, b = r.u32("joint body A"), r.u32("joint body B")
                r.skip(96, "joint")
                joints.append(MMDJoint(name, a, b))
    except FormatError:
        r.pos = start
        warns.append("truncated rigid body / joint section ignored")
        return [], []
    return bodies, joints


def read_pmd(path: str | os.PathLike) -> Rig:
    """Read a PMD file into a :class:`Rig` in the project frame (metres, +Z facing), not yet A-pose-aligned.

    Raises :class:`~conrdata.errors.FormatError` naming the file on any malformed input.
    """
    data = read_file_bytes(path)
    return build_rig(parse_pmd(data, path), path)
