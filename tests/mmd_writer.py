"""A small PMX 2.0/2.1 and PMD writer, for tests only (the real MMD assets are not in the repository).

It writes exactly the byte layouts the readers parse: PMX with UTF-16LE or UTF-8
text, any index sizes, additional UVs, BDEF1/2/4, SDEF and QDEF vertices, bone
tails/inherit/fixed/local axes/IK with limits, deform layers and the after-physics
flag, morphs, display frames, rigid bodies (placeholders, or :class:`WRigid` with a bone
and a mode), joints (placeholders, or :class:`WJoint` linking two bodies) and (2.1) a
soft-body section; PMD with Shift-JIS names, 0..100
weights, "tex.png*sphere.spa" texture fields, bone types, IK lists, the English
extension, toon list, rigid bodies and joints.

Everything is in MMD's own frame and units (left-handed, faces -Z, 1 unit = 8 cm).
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image


@dataclass
class WVertex:
    pos: tuple
    normal: tuple = (0.0, 0.0, -1.0)
    uv: tuple = (0.0, 0.0)
    kind: str = "BDEF1"  # BDEF1, BDEF2, BDEF4, SDEF, QDEF
    bones: tuple = (0,)
    weights: tuple = (1.0,)
    edge: float = 1.0


@dataclass
class WIK:
    target: int
    loops: int = 40
    limit: float = 2.0
    links: list = field(default_factory=list)  # (bone, lo xyz or None, hi xyz or None)


@dataclass
class WBone:
    name: str
    name_en: str
    pos: tuple
    parent: int = -1
    tail: int | tuple | None = None  # bone index or offset
    inherit: tuple | None = None  # (source, weight, rotation?, translation?)
    fixed_axis: tuple | None = None
    local_axes: tuple | None = None  # (x axis, z axis)
    ik: WIK | None = None
    pmd_type: int = 0
    translatable: bool = False
    layer: int = 0
    after_physics: bool = False


@dataclass
class WRigid:
    """A rigid body moving ``bone``; mode 0 follows the bone, 1 is simulated, 2 simulated with the bone's
    position kept."""

    bone: int
    mode: int = 0
    name: str = "rigid"
    group: int = 0


@dataclass
class WJoint:
    """A physics joint between rigid bodies ``a`` and ``b`` (indices into the model's rigid bodies)."""

    a: int
    b: int
    name: str = "joint"


@dataclass
class WMaterial:
    name: str
    diffuse: tuple = (1.0, 1.0, 1.0, 1.0)
    flags: int = 0
    texture: int = -1
    triangles: int = 0
    sphere: str = ""  # PMD only: appended as "tex*sphere"


@dataclass
class WModel:
    name: str = "model"
    name_en: str = "model"
    comment: str = ""
    comment_en: str = ""
    vertices: list[WVertex] = field(default_factory=list)
    faces: list[tuple] = field(default_factory=list)
    textures: list[str] = field(default_factory=list)
    materials: list[WMaterial] = field(default_factory=list)
    bones: list[WBone] = field(default_factory=list)
    vertex_morphs: list[tuple] = field(default_factory=list)  # (name, [(vertex, (dx, dy, dz))])
    rigid_bodies: int | list[WRigid] = 0  # a count of placeholder bodies, or the bodies
    joints: int | list[WJoint] = 0


# --------------------------------------------------------------------------- PMX


class _Out:
    def __init__(self):
        self.parts: list[bytes] = []

    def raw(self, b: bytes):
        self.parts.append(b)

    def pack(self, fmt: str, *v):
        self.parts.append(struct.pack("<" + fmt, *v))

    def bytes(self) -> bytes:
        return b"".join(self.parts)


_INDEX_FMT = {(1, True): "b", (1, False): "B", (2, True): "h", (2, False): "H", (4, True): "i",
              (4, False): "i"}


def pmx_bytes(m: WModel, version: float = 2.0, encoding: str = "utf-16-le", index_sizes=(2, 1, 1, 2, 1, 1),
              additional_uvs: int = 0, soft_bodies: bool = False) -> bytes:
    """PMX bytes; ``index_sizes`` = (vertex, texture, material, bone, morph, rigid body)."""
    vs, ts, ms, bs, mos, rs = index_sizes
    o = _Out()
    o.raw(b"PMX ")
    o.pack("f", version)
    o.pack("B", 8)
    o.pack("8B", {"utf-16-le": 0, "utf-8": 1}[encoding], additional_uvs, vs, ts, ms, bs, mos, rs)

    def text(s: str):
        b = s.encode(encoding)
        o.pack("i", len(b))
        o.raw(b)

    def idx(size: int, v: int, signed: bool = True):
        o.pack(_INDEX_FMT[(size, signed)], v)

    text(m.name)
    text(m.name_en)
    text(m.comment)
    text(m.comment_en)
    o.pack("i", len(m.vertices))
    for v in m.vertices:
        o.pack("8f", *v.pos, *v.normal, *v.uv)
        for k in range(additional_uvs):
            o.pack("4f", 0.1 * k, 0.2, 0.3, 0.4)
        kinds = {"BDEF1": 0, "BDEF2": 1, "BDEF4": 2, "SDEF": 3, "QDEF": 4}
        o.pack("B", kinds[v.kind])
        if v.kind == "BDEF1":
            idx(bs, v.bones[0])
        elif v.kind in ("BDEF2", "SDEF"):
            idx(bs, v.bones[0])
            idx(bs, v.bones[1])
            o.pack("f", v.weights[0])
            if v.kind == "SDEF":
                o.pack("9f", 0.0, 1.0, 0.0, 0.0, 1.1, 0.0, 0.0, 0.9, 0.0)
        else:
            for b in v.bones:
                idx(bs, b)
            o.pack("4f", *v.weights)
        o.pack("f", v.edge)
    o.pack("i", 3 * len(m.faces))
    for f in m.faces:
        for k in f:
            idx(vs, k, signed=False)
    o.pack("i", len(m.textures))
    for t in m.textures:
        text(t)
    o.pack("i", len(m.materials))
    for mat in m.materials:
        text(mat.name)
        text(mat.name + "_en")
        o.pack("4f", *mat.diffuse)
        o.pack("3f", 0.1, 0.1, 0.1)
        o.pack("f", 5.0)
        o.pack("3f", 0.5, 0.5, 0.5)
        o.pack("B", mat.flags)
        o.pack("4f", 0, 0, 0, 1)
        o.pack("f", 1.0)
        idx(ts, mat.texture)
        idx(ts, -1)  # sphere
        o.pack("B", 0)
        o.pack("B", 1)  # shared toon
        o.pack("B", 3)
        text("memo")
        o.pack("i", 3 * mat.triangles)
    o.pack("i", len(m.bones))
    for b in m.bones:
        text(b.name)
        text(b.name_en)
        o.pack("3f", *b.pos)
        idx(bs, b.parent)
        o.pack("i", b.layer)
        flags = 0x0002 | 0x0008 | 0x0010  # rotatable, visible, enabled
        if b.translatable:
            flags |= 0x0004
        if b.after_physics:
            flags |= 0x1000
        if isinstance(b.tail, int):
            flags |= 0x0001
        if b.ik is not None:
            flags |= 0x0020
        if b.inherit is not None:
            flags |= (0x0100 if b.inherit[2] else 0) | (0x0200 if b.inherit[3] else 0)
        if b.fixed_axis is not None:
            flags |= 0x0400
        if b.local_axes is not None:
            flags |= 0x0800
        o.pack("H", flags)
        if isinstance(b.tail, int):
            idx(bs, b.tail)
        else:
            o.pack("3f", *(b.tail or (0.0, 0.0, 0.0)))
        if b.inherit is not None:
            idx(bs, b.inherit[0])
            o.pack("f", b.inherit[1])
        if b.fixed_axis is not None:
            o.pack("3f", *b.fixed_axis)
        if b.local_axes is not None:
            o.pack("3f", *b.local_axes[0])
            o.pack("3f", *b.local_axes[1])
        if b.ik is not None:
            idx(bs, b.ik.target)
            o.pack("i", b.ik.loops)
            o.pack("f", b.ik.limit)
            o.pack("i", len(b.ik.links))
            for link, lo, hi in b.ik.links:
                idx(bs, link)
                o.pack("B", 0 if lo is None else 1)
                if lo is not None:
                    o.pack("3f", *lo)
                    o.pack("3f", *hi)
    # Morphs: the given vertex morphs, plus one of each other kind to exercise the skipping.
    morphs = 1 + len(m.vertex_morphs) + (1 if m.bones else 0) + (1 if m.materials else 0)
    if version >= 2.1:
        morphs += 1
    o.pack("i", morphs)
    text("group")
    text("group")
    o.pack("BB", 4, 0)
    o.pack("i", 1)
    idx(mos, 0)
    o.pack("f", 1.0)
    for name, offsets in m.vertex_morphs:
        text(name)
        text(name)
        o.pack("BB", 1, 1)
        o.pack("i", len(offsets))
        for vi, d in offsets:
            idx(vs, vi, signed=False)
            o.pack("3f", *d)
    if m.bones:
        text("bone morph")
        text("bone morph")
        o.pack("BB", 4, 2)
        o.pack("i", 1)
        idx(bs, 0)
        o.pack("7f", 0, 1, 0, 0, 0, 0, 1)
    if m.materials:
        text("material morph")
        text("material morph")
        o.pack("BB", 4, 8)
        o.pack("i", 1)
        idx(ms, 0)
        o.pack("B", 0)
        o.pack("28f", *([0.5] * 28))
    if version >= 2.1:
        text("flip")
        text("flip")
        o.pack("BB", 4, 9)
        o.pack("i", 1)
        idx(mos, 0)
        o.pack("f", 1.0)
    # Display frames: root with bone 0, and one with a morph.
    o.pack("i", 2)
    text("Root")
    text("Root")
    o.pack("B", 1)
    o.pack("i", 1 if m.bones else 0)
    if m.bones:
        o.pack("B", 0)
        idx(bs, 0)
    text("表情")
    text("Exp")
    o.pack("B", 1)
    o.pack("i", 1)
    o.pack("B", 1)
    idx(mos, 0)
    bodies = _bodies(m)
    o.pack("i", len(bodies))
    for k, rb in enumerate(bodies):
        text(f"{rb.name}{k}")
        text(f"rigid{k}")
        idx(bs, rb.bone)
        o.pack("BHB", rb.group, 0xFFFF, 0)
        o.pack("9f", 1, 1, 1, 0, 0, 0, 0, 0, 0)
        o.pack("5f", 1, 0.5, 0.5, 0, 0.5)
        o.pack("B", rb.mode)
    joints = _joints(m)
    o.pack("i", len(joints))
    for k, j in enumerate(joints):
        text(f"{j.name}{k}")
        text(f"J{k}")
        o.pack("B", 0)
        idx(rs, j.a)
        idx(rs, j.b)
        o.pack("24f", *([0.0] * 24))
    if soft_bodies:
        o.pack("i", 1)
        text("soft")
        text("soft")
        o.raw(b"\x00" * 64)
    return o.bytes()


def _bodies(m: WModel) -> list[WRigid]:
    return [WRigid(0) for _ in range(m.rigid_bodies)] if isinstance(m.rigid_bodies, int) else m.rigid_bodies


def _joints(m: WModel) -> list[WJoint]:
    return [WJoint(0, 0) for _ in range(m.joints)] if isinstance(m.joints, int) else m.joints


def write_pmx(path, m: WModel, **kw) -> Path:
    path = Path(path)
    path.write_bytes(pmx_bytes(m, **kw))
    return path


# --------------------------------------------------------------------------- PMD


def _fixed(s: str, n: int) -> bytes:
    b = s.encode("cp932")[: n - 1]
    return b + b"\0" + b"\xfd" * (n - len(b) - 1)


def pmd_bytes(m: WModel, english: bool = True, toon_and_physics: bool = True) -> bytes:
    """PMD bytes (Shift-JIS names). Vertex weights use the first two bones of each vertex."""
    o = _Out()
    o.raw(b"Pmd")
    o.pack("f", 1.0)
    o.raw(_fixed(m.name, 20))
    o.raw(_fixed(m.comment, 256))
    o.pack("I", len(m.vertices))
    for v in m.vertices:
        o.pack("8f", *v.pos, *v.normal, *v.uv)
        b0 = v.bones[0]
        b1 = v.bones[1] if len(v.bones) > 1 else v.bones[0]
        w0 = int(round(100 * v.weights[0]))
        o.pack("HHBB", b0, b1, w0, 0)
    o.pack("I", 3 * len(m.faces))
    for f in m.faces:
        o.pack("3H", *f)
    o.pack("I", len(m.materials))
    for mat in m.materials:
        o.pack("4f", *mat.diffuse)
        o.pack("f", 5.0)
        o.pack("3f", 0.1, 0.1, 0.1)
        o.pack("3f", 0.5, 0.5, 0.5)
        o.pack("BB", 0xFF, 1)
        o.pack("I", 3 * mat.triangles)
        tex = m.textures[mat.texture] if mat.texture >= 0 else ""
        if mat.sphere:
            tex = f"{tex}*{mat.sphere}" if tex else mat.sphere
        o.raw(_fixed(tex, 20))
    o.pack("H", len(m.bones))
    for b in m.bones:
        o.raw(_fixed(b.name, 20))
        o.pack("H", 0xFFFF if b.parent < 0 else b.parent)
        o.pack("H", b.tail if isinstance(b.tail, int) else 0)
        o.pack("B", 2 if b.ik is not None else b.pmd_type)
        target = b.ik.target if b.ik is not None else (b.inherit[0] if b.inherit else 0)
        o.pack("H", target)
        o.pack("3f", *b.pos)
    iks = [(i, b.ik) for i, b in enumerate(m.bones) if b.ik is not None]
    o.pack("H", len(iks))
    for i, ik in iks:
        o.pack("HHBHf", i, ik.target, len(ik.links), ik.loops, ik.limit / 4.0)
        for link, _, _ in ik.links:
            o.pack("H", link)
    # Morphs ("skins"): base first, then the vertex morphs relative to it.
    morphs = m.vertex_morphs
    o.pack("H", 1 + len(morphs) if morphs else 0)
    if morphs:
        verts = sorted({vi for _, offs in morphs for vi, _ in offs})
        o.raw(_fixed("base", 20))
        o.pack("IB", len(verts), 0)
        for vi in verts:
            o.pack("I3f", vi, *m.vertices[vi].pos)
        for name, offs in morphs:
            o.raw(_fixed(name, 20))
            o.pack("IB", len(offs), 1)
            for vi, d in offs:
                o.pack("I3f", verts.index(vi), *d)
    o.pack("B", len(morphs))
    for k in range(len(morphs)):
        o.pack("H", k + 1)
    o.pack("B", 1)
    o.raw(_fixed("体", 50))
    o.pack("I", len(m.bones))
    for k in range(len(m.bones)):
        o.pack("HB", k, 1)
    if english:
        o.pack("B", 1)
        o.raw(_fixed(m.name_en, 20))
        o.raw(_fixed(m.comment_en, 256))
        for b in m.bones:
            o.raw(_fixed(b.name_en, 20))
        for name, _ in morphs:
            o.raw(_fixed(name, 20))
        o.raw(_fixed("Body", 50))
    if toon_and_physics:
        for k in range(10):
            o.raw(_fixed(f"toon{k + 1:02d}.bmp", 100))
        bodies, joints = _bodies(m), _joints(m)
        o.pack("I", len(bodies))
        for k, rb in enumerate(bodies):
            o.raw(_fixed(f"{rb.name}{k}", 20))
            o.pack("HBHB", 0xFFFF if rb.bone < 0 else rb.bone, rb.group, 0xFFFF, 0)
            o.pack("14f", *([0.0] * 14))
            o.pack("B", rb.mode)
        o.pack("I", len(joints))
        for k, j in enumerate(joints):
            o.raw(_fixed(f"{j.name}{k}", 20))
            o.pack("II", j.a, j.b)
            o.pack("24f", *([0.0] * 24))
    return o.bytes()


def write_pmd(path, m: WModel, **kw) -> Path:
    path = Path(path)
    path.write_bytes(pmd_bytes(m, **kw))
    return path


# --------------------------------------------------------------------------- a tiny MMD humanoid

KNEE_LO = (-math.pi, 0.0, 0.0)
KNEE_HI = (math.radians(-0.5), 0.0, 0.0)


def tiny_humanoid(textures=("tex\\Body.PNG", "hair.tga"), with_d_bones: bool = True) -> WModel:
    """A ~1.5 m MMD humanoid with the standard Japanese bones, one triangle per bone, leg IK.

    MMD frame: the character faces -Z, its left side is at +X. Vertices 3b, 3b+1, 3b+2 are
    at the head of bone b, 0.3 units along +X and 0.3 units along +Y from it, with normal -Z
    (towards the front); weights are BDEF1 to that bone, except a few vertices that
    exercise BDEF2/BDEF4/SDEF/QDEF.
    """
    bones: list[WBone] = []

    def add(name, name_en, pos, parent=None, **kw) -> int:
        p = -1 if parent is None else next(i for i, b in enumerate(bones) if b.name == parent)
        bones.append(WBone(name, name_en, tuple(float(x) for x in pos), p, **kw))
        return len(bones) - 1

    add("センター", "center", (0, 8, 0), pmd_type=1, translatable=True)
    add("下半身", "lower body", (0, 11.5, 0), "センター")
    add("上半身", "upper body", (0, 11.8, 0), "センター")
    add("上半身2", "upper body2", (0, 13.5, 0), "上半身")
    add("首", "neck", (0, 16.2, 0), "上半身2")
    add("頭", "head", (0, 17.0, 0), "首", tail=(0.0, 2.0, 0.0))
    for jp, en, sx in (("左", "_L", 1.0), ("右", "_R", -1.0)):
        add(jp + "肩", "shoulder" + en, (0.4 * sx, 15.8, 0), "上半身2")
        add(jp + "腕", "arm" + en, (1.4 * sx, 15.6, 0.2), jp + "肩")
        add(jp + "腕捩", "arm twist" + en, (2.6 * sx, 14.5, 0.25), jp + "腕",
            fixed_axis=(0.6 * sx, -0.8, 0.0), local_axes=((0.6 * sx, -0.8, 0.0), (0.0, 0.0, 1.0)))
        add(jp + "ひじ", "elbow" + en, (3.8 * sx, 13.4, 0.3), jp + "腕")
        add(jp + "手首", "wrist" + en, (5.8 * sx, 11.6, 0.1), jp + "ひじ", tail=(0.8 * sx, -0.7, 0.0))
        add(jp + "親指０", "thumb0" + en, (5.9 * sx, 11.4, -0.3), jp + "手首")
        add(jp + "人指１", "fore1" + en, (6.4 * sx, 11.0, -0.1), jp + "手首")
    for jp, en, sx in (("左", "_L", 1.0), ("右", "_R", -1.0)):
        leg = add(jp + "足", "leg" + en, (0.9 * sx, 11.0, 0.1), "下半身")
        knee = add(jp + "ひざ", "knee" + en, (0.9 * sx, 6.0, -0.1), jp + "足")
        ankle = add(jp + "足首", "ankle" + en, (0.9 * sx, 1.0, 0.2), jp + "ひざ")
        add(jp + "つま先", "toe" + en, (0.9 * sx, 0.0, -1.5), jp + "足首")
        add(jp + "足ＩＫ", "leg IK" + en, (0.9 * sx, 1.0, 0.2), "センター", pmd_type=2, translatable=True,
            ik=WIK(ankle, 40, 2.0, [(knee, KNEE_LO, KNEE_HI), (leg, None, None)]))
        if with_d_bones:
            add(jp + "足D", "legD" + en, (0.9 * sx, 11.0, 0.1), "下半身", inherit=(leg, 1.0, True, False),
                pmd_type=5)
            add(jp + "ひざD", "kneeD" + en, (0.9 * sx, 6.0, -0.1), jp + "足D",
                inherit=(knee, 1.0, True, False), pmd_type=5)
            add(jp + "足首D", "ankleD" + en, (0.9 * sx, 1.0, 0.2), jp + "ひざD",
                inherit=(ankle, 1.0, True, False), pmd_type=5)
            add(jp + "足先EX", "toeEX" + en, (0.9 * sx, 0.2, -1.0), jp + "足首D")
    add("両目", "eyes", (0, 17.8, -0.6), "頭")
    add("左目", "eye_L", (0.3, 17.6, -0.8), "頭", inherit=(len(bones) - 1, 1.0, True, False))
    add("右目", "eye_R", (-0.3, 17.6, -0.8), "頭", inherit=(len(bones) - 2, 1.0, True, False))

    vertices, faces = [], []
    for b, bone in enumerate(bones):
        x, y, z = bone.pos
        base = len(vertices)
        vertices.append(WVertex((x, y, z), (0, 0, -1), (0.25, 0.25), "BDEF1", (b,), (1.0,)))
        vertices.append(WVertex((x + 0.3, y, z), (0, 0, -1), (0.75, 0.25), "BDEF1", (b,), (1.0,)))
        vertices.append(WVertex((x, y + 0.3, z), (0, 0, -1), (0.5, 0.75), "BDEF1", (b,), (1.0,)))
        faces.append((base, base + 2, base + 1))  # clockwise seen from the front (-Z), as MMD draws
    # Blended vertices (weights deliberately not summing to 1 for BDEF4, to test renormalisation).
    vertices[1] = WVertex(vertices[1].pos, kind="BDEF2", bones=(0, 1), weights=(0.25, 0.75))
    vertices[4] = WVertex(vertices[4].pos, kind="BDEF4", bones=(1, 2, 3, 4), weights=(0.2, 0.2, 0.2, 0.2))
    vertices[7] = WVertex(vertices[7].pos, kind="SDEF", bones=(2, 3), weights=(0.6, 0.4))
    vertices[10] = WVertex(vertices[10].pos, kind="QDEF", bones=(3, 4, 5, -1), weights=(0.5, 0.5, 0.0, 0.0))
    nf = len(faces)
    materials = [
        WMaterial("体", (1.0, 0.9, 0.8, 1.0), flags=0x01, texture=0, triangles=nf - 4),
        WMaterial("髪", (0.5, 0.5, 1.0, 0.5), flags=0x00, texture=1 if len(textures) > 1 else -1, triangles=4,
                  sphere="hair.spa"),
    ]
    return WModel(
        name="テストモデル", name_en="test model",
        comment="テスト用モデル。改変可・再配布不可", comment_en="test model; edits ok, no redistribution",
        vertices=vertices, faces=faces, textures=list(textures), materials=materials, bones=bones,
        vertex_morphs=[("あ", [(0, (0.0, 0.1, 0.0)), (1, (0.0, 0.2, 0.0))])], rigid_bodies=2, joints=1,
    )


BODY_RGB = (200, 40, 10)


def write_textures(folder: Path) -> None:
    """The textures :func:`tiny_humanoid` and the tests refer to, in deliberately different letter case:
    tex/body.png (8x8 BODY_RGB, referenced as ``tex\\Body.PNG``), hair.tga (4x4 blue, alpha 128),
    face.bmp (4 wide, 2 high, green) and sphere.dds (not a supported format)."""
    folder = Path(folder)
    (folder / "tex").mkdir(exist_ok=True)
    Image.new("RGB", (8, 8), BODY_RGB).save(folder / "tex" / "body.png")
    hair = np.zeros((4, 4, 4), np.uint8)
    hair[..., 2] = 255
    hair[..., 3] = 128
    Image.fromarray(hair, "RGBA").save(folder / "hair.tga")
    Image.new("RGB", (4, 2), (0, 255, 0)).save(folder / "face.bmp")
    (folder / "sphere.dds").write_bytes(b"DDS |not really")


# --------------------------------------------------------------------------- secondary chains

#: Sleeve / deform-copy / physics bones of :func:`chains_humanoid` -> the arm bone that should carry them.
SLEEVE_CARRIERS = {"左腕袖": "左腕", "左ひじ袖": "左ひじ", "左手首袖": "左手首"}
INHERIT_CARRIERS = {"右腕D": "右腕", "右ひじD": "右ひじ", "右手首D": "右手首"}
PHYSICS_CARRIERS = {"右袖飾1": "右ひじ", "右袖飾2": "右ひじ"}
#: Radius (MMD units) of the thin sleeve tube: IK leaves a sleeve's roll free, so only points near its axis
#: are pinned to the arm.
SLEEVE_RADIUS = 0.03


def _tube(vertices: list, faces: list, a, b, bone: int, radius: float, rings=(0.2, 0.5, 0.8)) -> None:
    """Small triangles around the segment a -> b (MMD frame), every vertex BDEF1 to ``bone``."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    d = (b - a) / np.linalg.norm(b - a)
    u = np.cross(d, [0.0, 0.0, 1.0])
    u /= np.linalg.norm(u)
    w = np.cross(d, u)
    for t in rings:
        c = a + t * (b - a)
        base = len(vertices)
        for k in range(3):
            ang = 2 * math.pi * k / 3
            p = c + radius * (math.cos(ang) * u + math.sin(ang) * w)
            vertices.append(WVertex(tuple(float(x) for x in p), (0, 0, -1), (0.5, 0.5), "BDEF1", (bone,),
                                    (1.0,)))
        faces.append((base, base + 2, base + 1))


def chains_humanoid() -> WModel:
    """:func:`tiny_humanoid` (no leg D bones) plus three secondary chains MMD models are built with.

    - Left arm, a sleeve chain hanging from the SHOULDER (左腕袖 -> 左ひじ袖 -> 左手首袖 -> 左手首袖先),
      pulled by IK bones under the arm: 左腕袖IK under 左腕捩, 左手袖IK under 左手捩 (added, between
      elbow and wrist), 左手首袖IK under 左手首. Its thin tube is skinned to the sleeve bones only.
    - Right arm, deform copies under a shoulder-cancel bone (右肩P -> 右肩 -> 右肩C inheriting 右肩P
      with weight -1; 右腕D -> 右ひじD -> 右手首D inheriting 右腕 / 右ひじ / 右手首 with weight 1), which
      the reader cannot fold (their parent is not the source's); a thick tube skinned to them.
    - Right forearm, a physics chain hanging from the SHOULDER (右袖飾1 -> 右袖飾2, dynamic bodies of
      mode 1 and 2) jointed to the forearm's kinematic body (on 右ひじ), body by body.

    :data:`SLEEVE_CARRIERS`, :data:`INHERIT_CARRIERS` and :data:`PHYSICS_CARRIERS` say which arm bone
    carries each chain bone.
    """
    m = tiny_humanoid(with_d_bones=False)
    bones = m.bones

    def ix(name: str) -> int:
        return next(i for i, b in enumerate(bones) if b.name == name)

    def add(name, pos, parent, **kw) -> int:
        bones.append(WBone(name, name, tuple(float(x) for x in pos), ix(parent), **kw))
        return len(bones) - 1

    def pos(name: str) -> np.ndarray:
        return np.asarray(bones[ix(name)].pos, float)

    ua, el, wr = pos("左腕"), pos("左ひじ"), pos("左手首")
    add("左手捩", el + 0.6 * (wr - el), "左ひじ", fixed_axis=tuple((wr - el) / np.linalg.norm(wr - el)))
    bones[ix("左手首")].parent = ix("左手捩")  # the reader orders parents first
    tip = wr + np.array([0.8, -0.7, 0.0])
    s0 = add("左腕袖", ua, "左肩")
    s1 = add("左ひじ袖", el, "左腕袖")
    s2 = add("左手首袖", wr, "左ひじ袖")
    s3 = add("左手首袖先", tip, "左手首袖")
    add("左腕袖IK", el, "左腕捩", ik=WIK(s1, 20, 2.0, [(s0, None, None)]))
    add("左手袖IK", wr, "左手捩", ik=WIK(s2, 20, 2.0, [(s1, None, None)]))
    add("左手首袖IK", tip, "左手首", ik=WIK(s3, 20, 2.0, [(s2, None, None)]))

    ua, el, wr = pos("右腕"), pos("右ひじ"), pos("右手首")
    sh = pos("右肩")
    p = add("右肩P", sh, "上半身2")
    bones[ix("右肩")].parent = p
    c = add("右肩C", ua, "右肩", inherit=(p, -1.0, True, False))
    d0 = add("右腕D", ua, "右肩C", inherit=(ix("右腕"), 1.0, True, False))
    d1 = add("右ひじD", el, "右腕D", inherit=(ix("右ひじ"), 1.0, True, False))
    d2 = add("右手首D", wr, "右ひじD", inherit=(ix("右手首"), 1.0, True, False))
    assert c < d0
    drop = np.array([0.0, -0.4, 0.0])
    f1 = add("右袖飾1", el + 0.3 * (wr - el) + drop, "右肩")
    f2 = add("右袖飾2", el + 0.6 * (wr - el) + drop, "右袖飾1")

    verts, faces = m.vertices, m.faces
    nf = len(faces)
    _tube(verts, faces, pos("左腕"), pos("左ひじ"), s0, SLEEVE_RADIUS)
    _tube(verts, faces, pos("左ひじ"), pos("左手首"), s1, SLEEVE_RADIUS)
    _tube(verts, faces, pos("左手首"), tip, s2, SLEEVE_RADIUS)
    _tube(verts, faces, ua, el, d0, 0.4)
    _tube(verts, faces, el, wr, d1, 0.35)
    _tube(verts, faces, wr, wr + np.array([-0.8, -0.7, 0.0]), d2, 0.3)
    _tube(verts, faces, pos("右袖飾1"), pos("右袖飾2"), f1, 0.2, rings=(0.0, 0.5))
    _tube(verts, faces, pos("右袖飾2"), pos("右袖飾2") + (wr - el) * 0.3, f2, 0.2, rings=(0.0, 0.5))
    m.materials[0].triangles += len(faces) - nf
    # The body material comes first in the face list, so the new triangles go before the hair's four.
    m.faces = faces[: nf - 4] + faces[nf:] + faces[nf - 4 : nf]
    m.rigid_bodies = [
        WRigid(ix("頭"), 0, "頭"),
        WRigid(ix("右ひじ"), 0, "右腕下"),
        WRigid(f1, 1, "袖飾1"),
        WRigid(f2, 2, "袖飾2"),
        WRigid(ix("左腕"), 0, "左腕"),
    ]
    m.joints = [WJoint(2, 1, "袖飾1-腕"), WJoint(2, 3, "袖飾1-2")]
    return m
