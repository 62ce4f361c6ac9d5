"""Bone-name maps: MMD (Japanese and English), Mixamo, VRoid, Blender/Unity-style and CMU BVH names
onto the project's humanoid vocabulary (VRM humanoid names, :mod:`conrdata.rig.humanoid`).

Matching is case- and separator-insensitive and tolerant of width variants
(Unicode NFKC: full-width digits such as ``左親指０`` equal ``左親指0``, half-width
katakana equal full-width). Namespace prefixes such as ``mixamorig:`` /
``mixamorig1:`` are dropped. A name is split into a side (left/right, from
``左``/``右``, ``Left``/``Right`` prefixes, ``_L``/``.R``/`` L`` suffixes or ``L_`` prefixes)
and a base, and the base is looked up in one table.

Choices for MMD (documented because MMD's skeleton is not a humanoid tree):

- ``センター`` (center), ``グルーブ`` (groove), ``腰`` (waist) and ``全ての親`` are NOT mapped:
  they are control bones above the body.
- hips = ``下半身`` (lower body; the legs hang from it), spine = ``上半身`` (upper body),
  chest = ``上半身2``, upperChest = ``上半身3`` when a model has it. Note that in MMD
  ``上半身`` is a sibling of ``下半身`` (both children of センター/グルーブ/腰), so "spine"
  is not a descendant of "hips" in an MMD rig.
- shoulder ``肩``, upper arm ``腕``, lower arm ``ひじ``, hand ``手首``; upper leg ``足``,
  lower leg ``ひざ``, foot ``足首``, toes ``つま先``; eyes ``左目``/``右目`` (``両目`` is not mapped).
  The deform copies ``足D``/``ひざD``/``足首D``, IK bones (``足ＩＫ``), twist bones (``腕捩``)
  and ``EX`` bones are not mapped.
- thumb ``親指０/１/２`` -> Metacarpal/Proximal/Distal (VRM 1.0 names); the other
  fingers ``人指``/``中指``/``薬指``/``小指`` ``１/２/３`` -> Proximal/Intermediate/Distal.

Conflicts between conventions are resolved by context: ``Leg`` is the *upper*
leg in MMD's English names (``leg_L``) but the *lower* leg in Mixamo/CMU
(``LeftLeg``, whose upper leg is ``LeftUpLeg``); :func:`map_bone_names` reads
``Leg`` as the lower leg exactly when the rig also has an ``UpLeg`` bone. Thumbs
numbered from 1 with a third joint and no ``thumb0`` (Quaternius, VRoid ``Thumb1..3``)
are metacarpal, proximal, distal; MMD English ``thumb0..2`` the same from 0.

Families recognised by :func:`map_bone_names` (whole-skeleton rules, applied before
the one-name matcher because their spine names mean something else elsewhere):

- Blender metarig / Rigify (``spine``, ``spine.001`` ... ``spine.006``, ``DEF-``/``ORG-``
  prefixes): ``spine`` is the hips, ``.001`` spine, ``.002`` chest, ``.003`` upperChest,
  ``.004`` neck, ``.006`` head.
- Khronos samples (``torso_joint_1..3``, ``neck_joint_1..2``, ``arm_joint_L_1..3``,
  ``leg_joint_R_1..5``): numbered up each chain, hips / upper limb first; the last neck
  joint is the head, the first leg joint past the foot is the toes.
- Character Creator (``CC_Base_*``): ``Hip`` is the hips (``Pelvis`` is its sibling of
  the waist, like MMD), ``Waist`` spine, ``Spine01`` chest, ``Spine02`` upperChest,
  ``NeckTwist01`` neck.

The one-name matcher also knows the Unreal mannequin (``pelvis``, ``spine_01..03``,
``clavicle_l``, ``upperarm_l``, ``calf_l``, ``ball_l``, ``index_01_l``), Unity / VRM
finger names (``Left_IndexProximal``), Daz Genesis (``hip``, ``abdomenLower``,
``chestLower``, ``lCollar``, ``lShldrBend``, ``lForearmBend``, ``lThighBend``, ``lShin``),
3ds Max Biped (``Bip01 L Calf``), Quaternius (``Abdomen``, ``UpperArm.L``, ``WristL``),
Kenney (``torso``, ``arm-left``, ``leg-right``), Ready Player Me (Mixamo names without
the prefix) and Blender's duplicate suffixes (``Hand.L.001``).
"""

from __future__ import annotations

import re
import unicodedata

from conrdata.rig.humanoid import HUMANOID_BONES

