"""The one pose evaluator: local rotations of a rig -> world bone transforms, played by the rig's own rules.

Every pose source (sampler, BVH, glTF/VRMA animation, VMD libraries) and the
A-pose alignment go through :func:`evaluate_pose` / :func:`evaluate_poses`;
:func:`conrdata.rig.model.forward_kinematics` is the low-level FK primitive it uses.

Input and output (the contract other modules read)
---------------------------------------------------
In: ``local_rotations`` (B, 4) xyzw or (B, 3, 3) in the convention of
:mod:`conrdata.rig.model` (world-aligned bind axes, identity = the bind pose, which
after ``convert`` is the canonical A-pose), ``root_translation`` (3,) metres
added to the roots, optionally ``local_translation`` (B, 3) metres (bones
that move: MMD centre and IK bones), in the parent's posed axes.
Out: ``world_r`` (B, 3, 3) world rotations relative to the bind (skinning uses
them as they are) and ``world_t`` (B, 3) the posed world head of every bone,
metres, in the world frame of the rig (the frame cameras are placed in).
:func:`evaluate_poses` does the same for (N, B, ...) and returns (N, B, 3, 3)
and (N, B, 3).

MMD rigs (``rig.meta["mmd"]``, ``rig.ik_chains``)
-------------------------------------------------
The model's deform rules are evaluated the way MMD plays them, in the MMD
skeleton's own rest frame: a converted rig is bound in the A-pose, so its
per-bone world corrections (``rig.meta["apose_correction"]``, rest -> bind)
give back the source rest; locals are carried there (``A_p^-1 L A_b``), the
rules run, and world rotations come back as ``W A_b^-1``. Rules, bone by bone
in MMD's deform order (after-physics flag, deform layer, bone index):

- inherit rotation and translation (付与) with their weights: the bone's local
  is its own key times slerp(identity, source, weight), where the source is the
  source bone's own inherited part if it has one (its key with the PMX
  local-inherit flag), times its IK rotation when IK turned it; translation
  likewise (source key offset x weight);
- fixed axes: a keyed rotation of a fixed-axis bone (twist bones) is reduced
  to its twist about that axis; local axes only change how MMD's editor keys a
  bone, not how a key plays, so they are not evaluated;
- IK chains (CCD with the model's iterations, angle step and per-link limits,
  in the source rest frame where those limits are defined), when the IK bone
  is reached. A chain whose IK bone is carried by the posed skeleton (it has a
  humanoid ancestor: sleeve, skirt, hair, accessory IK) is always solved.
  A *control* chain (its IK bone hangs outside the humanoid chain, under the
  root / 全ての親 / センター-style control bones, or its links are humanoid
  bones: leg and toe IK) is solved only with ``solve_control_ik=True`` (a
  motion that keys the IK bones); otherwise the IK bone is put where the FK pose
  put the effector (plus their offset in the bind), so the FK pose stands.
- physics bones (part 2 of issue 12): bones of dynamic rigid bodies (mode 1 and
  2) follow, rigidly, the bone of the kinematic body (mode 0) they are jointed
  to, found by a breadth-first search over the joint graph (the nearest one,
  through chains of joints). Only the top of a dynamic chain is placed so; bones
  below it (dynamic or not) are carried by FK, so chains never come apart.
  This approximates a simulation that has come to rest in the bind
  configuration relative to its carrier: no gravity sag, swing, collision or
  spring. It is what keeps every hair, skirt and sleeve part with the bone that
  carries it. Humanoid bones are never overridden by physics.

VRM 1.0 rigs (``rig.meta["vrm_constraints"]``, read from ``VRMC_node_constraint``)
------------------------------------------------------------------------------------
After the keys are set, bone by bone (parents first), the destination bone's
local rotation is replaced by the constraint's, blended from the rest by its
weight, as the VRM 1.0 specification defines them (deltas carried between the
two nodes' rest frames by ``rest_offset``): *rotation* copies the source's
rotation delta, *roll* its twist about the roll axis, *aim* turns the bone so
its aim axis points at the source's head. VRM spring bones are ordinary bones
here: with no key they follow their parents (no spring simulation).

Rigs without rules (procedural, plain glTF) take plain FK.
"""

