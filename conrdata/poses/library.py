"""The pose model, its library file, and applying a pose to any canonical rig.

Pose model
----------
A pose is a local rotation per bone plus a root translation. Rotations are
unit quaternions (x, y, z, w) in the convention of :mod:`conrdata.rig.model`: local,
in world-aligned bone axes, *relative to the canonical A-pose bind* (identity
everywhere = the A-pose). Bones are named by humanoid name (VRM vocabulary)
or, for secondary chains such as ``hair_0_1`` / ``skirt_3_0``, by the rig's own
bone name. A humanoid bone's rotation is relative to its parent in the
*standard humanoid tree* (:data:`conrdata.poses.skeleton.HUMANOID_PARENT`), so a
library does not depend on the extra bones a given rig has; a non-humanoid
bone's rotation is relative to its parent in the rig that defines it.

``root_translation`` (metres, world axes) moves the root(s) of the rig away
from the bind position. It was measured on a skeleton whose hips head is
``meta["hips_height"]`` metres above the feet; :func:`pose_for_rig` scales it
by the target rig's own hips height (no scaling when the key is absent).

File format (``.npz``, written by :func:`save_pose_library`)
----------------------------------------------------------
==================  =================  ============================================
key                 dtype / shape      meaning
==================  =================  ============================================
format_version      int64 ()           1
kind                str ()             ``"conr-pose-library"``
bone_names          str (J,)           humanoid names or rig bone names
rotations           float32 (P, J, 4)  local rotations, (x, y, z, w), unit
root_translation    float32 (P, 3)     metres
pose_ids            str (P,)           e.g. ``dance.vmd@f000120``, ``sample-000007``
meta_json           str ()             JSON object: source files, fps, seed, hips_height...
==================  =================  ============================================

Nothing in it is pickled: :func:`load_pose_library` opens it with ``allow_pickle=False``.
"""

from __future__ import annotations

import json
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from conrdata.errors import FormatError
from conrdata.poses.skeleton import HUMANOID_PARENT, hips_height, humanoid_parent_in
from conrdata.rig.humanoid import HUMANOID_BONES
from conrdata.rig.model import Rig
from conrdata.rig.rotations import quat_conj, quat_identity, quat_mul, quat_normalize, quat_slerp

FORMAT_VERSION = 1
KIND = "conr-pose-library"
_HUMANOID = set(HUMANOID_BONES)