__all__ = [
    "MMD_TO_HUMANOID",
    "MMD_ENGLISH_TO_HUMANOID",
    "MIXAMO_TO_HUMANOID",
    "CMU_BVH_TO_HUMANOID",
    "normalise_name",
    "humanoid_name",
    "map_bone_names",
]

_FINGERS_MMD = {"人指": "Index", "中指": "Middle", "薬指": "Ring", "小指": "Little"}
_SEGMENTS = ("Proximal", "Intermediate", "Distal")
_THUMB = ("Metacarpal", "Proximal", "Distal")
_FULLWIDTH = "０１２３"


def _mmd_table() -> dict[str, str]:
    t = {
        "下半身": "hips",
        "上半身": "spine",
        "上半身2": "chest",
        "上半身3": "upperChest",
        "首": "neck",
        "頭": "head",
        "あご": "jaw",
    }
    limbs = {
        "肩": "Shoulder", "腕": "UpperArm", "ひじ": "LowerArm", "肘": "LowerArm", "手首": "Hand",
        "足": "UpperLeg", "ひざ": "LowerLeg", "膝": "LowerLeg", "足首": "Foot", "つま先": "Toes", "目": "Eye",
    }
    for jp_side, side in (("左", "left"), ("右", "right")):
        for jp, hum in limbs.items():
            t[jp_side + jp] = side + hum
        for i, seg in enumerate(_THUMB):
            t[f"{jp_side}親指{_FULLWIDTH[i]}"] = f"{side}Thumb{seg}"
        for jp, finger in _FINGERS_MMD.items():
            for i, seg in enumerate(_SEGMENTS):
                t[f"{jp_side}{jp}{_FULLWIDTH[i + 1]}"] = f"{side}{finger}{seg}"
    return t


#: MMD standard Japanese bone names (full-width digits, as MMD writes them) -> humanoid names.
MMD_TO_HUMANOID: dict[str, str] = _mmd_table()


def _mmd_english_table() -> dict[str, str]:
    t = {
        "lower body": "hips", "upper body": "spine", "upper body2": "chest", "upper body3": "upperChest",
        "neck": "neck", "head": "head", "jaw": "jaw",
    }
    limbs = {
        "shoulder": "Shoulder", "arm": "UpperArm", "elbow": "LowerArm", "wrist": "Hand",
        "leg": "UpperLeg", "knee": "LowerLeg", "ankle": "Foot", "toe": "Toes", "eye": "Eye",
    }
    fingers = {"fore": "Index", "middle": "Middle", "third": "Ring", "little": "Little"}
    for s, side in (("L", "left"), ("R", "right")):
        for en, hum in limbs.items():
            t[f"{en}_{s}"] = side + hum
        for i, seg in enumerate(_THUMB):
            t[f"thumb{i}_{s}"] = f"{side}Thumb{seg}"
        for en, finger in fingers.items():
            for i, seg in enumerate(_SEGMENTS):
                t[f"{en}{i + 1}_{s}"] = f"{side}{finger}{seg}"
    return t


#: English MMD names (as in PMX English name fields and common tools) -> humanoid names.
MMD_ENGLISH_TO_HUMANOID: dict[str, str] = _mmd_english_table()


def _mixamo_table() -> dict[str, str]:
    t = {"Hips": "hips", "Spine": "spine", "Spine1": "chest", "Spine2": "upperChest", "Neck": "neck",
         "Head": "head"}
    limbs = {
        "Shoulder": "Shoulder", "Arm": "UpperArm", "ForeArm": "LowerArm", "Hand": "Hand",
        "UpLeg": "UpperLeg", "Leg": "LowerLeg", "Foot": "Foot", "ToeBase": "Toes", "Eye": "Eye",
    }
    for side, hum_side in (("Left", "left"), ("Right", "right")):
        for mx, hum in limbs.items():
            t[side + mx] = hum_side + hum
        for i, seg in enumerate(_THUMB):
            t[f"{side}HandThumb{i + 1}"] = f"{hum_side}Thumb{seg}"
        for mx, finger in (("Index", "Index"), ("Middle", "Middle"), ("Ring", "Ring"), ("Pinky", "Little")):
            for i, seg in enumerate(_SEGMENTS):
                t[f"{side}Hand{mx}{i + 1}"] = f"{hum_side}{finger}{seg}"
    return t


#: Mixamo names (without the ``mixamorig:`` prefix) -> humanoid names.
MIXAMO_TO_HUMANOID: dict[str, str] = _mixamo_table()