from __future__ import annotations

import math
import weakref
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from conrdata.poses.ik import PoseState, solve_ccd
from conrdata.rig.model import IKChain, Rig, forward_kinematics, skin, skinning_matrices
from conrdata.rig.rotations import quat_normalize, quat_to_matrix, scale_rotation, shortest_arc, twist_part

#: Rigid body modes (PMX/PMD): follows its bone, simulated, simulated with the bone's position kept.
RIGID_KINEMATIC, RIGID_DYNAMIC, RIGID_DYNAMIC_BONE = 0, 1, 2
_AFTER_PHYSICS = 0x1000
_LOCAL_INHERIT = 0x0080  # PMX: inherit the source's own key, not what it inherited itself


@dataclass
class _Inherit:
    bone: int
    source: int
    weight: float
    rotation: bool
    translation: bool
    local: bool = False


@dataclass
class _Constraint:
    bone: int
    source: int
    kind: str
    weight: float
    axis: np.ndarray
    offset: np.ndarray  # (3, 3) G_dst_rest G_src_rest^-1


@dataclass
class DeformRules:
    """What :func:`evaluate_pose` plays for one rig (built once per rig by :func:`deform_rules`).

    - ``steps``: (phase, kind, payload) in deform order; phase 0 before physics, 1 after;
      kind ``"inherit"`` (:class:`_Inherit`), ``"ik"`` ((:class:`~conrdata.rig.model.IKChain`, control flag))
      or ``"constraint"`` (:class:`_Constraint`, a VRM node constraint).
    - ``physics``: (dynamic bone, kinematic bone) pairs, parent-first; tops of dynamic chains only.
    - ``control``: control IK chains (see the module docstring), parent-first.
    - ``fixed_axes``: bone -> unit axis (source rest frame) its keys are reduced to.
    - ``rule_driven`` (B,) bool: bones whose local the rules set (their key is a delta on top).
    - ``A``: (B, 3, 3) world corrections source rest -> bind, or None (bind = source rest);
      ``bind_local`` (B, 3, 3) the bind's locals in the source rest frame, A_p^-1 A_b.
    - ``rest_heads``: (B, 3) bone heads of the source rest pose, metres; ``subtree``: each bone's
      subtree (itself first, parent-first order).
    """

    steps: list = field(default_factory=list)
    physics: list[tuple[int, int]] = field(default_factory=list)
    control: list[IKChain] = field(default_factory=list)
    fixed_axes: dict[int, np.ndarray] = field(default_factory=dict)
    rule_driven: np.ndarray | None = None
    A: np.ndarray | None = None
    rest_heads: np.ndarray | None = None
    subtree: list[np.ndarray] = field(default_factory=list)
    has_append: np.ndarray | None = None
    bind_local: np.ndarray | None = None

    @property
    def trivial(self) -> bool:
        return not (self.steps or self.physics or self.control or self.fixed_axes)

    @property
    def constraints(self) -> list[_Constraint]:
        return [payload for _, kind, payload in self.steps if kind == "constraint"]


_CACHE: dict[int, tuple[weakref.ref, DeformRules]] = {}


def deform_rules(rig: Rig) -> DeformRules:
    """The rig's :class:`DeformRules`, cached per Rig object (rigs are not changed in place)."""
    hit = _CACHE.get(id(rig))
    if hit is not None and hit[0]() is rig:
        return hit[1]
    rules = _build_rules(rig)
    key = id(rig)
    _CACHE[key] = (weakref.ref(rig, lambda _r, key=key: _CACHE.pop(key, None)), rules)
    return rules


def _ancestors(parents: np.ndarray, b: int):
    p = int(parents[b])
    while p >= 0:
        yield p
        p = int(parents[p])


def is_control_chain(rig: Rig, chain: IKChain) -> bool:
    """True for control IK (leg / toe IK): the IK bone has no humanoid ancestor, or a link is humanoid."""
    hum = set(rig.humanoid.values())
    if any(int(k) in hum for k in chain.links):
        return True
    return not any(a in hum for a in _ancestors(rig.bone_parents, int(chain.ik_bone)))


