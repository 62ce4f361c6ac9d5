"""A seeded, joint-limited random pose sampler with a body-volume self-penetration test.

Joint limits
------------
Angles are degrees, for the *left* side and the centre line, in world-aligned
bind axes of the canonical A-pose (X = the character's left, Y = up, Z = forward):

- ``euler`` bones draw (x, y, z) inside [min, max] per axis and compose
  R = Rx @ Ry @ Rz. Positive X bends the spine forward and lifts the toes' tip
  down; positive Z raises the left arm in the frontal plane; negative Y swings
  the left arm forward.
- ``hinge`` bones (elbows, knees, finger joints) turn about one fixed axis
  (elbow: perpendicular to the 45-degree arm in the frontal plane, so flexion
  brings the forearm forward; knee: +X, so the shin goes back; fingers: curl
  towards the palm), optionally followed by a small twist about the bone.

The right side uses the mirror image: axis (x, y, z) -> (x, -y, -z), so the Y
and Z ranges are negated. Fingers of one hand share a "grip" value so hands
open and close as a whole. Secondary chains (any non-humanoid bone that is not
an ancestor of a humanoid bone and not an MMD IK/twist helper: hair_*,
skirt_*, ribbons...) swing by at most ``secondary_deg`` about each axis.

Values are drawn from a symmetric Beta(1.5, 1.5) stretched over [min, max],
then scaled towards zero (the A-pose) by a per-pose energy in [0.25, 1]
(Beta(2, 1.6)) times ``spread``, so most poses are calm and some extreme.

Body-volume test
----------------
A pose is rejected when a hand or foot point lies *deep inside the torso or the
head*. The torso is the posed polyline hips -> spine -> chest -> upperChest ->
neck, thickened into a capsule of radius r = 0.35 x shoulder width (distance
between the two upper-arm heads); "deep" means closer than 0.75 r to that
polyline. The head is a sphere of radius 0.6 x shoulder width centred 0.45 x
shoulder width above the head bone; deep = closer than 0.7 of that radius.
Tested points: hand heads, a point 40 % of the forearm length beyond each
hand head, foot heads and toe heads (or a point ahead of the foot). Joints are
taken from the rig (its A-pose bind) or from :func:`standard_skeleton`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from conrdata.poses.kinematics import fk_batch
from conrdata.poses.library import PoseLibrary, poses_for_rig
from conrdata.poses.skeleton import hips_height, is_ik_bone_name, standard_skeleton
from conrdata.rig.humanoid import HUMANOID_BONES
from conrdata.rig.model import Rig
from conrdata.rig.rotations import euler_to_quat, quat_from_axis_angle, quat_mul, quat_normalize

_C = np.sqrt(0.5)


@dataclass(frozen=True)
class JointLimit:
    """Limits of one bone; angles in degrees (see the module docstring)."""

    kind: str  # "euler" or "hinge"
    ranges: tuple[tuple[float, float], ...]  # euler: 3 (min, max); hinge: 1 (min, max) [+ twist (min, max)]
    axis: tuple[float, float, float] = (1.0, 0.0, 0.0)  # hinge axis (left side)
    twist_axis: tuple[float, float, float] = (0.0, -1.0, 0.0)  # bone direction (left side), for the twist


def _e(x, y, z) -> JointLimit:
    return JointLimit("euler", (x, y, z))


_ARM_DIR = (_C, -_C, 0.0)
_ELBOW_AXIS = (-_C, -_C, 0.0)
_CURL_AXIS = (0.0, 0.0, -1.0)

LIMITS: dict[str, JointLimit] = {
    "hips": _e((-15, 25), (-30, 30), (-10, 10)),
    "spine": _e((-15, 30), (-20, 20), (-15, 15)),
    "chest": _e((-10, 20), (-15, 15), (-10, 10)),
    "upperChest": _e((-5, 10), (-10, 10), (-5, 5)),
    "neck": _e((-20, 30), (-30, 30), (-15, 15)),
    "head": _e((-20, 25), (-40, 40), (-20, 20)),
    "leftEye": _e((-8, 8), (-12, 12), (0, 0)),
    "jaw": _e((0, 12), (0, 0), (0, 0)),
    "leftShoulder": _e((-10, 10), (-15, 15), (-10, 20)),
    "leftUpperArm": _e((-45, 45), (-90, 35), (-40, 120)),
    "leftLowerArm": JointLimit("hinge", ((0, 140), (-50, 50)), _ELBOW_AXIS, _ARM_DIR),
    "leftHand": _e((-20, 20), (-25, 25), (-60, 50)),
    "leftUpperLeg": _e((-95, 25), (-30, 35), (-15, 40)),
    "leftLowerLeg": JointLimit("hinge", ((0, 130),), (1.0, 0.0, 0.0)),
    "leftFoot": _e((-20, 45), (-15, 15), (-15, 15)),
    "leftToes": _e((-30, 20), (0, 0), (0, 0)),
    "leftThumbMetacarpal": _e((-20, 20), (-25, 10), (-20, 20)),
    "leftThumbProximal": JointLimit("hinge", ((0, 50),), (-_C, -_C, 0.0), _ARM_DIR),
    "leftThumbDistal": JointLimit("hinge", ((0, 60),), (-_C, -_C, 0.0), _ARM_DIR),
}
for _f, _curl in (
    ("Index", (80, 95, 70)),
    ("Middle", (85, 95, 70)),
    ("Ring", (85, 95, 70)),
    ("Little", (85, 95, 70)),
):
    for _seg, _max in zip(("Proximal", "Intermediate", "Distal"), _curl):
        LIMITS[f"left{_f}{_seg}"] = JointLimit("hinge", ((-5, _max),), _CURL_AXIS, _ARM_DIR)

#: Bones whose hinge angle follows the hand's shared grip value.
_GRIP_BONES = {
    n for n in LIMITS if any(f in n for f in ("Index", "Middle", "Ring", "Little", "ThumbP", "ThumbD"))
}


def limit_for(name: str) -> tuple[JointLimit, bool] | None:
    """(limit, mirrored) for a humanoid bone, or None if it is not limited (kept at bind)."""
    if name in LIMITS:
        return LIMITS[name], False
    if name.startswith("right"):
        left = "left" + name[5:]
        if left in LIMITS:
            return LIMITS[left], True
    return None


def _mirror_axis(a) -> np.ndarray:
    a = np.asarray(a, np.float64)
    return np.array([a[0], -a[1], -a[2]])


def secondary_bones(rig: Rig) -> list[int]:
    """Bones the sampler swings a little: non-humanoid, hanging below a humanoid bone, not above one,
    not an MMD IK / twist helper and not a bone that copies another's rotation (MMD D bones):
    hair, skirt, ribbons, tails..."""
    hum = set(rig.humanoid.values())
    above: set[int] = set()
    for h in hum:
        p = int(rig.bone_parents[h])
        while p >= 0 and p not in above:
            above.add(p)
            p = int(rig.bone_parents[p])
    below: list[bool] = []
    for p in rig.bone_parents:
        below.append(p >= 0 and (int(p) in hum or below[int(p)]))
    inherits = {int(x["bone"]) for x in (rig.meta.get("mmd") or {}).get("inherit") or []}
    out = []
    for b, name in enumerate(rig.bone_names):
        low = name.lower()
        if b in hum or b in above or not below[b] or b in inherits:
            continue
        if is_ik_bone_name(name) or "捩" in name or "twist" in low:
            continue
        out.append(b)
    return out


def _draw(rng: np.random.Generator, lo: float, hi: float, n: int, spread) -> np.ndarray:
    u = rng.beta(1.5, 1.5, size=n)
    return np.radians((lo + (hi - lo) * u) * spread)


def _sample_rotation(rng, name: str, n: int, spread: float, grip: np.ndarray) -> np.ndarray:
    found = limit_for(name)
    if found is None:
        q = np.zeros((n, 4))
        q[:, 3] = 1
        return q
    lim, mirrored = found
    if lim.kind == "euler":
        ang = np.stack([_draw(rng, lo, hi, n, spread) for lo, hi in lim.ranges], axis=1)
        if mirrored:
            ang[:, 1:] *= -1
        return euler_to_quat(ang, "XYZ")
    axis = _mirror_axis(lim.axis) if mirrored else np.asarray(lim.axis, np.float64)
    lo, hi = lim.ranges[0]
    if name in _GRIP_BONES or name.replace("right", "left") in _GRIP_BONES:
        jitter = rng.uniform(-0.15, 0.15, size=n)
        t = np.clip(grip + jitter, 0.0, 1.0)
        angle = np.radians((lo + (hi - lo) * t) * spread)
    else:
        angle = _draw(rng, lo, hi, n, spread)
    q = quat_from_axis_angle(np.broadcast_to(axis, (n, 3)), angle)
    if len(lim.ranges) > 1:
        tw_axis = _mirror_axis(lim.twist_axis) if mirrored else np.asarray(lim.twist_axis, np.float64)
        # The twist is about the child's own axis, so it applies first (rightmost).
        tw = quat_from_axis_angle(np.broadcast_to(tw_axis, (n, 3)), _draw(rng, *lim.ranges[1], n, spread))
        q = quat_mul(q, tw)
    return q


# --- body-volume test ------------------------------------------------------------------------------


def _segment_distance(pts: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance (N, K) from points (N, K, 3) to segments a->b (N, 3)."""
    ab = (b - a)[:, None, :]
    ap = pts - a[:, None, :]
    t = np.clip(np.sum(ap * ab, -1) / np.maximum(np.sum(ab * ab, -1), 1e-12), 0.0, 1.0)
    return np.linalg.norm(ap - t[..., None] * ab, axis=-1)


