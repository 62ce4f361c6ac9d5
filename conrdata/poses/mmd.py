"""Evaluate VMD motions with MMD's IK on a character, and turn them into a pose library.

Frames. VMD data is in MMD's left-handed frame (model facing -Z, 1 unit = 8 cm).
The project negates Z (see :mod:`conrdata.formats.pmx`), so a VMD rotation
(x, y, z, w) becomes (-x, -y, z, w) and a VMD offset (x, y, z) becomes
``0.08 * s * (x, y, -z)`` metres (s scales to the character, below).

The skeleton a VMD drives (:class:`MmdSkeleton`):

- an MMD rig (PMX/PMD source, it has ``rig.ik_chains``): its own bones, IK
  chains solved by CCD with their per-link limits (:func:`conrdata.poses.ik.solve_ccd`),
  and its inherit links (D bones, cancel bones). VMD rotations are relative to
  the model's *source* rest pose, but a converted rig is bound in the A-pose;
  ``rig.meta["apose_correction"]`` (local rotation per bone from source rest
  to A-pose, written by :func:`conrdata.rig.apose.align_to_apose`) gives back the
  rest: the motion is evaluated on the reconstructed rest skeleton and each
  bone's world rotation W is re-expressed against the A-pose as W @ A^-1,
  where A is the bone's world correction. s = 1.
- any other rig (VRM, glTF, procedural) or none (:func:`standard_skeleton`):
  a *proxy* MMD skeleton with the standard MMD bone names (全ての親, センター,
  グルーブ, 腰, 上半身, 下半身, 左足ＩＫ, 左つま先ＩＫ, 左腕捩...) placed on the rig's
  humanoid joints, so VMD dances drive such characters too. Its legs use the
  analytic two-bone IK with the knee as a hinge (positive X, bending back),
  then the toe IK aims the ankle. Its rest is *assumed* to be MMD's usual
  rest: everything as in our A-pose except the upper arms, which hang
  :data:`MMD_REST_ARM_DEG` = 37.5 degrees below horizontal (standard MMD models
  range about 35-40; our A-pose has 45). s = (rig's leg-joint height) /
  :data:`MMD_STANDARD_LEG_HEIGHT` so strides and hops scale with the character.

Bones keyed in the VMD that the skeleton lacks are reported in the library's
``meta["missing_bones"]``, never fatal. The library is A-pose relative and in
the standard humanoid tree, so it drives any other character too; its
``meta["hips_height"]`` is the evaluating skeleton's. Only humanoid rotations
are kept: when a character is posed from the library, its own secondary rules
(sleeve and hair IK, inherit, physics bones) are played again by the pose
evaluator (:mod:`conrdata.poses.evaluate`), with the leg IK left to these
IK-solved humanoid rotations.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field

import numpy as np

from conrdata.poses.ik import PoseState, solve_ccd, solve_two_bone
from conrdata.poses.kinematics import fk_batch
from conrdata.poses.library import PoseLibrary, inherit_rotations, library_from_world
from conrdata.poses.skeleton import hips_height, standard_skeleton
from conrdata.poses.vmd import MMD_FPS, VmdMotion, field_text, sample_track
from conrdata.rig.humanoid import HUMANOID_BONES
from conrdata.rig.model import IKChain, Rig
from conrdata.rig.rotations import (
    axis_rotation,
    quat_conj,
    quat_from_matrix,
    quat_identity,
    quat_mul,
    quat_normalize,
    quat_rotate,
    quat_to_matrix,
)

MMD_UNIT_METRES = 0.08
MMD_REST_ARM_DEG = 37.5
MMD_STANDARD_LEG_HEIGHT = 0.80
CANONICAL_ARM_DEG = 45.0


def nfkc(name: str) -> str:
    """Name key for matching VMD names to bones: NFKC (ＩＫ == IK, full/half width digits)."""
    return unicodedata.normalize("NFKC", name).strip()


@dataclass
class MmdSkeleton:
    """A skeleton in its *source rest* pose (project frame, metres), ready to play VMD motions.

    ``rest_to_bind`` (B, 4): world rotation of each bone in the A-pose bind relative to this rest.
    ``legs``: for proxies, (leg IK bone, upper leg, knee, ankle, toe IK bone, toe) per side.
    """

    names: list[str]
    parents: np.ndarray
    heads: np.ndarray
    humanoid: dict[str, int]
    rest_to_bind: np.ndarray
    translation_scale: float
    ik_chains: list[IKChain] = field(default_factory=list)
    legs: list[tuple[int, int, int, int, int, int]] = field(default_factory=list)
    inherit: list[dict] = field(default_factory=list)
    kind: str = "proxy"
    #: Hips height of the character (as :func:`conrdata.poses.skeleton.hips_height` measures it).
    hips_height: float = 0.0

    def __post_init__(self):
        self.index = {}
        self.cut_index = {}  # by what a 15-byte VMD name field keeps of each name (MMD cuts long names)
        for i, n in enumerate(self.names):
            self.index.setdefault(nfkc(n), i)
            self.cut_index.setdefault(nfkc(field_text(n)), i)

    def find(self, name: str) -> int | None:
        key = nfkc(name)
        return self.index.get(key, self.cut_index.get(key))


def _world_corrections(parents, corrections: dict[int, np.ndarray]) -> np.ndarray:
    B = len(parents)
    A = quat_identity((B,))
    for b, p in enumerate(parents):
        c = corrections.get(b, quat_identity())
        A[b] = quat_mul(A[p], c) if p >= 0 else c
    return quat_normalize(A)


def _rest_heads(parents, bind_heads: np.ndarray, A: np.ndarray) -> np.ndarray:
    """Bone heads of the source rest, from A-pose heads and world corrections A (rest -> bind)."""
    rest = np.array(bind_heads, np.float64)
    for b, p in enumerate(parents):
        if p >= 0:
            rest[b] = rest[p] + quat_rotate(quat_conj(A[p]), bind_heads[b] - bind_heads[p])
    return rest


def is_mmd_rig(rig: Rig) -> bool:
    return bool(rig.ik_chains) or str(rig.meta.get("format", "")).lower() in ("pmx", "pmd")


def mmd_skeleton_for(rig: Rig | None = None) -> MmdSkeleton:
    """The skeleton a VMD plays on for ``rig`` (see the module docstring)."""
    if rig is not None and is_mmd_rig(rig):
        return _own_skeleton(rig)
    return _proxy_skeleton(rig if rig is not None else standard_skeleton())


def _own_skeleton(rig: Rig) -> MmdSkeleton:
    parents = np.asarray(rig.bone_parents, np.int64)
    corr_in = rig.meta.get("apose_correction") or {}
    corrections = {}
    for key, q in corr_in.items():
        b = rig.humanoid.get(key, None)
        if b is None and key in rig.bone_names:
            b = rig.bone_names.index(key)
        if b is not None:
            corrections[b] = quat_normalize(np.asarray(q, np.float64))
    A = _world_corrections(parents, corrections)
    heads = _rest_heads(parents, rig.bone_heads.astype(np.float64), A)
    inherit = list((rig.meta.get("mmd") or {}).get("inherit") or [])
    return MmdSkeleton(
        list(rig.bone_names),
        parents,
        heads,
        dict(rig.humanoid),
        A,
        MMD_UNIT_METRES,
        ik_chains=list(rig.ik_chains),
        inherit=inherit,
        kind="mmd rig",
        hips_height=hips_height(rig),
    )


_FINGER_JP = {"Index": "人指", "Middle": "中指", "Ring": "薬指", "Little": "小指"}
_DIGITS = "０１２３"


def _proxy_skeleton(rig: Rig) -> MmdSkeleton:
    H = {h: rig.bone_heads[i].astype(np.float64) for h, i in rig.humanoid.items()}
    names: list[str] = []
    parents: list[int] = []
    heads: list[np.ndarray] = []
    humanoid: dict[str, int] = {}

    def add(name: str, parent: str | None, pos, hum: str | None = None) -> None:
        names.append(name)
        parents.append(-1 if parent is None else names.index(parent))
        heads.append(np.asarray(pos, np.float64))
        if hum is not None:
            humanoid[hum] = len(names) - 1

    hips = H["hips"]
    add("全ての親", None, [0.0, 0.0, 0.0])
    add("センター", "全ての親", [0.0, 0.85 * hips[1], hips[2]])
    add("グルーブ", "センター", [0.0, 0.85 * hips[1], hips[2]])
    add("腰", "グルーブ", hips)
    add("上半身", "腰", H["spine"], "spine")
    top = "上半身"
    for jp, hum in (("上半身2", "chest"), ("上半身3", "upperChest")):
        if hum in H:
            add(jp, top, H[hum], hum)
            top = jp
    neck_parent = top
    if "neck" in H:
        add("首", top, H["neck"], "neck")
        neck_parent = "首"
    add("頭", neck_parent, H["head"], "head")
    if "leftEye" in H and "rightEye" in H:
        add("両目", "頭", 0.5 * (H["leftEye"] + H["rightEye"]))
        add("左目", "頭", H["leftEye"], "leftEye")
        add("右目", "頭", H["rightEye"], "rightEye")
    if "jaw" in H:
        add("あご", "頭", H["jaw"], "jaw")
    for side, jp in (("left", "左"), ("right", "右")):
        parent = top
        if f"{side}Shoulder" in H:
            add(f"{jp}肩", top, H[f"{side}Shoulder"], f"{side}Shoulder")
            parent = f"{jp}肩"
        ua, la, hd = H[f"{side}UpperArm"], H[f"{side}LowerArm"], H[f"{side}Hand"]
        add(f"{jp}腕", parent, ua, f"{side}UpperArm")
        add(f"{jp}腕捩", f"{jp}腕", ua + 0.6 * (la - ua))
        add(f"{jp}ひじ", f"{jp}腕捩", la, f"{side}LowerArm")
        add(f"{jp}手捩", f"{jp}ひじ", la + 0.6 * (hd - la))
        add(f"{jp}手首", f"{jp}手捩", hd, f"{side}Hand")
        # Digit chains from the wrist: MMD numbers the thumb from 0 and the other fingers from 1.
        digits = [("Thumb", "親指", ("Metacarpal", "Proximal", "Distal"), 0)]
        digits += [(f, fjp, ("Proximal", "Intermediate", "Distal"), 1) for f, fjp in _FINGER_JP.items()]
        for finger, fjp, segments, first in digits:
            prev = f"{jp}手首"
            for k, seg in enumerate(segments):
                h = f"{side}{finger}{seg}"
                if h in H:
                    add(f"{jp}{fjp}{_DIGITS[k + first]}", prev, H[h], h)
                    prev = f"{jp}{fjp}{_DIGITS[k + first]}"
    add("下半身", "腰", hips, "hips")
    legs = []
    for side, jp in (("left", "左"), ("right", "右")):
        ul, ll, ft = H[f"{side}UpperLeg"], H[f"{side}LowerLeg"], H[f"{side}Foot"]
        if f"{side}Toes" in H:
            toe = H[f"{side}Toes"].copy()
        else:
            toe = ft + np.array([0.0, -0.8 * (ft[1] - min(0.0, ft[1] - 0.05)), 0.12 * (ul[1] - ft[1])])
        add(f"{jp}足", "下半身", ul, f"{side}UpperLeg")
        add(f"{jp}ひざ", f"{jp}足", ll, f"{side}LowerLeg")
        add(f"{jp}足首", f"{jp}ひざ", ft, f"{side}Foot")
        add(f"{jp}つま先", f"{jp}足首", toe, f"{side}Toes" if f"{side}Toes" in H else None)
        add(f"{jp}足IK親", "全ての親", [ft[0], 0.0, ft[2]])
        add(f"{jp}足ＩＫ", f"{jp}足IK親", ft)
        add(f"{jp}つま先ＩＫ", f"{jp}足ＩＫ", toe)
        ix = names.index
        legs.append(
            (
                ix(f"{jp}足ＩＫ"),
                ix(f"{jp}足"),
                ix(f"{jp}ひざ"),
                ix(f"{jp}足首"),
                ix(f"{jp}つま先ＩＫ"),
                ix(f"{jp}つま先"),
            )
        )
    parents_a = np.array(parents, np.int64)
    # Assumed MMD rest: upper arms raised from our 45 degrees to MMD_REST_ARM_DEG below horizontal;
    # the correction (rest -> A-pose) lowers them again.
    drop = np.radians(CANONICAL_ARM_DEG - MMD_REST_ARM_DEG)
    corrections = {
        names.index("左腕"): axis_rotation("Z", -drop),
        names.index("右腕"): axis_rotation("Z", drop),
    }
    A = _world_corrections(parents_a, corrections)
    rest = _rest_heads(parents_a, np.array(heads), A)
    leg_height = float(rest[humanoid["leftUpperLeg"], 1] - min(0.0, float(rest[:, 1].min())))
    scale = MMD_UNIT_METRES * leg_height / MMD_STANDARD_LEG_HEIGHT
    return MmdSkeleton(names, parents_a, rest, humanoid, A, scale, legs=legs, kind="proxy",
                       hips_height=hips_height(rig))


# --- playing a motion ------------------------------------------------------------------------------


def evaluate_vmd(
    motion: VmdMotion, skel: MmdSkeleton, frames: np.ndarray
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """World rotations (F, B, 4) relative to the source rest and world head positions (F, B, 3), after IK,
    at the given (fractional) MMD frames; plus the names of keyed bones the skeleton lacks."""
    frames = np.asarray(frames, np.float64)
    F, B = len(frames), len(skel.names)
    local_q = quat_identity((F, B))
    local_t = np.zeros((F, B, 3))
    missing = []
    for name, track in motion.tracks.items():
        b = skel.find(name)
        if b is None:
            missing.append(name)
            continue
        pos, rot = sample_track(track, frames)
        local_q[:, b] = rot * np.array([-1.0, -1.0, 1.0, 1.0])
        local_t[:, b] = pos * np.array([1.0, 1.0, -1.0]) * skel.translation_scale
    keyed = quat_normalize(local_q)
    local_q = inherit_rotations(keyed, skel.inherit)
    local_r = quat_to_matrix(local_q)
    ik_names = {c.ik_bone: skel.names[c.ik_bone] for c in skel.ik_chains}
    ik_names.update({leg[0]: skel.names[leg[0]] for leg in skel.legs})
    ik_keys = [(f, {nfkc(n): on for n, on in states.items()}) for f, states in motion.ik_keys]

    def enabled(b: int, frame: float) -> bool:
        key, state = nfkc(ik_names[b]), True
        for f, states in ik_keys:
            if f > frame:
                break
            state = states.get(key, state)
        return state

    solved = np.empty((F, B, 4))
    for i in range(F):
        st = PoseState(skel.parents, skel.heads, local_r[i], local_t[i])
        for chain in skel.ik_chains:
            if enabled(chain.ik_bone, frames[i]):
                solve_ccd(st, chain)
                st.refresh()
        for ik_bone, upper, knee, ankle, toe_ik, toe in skel.legs:
            if not enabled(ik_bone, frames[i]):
                continue
            solve_two_bone(st, upper, knee, ankle, st.world_p[ik_bone].copy())
            st.refresh(st.subtree(ankle))
            solve_ccd(st, IKChain(ik_bone=toe_ik, target_bone=toe, links=np.array([ankle]), iterations=3))
            st.refresh(st.subtree(ankle))
        solved[i] = quat_from_matrix(st.local_r)
    if skel.inherit:
        # Deform copies (D bones, cancel bones) follow the IK-solved links: redo the inheritance from the
        # keyed rotations of the inheriting bones, except where IK itself turned them.
        links = {int(k) for c in skel.ik_chains for k in c.links}
        unturned = [x for x in skel.inherit if int(x["bone"]) not in links]
        solved = inherit_rotations(solved, unturned, own=keyed)
    world_q, world_p = fk_batch(skel.parents, skel.heads, solved, None, local_t)
    return world_q, world_p, sorted(missing)


def vmd_to_library(
    motion: VmdMotion,
    rig: Rig | None = None,
    fps: float = 30.0,
    max_poses: int | None = None,
    name: str = "motion",
) -> PoseLibrary:
    """Sample ``motion`` at ``fps`` (MMD plays at 30), solve IK on ``rig`` (or the standard skeleton) and
    return A-pose-relative humanoid poses. ``max_poses`` keeps that many evenly spaced samples."""
    if fps <= 0:
        raise ValueError("fps must be positive")
    skel = mmd_skeleton_for(rig)
    n = int(np.floor(motion.last_frame / MMD_FPS * fps + 1e-9)) + 1
    frames = np.arange(n) * (MMD_FPS / fps)
    if max_poses is not None and n > max_poses:
        frames = frames[np.unique(np.linspace(0, n - 1, max_poses).round().astype(int))]
    world_q, world_p, missing = evaluate_vmd(motion, skel, frames)
    world = {}
    for h in HUMANOID_BONES:
        b = skel.humanoid.get(h)
        if b is None:
            continue
        world[h] = quat_mul(world_q[:, b], quat_conj(skel.rest_to_bind[b]))
    hb = skel.humanoid["hips"]
    root = world_p[:, hb] - skel.heads[hb]
    ids = [f"{name}@f{f:07.2f}".replace(".00", "") for f in frames]
    meta = {
        "source": "vmd",
        "motion": name,
        "model_name": motion.model_name,
        "fps": float(fps),
        "skeleton": skel.kind,
        "hips_height": skel.hips_height,
        "missing_bones": missing,
        "mmd_rest_arm_deg": MMD_REST_ARM_DEG if skel.kind == "proxy" else None,
    }
    return library_from_world(world, root, ids, meta)
