"""Humanoid mapping for rigs without a humanoid table: names, then topology and geometry, then the user.

:func:`resolve_humanoid` turns a freshly read :class:`~conrdata.rig.model.Rig` into one whose
``humanoid`` map holds every bone :data:`conrdata.rig.humanoid.REQUIRED_BONES` asks for, and
records in ``rig.meta`` how each humanoid bone was found and what had to be changed.

Order of the rules (a later rule only fills what an earlier one left open):

1. ``user``: a bone map the user gives (``conrdata convert --bone-map FILE.yaml``, read by
   :func:`read_bone_map`); it overrides everything, and ``null`` unmaps a bone.
2. ``vrm`` / ``pmx`` / ``pmd``: the file's own humanoid table (VRM ``humanBones``, MMD
   standard bone names). A rig whose table holds every required bone is taken as it is.
3. ``name``: :func:`conrdata.rig.bonemaps.map_bone_names` (Mixamo, Unity, Unreal, Rigify,
   Quaternius, Kenney, Khronos samples, Character Creator, Daz, Ready Player Me, MMD English...).
4. ``topology``: :func:`infer_topology`, on the skeleton in the file's frame (+Y up, as
   glTF and MMD define it): two mirror-image sibling chains that reach the ground and hang
   closest to the root are the legs, their parent the hips (a weightless root lying below the
   legs is a placement bone, not the hips); the widest other mirror pair below the hips is the
   arms; the bones between the hips and the arms' parent are the spine (spine, chest,
   upperChest), and the chain rising above the arms' parent holds the neck and the head: the
   first bone whose own surface reaches the top of the body (the skull, not the hair above
   it). A limb chain is split by its length in bones (shoulder / upper / lower / hand; upper /
   lower / foot / toes). Left and right follow from the facing, which the feet give (the foot's
   own surface lies ahead of the ankle); +Z (glTF's front) when the feet do not tell. MMD's
   layout (the upper body beside the lower body, twist bones inside the arm chain) is not
   guessed: such rigs carry MMD names, or need a bone map.
5. Then a humanoid check: the hips -> head line must point away from the legs (within 45
   degrees of the opposite of the hips -> feet line). A rig that fails it, or in which no
   legs and arms are found, is refused with "not a humanoid: ...". The check is not made
   when every required bone came from the file's table or from the user. A file's table
   with fewer than three humanoid bones counts as none (the babylon-mmd feature tests).

Repairs, each recorded in ``meta["humanoid_notes"]`` (rigs with a vrm/pmx/pmd table are never
repaired; the table is the authority):

- ``stand-in``: a missing hips or spine becomes a *virtual bone* (no vertices) inserted
  below its nearest ancestor: a hips at the middle of the upper legs' heads (or at the
  spine's head), a spine at the hips' head. It carries the bones above it, so posing it
  moves them, and it gives the label code a joint where the body has one.
- ``limb``: a limb that is one bone (blocky rigs: Kenney's ``arm-left`` is the whole arm)
  is mapped as the upper bone, and virtual lower-limb and hand/foot bones are placed along
  the limb's own axis: the area-weighted second moment of its surface about the bone head
  (for a leg within 10 degrees of the body's down, the down itself: the rest is the foot
  sticking forward). Virtual limb bones are listed in ``meta["humanoid_fixed"]``: they must
  not be posed apart from the limb that carries the mesh (the pose code keeps them at their
  parent's rotation), so the A-pose aims the whole limb and no sampled elbow bends a rigid arm.
- ``re-attached``: a humanoid bone the file places outside its chain (legs or feet under a
  root or IK controller, as Quaternius' rigs export them) is re-parented onto its humanoid
  parent for posing. Bones are normalised (:mod:`conrdata.rig.model`), so the bind pose is unchanged.

``meta["humanoid_sources"]`` maps every humanoid bone to one of :data:`SOURCES`;
``meta["humanoid_virtual"]`` names the virtual bones.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from conrdata.errors import RigError, UserError
from conrdata.poses.skeleton import humanoid_parent_in
from conrdata.rig.bonemaps import map_bone_names
from conrdata.rig.humanoid import HUMANOID_BONES, REQUIRED_BONES
from conrdata.rig.model import Rig

#: How a humanoid bone was found.
SOURCES = ("vrm", "pmx", "pmd", "name", "topology", "user", "stand-in", "limb")

_TABLE_SOURCE = {"vrm0": "vrm", "vrm1": "vrm", "vrm": "vrm", "pmx": "pmx", "pmd": "pmd"}
_LEG_SNAP_DEG = 10.0
_MAX_SPINE_LEG_DEG = 45.0
_VIRTUAL_PREFIX = "virtual:"


# --------------------------------------------------------------------------- user bone maps


def read_bone_map(path) -> dict:
    """Read a ``--bone-map`` YAML file: ``{"all": {humanoid: bone or None}, "models": {glob: {...}}}``.

    Accepted form (see ``conrdata convert --help``)::

        hips: Pelvis            # top-level humanoid names apply to every model
        leftUpperArm: arm-left
        models:                 # per model file: a glob on the file name (or its path)
          "character-*.glb":
            hips: torso
            leftToes: null      # null: this bone is not mapped at all

    Raises UserError naming the file on bad YAML, an unknown humanoid name or a
    bone name that is not a string.
    """
    import yaml  # only the CLI option needs it

    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise UserError(f"cannot read the bone map ({err.strerror})", path) from None
    except yaml.YAMLError as err:
        raise UserError(f"bone map is not valid YAML ({str(err).splitlines()[0]})", path) from None
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise UserError("bone map must be a mapping of humanoid names to bone names", path)
    models = doc.pop("models", None) or {}
    if not isinstance(models, dict):
        raise UserError("bone map 'models' must map file-name globs to bone maps", path)
    out = {"all": _check_map(doc, path, "top level"), "models": {}}
    for pattern, entries in models.items():
        if not isinstance(entries, dict):
            raise UserError(f"bone map for {pattern!r} must be a mapping", path)
        out["models"][str(pattern)] = _check_map(entries, path, repr(pattern))
    return out


def _check_map(entries: dict, path, where: str) -> dict[str, str | None]:
    known = set(HUMANOID_BONES)
    out: dict[str, str | None] = {}
    for h, bone in entries.items():
        if h not in known:
            close = [k for k in HUMANOID_BONES if k.lower() == str(h).lower()]
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise UserError(f"bone map {where}: {h!r} is not a humanoid bone name{hint}", path)
        if bone is not None and not isinstance(bone, (str, int)):
            raise UserError(f"bone map {where}: {h} must name a bone (a string) or be null", path)
        out[h] = None if bone is None else str(bone)
    return out


def bone_map_for(bone_map: dict | None, model_path) -> dict[str, str | None]:
    """The entries of a :func:`read_bone_map` result that apply to one model file (globs in file order)."""
    if not bone_map:
        return {}
    out = dict(bone_map.get("all") or {})
    p = Path(model_path)
    for pattern, entries in (bone_map.get("models") or {}).items():
        if (
            fnmatch.fnmatch(p.name, pattern)
            or fnmatch.fnmatch(p.as_posix(), pattern)
            or fnmatch.fnmatch(p.as_posix(), "*/" + pattern)
        ):
            out.update(entries)
    return out


# --------------------------------------------------------------------------- skeleton helpers


@dataclass
class _Skel:
    """The rig's skeleton plus per-bone skin facts, in the rig's frame."""

    parents: list[int]
    heads: np.ndarray  # (B, 3)
    influence: np.ndarray  # (B,) summed skin weight
    children: list[list[int]]
    size: float  # largest extent of mesh and joints
    height: float  # y extent of mesh and joints
    floor: float  # lowest y of mesh and joints
    tip_low: np.ndarray  # (B,) lowest y of the bone's own vertices (or its head)
    tip_high: np.ndarray  # (B,) highest y of the bone's own vertices (or its head)
    reach: np.ndarray  # (B, 3) the bone's own vertex farthest from its head (or its head)


def _skeleton(rig: Rig) -> _Skel:
    B = rig.num_bones
    parents = [int(p) for p in rig.bone_parents]
    heads = rig.bone_heads.astype(np.float64)
    influence = np.zeros(B)
    np.add.at(influence, rig.joints.ravel(), rig.weights.ravel().astype(np.float64))
    children: list[list[int]] = [[] for _ in range(B)]
    for b, p in enumerate(parents):
        if p >= 0:
            children[p].append(b)
    verts = rig.vertices.astype(np.float64)
    dom = (
        rig.joints[np.arange(len(verts)), np.argmax(rig.weights, axis=1)] if len(verts) else np.zeros(0, int)
    )
    tip_low = heads[:, 1].copy()
    tip_high = heads[:, 1].copy()
    reach = heads.copy()
    if len(verts):
        order = np.argsort(dom, kind="stable")
        bounds = np.searchsorted(dom[order], np.arange(B + 1))
        for b in range(B):
            v = verts[order[bounds[b] : bounds[b + 1]]]
            if len(v):
                tip_low[b] = min(tip_low[b], float(v[:, 1].min()))
                tip_high[b] = max(tip_high[b], float(v[:, 1].max()))
                reach[b] = v[int(np.argmax(np.linalg.norm(v - heads[b], axis=1)))]
    pts = verts if len(verts) else heads  # the body's extent (control bones may sit far outside it)
    size = float(np.max(pts.max(0) - pts.min(0))) or 1.0
    height = float(pts[:, 1].max() - pts[:, 1].min()) or size
    return _Skel(
        parents, heads, influence, children, size, height, float(pts[:, 1].min()), tip_low, tip_high, reach
    )


def _subtree(sk: _Skel, b: int) -> list[int]:
    out, stack = [], [b]
    while stack:
        x = stack.pop()
        out.append(x)
        stack.extend(sk.children[x])
    return out


def _is_ancestor(parents: list[int], anc: int, b: int) -> bool:
    p = parents[b]
    while p >= 0:
        if p == anc:
            return True
        p = parents[p]
    return False


def _depth(parents: list[int], b: int) -> int:
    d = 0
    while parents[b] >= 0:
        b = parents[b]
        d += 1
    return d


def _main_chain(sk: _Skel, b: int) -> list[int]:
    """b and then, while there is one, the child whose subtree is largest (ties: farther reach)."""
    chain = [b]
    while sk.children[chain[-1]]:
        kids = sk.children[chain[-1]]
        if len(kids) >= 3 and len(chain) > 1:
            break  # a hand or foot with fingers: the chain ends here
        best = max(
            kids, key=lambda c: (len(_subtree(sk, c)), float(np.linalg.norm(sk.reach[c] - sk.heads[b])))
        )
        chain.append(best)
    while len(chain) > 1 and sk.influence[chain[-1]] <= 0:
        chain.pop()  # end bones without skin (HeadTop_End, toe tips)
    return chain


def _chain_length(sk: _Skel, chain: list[int]) -> float:
    pts = [sk.heads[c] for c in chain] + [sk.reach[chain[-1]]]
    return float(sum(np.linalg.norm(b - a) for a, b in zip(pts, pts[1:])))


def _mirror_pair(sk: _Skel, a: int, b: int) -> tuple[list[int], list[int]] | None:
    """Main chains of siblings a and b when they are mirror images of each other, else None."""
    ha, hb = sk.heads[a], sk.heads[b]
    n = ha - hb
    if np.linalg.norm(n) < 0.02 * sk.size:
        return None
    n = n / np.linalg.norm(n)
    if abs(n[1]) > 0.5:
        return None  # the pair lies one above the other, not side by side
    mid = (ha + hb) / 2
    ca, cb = _main_chain(sk, a), _main_chain(sk, b)
    if abs(len(ca) - len(cb)) > 1:
        return None
    tol = 0.06 * sk.size
    for x, y in zip(ca, cb):
        px = sk.heads[x]
        mirrored = px - 2 * np.dot(px - mid, n) * n
        if np.linalg.norm(mirrored - sk.heads[y]) > tol:
            return None
    return ca, cb


# --------------------------------------------------------------------------- topology


@dataclass
class TopologyResult:
    """What :func:`infer_topology` found: humanoid name -> bone for real bones, plus what is missing."""

    bones: dict[str, int]
    hips_missing: bool = False
    reason: str | None = None


def infer_topology(rig: Rig) -> TopologyResult:
    """Humanoid bones from the skeleton's shape alone (see the module docstring, rule 4)."""
    sk = _skeleton(rig)
    B = len(sk.parents)
    roots = [b for b in range(B) if sk.parents[b] < 0]
    groups = [roots] + [sk.children[b] for b in range(B)]
    parent_of_group = [-1] + list(range(B))
    pairs = []
    for gp, group in zip(parent_of_group, groups):
        for i, a in enumerate(group):
            for b in group[i + 1 :]:
                found = _mirror_pair(sk, a, b)
                if found is None:
                    continue
                ca, cb = found
                if min(_chain_length(sk, ca), _chain_length(sk, cb)) < 0.15 * sk.size:
                    continue
                pairs.append((gp, ca, cb))
    if not pairs:
        return TopologyResult({}, reason="no pair of mirror-image limbs")
    ground = 0.2 * sk.height

    def reaches_ground(chain):
        return min(sk.tip_low[c] for c in _subtree(sk, chain[0])) <= sk.floor + ground

    legs = [p for p in pairs if reaches_ground(p[1]) and reaches_ground(p[2])]
    if not legs:
        return TopologyResult({}, reason="no pair of limbs reaches the ground (no legs)")
    legs.sort(key=lambda p: (-1 if p[0] < 0 else _depth(sk.parents, p[0]), float(sk.heads[p[1][0], 1])))
    leg_parent, leg_a, leg_b = legs[0]
    leg_bones = set(_subtree(sk, leg_a[0])) | set(_subtree(sk, leg_b[0]))

    def above_hips(p):
        return (
            p[0] >= 0
            and p[0] not in leg_bones
            and (leg_parent < 0 or p[0] == leg_parent or _is_ancestor(sk.parents, leg_parent, p[0]))
        )

    arms = [p for p in pairs if p is not legs[0] and above_hips(p) and not (set(p[1]) & leg_bones)]
    if not arms:
        # MMD's layout (upper body beside the lower body, twist bones in the arms) is not guessed:
        # a wrong guess would align a wrong A-pose silently; such rigs carry names or need a bone map.
        return TopologyResult({}, reason="no pair of arms hanging below the legs' parent (give a --bone-map)")
    arms.sort(key=lambda p: -float(np.linalg.norm(sk.reach[p[1][-1]] - sk.reach[p[2][-1]])))
    arm_parent, arm_a, arm_b = arms[0]

    path = []  # bones from just below the arms' parent down to just above the legs' parent
    x = arm_parent
    while x >= 0 and x != leg_parent:
        path.append(x)
        x = sk.parents[x]
    path.reverse()
    # The head: up the chain above the arms' parent, always into the child reaching highest.
    arm_set = set(_subtree(sk, arm_a[0])) | set(_subtree(sk, arm_b[0]))
    walk = []
    x = arm_parent
    while True:
        kids = [c for c in sk.children[x] if c not in arm_set and c not in leg_bones]
        if not kids:
            break
        x = max(kids, key=lambda c: max(float(sk.heads[s, 1]) for s in _subtree(sk, c)))
        if sk.heads[x, 1] < sk.heads[arm_parent, 1] - 0.05 * sk.size:
            break
        walk.append(x)
    walk = [w for w in walk if sk.influence[w] > 0] or walk
    if not walk:
        return TopologyResult({}, reason="no head above the arms")
    # The head is the first bone up the chain whose own surface reaches the top of the body (the
    # skull, not the neck below it nor the hair above it); else the one carrying the most skin.
    top = sk.floor + sk.height
    head = next((w for w in walk if sk.tip_high[w] >= top - 0.1 * sk.height), None)
    if head is None:
        head = max(walk, key=lambda w: sk.influence[w])
    out: dict[str, int] = {"head": head}
    if walk.index(head) > 0:
        out["neck"] = walk[0]

    hips_missing = False
    placement = (
        leg_parent >= 0
        and sk.influence[leg_parent] <= 0
        and sk.heads[leg_parent, 1] < min(sk.heads[leg_a[0], 1], sk.heads[leg_b[0], 1]) - 0.1 * sk.size
    )
    if leg_parent >= 0 and not placement:
        out["hips"] = leg_parent
        rest = path
    elif len(path) >= 2:
        out["hips"] = path[0]
        rest = path[1:]
    else:
        hips_missing = True
        rest = path
    if rest:
        out["spine"] = rest[0]
        a = len(rest) - 1
        if a >= 2:
            out["chest"], out["upperChest"] = rest[1], rest[a]
        elif a == 1:
            out["chest"] = rest[1]

    forward = _forward(rig, sk, leg_a, leg_b)
    up = np.array([0.0, 1.0, 0.0])
    left_dir = np.cross(up, forward)
    for ca, cb, limb in ((arm_a, arm_b, "arm"), (leg_a, leg_b, "leg")):
        if np.dot(sk.heads[ca[0]] - sk.heads[cb[0]], left_dir) < 0:
            ca, cb = cb, ca
        for side, chain in (("left", ca), ("right", cb)):
            out.update(_limb_slots(sk, chain, side, limb))
    return TopologyResult(out, hips_missing=hips_missing)


