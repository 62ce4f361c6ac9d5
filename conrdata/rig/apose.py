"""Align a rig to the canonical A-pose of docs/design.md and make that A-pose its bind pose.

Steps (all in the project frame: +Y up, metres):

1. Orientation. The character's up is hips -> head, snapped to the nearest
   coordinate axis, and its left is rightUpperLeg -> leftUpperLeg; the whole
   rig is turned so that up is +Y and left (on the ground plane) is +X, which
   makes it face +Z (a model facing -Z, yawed, or Z-up is turned round). This
   turn is the root bones' part of the pose.
2. Pose. Bones of the humanoid chain are aimed, parents first, with the
   smallest rotation that turns the bone (head -> head of its humanoid child)
   onto its target direction: spine, chest, upperChest, neck -> +Y; upper and
   lower legs -> -Y; upper arm, lower arm and hand -> 45 degrees below
   horizontal in the frontal plane (+X side for the left arm). Shoulders,
   head, feet, toes, fingers and every non-humanoid bone (hair, skirt,
   twist bones, accessories) keep their rest orientation relative to their
   parent, i.e. they follow it, unless the rig's own deform rules drive them
   (MMD inherit, sleeve/hair IK, physics bones, VRM node constraints): the pose
   goes through :func:`conrdata.poses.evaluate.evaluate_pose` like any other.
3. Re-bind. The posed mesh (linear-blend skinned) becomes the bind mesh and
   the posed joint positions the new bone heads; then the rig is shifted so
   the lowest vertex is at y = 0 and the hips are at x = z = 0.

``rig.meta["apose_correction"]`` maps bone name -> the local rotation
(x, y, z, w) applied to it (world-aligned axes of the *source* rest pose, the
convention of :mod:`conrdata.rig.model`), as the evaluator left it; bones not listed
were not rotated. A motion authored against the source rest pose is retargeted
with it, and the evaluator uses it to play MMD rules in the source rest frame.
"""

from __future__ import annotations

import numpy as np

from conrdata.errors import RigError
from conrdata.poses.evaluate import evaluate_pose
from conrdata.rig.humanoid import REQUIRED_BONES
from conrdata.rig.model import Rig, skin, skinning_matrices
from conrdata.rig.rotations import quat_from_matrix, shortest_arc

ARM_DROP_DEG = 45.0
MIN_HEIGHT_M = 0.2
MAX_HEIGHT_M = 10.0

SPINE_CHAIN = ("spine", "chest", "upperChest", "neck", "head")


def arm_direction(side: str) -> np.ndarray:
    """Unit direction of the canonical upper arm: 45 degrees below horizontal, outwards (+X for left)."""
    a = np.radians(ARM_DROP_DEG)
    s = 1.0 if side == "left" else -1.0
    return np.array([s * np.cos(a), -np.sin(a), 0.0])


def _aim_targets(rig: Rig) -> dict[str, tuple[str, np.ndarray]]:
    """humanoid bone -> (humanoid child whose head it aims at, target unit direction)."""
    h = rig.humanoid
    targets: dict[str, tuple[str, np.ndarray]] = {}
    up, down = np.array([0.0, 1.0, 0.0]), np.array([0.0, -1.0, 0.0])
    chain = [b for b in SPINE_CHAIN if b in h]
    for a, b in zip(chain, chain[1:]):
        targets[a] = (b, up)
    for side in ("left", "right"):
        d = arm_direction(side)
        targets[f"{side}UpperArm"] = (f"{side}LowerArm", d)
        targets[f"{side}LowerArm"] = (f"{side}Hand", d)
        for finger in (f"{side}MiddleProximal", f"{side}IndexProximal", f"{side}RingProximal"):
            if finger in h:
                targets[f"{side}Hand"] = (finger, d)
                break
        targets[f"{side}UpperLeg"] = (f"{side}LowerLeg", down)
        targets[f"{side}LowerLeg"] = (f"{side}Foot", down)
    return targets


def _is_descendant(parents: np.ndarray, child: int, ancestor: int) -> bool:
    p = int(parents[child])
    while p >= 0:
        if p == ancestor:
            return True
        p = int(parents[p])
    return False


