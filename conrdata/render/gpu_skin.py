"""Inputs for linear-blend skinning in the vertex shader, and their numpy counterparts.

The GL rasterizer skins a :class:`~conrdata.render.scene.DrawMesh` that carries a
:class:`SkinData` itself: the bind-pose vertex data (``vertices``, ``normals``, ``joints``,
``weights``) is static and uploaded once per mesh key; per pose only the bone matrices travel,
as an RGBA32F texture of 3 x B texels (texel (c, b) = row c of bone b's 3 x 4 affine map).
The formula is the one of :func:`conrdata.render.scene.mesh_from_rig` (numpy, the reference):
blend the four weighted bone matrices, apply the blended 3 x 4 to the bind position and its 3 x 3
to the bind normal, renormalise the normal.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class SkinData:
    """What the vertex shader needs to pose a mesh. V vertices, B bones.

    - ``vertices`` (V, 3) float32 bind-pose positions, world metres.
    - ``normals`` (V, 3) float32 bind-pose unit normals.
    - ``joints`` (V, 4) int32 bone indices; ``weights`` (V, 4) float32, rows sum to 1.
    - ``matrices`` (B, 3, 4) float32 bind-to-posed affine maps, one per bone
      (:func:`conrdata.rig.model.skinning_matrices`).
    """

    vertices: np.ndarray
    normals: np.ndarray
    joints: np.ndarray
    weights: np.ndarray
    matrices: np.ndarray


def bone_texels(matrices: np.ndarray) -> np.ndarray:
    """(B, 3, 4) bone matrices -> (B, 3, 4) float32 contiguous: a 3-texel-wide, B-row RGBA32F image."""
    m = np.ascontiguousarray(matrices, np.float32)
    if m.ndim != 3 or m.shape[1:] != (3, 4):
        raise ValueError(f"bone matrices must be (B, 3, 4), got {m.shape}")
    return m


def skin_positions(skin: SkinData) -> np.ndarray:
    """(V, 3) float32 posed positions on the CPU (what a caller framing the camera needs), with the
    float32 formula of the shader and of the numpy reference path."""
    m = skin.matrices.astype(np.float32, copy=False)
    w = skin.weights.astype(np.float32, copy=False)
    blended = np.einsum("vk,vkij->vij", w, m[skin.joints])
    return (np.einsum("vij,vj->vi", blended[:, :, :3], skin.vertices.astype(np.float32, copy=False))
            + blended[:, :, 3]).astype(np.float32, copy=False)
