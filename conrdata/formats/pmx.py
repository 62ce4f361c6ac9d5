"""PMX 2.0 / 2.1 (MikuMikuDance extended model) reader: bytes -> :class:`~conrdata.rig.model.Rig`.

What is read: header globals (text encoding, additional UVs, index sizes; 1- and
2-byte vertex indices are unsigned, all other indices signed with -1 = none),
vertices (BDEF1/2/4; SDEF read as BDEF2 and QDEF as BDEF4; weights renormalised),
faces, textures, materials (diffuse RGBA, texture, double-sided flag 0x01; alpha
< 1 or a texture with transparent texels -> BLEND; sphere and toon maps ignored),
bones (parents reordered parent-first, tails, inherit, fixed/local axes, deform
layer and after-physics flag, IK with angle limits -> :class:`~conrdata.rig.model.IKChain`),
rigid bodies and joints (which bone each body moves, its mode, which bodies each
joint links; shapes and spring parameters are not kept). Morphs and display frames
are parsed only to validate and count them; PMX 2.1 soft bodies are ignored.

Frames, units, ``rig.meta["mmd"]`` and the folding of "D" bones: see
:mod:`conrdata.formats.mmd_model`, which PMX and PMD share.
"""

from __future__ import annotations

import os
import struct

import numpy as np

from conrdata.errors import FormatError
from conrdata.formats.binreader import BinReader
from conrdata.formats.mmd_model import (
    BONE_EXTERNAL_PARENT,
    BONE_FIXED_AXIS,
    BONE_IK,
    BONE_INHERIT_ROTATION,
    BONE_INHERIT_TRANSLATION,
    BONE_LOCAL_AXIS,
    BONE_TAIL_IS_BONE,
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


def read_pmx(path: str | os.PathLike) -> Rig:
    """Read a PMX 2.0/2.1 file into a :class:`Rig` in the project frame (metres, +Z facing).

    The rig is NOT yet aligned to the canonical A-pose (see :mod:`conrdata.rig.apose`).
    Raises :class:`~conrdata.errors.FormatError` naming the file on any malformed input.
    """
    data = read_file_bytes(path)
    return build_rig(parse_pmx(data, path), path)