def orientation_rotation(rig: Rig) -> np.ndarray:
    """(3, 3) rotation making the character upright and facing +Z (its left on +X).

    The up axis is hips -> head *snapped to the nearest coordinate axis* (so a
    source that is Z-up or upside down is turned, while a slight lean of the
    hips in the source rest pose is kept as it is: the spine and legs are
    straightened bone by bone afterwards). The facing is then set exactly: the
    rightUpperLeg -> leftUpperLeg line (upper arms if the legs coincide),
    projected on the ground, is turned onto +X.
    """
    h = rig.humanoid
    source = rig.meta.get("source")
    heads = rig.bone_heads.astype(np.float64)
    up = heads[h["head"]] - heads[h["hips"]]
    left = heads[h["leftUpperLeg"]] - heads[h["rightUpperLeg"]]
    if np.linalg.norm(left) < 1e-9:
        left = heads[h["leftUpperArm"]] - heads[h["rightUpperArm"]]
    if np.linalg.norm(up) < 1e-9 or np.linalg.norm(left) < 1e-9:
        raise RigError("humanoid bones coincide (hips/head or left/right legs): cannot tell the orientation",
                       source)
    k = int(np.argmax(np.abs(up)))
    axis = np.zeros(3)
    axis[k] = np.sign(up[k])
    snap = shortest_arc(axis, np.array([0.0, 1.0, 0.0]))
    l = snap @ left
    l[1] = 0.0
    if np.linalg.norm(l) < 1e-6 * np.linalg.norm(left):
        raise RigError("the left-right line is vertical: cannot tell the orientation", source)
    l /= np.linalg.norm(l)
    yaw = np.arctan2(-l[2], l[0])  # angle from +X to l about +Y; undo it
    c, s = np.cos(-yaw), np.sin(-yaw)
    turn_y = np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])
    return turn_y @ snap


def align_to_apose(rig: Rig) -> Rig:
    """Return a new Rig whose bind pose is the canonical A-pose (see the module docstring).

    Raises RigError when required humanoid bones are missing, the hierarchy
    does not connect them, or the aligned height is outside 0.2 .. 10 m.
    """
    source = rig.meta.get("source")
    missing = [b for b in REQUIRED_BONES if b not in rig.humanoid]
    if missing:
        raise RigError(f"humanoid bones not found: {', '.join(missing)}", source)
    B = rig.num_bones
    parents = rig.bone_parents.astype(np.int64)
    h = rig.humanoid
    for name, b in h.items():
        if not 0 <= b < B:
            raise RigError(f"humanoid bone {name} has an invalid index {b}", source)

    root_turn = orientation_rotation(rig)
    targets = _aim_targets(rig)
    aim_of_bone = {h[name]: (h[child], d) for name, (child, d) in targets.items() if child in h}
    for b, (c, _) in aim_of_bone.items():
        if not _is_descendant(parents, c, b):
            raise RigError(f"humanoid bone {rig.bone_names[c]} is not below {rig.bone_names[b]} "
                           "in the hierarchy", source)

    heads = rig.bone_heads.astype(np.float64)
    world = np.empty((B, 3, 3))
    local = np.empty((B, 3, 3))
    for b in range(B):
        p = parents[b]
        parent_w = root_turn if p < 0 else world[p]
        w = parent_w
        if b in aim_of_bone:
            c, target = aim_of_bone[b]
            rest_dir = heads[c] - heads[b]
            if np.linalg.norm(rest_dir) < 1e-9:
                raise RigError(f"bones {rig.bone_names[b]} and {rig.bone_names[c]} are at the same place",
                               source)
            w = shortest_arc(parent_w @ rest_dir, target) @ parent_w
        world[b] = w
        local[b] = parent_w.T @ w if p >= 0 else w

    # The aimed locals are keys: the rig's own rules (MMD inherit, sleeve/hair IK, physics bones, VRM
    # constraints) move the bones they drive, and the correction records the locals that result.
    world_r, world_t = evaluate_pose(rig, local, place_control_ik=False)
    for b in range(B):
        p = parents[b]
        local[b] = world_r[b] if p < 0 else world_r[p].T @ world_r[b]
    mats = skinning_matrices(rig, world_r, world_t)
    verts = skin(rig, mats).astype(np.float64)
    blended = np.einsum("vk,vkij->vij", rig.weights.astype(np.float64), mats[rig.joints][:, :, :, :3])
    normals = np.einsum("vij,vj->vi", blended, rig.normals.astype(np.float64))
    normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)

    hips = world_t[h["hips"]]
    shift = np.array([-hips[0], -verts[:, 1].min(), -hips[2]])
    verts += shift
    new_heads = world_t + shift
    height = float(verts[:, 1].max() - verts[:, 1].min())
    if not MIN_HEIGHT_M <= height <= MAX_HEIGHT_M:
        hint = " (units may be centimetres)" if height > MAX_HEIGHT_M else ""
        raise RigError(f"absurd size: the aligned character is {height:.4g} m tall, expected "
                       f"{MIN_HEIGHT_M}..{MAX_HEIGHT_M} m{hint}", source)

    warnings = list(rig.warnings)
    for side in ("left", "right"):
        foot, toes = h.get(f"{side}Foot"), h.get(f"{side}Toes")
        if foot is not None and toes is not None and new_heads[toes, 2] < new_heads[foot, 2] - 1e-3:
            warnings.append(f"{side} toes point backwards after alignment (left/right may be swapped)")
    correction = {}
    for b in range(B):
        q = quat_from_matrix(local[b])
        if q[3] < 0:
            q = -q
        if abs(q[3]) < 1.0 - 1e-12:
            correction[rig.bone_names[b]] = [float(x) for x in q]
    meta = dict(rig.meta)
    meta["apose_correction"] = correction
    meta["apose_translation"] = [float(x) for x in shift]
    meta["source_rotation"] = [float(x) for x in quat_from_matrix(root_turn)]
    up_src = root_turn.T @ np.array([0.0, 1.0, 0.0])  # the source axis that became +Y
    k = int(np.argmax(np.abs(up_src)))
    meta["source_up_axis"] = ("+" if up_src[k] > 0 else "-") + "XYZ"[k]
    meta["height_m"] = height
    meta["apose"] = True
    return rig.replace(
        vertices=verts.astype(np.float32),
        normals=normals.astype(np.float32),
        bone_heads=new_heads.astype(np.float32),
        meta=meta,
        warnings=list(dict.fromkeys(warnings)),
    )


