"""Tiny rigs made of boxes: test subjects for the rasterizers and benchmarks.

Each box is a closed, outward-facing (counter-clockwise seen from outside),
flat-shaded mesh of 12 triangles, bound rigidly to one bone.
"""

from __future__ import annotations

import numpy as np

from conrdata.rig.model import Material, Rig

# Unit-cube corners, and the six faces as corner quads counter-clockwise seen from outside.
_CORNERS = np.array([[x, y, z] for x in (-0.5, 0.5) for y in (-0.5, 0.5) for z in (-0.5, 0.5)], np.float64)
_QUADS = (
    ((0, 1, 3, 2), (-1, 0, 0)),
    ((4, 6, 7, 5), (1, 0, 0)),
    ((0, 4, 5, 1), (0, -1, 0)),
    ((2, 3, 7, 6), (0, 1, 0)),
    ((0, 2, 6, 4), (0, 0, -1)),
    ((1, 5, 7, 3), (0, 0, 1)),
)


def box_arrays(centre, size) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Vertices (24, 3), normals (24, 3), UVs (24, 2) and faces (12, 3) of an axis-aligned box."""
    centre = np.asarray(centre, np.float64)
    size = np.broadcast_to(np.asarray(size, np.float64), (3,))
    verts, normals, uvs, faces = [], [], [], []
    for quad, normal in _QUADS:
        base = len(verts)
        for k, c in enumerate(quad):
            verts.append(centre + _CORNERS[c] * size)
            normals.append(normal)
            uvs.append(((0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0))[k])
        faces += [(base, base + 1, base + 2), (base, base + 2, base + 3)]
    return (np.array(verts, np.float32), np.array(normals, np.float32), np.array(uvs, np.float32),
            np.array(faces, np.int32))


def boxes_rig(boxes: list[tuple], materials: list[Material] | None = None) -> Rig:
    """A rig with one root bone per box. ``boxes``: (centre (3,), size (3,) or float, material index)."""
    parts = [box_arrays(c, s) for c, s, _ in boxes]
    offsets = np.cumsum([0] + [len(p[0]) for p in parts])
    verts = np.concatenate([p[0] for p in parts])
    faces = np.concatenate([p[3] + offsets[i] for i, p in enumerate(parts)])
    joints = np.zeros((len(verts), 4), np.int32)
    for i in range(len(parts)):
        joints[offsets[i] : offsets[i + 1], 0] = i
    weights = np.zeros((len(verts), 4), np.float32)
    weights[:, 0] = 1
    return Rig(
        vertices=verts,
        normals=np.concatenate([p[1] for p in parts]),
        uvs=np.concatenate([p[2] for p in parts]),
        faces=faces.astype(np.int32),
        face_material=np.repeat(np.array([m for _, _, m in boxes], np.int32), 12),
        joints=joints,
        weights=weights,
        bone_names=[f"box{i}" for i in range(len(boxes))],
        bone_parents=np.full(len(boxes), -1, np.int32),
        bone_heads=np.array([c for c, _, _ in boxes], np.float32),
        humanoid={},
        materials=materials or [Material("grey", base_color=np.array([0.7, 0.7, 0.7, 1.0], np.float32))],
    )


def checker_texture(size: int = 16, cells: int = 4, transparent: bool = False) -> np.ndarray:
    """(size, size, 4) uint8 checkerboard; with ``transparent`` the dark cells have alpha 0."""
    yy, xx = np.mgrid[0:size, 0:size] * cells // size
    dark = (yy + xx) % 2 == 1
    tex = np.full((size, size, 4), 255, np.uint8)
    tex[dark, :3] = (40, 60, 160)
    if transparent:
        tex[dark, 3] = 0
    return tex


def demo_scene_rig() -> Rig:
    """A small scene exercising every rule: an opaque box in front of a larger textured one, a
    masked (holey) box, a double-sided open quad and a translucent BLEND box; about 1.6 m tall."""
    materials = [
        Material("front", base_color=np.array([0.9, 0.3, 0.3, 1.0], np.float32)),
        Material("back", texture=checker_texture()),
        Material("holes", texture=checker_texture(transparent=True), alpha_mode="MASK", alpha_cutoff=0.5),
        Material("glass", base_color=np.array([0.3, 0.9, 0.4, 0.6], np.float32), alpha_mode="BLEND",
                 alpha_cutoff=0.3),
        Material("sheet", base_color=np.array([0.9, 0.8, 0.2, 1.0], np.float32), double_sided=True),
    ]
    rig = boxes_rig(
        [
            ((0.0, 0.8, 0.0), (0.6, 1.6, 0.4), 1),
            ((0.05, 1.0, 0.35), (0.3, 0.3, 0.2), 0),
            ((-0.45, 0.5, 0.1), (0.25, 0.6, 0.25), 2),
            ((0.45, 0.4, 0.1), (0.2, 0.5, 0.2), 3),
        ],
        materials,
    )
    # The double-sided sheet: one quad in the x = 0.5 plane, seen from both sides.
    quad_v = np.array([[0.5, 1.1, 0.3], [0.5, 1.1, -0.3], [0.5, 1.5, -0.3], [0.5, 1.5, 0.3]], np.float32)
    b = len(rig.vertices)
    rig = rig.replace(
        vertices=np.concatenate([rig.vertices, quad_v]),
        normals=np.concatenate([rig.normals, np.tile(np.float32([1, 0, 0]), (4, 1))]),
        uvs=np.concatenate([rig.uvs, np.float32([[0, 0], [1, 0], [1, 1], [0, 1]])]),
        faces=np.concatenate([rig.faces, np.int32([[b, b + 1, b + 2], [b, b + 2, b + 3]])]),
        face_material=np.concatenate([rig.face_material, np.int32([4, 4])]),
        joints=np.concatenate([rig.joints, np.zeros((4, 4), np.int32)]),
        weights=np.concatenate([rig.weights, np.tile(np.float32([1, 0, 0, 0]), (4, 1))]),
    )
    rig.check()
    return rig