def world_corrections(rig: Rig) -> np.ndarray | None:
    """(B, 3, 3) world rotation of each bone in the bind relative to the source rest, from
    ``rig.meta["apose_correction"]``; None when the rig has none (its bind is its source rest)."""
    corr = rig.meta.get("apose_correction") or {}
    if not corr:
        return None
    B = rig.num_bones
    local = np.tile(np.eye(3), (B, 1, 1))
    index = {n: i for i, n in enumerate(rig.bone_names)}
    for key, q in corr.items():
        b = index.get(key, rig.humanoid.get(key))
        if b is not None:
            local[b] = quat_to_matrix(quat_normalize(np.asarray(q, np.float64)))
    A = np.empty((B, 3, 3))
    for b, p in enumerate(rig.bone_parents):
        A[b] = local[b] if p < 0 else A[p] @ local[b]
    return A


def _physics_pairs(rig: Rig, mmd: dict) -> list[tuple[int, int]]:
    bodies = mmd.get("rigid_bodies") or []
    joints = mmd.get("joints") or []
    if not bodies or not joints:
        return []
    B = rig.num_bones
    n = len(bodies)
    adj: list[list[int]] = [[] for _ in range(n)]
    for j in joints:
        a, b = int(j.get("a", -1)), int(j.get("b", -1))
        if 0 <= a < n and 0 <= b < n and a != b:
            adj[a].append(b)
            adj[b].append(a)
    bone_of = [int(rb.get("bone", -1)) for rb in bodies]
    kinematic = [int(rb.get("mode", 0)) == RIGID_KINEMATIC and 0 <= bone_of[i] < B
                 for i, rb in enumerate(bodies)]
    hum = set(rig.humanoid.values())
    anchor: dict[int, int] = {}
    for i, rb in enumerate(bodies):
        d = bone_of[i]
        if int(rb.get("mode", 0)) not in (RIGID_DYNAMIC, RIGID_DYNAMIC_BONE) or not 0 <= d < B or d in hum:
            continue
        if d in anchor:
            continue
        seen, queue, found = {i}, deque([i]), None
        while queue and found is None:  # breadth first: the nearest kinematic body wins
            c = queue.popleft()
            for nb in adj[c]:
                if nb in seen:
                    continue
                seen.add(nb)
                if kinematic[nb] and bone_of[nb] != d:
                    found = bone_of[nb]
                    break
                queue.append(nb)
        if found is not None:
            anchor[d] = found
    dynamic = set(anchor) | {bone_of[i] for i, rb in enumerate(bodies)
                             if int(rb.get("mode", 0)) != RIGID_KINEMATIC and 0 <= bone_of[i] < B}
    pairs = []
    for d in sorted(anchor):
        k = anchor[d]
        if any(a in dynamic for a in _ancestors(rig.bone_parents, d)):
            continue  # carried by a dynamic bone above it: FK keeps the chain together
        if d in set(_ancestors(rig.bone_parents, k)):
            continue  # the carrier hangs below this bone; following it would be circular
        pairs.append((d, k))
    return pairs


