"""The T-posed stick humanoid of test_apose.py and test_fuzz_gltf.py: its bones; each test adds a mesh."""

from __future__ import annotations

import numpy as np

# (name, parent, head): a T-posed humanoid facing +Z, hips 1 m up, ankles 10 cm above the ground
STICK_BONES = (
    ("hips", None, (0, 1.0, 0)), ("spine", "hips", (0, 1.1, 0)), ("head", "spine", (0, 1.5, 0)),
    ("leftUpperArm", "spine", (0.2, 1.4, 0)), ("leftLowerArm", "leftUpperArm", (0.5, 1.4, 0)),
    ("leftHand", "leftLowerArm", (0.75, 1.4, 0)),
    ("rightUpperArm", "spine", (-0.2, 1.4, 0)), ("rightLowerArm", "rightUpperArm", (-0.5, 1.4, 0)),
    ("rightHand", "rightLowerArm", (-0.75, 1.4, 0)),
    ("leftUpperLeg", "hips", (0.1, 0.95, 0)), ("leftLowerLeg", "leftUpperLeg", (0.1, 0.5, 0)),
    ("leftFoot", "leftLowerLeg", (0.1, 0.1, 0)),
    ("rightUpperLeg", "hips", (-0.1, 0.95, 0)), ("rightLowerLeg", "rightUpperLeg", (-0.1, 0.5, 0)),
    ("rightFoot", "rightLowerLeg", (-0.1, 0.1, 0)),
)


def bone_arrays(bones) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Names, parents (B,) int32 (-1 for the root) and heads (B, 3) float32 of (name, parent, head) rows."""
    names = [b[0] for b in bones]
    parents = np.array([-1 if b[1] is None else names.index(b[1]) for b in bones], np.int32)
    return names, parents, np.array([b[2] for b in bones], np.float32)
