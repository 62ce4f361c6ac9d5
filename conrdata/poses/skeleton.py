"""The standard humanoid tree and a reference A-pose skeleton.

Pose libraries store local rotations *in the standard humanoid tree* below
(VRM's hierarchy): a humanoid bone's rotation is relative to its humanoid
parent, whatever extra bones a particular rig has in between. Converting to a
rig therefore goes through world rotations (:func:`conrdata.poses.library.pose_for_rig`).

:func:`standard_skeleton` is a joints-only :class:`~conrdata.rig.model.Rig` (no mesh)
in the canonical A-pose of docs/design.md, 1.5 m tall, used when no character is
given: as the body for the sampler's self-penetration test, as the target of
BVH / glTF retargeting, and as the MMD proxy for VMD evaluation.
"""

from __future__ import annotations

import re

import numpy as np

from conrdata.rig.humanoid import HUMANOID_BONES
from conrdata.rig.model import Material, Rig

_FINGERS = ("Index", "Middle", "Ring", "Little")


def _parents() -> dict[str, str | None]:
    p: dict[str, str | None] = {
        "hips": None,
        "spine": "hips",
        "chest": "spine",
        "upperChest": "chest",
        "neck": "upperChest",
        "head": "neck",
        "leftEye": "head",
        "rightEye": "head",
        "jaw": "head",
    }
    for s in ("left", "right"):
        p.update(
            {
                f"{s}Shoulder": "upperChest",
                f"{s}UpperArm": f"{s}Shoulder",
                f"{s}LowerArm": f"{s}UpperArm",
                f"{s}Hand": f"{s}LowerArm",
                f"{s}UpperLeg": "hips",
                f"{s}LowerLeg": f"{s}UpperLeg",
                f"{s}Foot": f"{s}LowerLeg",
                f"{s}Toes": f"{s}Foot",
                f"{s}ThumbMetacarpal": f"{s}Hand",
                f"{s}ThumbProximal": f"{s}ThumbMetacarpal",
                f"{s}ThumbDistal": f"{s}ThumbProximal",
            }
        )
        for f in _FINGERS:
            p[f"{s}{f}Proximal"] = f"{s}Hand"
            p[f"{s}{f}Intermediate"] = f"{s}{f}Proximal"
            p[f"{s}{f}Distal"] = f"{s}{f}Intermediate"
    return p


#: Humanoid name -> humanoid parent name (None for hips), VRM's tree.
HUMANOID_PARENT: dict[str, str | None] = _parents()
assert set(HUMANOID_PARENT) == set(HUMANOID_BONES)

#: The humanoid child that defines a bone's direction (used to compare rest poses), by priority.
DIRECTION_CHILD: dict[str, tuple[str, ...]] = {
    "spine": ("chest", "upperChest", "neck"),
    "chest": ("upperChest", "neck"),
    "upperChest": ("neck",),
    "neck": ("head",),
}
for _s in ("left", "right"):
    DIRECTION_CHILD.update(
        {
            f"{_s}Shoulder": (f"{_s}UpperArm",),
            f"{_s}UpperArm": (f"{_s}LowerArm",),
            f"{_s}LowerArm": (f"{_s}Hand",),
            f"{_s}Hand": (f"{_s}MiddleProximal",),
            f"{_s}UpperLeg": (f"{_s}LowerLeg",),
            f"{_s}LowerLeg": (f"{_s}Foot",),
            f"{_s}Foot": (f"{_s}Toes",),
            f"{_s}ThumbMetacarpal": (f"{_s}ThumbProximal",),
            f"{_s}ThumbProximal": (f"{_s}ThumbDistal",),
        }
    )
    for _f in _FINGERS:
        DIRECTION_CHILD[f"{_s}{_f}Proximal"] = (f"{_s}{_f}Intermediate",)
        DIRECTION_CHILD[f"{_s}{_f}Intermediate"] = (f"{_s}{_f}Distal",)


def humanoid_parent_in(name: str, present: set[str] | dict) -> str | None:
    """Nearest humanoid ancestor of ``name`` that is in ``present`` (None if there is none)."""
    p = HUMANOID_PARENT.get(name)
    while p is not None and p not in present:
        p = HUMANOID_PARENT.get(p)
    return p