@dataclass
class PoseLibrary:
    """P poses over J bones; see the module docstring for the convention.

    - ``bone_names``: J names (humanoid names or rig bone names).
    - ``rotations``: (P, J, 4) float32 local rotations (x, y, z, w).
    - ``root_translation``: (P, 3) float32 metres.
    - ``pose_ids``: P strings, unique within a library.
    - ``meta``: JSON-serialisable dict (sources, fps, seed, ``hips_height``, ``missing_bones``...).
    """

    bone_names: list[str]
    rotations: np.ndarray
    root_translation: np.ndarray
    pose_ids: list[str]
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        self.bone_names = [str(n) for n in self.bone_names]
        self.pose_ids = [str(p) for p in self.pose_ids]
        self.rotations = np.asarray(self.rotations, np.float32).reshape(
            len(self.pose_ids), len(self.bone_names), 4
        )
        self.root_translation = np.asarray(self.root_translation, np.float32).reshape(len(self.pose_ids), 3)

    def __len__(self) -> int:
        return len(self.pose_ids)

    def select(self, indices) -> PoseLibrary:
        """A library of the poses at ``indices`` (same bones and meta)."""
        idx = np.asarray(indices, np.int64).reshape(-1)
        return PoseLibrary(
            list(self.bone_names),
            self.rotations[idx],
            self.root_translation[idx],
            [self.pose_ids[i] for i in idx],
            dict(self.meta),
        )

    @staticmethod
    def concatenate(libs: list[PoseLibrary], meta: dict | None = None) -> PoseLibrary:
        """Join libraries; bones missing from one library get the identity rotation there.

        Root translations are rescaled to the first library's ``hips_height`` when both record one.
        """
        if not libs:
            return empty_library(meta)
        names: list[str] = []
        for lib in libs:
            names += [n for n in lib.bone_names if n not in names]
        ref_h = next((lib.meta.get("hips_height") for lib in libs if lib.meta.get("hips_height")), None)
        rots, trans, ids = [], [], []
        for lib in libs:
            r = np.tile(quat_identity().astype(np.float32), (len(lib), len(names), 1))
            for j, n in enumerate(lib.bone_names):
                r[:, names.index(n)] = lib.rotations[:, j]
            rots.append(r)
            t = lib.root_translation
            if ref_h and lib.meta.get("hips_height"):
                t = t * (ref_h / float(lib.meta["hips_height"]))
            trans.append(t)
            ids += lib.pose_ids
        seen: dict[str, int] = {}
        for k, pid in enumerate(ids):  # keep ids unique (two files may share a stem)
            if pid in seen:
                seen[pid] += 1
                ids[k] = f"{pid}~{seen[pid]}"
            else:
                seen[pid] = 1
        out_meta = dict(meta or {})
        if ref_h:
            out_meta.setdefault("hips_height", ref_h)
        return PoseLibrary(names, np.concatenate(rots), np.concatenate(trans), ids, out_meta)

    def validate(self, path: str | os.PathLike | None = None) -> None:
        """Raise FormatError if shapes, values or ids are inconsistent."""
        P, J = len(self.pose_ids), len(self.bone_names)
        if self.rotations.shape != (P, J, 4):
            raise FormatError(f"rotations have shape {self.rotations.shape}, expected ({P}, {J}, 4)", path)
        if self.root_translation.shape != (P, 3):
            raise FormatError(
                f"root_translation has shape {self.root_translation.shape}, expected ({P}, 3)", path
            )
        if not (np.all(np.isfinite(self.rotations)) and np.all(np.isfinite(self.root_translation))):
            raise FormatError("pose library holds non-finite numbers", path)
        norms = np.linalg.norm(self.rotations, axis=-1)
        if P and J and np.any(np.abs(norms - 1.0) > 1e-3):
            raise FormatError("pose library rotations are not unit quaternions", path)
        if len(set(self.bone_names)) != J:
            raise FormatError("pose library bone names are not unique", path)


def empty_library(meta: dict | None = None) -> PoseLibrary:
    return PoseLibrary(
        [], np.zeros((0, 0, 4), np.float32), np.zeros((0, 3), np.float32), [], dict(meta or {})
    )