def _build_rules(rig: Rig) -> DeformRules:
    B = rig.num_bones
    parents = np.asarray(rig.bone_parents, np.int64)
    mmd = rig.meta.get("mmd") or {}
    flags = list(mmd.get("bone_flags") or [0] * B)
    layers = list(mmd.get("layers") or [0] * B)
    if len(flags) != B:
        flags = [0] * B
    if len(layers) != B:
        layers = [0] * B
    rules = DeformRules()
    rule_driven = np.zeros(B, bool)
    has_append = np.zeros(B, bool)
    items = []  # (phase, layer, bone, kind, payload)
    for link in mmd.get("inherit") or []:
        b, s = int(link["bone"]), int(link["source"])
        w = float(link.get("weight", 1.0))
        rot, trans = bool(link.get("rotation")), bool(link.get("translation"))
        if not (0 <= b < B and 0 <= s < B) or b == s or not (rot or trans) or not math.isfinite(w):
            continue
        after = (flags[b] & _AFTER_PHYSICS) > 0
        local = (flags[b] & _LOCAL_INHERIT) > 0
        items.append((after, layers[b], b, "inherit", _Inherit(b, s, w, rot, trans, local)))
        has_append[b] = True
        if rot:
            rule_driven[b] = True
    for chain in rig.ik_chains:
        control = is_control_chain(rig, chain)
        b = int(chain.ik_bone)
        items.append(((flags[b] & _AFTER_PHYSICS) > 0, layers[b], b, "ik", (chain, control)))
        if control:
            rules.control.append(chain)
        else:
            rule_driven[np.asarray(chain.links, np.int64)] = True
    for c in rig.meta.get("vrm_constraints") or []:
        b, src = int(c.get("bone", -1)), int(c.get("source", -1))
        axis = np.asarray(c.get("axis", (1.0, 0.0, 0.0)), np.float64)
        if not (0 <= b < B and 0 <= src < B) or b == src or np.linalg.norm(axis) < 1e-9:
            continue
        offset = quat_to_matrix(quat_normalize(np.asarray(c.get("rest_offset", (0, 0, 0, 1.0)), np.float64)))
        con = _Constraint(b, src, str(c.get("kind")), float(c.get("weight", 1.0)),
                          axis / np.linalg.norm(axis), offset)
        items.append((False, 0, b, "constraint", con))
        rule_driven[b] = True
    items.sort(key=lambda it: (it[0], it[1], it[2]))
    rules.steps = [(int(ph), kind, payload) for ph, _, _, kind, payload in items]
    rules.physics = _physics_pairs(rig, mmd)
    for d, _ in rules.physics:
        rule_driven[d] = True
    for b, axis in enumerate(mmd.get("fixed_axes") or []):
        if axis is not None and b < B and np.linalg.norm(axis) > 1e-9:
            rules.fixed_axes[b] = np.asarray(axis, np.float64) / np.linalg.norm(axis)
    rules.control.sort(key=lambda c: int(c.ik_bone))  # parent-first: a toe IK under its leg IK moves after
    rules.rule_driven = rule_driven
    rules.has_append = has_append
    rules.A = world_corrections(rig)
    heads = rig.bone_heads.astype(np.float64)
    if rules.A is None:
        rules.rest_heads = heads
    children: list[list[int]] = [[] for _ in range(B)]
    for b, p in enumerate(parents):
        if p >= 0:
            children[p].append(b)
    subtree: list[np.ndarray] = [np.zeros(0, np.int64)] * B
    for b in range(B - 1, -1, -1):  # parents come first, so children's subtrees are ready
        subtree[b] = np.sort(np.concatenate([[b]] + [subtree[c] for c in children[b]])).astype(np.int64)
    rules.subtree = subtree
    if rules.A is not None:
        a_parent = np.where((parents >= 0)[:, None, None], rules.A[np.maximum(parents, 0)], np.eye(3))
        rules.bind_local = np.einsum("bji,bjk->bik", a_parent, rules.A)
        rest = heads.copy()

        def carry(bones) -> None:
            for b in bones:
                p = parents[b]
                if p >= 0:
                    rest[b] = rest[p] + rules.A[p].T @ (heads[b] - heads[p])

        carry(range(B))
        # A physics bone was placed from its kinematic bone when the rig was aligned, not by FK from its
        # parent: its rest offset is the one from that bone.
        for d, k in rules.physics:
            rest[d] = rest[k] + rules.A[k].T @ (heads[d] - heads[k])
            carry(subtree[d][1:])
        rules.rest_heads = rest
    return rules


# --------------------------------------------------------------------------- evaluation


def _as_matrices(local: np.ndarray, B: int, batched: bool) -> np.ndarray:
    local = np.asarray(local, np.float64)
    shape = local.shape[1:] if batched else local.shape
    if shape == (B, 4):
        return quat_to_matrix(quat_normalize(local))
    if shape != (B, 3, 3):
        raise ValueError(f"local_rotations must be ({B}, 4) or ({B}, 3, 3) per pose, got {shape}")
    return local