def _limb_slots(sk: _Skel, chain: list[int], side: str, limb: str) -> dict[str, int]:
    n = len(chain)
    if limb == "arm":
        if n >= 4:
            slots = ("Shoulder", "UpperArm", "LowerArm", "Hand")
        elif n == 3:
            seg0 = np.linalg.norm(sk.heads[chain[1]] - sk.heads[chain[0]])
            seg1 = np.linalg.norm(sk.heads[chain[2]] - sk.heads[chain[1]])
            slots = (
                ("Shoulder", "UpperArm", "LowerArm")
                if seg0 < 0.5 * seg1
                else ("UpperArm", "LowerArm", "Hand")
            )
        else:
            slots = ("UpperArm", "LowerArm")[:n]
    else:
        slots = ("UpperLeg", "LowerLeg", "Foot", "Toes")[:n]
    return {side + s: b for s, b in zip(slots, chain)}


def _forward(rig: Rig, sk: _Skel, leg_a: list[int], leg_b: list[int]) -> np.ndarray:
    """Horizontal unit facing from the feet: their own surface lies ahead of the ankle; +Z if unclear."""
    verts = rig.vertices.astype(np.float64)
    dom = rig.joints[np.arange(len(verts)), np.argmax(rig.weights, axis=1)]
    total = np.zeros(3)
    for chain in (leg_a, leg_b):
        foot = chain[min(2, len(chain) - 1)]
        bones = set(_subtree(sk, foot)) if len(chain) >= 3 else set(_subtree(sk, chain[0]))
        v = verts[np.isin(dom, list(bones))]
        if len(v) == 0:
            continue
        if len(chain) < 3:  # one- or two-bone leg: its lowest slab is the foot
            v = v[v[:, 1] <= v[:, 1].min() + 0.25 * (v[:, 1].max() - v[:, 1].min())]
        ankle = sk.heads[foot] if len(chain) >= 3 else sk.heads[chain[-1]]
        d = v.mean(0) - ankle
        d[1] = 0.0
        total += d
    if np.linalg.norm(total) < 0.01 * sk.size:
        return np.array([0.0, 0.0, 1.0])
    return total / np.linalg.norm(total)