def save_pose_library(lib: PoseLibrary, path: str | os.PathLike) -> Path:
    """Write ``lib`` as the documented ``.npz`` (atomically: temp file then rename). Returns the path."""
    path = Path(path)
    lib.validate(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez_compressed(
        tmp,
        format_version=np.int64(FORMAT_VERSION),
        kind=np.str_(KIND),
        bone_names=np.array(lib.bone_names, dtype=str).reshape(-1),
        rotations=lib.rotations.astype(np.float32),
        root_translation=lib.root_translation.astype(np.float32),
        pose_ids=np.array(lib.pose_ids, dtype=str).reshape(-1),
        meta_json=np.str_(json.dumps(lib.meta, sort_keys=True, default=_json_default)),
    )
    os.replace(tmp, path)
    return path


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def load_pose_library(path: str | os.PathLike) -> PoseLibrary:
    """Read a library written by :func:`save_pose_library`; FormatError naming ``path`` if it is not one."""
    path = Path(path)
    if not path.is_file():
        raise FormatError("pose library not found", path)
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = {"format_version", "bone_names", "rotations", "root_translation", "pose_ids"} - set(
                z.files
            )
            if missing:
                raise FormatError(f"not a pose library (missing {', '.join(sorted(missing))})", path)
            version = int(z["format_version"])
            if version > FORMAT_VERSION:
                raise FormatError(
                    f"pose library format_version {version} is newer than this toolkit ({FORMAT_VERSION})",
                    path,
                )
            names = [str(n) for n in z["bone_names"].reshape(-1)]
            rot = np.asarray(z["rotations"], np.float32)
            trans = np.asarray(z["root_translation"], np.float32)
            ids = [str(n) for n in z["pose_ids"].reshape(-1)]
            meta = json.loads(str(z["meta_json"])) if "meta_json" in z.files else {}
    except FormatError:
        raise
    except (
        OSError,
        ValueError,
        KeyError,
        TypeError,
        EOFError,
        zipfile.BadZipFile,
        json.JSONDecodeError,
    ) as e:
        raise FormatError(f"cannot read pose library: {e}", path) from None
    if not isinstance(meta, dict):
        raise FormatError("meta_json is not a JSON object", path)
    if rot.shape != (len(ids), len(names), 4) or trans.shape != (len(ids), 3):
        raise FormatError(
            f"inconsistent shapes: rotations {rot.shape}, root_translation {trans.shape}, "
            f"{len(ids)} pose ids, {len(names)} bones",
            path,
        )
    lib = PoseLibrary(names, rot, trans, ids, meta)
    lib.validate(path)
    return lib


# --- humanoid world rotations <-> library locals ---------------------------------------------------


def humanoid_world_rotations(bone_names: list[str], rotations: np.ndarray) -> dict[str, np.ndarray]:
    """World rotations (P, 4) of every humanoid bone, composing the library's locals down the standard tree.

    Humanoid bones the library lacks contribute the identity.
    """
    rotations = np.asarray(rotations, np.float64)
    P = rotations.shape[0]
    local = {n: rotations[:, j] for j, n in enumerate(bone_names) if n in _HUMANOID}
    world: dict[str, np.ndarray] = {}
    for h in HUMANOID_BONES:
        parent = HUMANOID_PARENT[h]
        base = world[parent] if parent is not None else quat_identity((P,))
        world[h] = quat_mul(base, local[h]) if h in local else base
    return world


def library_from_world(
    world: dict[str, np.ndarray],
    root_translation: np.ndarray,
    pose_ids: list[str],
    meta: dict | None = None,
    extra_local: dict[str, np.ndarray] | None = None,
) -> PoseLibrary:
    """Build a library from humanoid world rotations (P, 4) each (relative to the A-pose bind).

    Locals are taken against the nearest humanoid ancestor present in ``world``;
    ``extra_local`` adds non-humanoid bones' local rotations as they are.
    """
    names = [h for h in HUMANOID_BONES if h in world]
    P = len(pose_ids)
    rots = np.empty((P, len(names) + len(extra_local or {}), 4), np.float64)
    for j, h in enumerate(names):
        p = humanoid_parent_in(h, world)
        w = quat_normalize(world[h])
        rots[:, j] = w if p is None else quat_mul(quat_conj(quat_normalize(world[p])), w)
    for k, (n, q) in enumerate((extra_local or {}).items()):
        rots[:, len(names) + k] = quat_normalize(q)
        names.append(n)
    rots = quat_normalize(rots)
    rots = np.where(rots[..., 3:] < 0, -rots, rots)
    return PoseLibrary(
        names, rots.astype(np.float32), np.asarray(root_translation, np.float32), pose_ids, dict(meta or {})
    )


# --- applying a library to a rig -------------------------------------------------------------------


def poses_for_rig(rig: Rig, lib: PoseLibrary, indices=None) -> tuple[np.ndarray, np.ndarray]:
    """Local rotations (N, B, 4) float32 for every rig bone and root translations (N, 3) float32.

    Each humanoid bone of the rig gets the world rotation the library gives that
    humanoid bone, re-expressed against the rig's own parent chain (so extra or
    missing intermediate bones are handled); non-humanoid bones named in the
    library take its local rotation; every other bone keeps its bind rotation.

    These are the pose's *keys*: the rig's own deform rules (MMD inherit, IK chains,
    physics bones, VRM node constraints) are played by
    :func:`conrdata.poses.evaluate.evaluate_poses`, which every caller poses through.
    """
    sel = np.arange(len(lib)) if indices is None else np.asarray(indices, np.int64).reshape(-1)
    if len(sel) and (sel.min() < -len(lib) or sel.max() >= len(lib)):
        raise IndexError(f"pose index out of range for a library of {len(lib)} poses")
    rots = lib.rotations[sel].astype(np.float64)
    N, B = len(sel), rig.num_bones
    world_h = humanoid_world_rotations(lib.bone_names, rots)
    lib_index = {n: j for j, n in enumerate(lib.bone_names)}
    # Virtual parts of a one-bone limb (conrdata.rig.humanoid_infer) follow the bone that carries the mesh.
    fixed = set(rig.meta.get("humanoid_fixed") or ())
    bone_to_h = {b: h for h, b in rig.humanoid.items() if h not in fixed}
    local = np.empty((N, B, 4))
    world = np.empty((N, B, 4))
    ident = quat_identity((N,))
    for b, p in enumerate(rig.bone_parents):
        pw = world[:, p] if p >= 0 else ident
        h = bone_to_h.get(b)
        if h is not None:
            world[:, b] = world_h[h]
            local[:, b] = quat_mul(quat_conj(pw), world_h[h])
        else:
            name = rig.bone_names[b]
            q = rots[:, lib_index[name]] if name in lib_index and name not in _HUMANOID else ident
            local[:, b] = q
            world[:, b] = quat_mul(pw, q)
    local = quat_normalize(local)
    trans = lib.root_translation[sel].astype(np.float64)
    ref = lib.meta.get("hips_height")
    if ref and "hips" in rig.humanoid:
        trans = trans * (hips_height(rig) / float(ref))
    return local.astype(np.float32), trans.astype(np.float32)


def apply_inherit(rig: Rig, local: np.ndarray) -> np.ndarray:
    """Apply MMD "inherit rotation" links (``rig.meta["mmd"]["inherit"]``, from the PMX reader) to locals
    (N, B, 4): a bone that inherits from ``source`` with weight w gets slerp(identity, local[source], w)
    before its own rotation. This is how MMD's deform copies (足D, ひざD...) and cancel bones follow the
    bones a motion drives. Rigs without the key are returned unchanged. The pose evaluator
    (:mod:`conrdata.poses.evaluate`) plays these links itself; this is for skeletons posed outside it."""
    links = (rig.meta.get("mmd") or {}).get("inherit") or []
    if not links:
        return local
    return quat_normalize(inherit_rotations(local, links))


def inherit_rotations(local: np.ndarray, links: list[dict], own: np.ndarray | None = None) -> np.ndarray:
    """MMD inherit-rotation links on locals (N, B, 4), in order: bone = slerp(I, source, weight) @ its own
    rotation (its own = ``own[:, bone]`` when given, else its current local). A negative weight inherits
    the inverse; links without ``rotation``, to a bone out of range or to itself are passed over."""
    if not links:
        return local
    out = local.copy()
    ident = quat_identity(local.shape[:1])
    for link in links:
        if not link.get("rotation"):
            continue
        b, src, w = int(link["bone"]), int(link["source"]), float(link.get("weight", 1.0))
        if not (0 <= b < out.shape[1] and 0 <= src < out.shape[1]) or b == src:
            continue
        q = out[:, src]
        if w < 0:
            q, w = quat_conj(q), -w
        base = own[:, b] if own is not None else out[:, b]
        out[:, b] = quat_mul(quat_slerp(ident, q, w), base)
    return out


def pose_for_rig(rig: Rig, lib: PoseLibrary, index: int) -> tuple[np.ndarray, np.ndarray]:
    """Pose ``index`` of ``lib`` for ``rig``: ((B, 4) float32 local quaternions, (3,) float32 root offset).

    Feed both to :func:`conrdata.poses.evaluate.evaluate_pose` / ``evaluate_vertices``.
    """
    local, trans = poses_for_rig(rig, lib, [index])
    return local[0], trans[0]