def evaluate_pose(
    rig: Rig,
    local_rotations: np.ndarray,
    root_translation: np.ndarray | None = None,
    *,
    local_translation: np.ndarray | None = None,
    solve_control_ik: bool = False,
    place_control_ik: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """World rotations (B, 3, 3) and posed world heads (B, 3) of one pose (see the module docstring).

    ``place_control_ik=False`` leaves unsolved control IK bones where FK puts them (the A-pose
    alignment does, so an IK bone's rest stays the one motions are keyed against).
    """
    r, t = evaluate_poses(
        rig,
        np.asarray(local_rotations)[None],
        None if root_translation is None else np.asarray(root_translation, np.float64)[None],
        local_translation=None if local_translation is None else np.asarray(local_translation)[None],
        solve_control_ik=solve_control_ik,
        place_control_ik=place_control_ik,
    )
    return r[0], t[0]


def evaluate_poses(
    rig: Rig,
    local_rotations: np.ndarray,
    root_translation: np.ndarray | None = None,
    *,
    local_translation: np.ndarray | None = None,
    solve_control_ik: bool = False,
    place_control_ik: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`evaluate_pose` for N poses: locals (N, B, 4) or (N, B, 3, 3), root translations (N, 3)
    -> world rotations (N, B, 3, 3) and posed heads (N, B, 3)."""
    B = rig.num_bones
    local = _as_matrices(local_rotations, B, batched=True)
    N = local.shape[0]
    if root_translation is None:
        root = np.zeros((N, 3))
    else:
        root = np.asarray(root_translation, np.float64).reshape(N, 3)
    rules = deform_rules(rig)
    out_r = np.empty((N, B, 3, 3))
    out_t = np.empty((N, B, 3))
    if rules.trivial and local_translation is None:
        for i in range(N):
            out_r[i], out_t[i] = forward_kinematics(rig, local[i], root[i])
        return out_r, out_t
    lt = np.zeros((N, B, 3)) if local_translation is None else np.asarray(local_translation, np.float64)
    parents = np.asarray(rig.bone_parents, np.int64)
    A = rules.A
    if A is not None:
        Ap = np.where((parents >= 0)[:, None, None], A[np.maximum(parents, 0)], np.eye(3))
        # Keys in the source rest frame: A_p^-1 L A_b, or the conjugated delta A_p^-1 L A_p for bones whose
        # local the rules set (their bind local is the rules' result, their own key is the identity).
        post = np.where(rules.rule_driven[:, None, None], Ap, A)
        keys = np.einsum("bji,nbjk,bkl->nbil", Ap, local, post)
        lt = np.einsum("bji,nbj->nbi", Ap, lt)
    else:
        keys = local
    for i in range(N):
        wr, wt = _evaluate_one(rig, rules, keys[i], lt[i], root[i], solve_control_ik, place_control_ik)
        out_r[i] = wr if A is None else np.einsum("bij,bkj->bik", wr, A)
        out_t[i] = wt
    return out_r, out_t


def _evaluate_one(rig: Rig, rules: DeformRules, keys: np.ndarray, key_t: np.ndarray, root: np.ndarray,
                  solve_control: bool, place_control: bool) -> tuple[np.ndarray, np.ndarray]:
    keys = keys.copy()
    for b, axis in rules.fixed_axes.items():
        if not rules.rule_driven[b]:
            # The pose's delta (on top of the bind's local, A_p^-1 A_b) is reduced to the twist.
            bind = np.eye(3) if rules.A is None else rules.bind_local[b]
            keys[b] = twist_part(keys[b] @ bind.T, axis) @ bind
    state = PoseState(rig.bone_parents, rules.rest_heads, keys, key_t, root)
    B = rig.num_bones
    ik_r = np.tile(np.eye(3), (B, 1, 1))
    append_r = np.tile(np.eye(3), (B, 1, 1))
    append_t = np.zeros((B, 3))
    physics_done = False
    for phase, kind, payload in rules.steps:
        if phase == 1 and not physics_done:
            _follow_physics(state, rules, keys)
            physics_done = True
        if kind == "constraint":
            _constrain(state, payload)
            state.refresh(rules.subtree[payload.bone])
        elif kind == "inherit":
            link = payload
            b, s = link.bone, link.source
            chained = rules.has_append[s] and not link.local
            if link.rotation:
                src = ik_r[s] @ (append_r[s] if chained else keys[s])
                append_r[b] = scale_rotation(src, link.weight)
            if link.translation:
                append_t[b] = (append_t[s] if chained else key_t[s]) * link.weight
            state.local_r[b] = ik_r[b] @ keys[b] @ append_r[b]
            state.local_t[b] = key_t[b] + append_t[b]
            state.refresh(rules.subtree[b])
        else:
            chain, control = payload
            if control and not solve_control:
                continue
            links = [int(k) for k in chain.links]
            before = state.local_r[links].copy()
            solve_ccd(state, chain)
            for k, lb in zip(links, before):
                ik_r[k] = state.local_r[k] @ lb.T @ ik_r[k]
            state.refresh(rules.subtree[links[-1]] if links else [])
    if not physics_done:
        _follow_physics(state, rules, keys)
    if place_control and not solve_control:
        for chain in rules.control:  # the IK bone goes where the FK pose put the effector (bind offset kept)
            b, p = int(chain.ik_bone), int(rig.bone_parents[chain.ik_bone])
            e = int(chain.target_bone)
            target = state.world_p[e] + (rig.bone_heads[b] - rig.bone_heads[e])
            if p < 0:
                state.local_t[b] = target - state.root_offset - rules.rest_heads[b]
            else:
                off = state.world_r[p].T @ (target - state.world_p[p])
                state.local_t[b] = off - (rules.rest_heads[b] - rules.rest_heads[p])
            state.refresh(rules.subtree[b])
    return state.world_r, state.world_p


def _constrain(state: PoseState, c: _Constraint) -> None:
    """One VRM node constraint on the destination's local rotation (see the module docstring)."""
    d, s = c.bone, c.source
    if c.kind == "aim":
        p = int(state.parents[d])
        wp = state.world_r[p] if p >= 0 else np.eye(3)
        to = state.world_p[s] - state.world_p[d]
        if np.linalg.norm(to) < 1e-9:
            return
        local = wp.T @ shortest_arc(wp @ c.axis, to) @ wp
    else:
        delta = c.offset @ state.local_r[s] @ c.offset.T  # the source's delta in the destination's frame
        local = twist_part(delta, c.axis) if c.kind == "roll" else delta
    state.local_r[d] = scale_rotation(local, c.weight) if c.weight < 1.0 else local


def _follow_physics(state: PoseState, rules: DeformRules, keys: np.ndarray) -> None:
    heads = rules.rest_heads
    for d, k in rules.physics:
        p = int(state.parents[d])
        # Rigid as at bind: W_d = W_k A_k^-1 A_d in the source frame (MMD bones carry no rest rotation),
        # and the bone's own key (a sampled swing, local in the bind axes) turns it on top of that.
        if rules.A is None:
            w = state.world_r[k] @ keys[d]
        else:
            p_a = rules.A[p] if p >= 0 else np.eye(3)
            swing = p_a @ keys[d] @ p_a.T  # the key back in the bind axes
            w = state.world_r[k] @ rules.A[k].T @ swing @ rules.A[d]
        pos = state.world_p[k] + state.world_r[k] @ (heads[d] - heads[k])
        if p < 0:
            state.local_r[d] = w
            state.local_t[d] = pos - state.root_offset - heads[d]
        else:
            state.local_r[d] = state.world_r[p].T @ w
            state.local_t[d] = state.world_r[p].T @ (pos - state.world_p[p]) - (heads[d] - heads[p])
        state.refresh(rules.subtree[d])


def evaluate_vertices(rig: Rig, local_rotations: np.ndarray, root_translation: np.ndarray | None = None,
                      **kwargs) -> np.ndarray:
    """Posed (V, 3) float32 vertices: :func:`evaluate_pose` then linear-blend skinning."""
    world_r, world_t = evaluate_pose(rig, local_rotations, root_translation, **kwargs)
    return skin(rig, skinning_matrices(rig, world_r, world_t))


__all__ = ["DeformRules", "deform_rules", "evaluate_pose", "evaluate_poses", "evaluate_vertices",
           "is_control_chain", "world_corrections"]