def _cmu_table() -> dict[str, str]:
    # CMU's spine is LowerBack -> Spine -> Spine1; Neck -> Neck1 -> Head (Neck1 is left unmapped).
    t = {"Hips": "hips", "LowerBack": "spine", "Spine": "chest", "Spine1": "upperChest", "Neck": "neck",
         "Head": "head"}
    for side, s, hum_side in (("Left", "L", "left"), ("Right", "R", "right")):
        t.update({
            f"{side}Shoulder": f"{hum_side}Shoulder", f"{side}Arm": f"{hum_side}UpperArm",
            f"{side}ForeArm": f"{hum_side}LowerArm", f"{side}Hand": f"{hum_side}Hand",
            f"{side}UpLeg": f"{hum_side}UpperLeg", f"{side}Leg": f"{hum_side}LowerLeg",
            f"{side}Foot": f"{hum_side}Foot", f"{side}ToeBase": f"{hum_side}Toes",
            f"{s}Thumb": f"{hum_side}ThumbProximal", f"{side}HandIndex1": f"{hum_side}IndexProximal",
        })
    return t


#: CMU motion-capture BVH joint names -> humanoid names (LHipJoint, Neck1, FingerBase... unmapped).
CMU_BVH_TO_HUMANOID: dict[str, str] = _cmu_table()


# --- generic matcher ---------------------------------------------------------------------------------

_SEP_RE = re.compile(r"[\s_.\-|/]+")
_PREFIX_RE = re.compile(r"^(?:bip0*1|def|org|mch|cc base|b|bn|bone|jnt)(?: |$)")
# Daz's glued one-letter side prefix: lShldrBend, rThighTwist (read on the name before lower-casing).
_GLUED_SIDE_RE = re.compile(r"^([lr])([A-Z][a-z].*)$")
# Blender's duplicate suffix (Hand.L.001); two digits or fewer are part of the name (spine_01, Spine1).
_DUPLICATE_RE = re.compile(r" \d{3}$")


def normalise_name(name: str) -> str:
    """NFKC, lower case, namespace (``mixamorig:``, ``Armature|``) dropped; separators kept as one space.

    A Daz-style glued side prefix (``lShldrBend``) is split off as ``l shldrbend``.
    """
    s = unicodedata.normalize("NFKC", str(name)).strip()
    s = re.split(r"[:|]", s)[-1]
    m = _GLUED_SIDE_RE.match(s)
    if m:
        s = f"{m.group(1)} {m.group(2)}"
    return _SEP_RE.sub(" ", s.lower()).strip()


# Base names without a side (separator-free keys) -> humanoid name.
_CENTRE: dict[str, str] = {
    "hips": "hips", "hip": "hips", "pelvis": "hips", "lowerbody": "hips", "下半身": "hips",
    "spine": "spine", "spine0": "spine", "upperbody": "spine", "上半身": "spine",
    "chest": "chest", "spine1": "chest", "upperbody2": "chest", "上半身2": "chest",
    "upperchest": "upperChest", "spine2": "upperChest", "upperbody3": "upperChest", "上半身3": "upperChest",
    "neck": "neck", "首": "neck", "head": "head", "頭": "head", "jaw": "jaw", "あご": "jaw",
    # Quaternius / Kenney / Daz / Unreal spellings
    "abdomen": "spine", "torso": "spine", "abdomenlower": "spine", "abdomen2": "chest",
    "abdomenupper": "chest", "chestlower": "upperChest", "necklower": "neck",
    "spine01": "spine", "spine02": "chest", "spine03": "upperChest", "neck01": "neck",
}

# Side-less base (separator-free) -> humanoid suffix, prefixed later by left/right.
_SIDED: dict[str, str] = {
    "shoulder": "Shoulder", "clavicle": "Shoulder", "肩": "Shoulder",
    "upperarm": "UpperArm", "arm": "UpperArm", "腕": "UpperArm",
    "lowerarm": "LowerArm", "forearm": "LowerArm", "elbow": "LowerArm", "ひじ": "LowerArm", "肘": "LowerArm",
    "hand": "Hand", "wrist": "Hand", "手首": "Hand",
    "upperleg": "UpperLeg", "upleg": "UpperLeg", "thigh": "UpperLeg", "leg": "UpperLeg", "足": "UpperLeg",
    "lowerleg": "LowerLeg", "knee": "LowerLeg", "calf": "LowerLeg", "shin": "LowerLeg",
    "ひざ": "LowerLeg", "膝": "LowerLeg",
    "foot": "Foot", "ankle": "Foot", "足首": "Foot",
    "toes": "Toes", "toe": "Toes", "toebase": "Toes", "つま先": "Toes",
    "eye": "Eye", "目": "Eye",
    # Daz Genesis, Unreal, Biped, Quaternius spellings
    "collar": "Shoulder", "shldr": "UpperArm", "shldrbend": "UpperArm", "forearmbend": "LowerArm",
    "thighbend": "UpperLeg", "ball": "Toes", "toe0": "Toes",
}


