"""What both rasterizers draw: a posed mesh with per-vertex UDP landmarks, and the ordered draw list.

The GL rasterizer and the numpy reference consume the same :class:`DrawMesh`
and the same :func:`draw_list`, so they can only differ in rasterization.

Rules shared by both (docs/design.md: RGBA alpha and UDP occupancy describe the
same pixels):

- A fragment is *kept* when its material is OPAQUE, or when its sampled
  base-colour alpha (texture x factor) is >= the material's cutoff (MASK and
  BLEND alike). A kept fragment writes depth, occupancy 1, its landmark, eye
  depth and colour alpha 1. A fragment that is not kept writes nothing.
- BLEND materials are drawn after every opaque and masked one; their colour is
  mixed with what is behind them by their alpha ("over"), but their UDP is
  their own landmark, never a blend (a blended landmark is a point that does
  not exist on the body). Over the background the colour is un-premultiplied,
  so the pixel shows the material's own colour at full alpha.
- The inverted-hull outline belongs to the body: the hull copies each surface
  vertex pushed out along its normal by ``outline_width x height`` with its
  winding reversed, keeps the vertex's UV (so the alpha test cuts it like the
  surface) and the vertex's landmark. Outline pixels outside the silhouette
  therefore get the landmark of the surface they outline, occupancy 1 and
  alpha 1.
- Back faces are culled unless the material is double-sided; the hull is
  always culled (that is what makes it an outline).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from conrdata.poses.evaluate import evaluate_pose
from conrdata.render.gpu_skin import SkinData, skin_positions
from conrdata.rig.model import Material, Rig, identity_rotations, skinning_matrices
from conrdata.udp import encode_landmarks


@dataclass
class Shading:
    """The anime look. ``cel``: two-tone shading with a light fixed in the camera frame
    (``light_dir``: x right, y up, z towards the viewer); fragments with n.l < ``threshold``
    are multiplied by ``shadow``. ``outline``: inverted hull ``outline_width`` x character
    height thick, coloured ``outline_color`` (linear RGB in [0, 1])."""

    cel: bool = False
    light_dir: tuple[float, float, float] = (0.4, 0.7, 0.6)
    threshold: float = 0.0
    shadow: float = 0.72
    outline: bool = False
    outline_width: float = 0.003
    outline_color: tuple[float, float, float] = (0.12, 0.09, 0.09)


@dataclass
class DrawMesh:
    """A posed mesh ready to draw. V vertices, F triangles.

    - ``positions`` (V, 3) float32 posed world positions, metres.
    - ``normals`` (V, 3) float32 posed unit normals.
    - ``landmarks`` (V, 3) float32 UDP landmarks of the BIND-pose (A-pose) vertices.
    - ``uvs`` (V, 2) float32, glTF convention (v down from the top of the texture).
    - ``faces`` (F, 3) int32 counter-clockwise from outside; ``face_material`` (F,) int32.
    - ``height``: the character's A-pose height H in metres (scales the outline).
    - ``key``: identifies the static parts (faces, landmarks, UVs, textures) for caching
      across poses; None disables caching.
    - ``bone_world_r`` (B, 3, 3) float64 and ``bone_world_t`` (B, 3) float64: the posed bone
      rotations and heads (world metres) the mesh was skinned with, for per-image joint labels;
      None when the mesh was not posed from a rig.
    - ``skin``: set when the mesh is to be skinned in the GL vertex shader
      (``mesh_from_rig(..., gpu_skinning=True)``); ``positions`` are then still the posed
      positions (for framing), but ``normals`` is None: only the GL rasterizer can draw it.
    """

    positions: np.ndarray
    normals: np.ndarray
    landmarks: np.ndarray
    uvs: np.ndarray
    faces: np.ndarray
    face_material: np.ndarray
    materials: list[Material]
    height: float = 1.0
    key: str | None = None
    bone_world_r: np.ndarray | None = None
    bone_world_t: np.ndarray | None = None
    skin: SkinData | None = None


@dataclass
class DrawItem:
    """One draw call: ``faces`` (F, 3) int32 of one material, with its state."""

    material_index: int
    faces: np.ndarray
    outline: bool
    cull: bool
    blend: bool


def bind_landmarks(rig: Rig) -> np.ndarray:
    """(V, 3) float32 UDP landmarks of a rig's bind (A-pose) vertices."""
    return encode_landmarks(rig.vertices, rig.height())