# --------------------------------------------------------------------------- humanoid check


def humanoid_problem(rig: Rig, mapping: dict[str, int]) -> str | None:
    """Why ``mapping`` on ``rig`` is not a humanoid standing on its legs (None when it is)."""
    heads = rig.bone_heads.astype(np.float64)
    need = ("hips", "head", "leftUpperLeg", "rightUpperLeg")
    if any(n not in mapping for n in need):
        return None  # incomplete: reported as missing bones
    feet = [mapping.get(f"{s}Foot", mapping.get(f"{s}LowerLeg")) for s in ("left", "right")]
    feet = [f for f in feet if f is not None]
    if not feet:
        feet = [mapping["leftUpperLeg"], mapping["rightUpperLeg"]]
        low = [_lowest_point(rig, f) for f in feet]
    else:
        low = [heads[f] for f in feet]
    spine = heads[mapping["head"]] - heads[mapping["hips"]]
    legs = np.mean(low, axis=0) - (heads[mapping["leftUpperLeg"]] + heads[mapping["rightUpperLeg"]]) / 2
    if np.linalg.norm(spine) < 1e-9 or np.linalg.norm(legs) < 1e-9:
        return "the hips, head and feet do not span a body"
    cos = float(np.dot(spine, -legs) / (np.linalg.norm(spine) * np.linalg.norm(legs)))
    angle = float(np.degrees(np.arccos(np.clip(cos, -1, 1))))
    if angle > _MAX_SPINE_LEG_DEG:
        return (
            f"its spine runs {angle:.0f} degrees away from the line opposite its legs "
            f"(at most {_MAX_SPINE_LEG_DEG:.0f} for a body standing on two legs; a four-legged animal?)"
        )
    return None


