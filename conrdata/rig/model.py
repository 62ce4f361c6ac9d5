"""The canonical rig: one dataclass every reader produces and every later step consumes.

Frames and units
----------------
World is right-handed, +Y up, the character faces +Z, lengths in metres.

Bones are *normalised*: in the bind pose every bone's world rotation is the
identity, so a bone is fully described by its head position ``bone_heads[b]``
(world, metres, bind pose). A pose gives each bone a local rotation expressed
in axes that are parallel to the world axes at bind time (the convention of
VRM 1.0's normalised humanoid and of MMD's VMD). Forward kinematics:

    R_b = R_parent(b) @ q_b
    t_b = t_parent(b) + R_parent(b) @ (head_b - head_parent(b))      (root: t = head + root offset)

and the skinning matrix of bone b maps a bind-pose point x to
``R_b @ (x - head_b) + t_b``. Readers whose bones carry rest rotations
(glTF, VRM 0.x) fold them away when they build a Rig; skinning of the bind
pose is therefore the identity.

After ``conrdata convert`` the bind pose is the canonical A-pose of docs/design.md.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from conrdata.rig.rotations import quat_to_matrix

ALPHA_MODES = ("OPAQUE", "MASK", "BLEND")


@dataclass
class Material:
    """One material: unlit base colour, as anime renderers draw it.

    ``texture`` is H x W x 4 uint8 RGBA (sRGB, row 0 at the top, sampled with
    glTF UV convention: u right, v down from the top-left), or None for a plain
    colour. ``base_color`` is an RGBA factor in [0, 1] multiplied with the texture.
    """

    name: str
    base_color: np.ndarray = field(default_factory=lambda: np.ones(4, np.float32))
    texture: np.ndarray | None = None
    alpha_mode: str = "OPAQUE"
    alpha_cutoff: float = 0.5
    double_sided: bool = False


@dataclass
class IKChain:
    """An MMD IK definition (PMX/PMD): CCD solved by the pose module.

    ``links`` are bone indices from the effector's parent towards the chain
    root; ``limits`` is (len(links), 2, 3) min/max Euler angles in radians in
    the rig's world-aligned bone axes (NaN where a link is unlimited).
    """

    ik_bone: int
    target_bone: int
    links: np.ndarray
    iterations: int = 40
    max_angle: float = 2.0
    limits: np.ndarray | None = None


@dataclass
class Rig:
    """A skinned character in its bind pose.

    Shapes: V vertices, F triangles, B bones.

    - ``vertices`` (V, 3) float32, world metres, bind pose.
    - ``normals`` (V, 3) float32 unit vectors.
    - ``uvs`` (V, 2) float32, glTF convention (v = 0 at the top of the texture).
    - ``faces`` (F, 3) int32, counter-clockwise seen from outside.
    - ``face_material`` (F,) int32 index into ``materials``.
    - ``joints`` (V, 4) int32 bone indices; ``weights`` (V, 4) float32, rows sum to 1.
    - ``bone_names`` B names; ``bone_parents`` (B,) int32 with -1 for roots; parents
      always come before their children.
    - ``bone_heads`` (B, 3) float32 world positions at bind.
    - ``humanoid`` maps VRM humanoid names (see :mod:`conrdata.rig.humanoid`) to bone indices.
    - ``meta``: source path, format, licence fields, anything readers want to carry.
    - ``warnings``: things the reader ignored or repaired, for the report.
    """

    vertices: np.ndarray
    normals: np.ndarray
    uvs: np.ndarray
    faces: np.ndarray
    face_material: np.ndarray
    joints: np.ndarray
    weights: np.ndarray
    bone_names: list[str]
    bone_parents: np.ndarray
    bone_heads: np.ndarray
    humanoid: dict[str, int]
    materials: list[Material]
    ik_chains: list[IKChain] = field(default_factory=list)
    meta: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def num_bones(self) -> int:
        return len(self.bone_names)

    def bone_index(self, name: str) -> int:
        """Index of a bone by humanoid name first, then by the rig's own name; KeyError if absent."""
        if name in self.humanoid:
            return self.humanoid[name]
        return self.bone_names.index(name)

    def replace(self, **changes) -> Rig:
        return dataclasses.replace(self, **changes)

    def height(self) -> float:
        """A-pose height H in metres: top of the mesh minus its bottom (used by the UDP encoding)."""
        return float(self.vertices[:, 1].max() - self.vertices[:, 1].min())

    def check(self) -> None:
        """Raise ValueError if arrays disagree in shape or the hierarchy is not parent-first."""
        V = len(self.vertices)
        B = len(self.bone_names)
        for name, arr, shape in (
            ("vertices", self.vertices, (V, 3)),
            ("normals", self.normals, (V, 3)),
            ("uvs", self.uvs, (V, 2)),
            ("joints", self.joints, (V, 4)),
            ("weights", self.weights, (V, 4)),
            ("bone_heads", self.bone_heads, (B, 3)),
            ("bone_parents", self.bone_parents, (B,)),
        ):
            if arr.shape != shape:
                raise ValueError(f"{name} has shape {arr.shape}, expected {shape}")
        if self.faces.ndim != 2 or self.faces.shape[1] != 3:
            raise ValueError(f"faces has shape {self.faces.shape}, expected (F, 3)")
        if len(self.face_material) != len(self.faces):
            raise ValueError("face_material must have one entry per face")
        if len(self.faces) and (self.faces.min() < 0 or self.faces.max() >= V):
            raise ValueError("faces index vertices out of range")
        if len(self.face_material) and (
            self.face_material.min() < 0 or self.face_material.max() >= len(self.materials)
        ):
            raise ValueError("face_material indexes materials out of range")
        if B and (self.joints.min() < 0 or self.joints.max() >= B):
            raise ValueError("joints index bones out of range")
        parents = self.bone_parents
        if np.any(parents >= np.arange(B)):
            raise ValueError("bone_parents must list parents before children")


