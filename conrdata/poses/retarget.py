"""Retarget motion of any source skeleton (BVH, glTF) onto the canonical humanoid via world bone directions.

Input: a source skeleton's rest joint positions and, per frame, each joint's
*world* rotation relative to its rest (normalised, as in :mod:`conrdata.rig.model`),
plus which source joint is which humanoid bone.

1. Axes. The source's up is hips -> head (or neck/spine top) at rest and its
   left is rightUpperLeg -> leftUpperLeg (or the arms); the basis M turns them
   into +Y and +X, so the character faces +Z. Rotations become M G M^T,
   positions M p. (A BVH rest is therefore taken from its OFFSETs: no T-pose
   is assumed, the compensation below works for any rest.)
2. Rest-pose compensation. For each limb bone h (shoulders, arms, legs,
   fingers: :data:`COMPENSATED`) with a direction (its humanoid child, e.g.
   upper arm -> lower arm, in both skeletons) the rest direction r_h of the
   source and the A-pose direction a_h of the target give
   A_h = rotation_between(r_h, a_h), the source-rest -> A-pose turn. Other
   bones (spine, neck, head, hands, feet) and bones without a direction
   inherit their humanoid parent's A (identity at the hips). The pose
   relative to the A-pose is then W_h = G_h @ A_h^-1: in the source's rest
   pose (G = I) a T-pose source gives the rig's T-pose, and a source frame
   posed into the A-pose gives the bind pose.
3. Root translation: displacement of the source hips from rest, in M axes,
   times (target hips height / source hips height), both measured above the
   lowest joint of the skeleton (mesh ignored, so the two are comparable).
"""

from __future__ import annotations

import numpy as np

from conrdata.errors import RigError
from conrdata.poses.library import PoseLibrary, library_from_world
from conrdata.poses.skeleton import DIRECTION_CHILD, HUMANOID_PARENT, hips_height, standard_skeleton
from conrdata.rig.bonemaps import CMU_BVH_TO_HUMANOID, map_bone_names
from conrdata.rig.humanoid import HUMANOID_BONES
from conrdata.rig.model import Rig
from conrdata.rig.rotations import quat_conj, quat_from_matrix, quat_identity, quat_mul, rotation_between


def source_basis(rest: np.ndarray, humanoid: dict[str, int]) -> np.ndarray:
    """(3, 3) rotation M taking source axes to project axes (up -> +Y, the character's left -> +X)."""
    hips = rest[humanoid["hips"]]
    top = next((rest[humanoid[h]] for h in ("head", "neck", "upperChest", "chest", "spine") if h in humanoid),
               None)
    up = np.array([0.0, 1.0, 0.0]) if top is None else top - hips
    left = None
    for a, b in (("leftUpperLeg", "rightUpperLeg"), ("leftUpperArm", "rightUpperArm"),
                 ("leftShoulder", "rightShoulder"), ("leftFoot", "rightFoot")):
        if a in humanoid and b in humanoid:
            left = rest[humanoid[a]] - rest[humanoid[b]]
            break
    if np.linalg.norm(up) < 1e-9:
        up = np.array([0.0, 1.0, 0.0])
    up = up / np.linalg.norm(up)
    if left is None or np.linalg.norm(np.cross(up, left)) < 1e-9:
        # Fall back to the file's own X as left, whatever is perpendicular to up.
        left = np.array([1.0, 0.0, 0.0]) if abs(up[0]) < 0.9 else np.array([0.0, 0.0, 1.0])
    left = left - up * (left @ up)
    left /= np.linalg.norm(left)
    fwd = np.cross(left, up)
    return np.stack([left, up, fwd])  # rows: where each source axis... M @ v gives project coordinates


def _direction(heads: np.ndarray, humanoid: dict[str, int], h: str) -> np.ndarray | None:
    for c in DIRECTION_CHILD.get(h, ()):
        if c in humanoid:
            d = heads[humanoid[c]] - heads[humanoid[h]]
            if np.linalg.norm(d) > 1e-9:
                return d
    return None


#: Bones whose rest direction is compensated (limbs: where T-pose, A-pose and stance differ); the others
#: (spine, neck, head, hands, feet, toes) take their humanoid parent's compensation, keeping the
#: character's own posture there (a mocap actor's slouch or foot markers should not bend every character).
COMPENSATED = {
    f"{s}{b}" for s in ("left", "right")
    for b in ("Shoulder", "UpperArm", "LowerArm", "UpperLeg", "LowerLeg", "ThumbMetacarpal", "ThumbProximal",
              "IndexProximal", "IndexIntermediate", "MiddleProximal", "MiddleIntermediate", "RingProximal",
              "RingIntermediate", "LittleProximal", "LittleIntermediate")
}


def _joint_height(heads: np.ndarray, hips: int) -> float:
    """Hips height above the lowest joint (the floor of a skeleton without a mesh)."""
    return float(heads[hips, 1] - heads[:, 1].min())


def rest_compensation(src_rest: np.ndarray, src_humanoid: dict[str, int], tgt_heads: np.ndarray,
                      tgt_humanoid: dict[str, int]) -> dict[str, np.ndarray]:
    """Per humanoid bone (present in the source), A_h: world rotation from the source rest to the A-pose."""
    A: dict[str, np.ndarray] = {}
    for h in HUMANOID_BONES:
        if h not in src_humanoid:
            continue
        r = _direction(src_rest, src_humanoid, h) if h in COMPENSATED else None
        a = _direction(tgt_heads, tgt_humanoid, h) if h in tgt_humanoid and r is not None else None
        if r is not None and a is not None:
            A[h] = rotation_between(r, a)
        else:
            p = HUMANOID_PARENT[h]
            while p is not None and p not in A:
                p = HUMANOID_PARENT[p]
            A[h] = A[p] if p is not None else quat_identity()
    return A