def _lowest_point(rig: Rig, bone: int) -> np.ndarray:
    mine = np.any((rig.joints == bone) & (rig.weights > 0.5), axis=1)
    v = rig.vertices[mine]
    return (
        rig.bone_heads[bone].astype(np.float64) if len(v) == 0 else v[np.argmin(v[:, 1])].astype(np.float64)
    )


# --------------------------------------------------------------------------- editing the skeleton


class _Edit:
    """Bone list edits (new virtual bones, new parents), applied at once by :meth:`apply`."""

    def __init__(self, rig: Rig):
        self.rig = rig
        self.names = list(rig.bone_names)
        self.parents = [int(p) for p in rig.bone_parents]
        self.heads = [np.asarray(h, np.float64) for h in rig.bone_heads]
        self.virtual: list[str] = []

    def add(self, humanoid: str, head, parent: int) -> int:
        name = _VIRTUAL_PREFIX + humanoid
        while name in self.names:
            name += "_"
        self.names.append(name)
        self.parents.append(int(parent))
        self.heads.append(np.asarray(head, np.float64))
        self.virtual.append(name)
        return len(self.names) - 1

    def apply(self, humanoid: dict[str, int]) -> tuple[Rig, dict[str, int]]:
        B = len(self.names)
        children: list[list[int]] = [[] for _ in range(B)]
        roots = []
        for b, p in enumerate(self.parents):
            (children[p] if p >= 0 else roots).append(b)
        order: list[int] = []
        stack = list(reversed(sorted(roots)))
        while stack:
            b = stack.pop()
            order.append(b)
            stack.extend(reversed(sorted(children[b])))
        if len(order) != B:
            raise RigError("re-attaching humanoid bones would make a cycle", self.rig.meta.get("source"))
        new_of = np.empty(B, np.int64)
        new_of[order] = np.arange(B)
        parents = np.array([-1 if self.parents[b] < 0 else new_of[self.parents[b]] for b in order], np.int32)
        if self.rig.ik_chains or (self.rig.meta.get("mmd") or {}).get("inherit"):
            # MMD deform rules index bones; such rigs come with a humanoid table and are never edited.
            raise RigError(
                "cannot re-attach bones of a rig with MMD deform rules", self.rig.meta.get("source")
            )
        rig = self.rig.replace(
            bone_names=[self.names[b] for b in order],
            bone_parents=parents,
            bone_heads=np.array([self.heads[b] for b in order], np.float32),
            joints=new_of[self.rig.joints].astype(np.int32),
        )
        return rig, {h: int(new_of[b]) for h, b in humanoid.items()}