def _finger_entries() -> dict[str, str]:
    t: dict[str, str] = {}
    for i, seg in enumerate(_THUMB):
        for key in (f"親指{i}", f"thumb{i}", f"handthumb{i + 1}"):
            t[key] = f"Thumb{seg}"
        t[f"thumb0{i + 1}"] = f"Thumb{seg}"  # Unreal thumb_01 / Rigify thumb.01: the metacarpal
        t[f"thumb{seg.lower()}"] = f"Thumb{seg}"  # Unity / VRM names
    t["thumbintermediate"] = "ThumbProximal"  # VRM 0.x spelling
    names = {
        "Index": ("人指", "人差指", "fore", "index", "indexfinger", "handindex"),
        "Middle": ("中指", "middle", "middlefinger", "handmiddle"),
        "Ring": ("薬指", "third", "ring", "ringfinger", "handring"),
        "Little": ("小指", "little", "littlefinger", "pinky", "handpinky"),
    }
    for finger, keys in names.items():
        for i, seg in enumerate(_SEGMENTS):
            for key in keys:
                t[f"{key}{i + 1}"] = f"{finger}{seg}"
                t[f"{key}0{i + 1}"] = f"{finger}{seg}"  # Unreal index_01_l
            t[f"f{keys[3]}0{i + 1}"] = f"{finger}{seg}"  # Rigify f_index.01.L
            t[f"{finger.lower()}{seg.lower()}"] = f"{finger}{seg}"  # Unity / VRM names
    return t


_SIDED.update(_finger_entries())

_SIDE_WORDS = {"left": "left", "l": "left", "right": "right", "r": "right", "左": "left", "右": "right"}


def _split_side(norm: str) -> tuple[str | None, str]:
    """(side or None, separator-free base) of a normalised name; see :func:`_split_side_style`."""
    side, base, _ = _split_side_style(norm)
    return side, base


def _split_side_style(norm: str) -> tuple[str | None, str, str]:
    """(side or None, separator-free base, style) where style is "prefix", "suffix" or ""."""
    if norm[:1] in ("左", "右"):
        return _SIDE_WORDS[norm[0]], norm[1:].replace(" ", ""), "prefix"
    # VRoid's J_Bip_L_UpperArm / J_Bip_C_Hips style.
    m = re.match(r"^j ?bip (c|l|r) (.+)$", norm)
    if m:
        side = {"c": None, "l": "left", "r": "right"}[m.group(1)]
        return side, m.group(2).replace(" ", ""), "prefix"
    m = re.match(r"^(left|right)\s?(.+)$", norm) or re.match(r"^(l|r) (.+)$", norm)
    if m:
        return _SIDE_WORDS[m.group(1)], m.group(2).replace(" ", ""), "prefix"
    m = re.match(r"^(.+?) (l|r|left|right)$", norm)
    if m:
        return _SIDE_WORDS[m.group(2)], m.group(1).replace(" ", ""), "suffix"
    base = norm.replace(" ", "")
    # A side letter glued to a known limb name: Quaternius' UpperArmL / WristR.
    if len(base) > 2 and base[-1] in "lr" and base[:-1] in _SIDED:
        return _SIDE_WORDS[base[-1]], base[:-1], "suffix"
    return None, base, ""


def _clean(name: str) -> str:
    """Normalised name without tool prefixes (DEF-, CC_Base_, b_...) and Blender duplicate suffixes."""
    return _DUPLICATE_RE.sub("", _PREFIX_RE.sub("", normalise_name(name)))


def humanoid_name(name: str, leg_is_lower: bool | None = None,
                  thumb_one_based: bool = False) -> str | None:
    """The humanoid name one bone name stands for, or None.

    A bare ``Leg`` is the lower leg when ``leg_is_lower`` is True (Mixamo/CMU: the rig
    has an ``UpLeg``) and the upper leg when it is False (MMD English ``leg_L``); when
    None it is guessed from the spelling: ``LeftLeg`` (side prefix) lower, ``leg_L`` upper.
    ``thumb_one_based`` reads ``Thumb1..3`` as metacarpal, proximal, distal (see the module
    docstring); otherwise ``thumb0..2`` are.
    """
    norm = _clean(name)
    if not norm:
        return None
    side, base, style = _split_side_style(norm)
    if side is None:
        return _CENTRE.get(base)
    if leg_is_lower is None:
        leg_is_lower = style == "prefix" and norm[:1] not in ("左", "右")
    if base == "leg" and leg_is_lower:
        return side + "LowerLeg"
    m = re.fullmatch(r"thumb([1-3])", base)
    if thumb_one_based and m:
        return f"{side}Thumb{_THUMB[int(m.group(1)) - 1]}"
    suffix = _SIDED.get(base)
    return None if suffix is None else side + suffix