def retarget_world(
    rest: np.ndarray,
    world_q: np.ndarray,
    hips_pos: np.ndarray,
    humanoid: dict[str, int],
    pose_ids: list[str],
    target: Rig | None = None,
    meta: dict | None = None,
) -> PoseLibrary:
    """Library from a source skeleton's motion (see the module docstring).

    ``rest`` (J, 3) source rest joints (source axes/units); ``world_q`` (F, J, 4)
    world rotations relative to rest (source axes); ``hips_pos`` (F, 3) posed
    hips joint (source axes/units); ``humanoid`` humanoid name -> source joint.
    """
    if "hips" not in humanoid:
        raise ValueError("the source skeleton has no hips")
    tgt = target if target is not None else standard_skeleton()
    M = source_basis(rest, humanoid)
    m = quat_from_matrix(M)
    rest_p = rest @ M.T
    A = rest_compensation(rest_p, humanoid, tgt.bone_heads.astype(np.float64), tgt.humanoid)
    F = world_q.shape[0]
    m_b = np.broadcast_to(m, (F, 4))
    world = {}
    for h, j in humanoid.items():
        if h not in A:
            continue
        g = quat_mul(quat_mul(m_b, world_q[:, j]), quat_conj(m_b))
        world[h] = quat_mul(g, quat_conj(A[h]))
    src_h = _joint_height(rest_p, humanoid["hips"])
    tgt_joints = _joint_height(tgt.bone_heads.astype(np.float64), tgt.humanoid["hips"])
    scale = tgt_joints / src_h if src_h > 1e-9 else 1.0
    tgt_h = hips_height(tgt)
    root = (np.asarray(hips_pos, np.float64) - rest[humanoid["hips"]]) @ M.T * scale
    out_meta = dict(meta or {})
    out_meta.update({"hips_height": tgt_h, "source_scale": scale,
                     "source_axes": [[float(x) for x in row] for row in M]})
    return library_from_world(world, root, pose_ids, out_meta)


_CMU_MARKERS = {"lowerback", "lhipjoint", "rhipjoint", "neck1", "leftfingerbase", "lthumb"}


def map_source_names(names: list[str], explicit: dict[str, str] | None = None) -> dict[str, int]:
    """Humanoid name -> joint index for source joint names (explicit {joint name: humanoid} wins).

    CMU motion-capture skeletons (recognised by LowerBack / LHipJoint / Neck1...) use
    :data:`conrdata.rig.bonemaps.CMU_BVH_TO_HUMANOID`, whose Spine is the chest; others
    go through :func:`conrdata.rig.bonemaps.map_bone_names` (Mixamo, MMD, Blender...).
    """
    lower = [n.lower() for n in names]
    if _CMU_MARKERS & set(lower):
        table = {k.lower(): v for k, v in CMU_BVH_TO_HUMANOID.items()}
        found = {}
        for i, n in enumerate(lower):
            h = table.get(n)
            if h is not None and h not in found:
                found[h] = i
        for h, i in map_bone_names(list(names)).items():
            if h not in found and i not in found.values():
                found[h] = i
    else:
        found = map_bone_names(list(names))
    if explicit:
        for jn, h in explicit.items():
            if jn in names:
                found[h] = names.index(jn)
    return found


def bvh_to_library(motion, target: Rig | None = None, fps: float | None = None, max_poses: int | None = None,
                   name: str = "motion", names_map: dict[str, str] | None = None) -> PoseLibrary:
    """Retarget a :class:`~conrdata.poses.bvh.BvhMotion` onto ``target`` (default: the standard skeleton).

    ``fps`` resamples by nearest frame (default: every frame); ``max_poses`` keeps
    that many evenly spaced frames. Joint names map through :mod:`conrdata.rig.bonemaps`
    (CMU, Mixamo...); joints it cannot map are listed in ``meta["unmapped_joints"]``.
    """
    humanoid = map_source_names(motion.names, names_map)
    if "hips" not in humanoid:
        raise RigError(f"BVH joints {motion.names[:6]}... have no recognisable hips", name)
    F = motion.num_frames
    times = np.arange(F) * motion.frame_time
    if fps:
        # A thousandth of a frame of slack: files round their frame time (0.033333 for 30 fps).
        n = int(np.floor(times[-1] * fps + 1e-3)) + 1 if F else 0
        t = np.arange(n) / fps
        idx = np.clip(np.round(t / motion.frame_time).astype(int), 0, max(F - 1, 0))
    else:
        idx = np.arange(F)
    if max_poses is not None and len(idx) > max_poses:
        idx = idx[np.unique(np.linspace(0, len(idx) - 1, max_poses).round().astype(int))]
    world_q, world_p = motion.world(idx)
    ids = [f"{name}@f{int(i):06d}" for i in idx]
    meta = {"source": "bvh", "motion": name, "fps": fps or 1.0 / motion.frame_time,
            "unmapped_joints": [n for k, n in enumerate(motion.names) if k not in humanoid.values()]}
    return retarget_world(motion.rest_positions(), world_q, world_p[:, humanoid["hips"]], humanoid, ids,
                          target, meta)