def _limb_axis(rig: Rig, bones: set[int], head: np.ndarray) -> tuple[np.ndarray, float] | None:
    """(unit axis, length) of the surface skinned (mostly) to ``bones``, about ``head``; None if none."""
    f = rig.faces
    dom = rig.joints[np.arange(len(rig.vertices)), np.argmax(rig.weights, axis=1)]
    sel = np.isin(dom[f[:, 0]], list(bones))
    if not sel.any():
        return None
    v = rig.vertices.astype(np.float64)[f[sel]] - head
    area = 0.5 * np.linalg.norm(np.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0]), axis=1)
    if area.sum() <= 0:
        return None
    # Exact first and second moments of the triangles' surface about the head.
    s = v.sum(1)
    first = (area[:, None] * s).sum(0) / 3.0
    moment = (np.einsum("f,fki,fkj->ij", area, v, v) + np.einsum("f,fi,fj->ij", area, s, s)) / 12.0
    axis = np.linalg.eigh(moment)[1][:, -1]
    if np.dot(axis, first) < 0:
        axis = -axis
    pts = rig.vertices.astype(np.float64)[np.isin(dom, list(bones))] - head
    return axis, float(max((pts @ axis).max(), 1e-6))


# --------------------------------------------------------------------------- the entry point


def resolve_humanoid(rig: Rig, bone_map: dict[str, str | None] | None = None) -> Rig:
    """The rig with a complete humanoid map and the record of how it was found (module docstring).

    ``bone_map`` is humanoid name -> bone name in the file (or None to unmap), e.g. from
    :func:`bone_map_for`. Raises RigError ("not a humanoid: ..." or "humanoid bones not
    found: ...") naming the file when no humanoid can be made of it.
    """
    if "humanoid_sources" in rig.meta and not bone_map:
        return rig  # resolved already (a converted character): its record and fixed bones stand
    source_path = rig.meta.get("source")
    table = _TABLE_SOURCE.get(str(rig.meta.get("format") or "").lower())
    mapping: dict[str, int] = {}
    sources: dict[str, str] = {}
    notes: list[str] = []
    if table is not None:
        for h, b in rig.humanoid.items():
            mapping[h], sources[h] = int(b), table
    unmapped: set[str] = set()
    for h, bone in (bone_map or {}).items():
        if bone is None:
            mapping.pop(h, None)
            sources.pop(h, None)
            unmapped.add(h)
            notes.append(f"{h}: unmapped by the bone map")
            continue
        b = _find_bone(rig, bone)
        if b is None:
            raise RigError(
                f"the bone map names bone {bone!r} for {h}, but the model has no such bone", source_path
            )
        for other in [k for k, v in mapping.items() if v == b and k != h]:
            mapping.pop(other)
            sources.pop(other, None)
        mapping[h], sources[h] = b, "user"
    if table is not None and (all(h in mapping for h in REQUIRED_BONES) or len(mapping) >= 3):
        # The file's table is the authority; an incomplete one fails in the A-pose step, by name.
        return _finish(rig, mapping, sources, notes, [], [])
    # The reader's own finds (exact humanoid names) first, then the name rules, then the topology.
    used = set(mapping.values())
    for h, b in list(rig.humanoid.items()) + list(map_bone_names(rig.bone_names).items()):
        if h not in mapping and h not in unmapped and int(b) not in used:
            mapping[h], sources[h] = int(b), "name"
            used.add(int(b))
    topo = None
    if not all(h in mapping for h in REQUIRED_BONES):
        topo = infer_topology(rig)
        for h, b in topo.bones.items():
            if h not in mapping and h not in unmapped and b not in used:
                mapping[h], sources[h] = b, "topology"
                used.add(b)

    if (
        not any(h in mapping for h in ("leftUpperLeg", "rightUpperLeg"))
        or not any(h in mapping for h in ("leftUpperArm", "rightUpperArm"))
        or "head" not in mapping
    ):
        reason = topo.reason if topo is not None and topo.reason else "no legs, arms and head found"
        raise RigError(f"not a humanoid: {reason} ({rig.num_bones} bones)", source_path)
    if not all(sources.get(h) == "user" for h in REQUIRED_BONES if h in mapping):
        problem = humanoid_problem(rig, mapping)
        if problem:
            raise RigError(f"not a humanoid: {problem}", source_path)
    return _repair(rig, mapping, sources, notes)