def self_penetrating(rig: Rig, world_pos: np.ndarray) -> np.ndarray:
    """(N,) bool: which posed joint sets (N, B, 3) put a hand or foot deep inside the torso or head.

    See the module docstring for the body volume.
    """
    hum = rig.humanoid
    heads = rig.bone_heads.astype(np.float64)
    width = float(np.linalg.norm(heads[hum["leftUpperArm"]] - heads[hum["rightUpperArm"]]))
    r = 0.35 * width
    spine = [hum[n] for n in ("hips", "spine", "chest", "upperChest", "neck") if n in hum]
    if "neck" not in hum:
        spine.append(hum["head"])
    pts = []
    for s in ("left", "right"):
        hand, lower = hum[f"{s}Hand"], hum[f"{s}LowerArm"]
        pts.append(world_pos[:, hand])
        pts.append(world_pos[:, hand] + 0.4 * (world_pos[:, hand] - world_pos[:, lower]))
        foot = hum[f"{s}Foot"]
        pts.append(world_pos[:, foot])
        if f"{s}Toes" in hum:
            pts.append(world_pos[:, hum[f"{s}Toes"]])
        else:
            pts.append(world_pos[:, foot] + 0.5 * (world_pos[:, foot] - world_pos[:, hum[f"{s}LowerLeg"]]))
    P = np.stack(pts, axis=1)
    d = np.full(P.shape[:2], np.inf)
    for a, b in zip(spine[:-1], spine[1:]):
        d = np.minimum(d, _segment_distance(P, world_pos[:, a], world_pos[:, b]))
    bad = np.any(d < 0.75 * r, axis=1)
    head = world_pos[:, hum["head"]]
    neck = world_pos[:, hum["neck"]] if "neck" in hum else world_pos[:, spine[-2]]
    up = head - neck
    up /= np.maximum(np.linalg.norm(up, axis=1, keepdims=True), 1e-9)
    centre = head + 0.45 * width * up
    hr = 0.6 * width
    bad |= np.any(np.linalg.norm(P - centre[:, None], axis=-1) < 0.7 * hr, axis=1)
    return bad