def mesh_from_rig(
    rig: Rig,
    local_rotations: np.ndarray | None = None,
    root_translation: np.ndarray | None = None,
    *,
    landmarks: np.ndarray | None = None,
    key: str | None = None,
    gpu_skinning: bool = False,
) -> DrawMesh:
    """Pose a rig (:func:`conrdata.poses.evaluate.evaluate_pose`, the one pose evaluator, then the
    linear-blend skinning of :mod:`conrdata.rig.model`) into a :class:`DrawMesh`.

    ``local_rotations`` (B, 4) xyzw or (B, 3, 3); None is the bind pose.
    ``landmarks`` may pass precomputed :func:`bind_landmarks` to save time per pose.
    ``gpu_skinning``: leave the normals (and the drawn positions) to the GL vertex shader
    (:mod:`conrdata.render.gpu_skin`); the numpy path (False) is the reference.
    """
    if local_rotations is None:
        local_rotations = identity_rotations(rig)
    world_r, world_t = evaluate_pose(rig, local_rotations, root_translation)
    matrices = skinning_matrices(rig, world_r, world_t)
    skin = None
    if gpu_skinning:
        skin = SkinData(rig.vertices, rig.normals, rig.joints, rig.weights, matrices.astype(np.float32))
        positions, normals = skin_positions(skin), None
    else:
        positions, normals = _skin_both(rig, matrices)
    return DrawMesh(
        positions=positions,
        normals=normals,
        landmarks=bind_landmarks(rig) if landmarks is None else landmarks,
        uvs=np.asarray(rig.uvs, np.float32),
        faces=np.asarray(rig.faces, np.int32),
        face_material=np.asarray(rig.face_material, np.int32),
        materials=rig.materials,
        height=rig.height(),
        key=key,
        bone_world_r=world_r,
        bone_world_t=world_t,
        skin=skin,
    )


def _skin_both(rig: Rig, matrices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Linear-blend skinning of positions and normals with one blend of the bone matrices.

    The formula of :func:`conrdata.rig.model.skin` / :func:`conrdata.rig.model.skin_normals`, evaluated in
    float32 (results agree to ~1e-7 m) because it runs once per rendered pose.
    """
    blended = np.einsum("vk,vkij->vij", rig.weights.astype(np.float32),
                        matrices.astype(np.float32)[rig.joints])
    rot = blended[:, :, :3]
    positions = np.einsum("vij,vj->vi", rot, rig.vertices.astype(np.float32, copy=False)) + blended[:, :, 3]
    normals = np.einsum("vij,vj->vi", rot, rig.normals.astype(np.float32, copy=False))
    normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
    return positions.astype(np.float32, copy=False), normals.astype(np.float32, copy=False)


def draw_list(mesh: DrawMesh, shading: Shading) -> list[DrawItem]:
    """The ordered draw calls: opaque and masked materials, then the outline hull, then BLEND materials."""
    items: list[DrawItem] = []
    groups = []
    for m, mat in enumerate(mesh.materials):
        faces = mesh.faces[mesh.face_material == m]
        if len(faces):
            groups.append((m, mat, np.ascontiguousarray(faces, np.int32)))
    for m, mat, faces in groups:
        if mat.alpha_mode != "BLEND":
            items.append(DrawItem(m, faces, outline=False, cull=not mat.double_sided, blend=False))
    if shading.outline:
        for m, _mat, faces in groups:
            hull = np.ascontiguousarray(faces[:, ::-1])
            items.append(DrawItem(m, hull, outline=True, cull=True, blend=False))
    for m, mat, faces in groups:
        if mat.alpha_mode == "BLEND":
            items.append(DrawItem(m, faces, outline=False, cull=not mat.double_sided, blend=True))
    return items


def outline_positions(mesh: DrawMesh, shading: Shading) -> np.ndarray:
    """(V, 3) float32 hull vertices: posed positions pushed out along the posed normals."""
    offset = np.float32(shading.outline_width * mesh.height)
    return (mesh.positions + mesh.normals * offset).astype(np.float32)


def light_in_world(camera_to_world: np.ndarray, light_dir) -> np.ndarray:
    """The camera-frame light direction as a world unit vector (3,) float32."""
    l = np.asarray(light_dir, np.float64)
    l = camera_to_world[:3, :3] @ (l / np.linalg.norm(l))
    return l.astype(np.float32)


def alpha_kept(alpha: np.ndarray, material: Material) -> np.ndarray:
    """Boolean mask of fragments a material keeps, given their sampled alpha (the shared alpha rule)."""
    if material.alpha_mode == "OPAQUE":
        return np.ones(np.shape(alpha), bool)
    return np.asarray(alpha) >= material.alpha_cutoff