def _find_bone(rig: Rig, bone: str) -> int | None:
    if bone in rig.bone_names:
        return rig.bone_names.index(bone)
    low = [n.lower() for n in rig.bone_names]
    return low.index(bone.lower()) if bone.lower() in low else None


def _repair(rig: Rig, mapping: dict[str, int], sources: dict[str, str], notes: list[str]) -> Rig:
    """Stand-ins, one-bone limbs and re-attachment (see the module docstring)."""
    ed = _Edit(rig)
    names = rig.bone_names
    fixed: list[str] = []
    heads = rig.bone_heads.astype(np.float64)

    if "hips" not in mapping and "spine" in mapping:
        legs = [heads[mapping[f"{s}UpperLeg"]] for s in ("left", "right") if f"{s}UpperLeg" in mapping]
        spine = mapping["spine"]
        at = np.mean(legs, axis=0) if len(legs) == 2 else heads[spine]
        parent = ed.parents[spine]
        hips = ed.add("hips", at, parent)
        ed.parents[spine] = hips
        mapping["hips"], sources["hips"] = hips, "stand-in"
        anc = names[parent] if parent >= 0 else "the root"
        notes.append(
            f"hips: stand-in, a virtual bone below {anc} at the upper legs' heads (the file has no hips bone)"
        )
    if "spine" not in mapping and "hips" in mapping:
        upper = next((mapping[h] for h in ("chest", "upperChest", "neck", "head") if h in mapping), None)
        if upper is not None:
            hips = mapping["hips"]
            spine = ed.add("spine", ed.heads[hips], hips)
            top = upper  # the ancestor of the upper body that hangs directly from the hips
            while ed.parents[top] >= 0 and ed.parents[top] != hips:
                top = ed.parents[top]
            ed.parents[top if ed.parents[top] == hips else upper] = spine
            mapping["spine"], sources["spine"] = spine, "stand-in"
            notes.append(
                f"spine: stand-in, a virtual bone at its nearest ancestor {_name(ed, hips)} "
                "(the file has no bone between the hips and the chest)"
            )

    body_up = _body_up(ed, mapping)
    for side in ("left", "right"):
        for upper_h, mid_h, end_h, at in (
            ("UpperArm", "LowerArm", "Hand", 0.8),
            ("UpperLeg", "LowerLeg", "Foot", 0.85),
        ):
            up_b = mapping.get(side + upper_h)
            if up_b is None or up_b >= rig.num_bones:
                continue
            mid_b = mapping.get(side + mid_h)
            if mid_b is not None and side + end_h in mapping:
                continue
            base = up_b if mid_b is None else mid_b
            carried = {
                b
                for b in _subtree_of(ed.parents, base, rig.num_bones)
                if b not in mapping.values() or b == base
            }
            found = _limb_axis(rig, carried, heads[base])
            if found is None:
                continue
            axis, length = found
            snapped = ""
            if (
                upper_h == "UpperLeg"
                and np.degrees(np.arccos(np.clip(np.dot(axis, -body_up), -1, 1))) <= _LEG_SNAP_DEG
            ):
                axis, snapped = -body_up, " (within 10 degrees of the body's down: taken as vertical)"
            if mid_b is None:
                mid_b = ed.add(side + mid_h, heads[base] + 0.5 * length * axis, base)
                mapping[side + mid_h], sources[side + mid_h] = mid_b, "limb"
                fixed.append(side + mid_h)
            end_b = ed.add(side + end_h, heads[base] + at * length * axis, mid_b)
            mapping[side + end_h], sources[side + end_h] = end_b, "limb"
            fixed.append(side + end_h)
            notes.append(
                f"{side}{upper_h}: bone {names[base]} is the whole "
                f"{'limb' if base == up_b else 'lower limb'}; "
                f"virtual {', '.join(h for h in (side + mid_h, side + end_h) if h in fixed)} "
                f"placed along its surface's axis {np.round(axis, 3).tolist()}{snapped}"
            )

    for h in HUMANOID_BONES:
        if h not in mapping:
            continue
        hp = humanoid_parent_in(h, mapping)
        if hp is None:
            continue
        b, pb = mapping[h], mapping[hp]
        if _is_ancestor(ed.parents, pb, b):
            continue
        if _is_ancestor(ed.parents, b, pb):
            raise RigError(
                f"humanoid bone {h} ({_name(ed, b)}) lies above {hp} ({_name(ed, pb)}) in the hierarchy",
                rig.meta.get("source"),
            )
        old = ed.parents[b]
        ed.parents[b] = pb
        notes.append(
            f"{h}: re-attached from {_name(ed, old) if old >= 0 else 'the root'} "
            f"to {hp} ({_name(ed, pb)}) for posing"
        )
    virtual = list(ed.virtual)
    if virtual or ed.parents != [int(p) for p in rig.bone_parents]:
        rig, mapping = ed.apply(mapping)
    return _finish(rig, mapping, sources, notes, virtual, fixed)