# --- whole-skeleton families -------------------------------------------------------------------------

_RIGIFY_SPINE = {"spine": "hips", "spine 001": "spine", "spine 002": "chest", "spine 003": "upperChest",
                 "spine 004": "neck", "spine 006": "head"}
_CC_CENTRE = {"hip": "hips", "waist": "spine", "spine01": "chest", "spine02": "upperChest",
              "necktwist01": "neck", "head": "head"}
_KHRONOS_RE = re.compile(r"^(torso|neck|arm|leg) joint (?:([lr]) )?(\d+)$")
_KHRONOS_CHAINS = {
    "torso": ("hips", "spine", "chest", "upperChest"),
    "arm": ("UpperArm", "LowerArm", "Hand"),
    "leg": ("UpperLeg", "LowerLeg", "Foot", "Toes"),
}


def _rigify(names: list[str]) -> dict[str, int]:
    """Blender metarig / Rigify spine (``spine`` .. ``spine.006``), or {} when the rig is not one."""
    cleaned = [_PREFIX_RE.sub("", normalise_name(n)) for n in names]
    if not ({"spine 004", "spine 006"} & set(cleaned) and "spine 001" in cleaned):
        return {}
    out: dict[str, int] = {}
    for i, c in enumerate(cleaned):
        h = _RIGIFY_SPINE.get(c)
        if h is not None and h not in out:
            out[h] = i
    return out


def _khronos(names: list[str]) -> dict[str, int]:
    """The Khronos samples' numbered joints (``torso_joint_1``, ``leg_joint_L_3``), or {}."""
    chains: dict[tuple[str, str | None], list[tuple[int, int]]] = {}
    for i, n in enumerate(names):
        m = _KHRONOS_RE.match(normalise_name(n))
        if m:
            side = {"l": "left", "r": "right", None: None}[m.group(2)]
            chains.setdefault((m.group(1), side), []).append((int(m.group(3)), i))
    if ("torso", None) not in chains or not any(k[0] == "leg" for k in chains):
        return {}
    out: dict[str, int] = {}
    for (part, side), joints in chains.items():
        joints.sort()
        if part == "neck":
            out["neck"] = joints[0][1]
            if len(joints) > 1:
                out["head"] = joints[-1][1]
            continue
        if side is None and part != "torso":
            continue
        for slot, (_, i) in zip(_KHRONOS_CHAINS[part], joints):
            out[slot if side is None else side + slot] = i
    return out


def _character_creator(names: list[str]) -> dict[str, int]:
    """Character Creator's ``CC_Base_`` spine (see the module docstring), or {}."""
    norms = [normalise_name(n) for n in names]
    if not any(n.startswith("cc base ") for n in norms):
        return {}
    out: dict[str, int] = {}
    for i, n in enumerate(norms):
        h = _CC_CENTRE.get(_PREFIX_RE.sub("", n).replace(" ", ""))
        if h is not None and h not in out:
            out[h] = i
    return out


def map_bone_names(names: list[str]) -> dict[str, int]:
    """Humanoid name -> index into ``names`` for every bone recognised.

    Whole-skeleton families (Rigify, Khronos samples, Character Creator; see the module
    docstring) are tried first, then each name alone. When several bones claim one
    humanoid name the first of them in ``names`` wins. The result is ordered by the
    humanoid vocabulary (parents first).
    """
    names = [str(n) for n in names]
    bases = {_split_side(_clean(n))[1] for n in names}
    leg_is_lower: bool | None = None
    if bases & {"upleg", "upperleg", "thigh", "thighbend"}:
        leg_is_lower = True
    elif bases & {"knee", "lowerleg", "calf", "shin"}:
        leg_is_lower = False
    thumb_one_based = "thumb3" in bases and "thumb0" not in bases
    found: dict[str, int] = {}
    for family in (_rigify, _khronos, _character_creator):
        for h, i in family(names).items():
            found.setdefault(h, i)
    taken = set(found.values())
    for i, n in enumerate(names):
        if i in taken:
            continue
        h = humanoid_name(n, leg_is_lower=leg_is_lower, thumb_one_based=thumb_one_based)
        if h is not None and h not in found:
            found[h] = i
    order = {h: k for k, h in enumerate(HUMANOID_BONES)}
    return dict(sorted(found.items(), key=lambda kv: order.get(kv[0], len(order))))