def forward_kinematics(
    rig: Rig, local_rotations: np.ndarray, root_translation: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """World rotations (B, 3, 3) and world head positions (B, 3) of a posed rig.

    ``local_rotations`` is (B, 3, 3) rotation matrices or (B, 4) quaternions
    (x, y, z, w) in the normalised bone convention of this module.
    ``root_translation`` (3,) metres is added to every root bone's head.
    """
    B = rig.num_bones
    local = np.asarray(local_rotations, dtype=np.float64)
    if local.shape == (B, 4):
        local = quat_to_matrix(local)
    if local.shape != (B, 3, 3):
        raise ValueError(f"local_rotations must be ({B}, 4) or ({B}, 3, 3), got {local.shape}")
    heads = rig.bone_heads.astype(np.float64)
    offset = np.zeros(3) if root_translation is None else np.asarray(root_translation, np.float64)
    world_r = np.empty((B, 3, 3))
    world_t = np.empty((B, 3))
    for b, p in enumerate(rig.bone_parents):
        if p < 0:
            world_r[b] = local[b]
            world_t[b] = heads[b] + offset
        else:
            world_r[b] = world_r[p] @ local[b]
            world_t[b] = world_t[p] + world_r[p] @ (heads[b] - heads[p])
    return world_r, world_t


def skinning_matrices(rig: Rig, world_r: np.ndarray, world_t: np.ndarray) -> np.ndarray:
    """(B, 3, 4) affine maps from bind-pose points to posed points, one per bone."""
    heads = rig.bone_heads.astype(np.float64)
    trans = world_t - np.einsum("bij,bj->bi", world_r, heads)
    return np.concatenate([world_r, trans[:, :, None]], axis=2)


def skin(rig: Rig, matrices: np.ndarray, points: np.ndarray | None = None) -> np.ndarray:
    """Linear-blend skinning, vectorised: posed (V, 3) float32 positions.

    ``matrices`` is (B, 3, 4) from :func:`skinning_matrices`; ``points``
    defaults to the rig's bind vertices.
    """
    pts = rig.vertices if points is None else points
    blended = np.einsum("vk,vkij->vij", rig.weights.astype(np.float64), matrices[rig.joints])
    out = np.einsum("vij,vj->vi", blended[:, :, :3], pts.astype(np.float64)) + blended[:, :, 3]
    return out.astype(np.float32)


def skin_normals(rig: Rig, matrices: np.ndarray) -> np.ndarray:
    """Posed unit normals (V, 3) float32 (rotation part of the blended matrices)."""
    blended = np.einsum("vk,vkij->vij", rig.weights.astype(np.float64), matrices[rig.joints][:, :, :, :3])
    n = np.einsum("vij,vj->vi", blended, rig.normals.astype(np.float64))
    n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
    return n.astype(np.float32)


def pose_vertices(
    rig: Rig, local_rotations: np.ndarray, root_translation: np.ndarray | None = None
) -> np.ndarray:
    """Plain FK then LBS: posed (V, 3) float32 positions in world metres.

    The low-level primitive: the rig's own deform rules (MMD inherit / IK / physics bones, VRM
    constraints) are NOT played. Pose a character with
    :func:`conrdata.poses.evaluate.evaluate_vertices` (or ``evaluate_pose``), as every caller does.
    """
    world_r, world_t = forward_kinematics(rig, local_rotations, root_translation)
    return skin(rig, skinning_matrices(rig, world_r, world_t))


def identity_rotations(rig: Rig) -> np.ndarray:
    """(B, 4) identity quaternions (x, y, z, w): the bind pose."""
    q = np.zeros((rig.num_bones, 4), np.float64)
    q[:, 3] = 1.0
    return q