def _subtree_of(parents: list[int], b: int, limit: int) -> list[int]:
    out = [b]
    for x in range(limit):
        if x != b and _is_ancestor(parents, b, x):
            out.append(x)
    return out


def _name(ed: _Edit, b: int) -> str:
    return ed.names[b]


def _body_up(ed: _Edit, mapping: dict[str, int]) -> np.ndarray:
    """The file axis closest to hips -> head (+Y when they coincide)."""
    if "hips" in mapping and "head" in mapping:
        d = ed.heads[mapping["head"]] - ed.heads[mapping["hips"]]
        if np.linalg.norm(d) > 1e-9:
            k = int(np.argmax(np.abs(d)))
            up = np.zeros(3)
            up[k] = np.sign(d[k])
            return up
    return np.array([0.0, 1.0, 0.0])


def _finish(
    rig: Rig,
    mapping: dict[str, int],
    sources: dict[str, str],
    notes: list[str],
    virtual: list[str],
    fixed: list[str],
) -> Rig:
    order = {h: k for k, h in enumerate(HUMANOID_BONES)}
    mapping = dict(sorted(mapping.items(), key=lambda kv: order.get(kv[0], len(order))))
    meta = dict(rig.meta)
    meta["humanoid_sources"] = {h: sources.get(h, "name") for h in mapping}
    meta["humanoid_notes"] = list(notes)
    meta["humanoid_virtual"] = list(virtual)
    meta["humanoid_fixed"] = list(fixed)
    warnings = list(rig.warnings) + [f"humanoid {n}" for n in notes]
    return rig.replace(humanoid=mapping, meta=meta, warnings=list(dict.fromkeys(warnings)))
