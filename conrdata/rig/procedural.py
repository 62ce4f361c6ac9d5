"""A procedural, rigged, anime-proportioned humanoid: the project's own embedded default character.

:func:`build_character` returns a :class:`~conrdata.rig.model.Rig` that is already in the
canonical A-pose of docs/design.md (feet on y = 0, hips at x = z = 0, facing +Z, the
character's left on +X, upper arms 45 degrees below horizontal in the frontal
plane with forearm and hand continuing the line, legs vertical). It has a body,
a big head with a drawn face, a hair cap and hair strands (secondary bone chains
``hair_<i>_<j>``), a pleated skirt (chains ``skirt_<k>_<j>``), seven textured
materials (one double-sided, one alpha-MASK; skin, hair, top, skirt, legwear and shoes
each get their own colour, drawn independently), smooth two-bone blends at every
joint, and a few thousand triangles. Everything varies with ``seed``.

:func:`write_character_glb` writes the same character as a skinned glTF binary
in a T-pose with non-identity bone rest rotations, so that ``conrdata convert``
has real work to do (folding rest rotations, aligning to the A-pose).
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from conrdata.formats.gltf_writer import rig_to_glb
from conrdata.rig.mesh import normalize_skin_weights, vertex_normals
from conrdata.rig.model import (
    Material,
    Rig,
    forward_kinematics,
    identity_rotations,
    skin,
    skin_normals,
    skinning_matrices,
)
from conrdata.rig.rotations import axis_rotation

#: The humanoid bones the procedural character has (all map to bones of the same name).
PROCEDURAL_HUMANOID = (
    "hips", "spine", "chest", "neck", "head",
    "leftShoulder", "leftUpperArm", "leftLowerArm", "leftHand",
    "rightShoulder", "rightUpperArm", "rightLowerArm", "rightHand",
    "leftUpperLeg", "leftLowerLeg", "leftFoot", "leftToes",
    "rightUpperLeg", "rightLowerLeg", "rightFoot", "rightToes",
)

ARM_ANGLE_DEG = 45.0

MAT_SKIN, MAT_FACE, MAT_CLOTHES, MAT_SKIRT, MAT_HAIR, MAT_LEGS, MAT_SHOES = range(7)


# --------------------------------------------------------------------------- skeleton


@dataclass
class _Skeleton:
    names: list[str] = field(default_factory=list)
    parents: list[int] = field(default_factory=list)
    heads: list[np.ndarray] = field(default_factory=list)

    def add(self, name: str, parent: str | None, head) -> int:
        self.names.append(name)
        self.parents.append(-1 if parent is None else self.names.index(parent))
        self.heads.append(np.asarray(head, np.float64))
        return len(self.names) - 1

    def idx(self, name: str) -> int:
        return self.names.index(name)

    def head(self, name: str) -> np.ndarray:
        return self.heads[self.idx(name)]


@dataclass
class _Params:
    """Seeded proportions (metres, before the overall scale) and colours."""

    scale: float
    hip_y: float
    leg_x: float
    chest_w: float
    head_r: float
    upper_arm: float
    lower_arm: float
    skirt_len: float
    skirt_flare: float
    n_strands: int
    strand_len: float
    skin: np.ndarray
    hair: np.ndarray
    clothes: np.ndarray
    skirt: np.ndarray
    eyes: np.ndarray
    legs: np.ndarray  # stockings / tights
    shoes: np.ndarray


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(h % 1.0, s, v), np.float64)


def _params(seed: int) -> _Params:
    rng = np.random.default_rng(seed)
    return _Params(
        scale=float(rng.uniform(1.40, 1.60)) / 1.5,
        hip_y=float(rng.uniform(0.72, 0.78)),
        leg_x=float(rng.uniform(0.07, 0.085)),
        chest_w=float(rng.uniform(0.095, 0.12)),
        head_r=float(rng.uniform(0.115, 0.13)),
        upper_arm=float(rng.uniform(0.21, 0.24)),
        lower_arm=float(rng.uniform(0.19, 0.22)),
        skirt_len=float(rng.uniform(0.22, 0.34)),
        skirt_flare=float(rng.uniform(0.08, 0.14)),
        n_strands=int(rng.integers(6, 11)),
        strand_len=float(rng.uniform(0.25, 0.55)),
        skin=_hsv(rng.uniform(0.02, 0.1), rng.uniform(0.1, 0.55), rng.uniform(0.45, 1.0)),
        hair=_hsv(rng.uniform(0, 1), rng.uniform(0.3, 0.9), rng.uniform(0.25, 0.95)),
        clothes=_hsv(rng.uniform(0, 1), rng.uniform(0.3, 0.8), rng.uniform(0.5, 0.95)),
        skirt=_hsv(rng.uniform(0, 1), rng.uniform(0.4, 0.9), rng.uniform(0.35, 0.85)),
        eyes=_hsv(rng.uniform(0, 1), rng.uniform(0.5, 1.0), rng.uniform(0.5, 0.9)),
        # drawn last, so the colours above keep the values they had before legs and shoes had their own
        legs=_hsv(rng.uniform(0, 1), rng.uniform(0.0, 0.9), rng.uniform(0.1, 0.95)),
        shoes=_hsv(rng.uniform(0, 1), rng.uniform(0.2, 0.9), rng.uniform(0.1, 0.8)),
    )


def _arm_dir(side: float) -> np.ndarray:
    a = np.radians(ARM_ANGLE_DEG)
    return np.array([side * np.cos(a), -np.sin(a), 0.0])


def _skeleton(p: _Params) -> _Skeleton:
    sk = _Skeleton()
    hip_y = p.hip_y
    sk.add("hips", None, [0, hip_y + 0.03, 0])
    sk.add("spine", "hips", [0, hip_y + 0.13, 0])
    sk.add("chest", "spine", [0, hip_y + 0.25, 0.0])
    neck_y = hip_y + 0.40
    sk.add("neck", "chest", [0, neck_y, 0])
    sk.add("head", "neck", [0, neck_y + 0.07, 0])
    head_c = _head_centre(p, sk)
    # Hair strands hang from the back and sides of the head.
    for i in range(p.n_strands):
        phi = np.radians(100 + 160 * (i + 0.5) / p.n_strands)  # 0 = front (+Z), around through the back
        root = head_c + np.array([np.sin(phi) * p.head_r * 0.95, 0.04, np.cos(phi) * p.head_r * 0.95])
        out = np.array([np.sin(phi), 0, np.cos(phi)])
        parent = "head"
        for j in range(3):
            pt = root + np.array([0, -p.strand_len * j / 3, 0]) + out * 0.025 * j
            name = f"hair_{i}_{j}"
            sk.add(name, parent, pt)
            parent = name
    sh_y = neck_y - 0.03
    for side, s in (("left", 1.0), ("right", -1.0)):
        sk.add(f"{side}Shoulder", "chest", [s * 0.025, sh_y, 0])
        ua = np.array([s * (p.chest_w + 0.005), sh_y - 0.01, 0])
        sk.add(f"{side}UpperArm", f"{side}Shoulder", ua)
        la = ua + _arm_dir(s) * p.upper_arm
        sk.add(f"{side}LowerArm", f"{side}UpperArm", la)
        sk.add(f"{side}Hand", f"{side}LowerArm", la + _arm_dir(s) * p.lower_arm)
    for side, s in (("left", 1.0), ("right", -1.0)):
        sk.add(f"{side}UpperLeg", "hips", [s * p.leg_x, hip_y, 0])
        knee_y = 0.07 + (hip_y - 0.07) * 0.5
        sk.add(f"{side}LowerLeg", f"{side}UpperLeg", [s * p.leg_x, knee_y, 0])
        sk.add(f"{side}Foot", f"{side}LowerLeg", [s * p.leg_x, 0.07, 0])
        sk.add(f"{side}Toes", f"{side}Foot", [s * p.leg_x, 0.03, 0.09])
    k_chains = 8
    waist_y = hip_y + 0.12
    for k in range(k_chains):
        th = 2 * np.pi * k / k_chains
        d = np.array([np.sin(th), 0, np.cos(th)])
        top = d * (p.chest_w * 0.85) + [0, waist_y, 0]
        hem = d * (p.chest_w * 0.85 + p.skirt_flare) + [0, waist_y - p.skirt_len, 0]
        sk.add(f"skirt_{k}_0", "hips", top)
        sk.add(f"skirt_{k}_1", f"skirt_{k}_0", 0.5 * (top + hem))
    return sk


def _head_centre(p: _Params, sk: _Skeleton) -> np.ndarray:
    return sk.head("head") + np.array([0, p.head_r * 1.05, 0.005])


# --------------------------------------------------------------------------- mesh building


class _Mesh:
    """Accumulates pieces: positions, uvs, triangles, material, dense per-bone weights."""

    def __init__(self, num_bones: int):
        self.B = num_bones
        self.pos: list[np.ndarray] = []
        self.uv: list[np.ndarray] = []
        self.w: list[np.ndarray] = []
        self.faces: list[np.ndarray] = []
        self.mat: list[np.ndarray] = []
        self.nrm: list[np.ndarray] = []
        self.count = 0

    def add(self, pos, uv, faces, weights, material: int, outward_from=None, closed=True) -> None:
        pos = np.asarray(pos, np.float64)
        faces = np.asarray(faces, np.int64)
        if closed:
            # Signed volume > 0 <=> counter-clockwise seen from outside.
            v0, v1, v2 = pos[faces[:, 0]], pos[faces[:, 1]], pos[faces[:, 2]]
            if np.einsum("ij,ij->i", v0, np.cross(v1, v2)).sum() < 0:
                faces = faces[:, ::-1]
        normals = vertex_normals(pos, faces, weld_decimals=6)
        if outward_from is not None:
            centre = np.asarray(outward_from, np.float64)
            if np.einsum("ij,ij->i", normals, pos - centre).sum() < 0:
                faces = faces[:, ::-1]
                normals = -normals
        self.pos.append(pos)
        self.uv.append(np.asarray(uv, np.float64))
        self.w.append(np.asarray(weights, np.float64))
        self.faces.append(faces + self.count)
        self.mat.append(np.full(len(faces), material, np.int32))
        self.nrm.append(normals)
        self.count += len(pos)


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def _chain_weights(s: np.ndarray, knots: np.ndarray, bones: list[int], B: int, blend: float,
                   before: int | None = None) -> np.ndarray:
    """Dense (N, B) weights for points at arclength ``s`` along a chain.

    ``knots`` (n+1,) are the arclengths of the joints, segment i belongs to ``bones[i]``.
    Across each inner joint the weight moves smoothly from one bone to the next over
    +/- ``blend`` metres; ``before`` is a bone blended in at the start joint.
    """
    n = len(bones)
    w = np.zeros((len(s), B))
    seg = np.clip(np.searchsorted(knots, s, side="right") - 1, 0, n - 1)
    # weight of the later bone across joint i (i = 1..n-1) is smoothstep((s - knot_i)/(2 blend) + 0.5)
    for i in range(len(s)):
        b = seg[i]
        w[i, bones[b]] = 1.0
        if b + 1 < n:
            t = _smoothstep((s[i] - knots[b + 1]) / (2 * blend) + 0.5)
            if t > 0:
                w[i, bones[b]] -= t
                w[i, bones[b + 1]] += t
        prev = bones[b - 1] if b > 0 else before
        if prev is not None:
            t = 1.0 - _smoothstep((s[i] - knots[b]) / (2 * blend) + 0.5)
            if t > 0:
                w[i, bones[b]] -= t
                w[i, prev] += t
    return w


def _frame(t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ref = np.array([0.0, 0.0, 1.0]) if abs(t[2]) < 0.9 else np.array([1.0, 0.0, 0.0])
    n1 = np.cross(t, ref)
    n1 /= np.linalg.norm(n1)
    return n1, np.cross(t, n1)


def _tube(mesh: _Mesh, joints: list[np.ndarray], bones: list[int], radii: list[tuple[float, float]],
          material: int, rings_per_seg: int = 4, around: int = 12, blend: float = 0.035,
          before: int | None = None, v_range=(0.0, 1.0)) -> None:
    """A closed tube along joint points, radius interpolated per joint (ra along the side axis, rb front)."""
    J = np.asarray(joints, np.float64)
    seg_len = np.linalg.norm(np.diff(J, axis=0), axis=1)
    knots = np.concatenate([[0.0], np.cumsum(seg_len)])
    centres, tangents, rad, svals = [], [], [], []
    for i in range(len(bones)):
        d = (J[i + 1] - J[i]) / seg_len[i]
        for r in range(rings_per_seg + (1 if i == len(bones) - 1 else 0)):
            f = r / rings_per_seg
            centres.append(J[i] + f * (J[i + 1] - J[i]))
            tangents.append(d)
            rad.append((1 - f) * np.asarray(radii[i]) + f * np.asarray(radii[i + 1]))
            svals.append(knots[i] + f * seg_len[i])
    n_r = len(centres)
    theta = np.linspace(0, 2 * np.pi, around + 1)
    pos, uv = [], []
    for c, t, (ra, rb), s in zip(centres, tangents, rad, svals):
        n1, n2 = _frame(t)
        for th in theta:
            pos.append(c + ra * np.cos(th) * n1 + rb * np.sin(th) * n2)
            uv.append([th / (2 * np.pi), v_range[0] + (v_range[1] - v_range[0]) * s / knots[-1]])
    faces = []
    row = around + 1
    for r in range(n_r - 1):
        for a in range(around):
            i0, i1 = r * row + a, r * row + a + 1
            j0, j1 = i0 + row, i1 + row
            faces += [[i0, j0, i1], [i1, j0, j1]]
    # caps: centre vertex at each end
    start, end = len(pos), len(pos) + 1
    pos += [centres[0], centres[-1]]
    uv += [[0.5, v_range[0]], [0.5, v_range[1]]]
    svals_all = np.concatenate([np.repeat(svals, row), [svals[0], svals[-1]]])
    for a in range(around):
        faces.append([start, a + 1, a])
        last = (n_r - 1) * row
        faces.append([end, last + a, last + a + 1])
    w = _chain_weights(svals_all, knots, bones, mesh.B, blend, before)
    mesh.add(pos, uv, faces, w, material, closed=True)


def _ellipsoid(mesh: _Mesh, centre, radii, bone: int, material: int, around=24, rows=16,
               polar_max: float = np.pi, polar_max_front: float | None = None) -> None:
    """A lat-long ellipsoid (or a cap, if ``polar_max`` < pi). u = 0.5 faces +Z, v = polar angle / pi."""
    c = np.asarray(centre, np.float64)
    pos, uv = [], []
    lon = np.linspace(-np.pi, np.pi, around + 1)
    for r in range(rows + 1):
        for ph in lon:
            pmax = polar_max
            if polar_max_front is not None:
                # smaller cap over the face: interpolate by how much the longitude faces front
                front = max(np.cos(ph), 0.0)
                pmax = polar_max + (polar_max_front - polar_max) * front ** 2
            pol = pmax * r / rows
            d = np.array([np.sin(pol) * np.sin(ph), np.cos(pol), np.sin(pol) * np.cos(ph)])
            pos.append(c + d * radii)
            uv.append([0.5 + ph / (2 * np.pi), pol / np.pi])
    row = around + 1
    faces = []
    for r in range(rows):
        for a in range(around):
            i0, i1 = r * row + a, r * row + a + 1
            j0, j1 = i0 + row, i1 + row
            faces += [[i0, j0, i1], [i1, j0, j1]]
    faces = np.asarray(faces)
    pos = np.asarray(pos)
    # drop degenerate triangles at the pole rows
    a, b, cc = pos[faces[:, 0]], pos[faces[:, 1]], pos[faces[:, 2]]
    keep = np.linalg.norm(np.cross(b - a, cc - a), axis=1) > 1e-12
    faces = faces[keep]
    w = np.zeros((len(pos), mesh.B))
    w[:, bone] = 1.0
    closed = polar_max >= np.pi - 1e-9 and polar_max_front is None
    mesh.add(pos, uv, faces, w, material, outward_from=None if closed else c, closed=closed)


def _ribbon(mesh: _Mesh, points: list[np.ndarray], bones: list[int], side_dir: np.ndarray, widths,
            material: int, before: int, outward_from, rings_per_seg: int = 3, blend: float = 0.03) -> None:
    """A flat strip (3 vertices across) along chain points, for hair strands; u across, v along (0..1)."""
    P = np.asarray(points, np.float64)
    seg_len = np.linalg.norm(np.diff(P, axis=0), axis=1)
    knots = np.concatenate([[0.0], np.cumsum(seg_len)])
    total = knots[-1]
    pos, uv, svals = [], [], []
    n_rows = rings_per_seg * len(bones) + 1
    for r in range(n_rows):
        s = total * r / (n_rows - 1)
        i = min(np.searchsorted(knots, s, side="right") - 1, len(bones) - 1)
        f = (s - knots[i]) / seg_len[i]
        c = P[i] + f * (P[i + 1] - P[i])
        wdt = np.interp(s / total, np.linspace(0, 1, len(widths)), widths)
        for u in (0.0, 0.5, 1.0):
            pos.append(c + side_dir * wdt * (u - 0.5))
            uv.append([u, 0.3 + 0.7 * s / total])
            svals.append(s)
    faces = []
    for r in range(n_rows - 1):
        for k in range(2):
            i0, i1 = r * 3 + k, r * 3 + k + 1
            faces += [[i0, i0 + 3, i1], [i1, i0 + 3, i1 + 3]]
    w = _chain_weights(np.asarray(svals), knots, bones, mesh.B, blend, before)
    mesh.add(pos, uv, faces, w, material, outward_from=outward_from, closed=False)


def _skirt(mesh: _Mesh, sk: _Skeleton, p: _Params, material: int, around: int = 32, rows: int = 6) -> None:
    """A flared, slightly pleated skirt; each vertex blends the two nearest chains and the chain levels."""
    k_chains = 8
    hips = sk.idx("hips")
    top_r = p.chest_w * 0.85
    waist_y = sk.head("skirt_0_0")[1]
    pos, uv, w = [], [], []
    for r in range(rows + 1):
        f = r / rows
        for a in range(around + 1):
            th = 2 * np.pi * a / around
            pleat = 1.0 + 0.04 * f * np.cos(th * 16)
            rad = (top_r + p.skirt_flare * f) * pleat
            pos.append([np.sin(th) * rad, waist_y - p.skirt_len * f, np.cos(th) * rad])
            uv.append([a / around, f])
            wk = np.zeros(mesh.B)
            x = th / (2 * np.pi) * k_chains
            k0 = int(np.floor(x)) % k_chains
            k1 = (k0 + 1) % k_chains
            t = x - np.floor(x)
            # along the chain: hips at the waist, level 0 in the upper half, level 1 in the lower half
            up_to_0 = _smoothstep(f / 0.25)
            lvl1 = _smoothstep((f - 0.5) / 0.2 + 0.5)
            for kk, wt in ((k0, 1 - t), (k1, t)):
                wk[hips] += wt * (1 - up_to_0)
                wk[sk.idx(f"skirt_{kk}_0")] += wt * up_to_0 * (1 - lvl1)
                wk[sk.idx(f"skirt_{kk}_1")] += wt * up_to_0 * lvl1
            w.append(wk)
    faces = []
    row = around + 1
    for r in range(rows):
        for a in range(around):
            i0, i1 = r * row + a, r * row + a + 1
            faces += [[i0, i0 + row, i1], [i1, i0 + row, i1 + row]]
    centre = np.array([0.0, waist_y - p.skirt_len * 0.5, 0.0])
    mesh.add(pos, uv, faces, np.asarray(w), material, closed=False, outward_from=centre)


# --------------------------------------------------------------------------- textures


def _rgba(rgb: np.ndarray, a: int = 255) -> np.ndarray:
    return np.concatenate([np.round(np.clip(rgb, 0, 1) * 255), [a]]).astype(np.uint8)


def _textures(p: _Params, rng: np.random.Generator) -> list[np.ndarray]:
    size = 64
    yy, xx = np.mgrid[0:size, 0:size] / size  # v (rows), u (columns) in [0, 1)
    skin = np.tile(_rgba(p.skin), (16, 16, 1))

    fs = 128
    fy, fx = (np.mgrid[0:fs, 0:fs] + 0.5) / fs
    face = np.tile(_rgba(p.skin), (fs, fs, 1))
    for cx in (0.5 - 0.06, 0.5 + 0.06):
        e = ((fx - cx) / 0.03) ** 2 + ((fy - 0.56) / 0.045) ** 2
        face[e < 1.35] = _rgba(np.zeros(3) + 0.1)
        face[e < 1.0] = _rgba(p.eyes)
        pupil = ((fx - cx) / 0.012) ** 2 + ((fy - 0.57) / 0.02) ** 2
        face[pupil < 1.0] = _rgba(p.eyes * 0.3)
        hl = ((fx - cx + 0.01) / 0.007) ** 2 + ((fy - 0.545) / 0.009) ** 2
        face[hl < 1.0] = _rgba(np.ones(3))
    mouth = (np.abs(fx - 0.5) < 0.02) & (np.abs(fy - 0.66) < 0.004)
    face[mouth] = _rgba(np.array([0.6, 0.25, 0.25]))
    blush = ((np.abs(fx - 0.5) - 0.085) / 0.02) ** 2 + ((fy - 0.62) / 0.01) ** 2 < 1
    face[blush] = _rgba(p.skin * 0.8 + np.array([0.2, 0.0, 0.0]))

    clothes = np.tile(_rgba(p.clothes), (size, size, 1))
    stripes = (np.floor(yy * 8) % 2 == 0) & (yy > 0.55)
    clothes[stripes] = _rgba(p.clothes * 0.6 + 0.4)
    collar = yy > 0.9
    clothes[collar] = _rgba(np.ones(3) * 0.95)

    plaid = ((np.floor(xx * 12) + np.floor(yy * 6)) % 2).astype(bool)
    skirt = np.tile(_rgba(p.skirt), (size, size, 1))
    skirt[plaid] = _rgba(p.skirt * 0.75)
    hem = yy > 0.9
    skirt[hem] = _rgba(np.ones(3) * 0.95)

    hair = np.tile(_rgba(p.hair), (size, size, 1))
    shade = (np.sin(xx * np.pi * 6) * 0.08)[..., None]
    hair[..., :3] = np.clip(hair[..., :3] * (1 + shade), 0, 255).astype(np.uint8)
    # strands use v in [0.3, 1]: pointed tips are cut out by the alpha mask
    half = np.where(yy < 0.7, 0.5, 0.5 * (1.0 - (yy - 0.7) / 0.3))
    hair[..., 3] = np.where(np.abs(xx + 0.5 / size - 0.5) <= half, 255, 0).astype(np.uint8)
    legs = np.tile(_rgba(p.legs), (16, 16, 1))
    shoes = np.tile(_rgba(p.shoes), (16, 16, 1))
    del rng
    return [skin, face, clothes, skirt, hair, legs, shoes]


# --------------------------------------------------------------------------- assembly


def build_character(seed: int = 0) -> Rig:
    """The procedural character for ``seed``, already in the canonical A-pose (see module docstring).

    Units are metres (height about 1.4-1.6 m); +Y up, faces +Z, left on +X.
    """
    p = _params(seed)
    sk = _skeleton(p)
    B = len(sk.names)
    mesh = _Mesh(B)
    I = sk.idx
    H = sk.head
    hip_y = p.hip_y

    # torso: crotch -> neck base, elliptical sections (rx side, rz front)
    torso_pts = [np.array([0, hip_y - 0.06, 0]), H("spine"), H("chest"), H("neck")]
    torso_r = [(0.10, 0.075), (0.085, 0.065), (p.chest_w, 0.075), (0.05, 0.045)]
    _tube(mesh, torso_pts, [I("hips"), I("spine"), I("chest")], torso_r, MAT_CLOTHES,
          rings_per_seg=4, around=16, blend=0.04, v_range=(0.0, 1.0))
    neck_top = H("head") + np.array([0, 0.04, 0])
    _tube(mesh, [H("neck") - np.array([0, 0.02, 0]), H("head"), neck_top], [I("neck"), I("head")],
          [(0.035, 0.035), (0.032, 0.032), (0.03, 0.03)], MAT_SKIN, rings_per_seg=2, around=10,
          blend=0.02, before=I("chest"))
    head_c = _head_centre(p, sk)
    head_radii = np.array([p.head_r, p.head_r * 1.08, p.head_r * 1.0])
    _ellipsoid(mesh, head_c, head_radii, I("head"), MAT_FACE, around=24, rows=16)
    # hair cap: slightly larger, down to the ears at the sides and back, the forehead at the front
    _ellipsoid(mesh, head_c + [0, 0.01, -0.005], head_radii * 1.07, I("head"), MAT_HAIR, around=24, rows=8,
               polar_max=np.radians(105), polar_max_front=np.radians(58))
    for i in range(p.n_strands):
        names = [f"hair_{i}_{j}" for j in range(3)]
        pts = [H(n) for n in names]
        tip = pts[-1] + (pts[-1] - pts[-2])
        phi = np.radians(100 + 160 * (i + 0.5) / p.n_strands)
        side = np.array([np.cos(phi), 0, -np.sin(phi)])
        _ribbon(mesh, pts + [tip], [I(n) for n in names], side, [0.07, 0.06, 0.03], MAT_HAIR,
                before=I("head"), outward_from=head_c - [0, 0.2, 0])
    for side, s in (("left", 1.0), ("right", -1.0)):
        d = _arm_dir(s)
        hand_end = H(f"{side}Hand") + d * 0.09
        _tube(mesh, [H(f"{side}Shoulder"), H(f"{side}UpperArm"), H(f"{side}LowerArm"), H(f"{side}Hand"),
                     hand_end],
              [I(f"{side}Shoulder"), I(f"{side}UpperArm"), I(f"{side}LowerArm"), I(f"{side}Hand")],
              [(0.045, 0.045), (0.042, 0.042), (0.032, 0.032), (0.024, 0.02), (0.02, 0.012)],
              MAT_SKIN, rings_per_seg=4, around=12, blend=0.03, before=I("chest"))
        _tube(mesh, [H(f"{side}UpperLeg"), H(f"{side}LowerLeg"), H(f"{side}Foot")],
              [I(f"{side}UpperLeg"), I(f"{side}LowerLeg")],
              [(0.062, 0.062), (0.042, 0.042), (0.032, 0.032)], MAT_LEGS, rings_per_seg=5, around=12,
              blend=0.04, before=I("hips"))
        toe_end = H(f"{side}Toes") + np.array([0, 0, 0.05])
        _tube(mesh, [H(f"{side}Foot") + [0, 0.02, -0.03], H(f"{side}Toes"), toe_end],
              [I(f"{side}Foot"), I(f"{side}Toes")], [(0.038, 0.045), (0.035, 0.03), (0.03, 0.025)],
              MAT_SHOES, rings_per_seg=3, around=10, blend=0.02, before=I(f"{side}LowerLeg"),
              v_range=(0.0, 0.5))
    _skirt(mesh, sk, p, MAT_SKIRT)

    pos = np.concatenate(mesh.pos)
    heads = np.asarray(sk.heads)
    # feet exactly on the ground
    lift = -pos[:, 1].min()
    pos[:, 1] += lift
    heads = heads + [0, lift, 0]
    pos *= p.scale
    heads *= p.scale

    dense = np.concatenate(mesh.w)
    bones = np.broadcast_to(np.arange(dense.shape[1]), dense.shape)
    joints, weights, _ = normalize_skin_weights(bones, dense)
    rng = np.random.default_rng(seed + 7919)
    tex = _textures(p, rng)
    materials = [
        Material("skin", texture=tex[0]),
        Material("face", texture=tex[1]),
        Material("clothes", texture=tex[2]),
        Material("skirt", texture=tex[3], double_sided=True),
        Material("hair", texture=tex[4], alpha_mode="MASK", alpha_cutoff=0.5, double_sided=True),
        Material("legs", texture=tex[5]),
        Material("shoes", texture=tex[6]),
    ]
    rig = Rig(
        vertices=pos.astype(np.float32),
        normals=np.concatenate(mesh.nrm).astype(np.float32),
        uvs=np.concatenate(mesh.uv).astype(np.float32),
        faces=np.concatenate(mesh.faces).astype(np.int32),
        face_material=np.concatenate(mesh.mat).astype(np.int32),
        joints=joints.astype(np.int32),
        weights=weights.astype(np.float32),
        bone_names=list(sk.names),
        bone_parents=np.asarray(sk.parents, np.int32),
        bone_heads=heads.astype(np.float32),
        humanoid={n: sk.idx(n) for n in PROCEDURAL_HUMANOID},
        materials=materials,
        meta={"source": f"procedural:{seed}", "format": "procedural", "seed": int(seed),
              "licence": {"name": "CC0-1.0", "author": "conr-toolkit procedural generator"}},
    )
    rig.check()
    return rig


# --------------------------------------------------------------------------- GLB


def write_character_glb(path, seed: int = 0) -> Path:
    """Write the procedural character of ``seed`` as a skinned glTF binary; returns the path.

    The file is what an artist's exporter would produce: arms in a T-pose
    (horizontal), joint nodes with non-identity rest rotations (each bone's
    local +Y points along the bone, as Blender exports them) and inverse bind
    matrices, per-material primitives, embedded PNG textures, bone names that
    are the humanoid names. ``conrdata convert`` turns it back into the
    canonical A-pose rig.
    """
    rig = tpose(build_character(seed))
    return rig_to_glb(rig, Path(path), bone_axes="along_bone")


def tpose(rig: Rig) -> Rig:
    """The rig re-bound with its upper arms raised to horizontal (a T-pose), for export tests."""
    q = identity_rotations(rig)
    for side, s in (("left", 1.0), ("right", -1.0)):  # + 0.0 turns the right side's -0.0 x, y into 0.0
        q[rig.bone_index(f"{side}UpperArm")] = axis_rotation("Z", s * np.radians(ARM_ANGLE_DEG)) + 0.0
    r, t = forward_kinematics(rig, q)
    m = skinning_matrices(rig, r, t)
    verts = skin(rig, m)
    return rig.replace(vertices=verts, normals=skin_normals(rig, m), bone_heads=t.astype(np.float32))