# --- the sampler -----------------------------------------------------------------------------------


def sample_poses(
    count: int,
    seed: int,
    rig: Rig | None = None,
    *,
    spread: float = 1.0,
    secondary_deg: float = 12.0,
    max_attempts: int | None = None,
) -> PoseLibrary:
    """``count`` random, joint-limited poses without hands/feet inside the body; same seed, same poses.

    With ``rig`` the library names that rig's humanoid bones plus its secondary
    bones (hair, skirt...) and the body test uses its joints; without, it names
    every humanoid bone and uses :func:`standard_skeleton`. Root translation is zero.
    ``meta`` records seed, spread, the number of rejected candidates and the limits' source.
    """
    if count < 0:
        raise ValueError("count must be >= 0")
    skel = rig if rig is not None else standard_skeleton()
    rng = np.random.default_rng(seed)
    hum_names = [h for h in HUMANOID_BONES if h in skel.humanoid]
    secondary = secondary_bones(skel) if rig is not None else []
    names = hum_names + [skel.bone_names[b] for b in secondary]
    bone_of = [skel.humanoid[h] for h in hum_names] + secondary
    max_attempts = max_attempts if max_attempts is not None else 50 * count + 100
    accepted: list[np.ndarray] = []
    have = rejected = attempts = 0
    batch = 64
    while have < count:
        if attempts >= max_attempts:
            raise RuntimeError(
                f"pose sampler: only {have} of {count} poses accepted after {attempts} candidates"
            )
        n = batch
        attempts += n
        grip = {s: rng.beta(1.2, 1.6, size=n) for s in ("left", "right")}
        # A per-pose "energy" scales every angle towards the A-pose: most poses calm, some extreme.
        energy = spread * (0.25 + 0.75 * rng.beta(2.0, 1.6, size=n))
        rot = np.empty((n, len(names), 4))
        for j, h in enumerate(hum_names):
            side = "right" if h.startswith("right") else "left"
            rot[:, j] = _sample_rotation(rng, h, n, energy, grip[side])
        for k in range(len(secondary)):
            ang = np.radians(rng.uniform(-secondary_deg, secondary_deg, size=(n, 3)))
            rot[:, len(hum_names) + k] = euler_to_quat(ang, "XYZ")
        local = np.zeros((n, skel.num_bones, 4))
        local[..., 3] = 1.0
        local[:, bone_of] = rot
        # The library is in the standard humanoid tree; the rig's tree may differ, so evaluate it properly.
        lib = PoseLibrary(
            names, quat_normalize(rot).astype(np.float32), np.zeros((n, 3)), [str(i) for i in range(n)]
        )
        rig_local, _ = poses_for_rig(skel, lib)
        _, wp = fk_batch(skel.bone_parents, skel.bone_heads, rig_local)
        bad = self_penetrating(skel, wp)
        rejected += int(bad.sum())
        good = rot[~bad]
        accepted.append(good[: count - have])
        have += len(accepted[-1])
    rots = np.concatenate(accepted) if accepted else np.zeros((0, len(names), 4))
    rots = np.where(rots[..., 3:] < 0, -rots, rots)
    meta = {
        "source": "sampler",
        "seed": int(seed),
        "spread": float(spread),
        "secondary_deg": float(secondary_deg),
        "rejected_candidates": rejected,
        "body_test": "hand/foot points vs torso capsule and head sphere",
        "hips_height": hips_height(skel),
    }
    return PoseLibrary(
        names,
        rots.astype(np.float32),
        np.zeros((len(rots), 3), np.float32),
        [f"sample-{seed}-{i:06d}" for i in range(len(rots))],
        meta,
    )
