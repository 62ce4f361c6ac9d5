"""Small motions written by the pose tests (no real motion files are in the repository).

- :func:`cmu_bvh`: a CMU-named BVH skeleton with the standard skeleton's proportions in a
  T-pose rest (arms horizontal), optionally facing -Z and in centimetres, with given frames.
- :func:`gltf_animated_skeleton`: a glTF (JSON + data-URI buffer) humanoid with rest
  rotations on its nodes and one animation.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np

from conrdata.poses.bvh import BvhMotion
from conrdata.poses.skeleton import standard_skeleton
from conrdata.rig.rotations import matrix_to_euler, quat_from_matrix, quat_to_matrix, rotation_between

C = np.sqrt(0.5)

# Depth-first order, as a BVH file lists joints.
_CMU = [("Hips", None, "hips"), ("LowerBack", "Hips", "spine"), ("Spine", "LowerBack", "chest"),
        ("Spine1", "Spine", "upperChest"), ("Neck", "Spine1", "neck"), ("Head", "Neck", "head")]
for _S, _s in (("Left", "left"), ("Right", "right")):
    _CMU += [(f"{_S}Shoulder", "Spine1", f"{_s}Shoulder"), (f"{_S}Arm", f"{_S}Shoulder", f"{_s}UpperArm"),
             (f"{_S}ForeArm", f"{_S}Arm", f"{_s}LowerArm"), (f"{_S}Hand", f"{_S}ForeArm", f"{_s}Hand")]
for _S, _s in (("Left", "left"), ("Right", "right")):
    _CMU += [(f"{_S}UpLeg", "Hips", f"{_s}UpperLeg"), (f"{_S}Leg", f"{_S}UpLeg", f"{_s}LowerLeg"),
             (f"{_S}Foot", f"{_S}Leg", f"{_s}Foot"), (f"{_S}ToeBase", f"{_S}Foot", f"{_s}Toes")]
CMU_TO_HUMANOID = {n: h for n, _, h in _CMU}


def tpose_positions() -> dict[str, np.ndarray]:
    """CMU joint -> position (metres, +Z facing) of the standard skeleton with arms horizontal."""
    sk = standard_skeleton()
    pos = {n: sk.bone_heads[sk.humanoid[h]].astype(np.float64) for n, _, h in _CMU}
    for S, sg in (("Left", 1.0), ("Right", -1.0)):
        ua = pos[f"{S}Arm"]
        pos[f"{S}ForeArm"] = ua + np.array([sg * 0.23, 0, 0])
        pos[f"{S}Hand"] = ua + np.array([sg * 0.43, 0, 0])
    return pos


def cmu_bvh(frames: list[dict[str, np.ndarray]], face_minus_z: bool = False, units: float = 1.0,
            hips_offsets: list[np.ndarray] | None = None) -> BvhMotion:
    """A CMU-named BVH in a T-pose rest. ``frames``: per frame, joint -> (3,) Euler degrees for channels
    ``Xrotation Yrotation Zrotation`` (R = Rx Ry Rz) in the file's axes; ``hips_offsets`` moves the root."""
    pos = tpose_positions()
    turn = np.diag([-1.0, 1.0, -1.0]) if face_minus_z else np.eye(3)
    P = {n: turn @ p * units for n, p in pos.items()}
    names = [n for n, _, _ in _CMU]
    parents = np.array([-1 if p is None else names.index(p) for _, p, _ in _CMU])
    offsets = np.array([P[n] - (P[p] if p is not None else 0.0) for n, p, _ in _CMU])
    chans = [["Xposition", "Yposition", "Zposition", "Xrotation", "Yrotation", "Zrotation"] if j == 0
             else ["Xrotation", "Yrotation", "Zrotation"] for j in range(len(names))]
    data = np.zeros((len(frames), sum(len(c) for c in chans)))
    motion = BvhMotion(names, parents, offsets, chans, data, 1.0 / 30.0,
                       {names.index("Head"): np.array([0.0, 0.2 * units, 0.0]),
                        names.index("LeftHand"): turn @ np.array([0.08 * units, 0, 0]),
                        names.index("RightHand"): turn @ np.array([-0.08 * units, 0, 0])})
    sl = motion.channel_slices()
    for f, rots in enumerate(frames):
        data[f, :3] = offsets[0] + (0.0 if hips_offsets is None else turn @ hips_offsets[f] * units)
        data[f, 3:6] = rots.get("Hips", np.zeros(3))
        for n, e in rots.items():
            if n != "Hips":
                data[f, sl[names.index(n)]] = e
    return motion


def euler_between(u, v) -> np.ndarray:
    """Euler XYZ degrees of the minimal rotation taking direction u to v."""
    q = rotation_between(np.asarray(u, float), np.asarray(v, float))
    return np.degrees(matrix_to_euler(quat_to_matrix(q)))