def measure_apose(rig: Rig) -> dict[str, float]:
    """Measured A-pose criteria of a rig (degrees and metres), for tests and reports.

    Keys: ``left_arm_drop_deg``/``right_arm_drop_deg`` (angle of upper arm below
    horizontal), ``arm_out_of_plane_deg`` (largest angle of an upper arm out of
    the frontal XY plane), ``leg_tilt_deg`` (largest angle of an upper or lower
    leg from vertical), ``lowest_y``, ``hips_xz`` (distance of hips from the Y
    axis), ``facing_z`` (z of the forward vector left x up; 1 = faces +Z).
    """
    h = rig.humanoid
    p = rig.bone_heads.astype(np.float64)
    out: dict[str, float] = {}
    plane = 0.0
    for side in ("left", "right"):
        d = p[h[f"{side}LowerArm"]] - p[h[f"{side}UpperArm"]]
        d /= np.linalg.norm(d)
        out[f"{side}_arm_drop_deg"] = float(np.degrees(np.arcsin(-d[1])))
        plane = max(plane, float(np.degrees(np.arcsin(abs(d[2])))))
        outwards = d[0] if side == "left" else -d[0]
        out[f"{side}_arm_outwards"] = float(outwards)
    out["arm_out_of_plane_deg"] = plane
    tilt = 0.0
    for side in ("left", "right"):
        for a, b in ((f"{side}UpperLeg", f"{side}LowerLeg"), (f"{side}LowerLeg", f"{side}Foot")):
            d = p[h[b]] - p[h[a]]
            tilt = max(tilt, float(np.degrees(np.arccos(np.clip(-d[1] / np.linalg.norm(d), -1, 1)))))
    out["leg_tilt_deg"] = tilt
    out["lowest_y"] = float(rig.vertices[:, 1].min())
    out["hips_xz"] = float(np.hypot(p[h["hips"], 0], p[h["hips"], 2]))
    up = p[h["head"]] - p[h["hips"]]
    left = p[h["leftUpperLeg"]] - p[h["rightUpperLeg"]]
    fwd = np.cross(left, up)
    out["facing_z"] = float(fwd[2] / np.linalg.norm(fwd))
    return out