def _standard_heads() -> dict[str, tuple[float, float, float]]:
    c = np.sqrt(0.5)
    h: dict[str, tuple[float, float, float]] = {
        "hips": (0.0, 0.78, 0.0),
        "spine": (0.0, 0.86, 0.0),
        "chest": (0.0, 0.97, 0.0),
        "upperChest": (0.0, 1.07, 0.0),
        "neck": (0.0, 1.19, -0.01),
        "head": (0.0, 1.27, 0.0),
        "jaw": (0.0, 1.30, 0.03),
    }
    for sign, s in ((1.0, "left"), (-1.0, "right")):
        d = np.array([sign * c, -c, 0.0])  # 45 degrees below horizontal, in the frontal plane
        sh = np.array([sign * 0.02, 1.155, 0.0])
        ua = np.array([sign * 0.12, 1.15, 0.0])
        la = ua + 0.23 * d
        hd = la + 0.20 * d
        h[f"{s}Eye"] = (sign * 0.032, 1.36, 0.075)
        h[f"{s}Shoulder"] = tuple(sh)
        h[f"{s}UpperArm"] = tuple(ua)
        h[f"{s}LowerArm"] = tuple(la)
        h[f"{s}Hand"] = tuple(hd)
        tm = hd + 0.02 * d + np.array([0, 0, 0.02])
        h[f"{s}ThumbMetacarpal"] = tuple(tm)
        h[f"{s}ThumbProximal"] = tuple(tm + 0.03 * d + np.array([0, 0, 0.012]))
        h[f"{s}ThumbDistal"] = tuple(tm + 0.055 * d + np.array([0, 0, 0.02]))
        for k, (f, z) in enumerate(zip(_FINGERS, (0.018, 0.005, -0.008, -0.02))):
            base = hd + (0.075 - 0.004 * abs(k - 1)) * d + np.array([0, 0, z])
            h[f"{s}{f}Proximal"] = tuple(base)
            h[f"{s}{f}Intermediate"] = tuple(base + 0.03 * d)
            h[f"{s}{f}Distal"] = tuple(base + 0.05 * d)
        h[f"{s}UpperLeg"] = (sign * 0.085, 0.74, 0.0)
        h[f"{s}LowerLeg"] = (sign * 0.085, 0.41, 0.005)
        h[f"{s}Foot"] = (sign * 0.085, 0.075, -0.01)
        h[f"{s}Toes"] = (sign * 0.085, 0.012, 0.10)
    return h


#: Where a bone's far end is when it has no humanoid child (metres, in the standard skeleton's A-pose).
STANDARD_HEIGHT = 1.5


def standard_skeleton() -> Rig:
    """A joints-only canonical A-pose humanoid (1.5 m, faces +Z, feet at y = 0, no vertices).

    Every humanoid bone of :data:`conrdata.rig.humanoid.HUMANOID_BONES` is present,
    named by its humanoid name; ``meta["hips_height"]`` is the hips head height.
    """
    heads = _standard_heads()
    names = list(HUMANOID_BONES)
    index = {n: i for i, n in enumerate(names)}
    parents = np.array(
        [-1 if HUMANOID_PARENT[n] is None else index[HUMANOID_PARENT[n]] for n in names], np.int32
    )
    zero3 = np.zeros((0, 3), np.float32)
    return Rig(
        vertices=zero3,
        normals=zero3.copy(),
        uvs=np.zeros((0, 2), np.float32),
        faces=np.zeros((0, 3), np.int32),
        face_material=np.zeros(0, np.int32),
        joints=np.zeros((0, 4), np.int32),
        weights=np.zeros((0, 4), np.float32),
        bone_names=names,
        bone_parents=parents,
        bone_heads=np.array([heads[n] for n in names], np.float32),
        humanoid=dict(index),
        materials=[Material("none")],
        meta={"source": "standard_skeleton", "hips_height": heads["hips"][1], "height": STANDARD_HEIGHT},
    )


_IK_RE = re.compile(r"(^|[^a-z])ik([^a-z]|$)")


def is_ik_bone_name(name: str) -> bool:
    """MMD IK target bones (左足ＩＫ, leg IK_L, 足IK親...): no skin, they stay where a motion puts them."""
    return bool(_IK_RE.search(name.lower())) or "ＩＫ" in name


def rig_height(rig: Rig) -> float:
    """A-pose height in metres: from the mesh when it has one, else from the joints (head top estimated)."""
    if len(rig.vertices):
        return rig.height()
    if "height" in rig.meta:
        return float(rig.meta["height"])
    y = rig.bone_heads[:, 1]
    return float(y.max() - min(y.min(), 0.0)) * 1.15


def hips_height(rig: Rig) -> float:
    """Height (metres) of the hips head above the lowest point of the rig (mesh or joints)."""
    hips = rig.bone_heads[rig.bone_index("hips")]
    low = rig.vertices[:, 1].min() if len(rig.vertices) else min(0.0, float(rig.bone_heads[:, 1].min()))
    return float(hips[1] - low)