def apose_frame(face_minus_z: bool = False) -> dict[str, np.ndarray]:
    """Rotations that lower the T-pose arms to the A-pose (45 degrees down)."""
    turn = np.diag([-1.0, 1.0, -1.0]) if face_minus_z else np.eye(3)
    out = {}
    for S, sg in (("Left", 1.0), ("Right", -1.0)):
        out[f"{S}Arm"] = euler_between(turn @ [sg, 0, 0], turn @ [sg * C, -C, 0])
    return out


# --- glTF -----------------------------------------------------------------------------------------


def _quat_between(u, v) -> list[float]:
    return [float(x) for x in rotation_between(np.asarray(u, float), np.asarray(v, float))]


def gltf_animated_skeleton(path: Path, times, arm_rotations, interpolation: str = "LINEAR",
                           hips_translations=None) -> Path:
    """A glTF humanoid (Mixamo-style node names) in a T-pose whose arm nodes carry rest rotations
    (their local +Y points along the bone, as Blender exports), animated on ``LeftArm``'s rotation
    (``arm_rotations``: local glTF quaternions, (K, 4), or (3K, 4) for CUBICSPLINE) and optionally
    the hips translation."""
    pos = tpose_positions()
    mix = {"Hips": "Hips", "LowerBack": "Spine", "Spine": "Spine1", "Spine1": "Spine2", "Neck": "Neck",
           "Head": "Head"}
    for S in ("Left", "Right"):
        mix.update({f"{S}Shoulder": f"{S}Shoulder", f"{S}Arm": f"{S}Arm", f"{S}ForeArm": f"{S}ForeArm",
                    f"{S}Hand": f"{S}Hand", f"{S}UpLeg": f"{S}UpLeg", f"{S}Leg": f"{S}Leg",
                    f"{S}Foot": f"{S}Foot", f"{S}ToeBase": f"{S}ToeBase"})
    names = [n for n, _, _ in _CMU]
    parent = {n: p for n, p, _ in _CMU}
    # Rest world rotation per node: arms rotated so local +Y runs along the arm; everything else identity.
    rest_world = {}
    for n in names:
        q = [0.0, 0.0, 0.0, 1.0]
        if n.startswith(("Left", "Right")) and n.endswith(("Arm", "ForeArm", "Hand")):
            sg = 1.0 if n.startswith("Left") else -1.0
            q = _quat_between([0, 1, 0], [sg, 0, 0])
        rest_world[n] = np.array(q)
    nodes = []
    for n in names:
        p = parent[n]
        pw = rest_world[p] if p is not None else np.array([0, 0, 0, 1.0])
        pr = quat_to_matrix(pw)
        local_r = quat_to_matrix(rest_world[n])
        local_r = pr.T @ local_r
        t = pos[n] - (pos[p] if p is not None else 0.0)
        node = {"name": mix[n], "translation": [float(x) for x in pr.T @ t],
                "rotation": [float(x) for x in quat_from_matrix(local_r)]}
        kids = [names.index(c) for c, pp, _ in _CMU if pp == n]
        if kids:
            node["children"] = kids
        nodes.append(node)
    times = np.asarray(times, np.float32)
    arm = np.asarray(arm_rotations, np.float32)
    blobs = [times.tobytes(), arm.tobytes()]
    accessors = [
        {"bufferView": 0, "componentType": 5126, "count": len(times), "type": "SCALAR",
         "min": [float(times.min())], "max": [float(times.max())]},
        {"bufferView": 1, "componentType": 5126, "count": len(arm), "type": "VEC4"},
    ]
    channels = [{"sampler": 0, "target": {"node": names.index("LeftArm"), "path": "rotation"}}]
    samplers = [{"input": 0, "output": 1, "interpolation": interpolation}]
    if hips_translations is not None:
        ht = np.asarray(hips_translations, np.float32)
        blobs.append(ht.tobytes())
        accessors.append({"bufferView": 2, "componentType": 5126, "count": len(ht), "type": "VEC3"})
        channels.append({"sampler": 1, "target": {"node": 0, "path": "translation"}})
        samplers.append({"input": 0, "output": 2, "interpolation": interpolation})
    views, offset = [], 0
    for b in blobs:
        views.append({"buffer": 0, "byteOffset": offset, "byteLength": len(b)})
        offset += len(b)
    data = b"".join(blobs)
    doc = {
        "asset": {"version": "2.0"}, "scene": 0, "scenes": [{"nodes": [0]}], "nodes": nodes,
        "buffers": [{"byteLength": len(data),
                     "uri": "data:application/octet-stream;base64," + base64.b64encode(data).decode()}],
        "bufferViews": views, "accessors": accessors,
        "animations": [{"name": "wave", "channels": channels, "samplers": samplers}],
    }
    path = Path(path)
    path.write_text(json.dumps(doc))
    return path
