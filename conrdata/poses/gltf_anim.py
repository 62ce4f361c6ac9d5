"""glTF 2.0 / VRM animations (rotation and translation channels) -> pose libraries.

Channels targeting ``rotation`` and ``translation`` are sampled with their
sampler's interpolation: ``STEP`` (hold), ``LINEAR`` (lerp; slerp for
rotations) and ``CUBICSPLINE`` (Hermite: each key stores in-tangent, value,
out-tangent; tangents are scaled by the key interval; rotations renormalised).
``scale`` and ``weights`` channels are ignored (counted in the metadata).

glTF nodes carry rest rotations; the node hierarchy's world rotations at each
sampled time, relative to the same node's rest world rotation, are the
normalised-bone rotations the retargeting step takes
(:func:`conrdata.poses.retarget.retarget_world`). Humanoid bones come from the
VRM humanoid (``VRMC_vrm`` 1.0, ``VRMC_vrm_animation`` of .vrma files, or
``VRM`` 0.x) when present, else from node names through
:func:`conrdata.rig.bonemaps.map_bone_names`.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from conrdata.errors import FormatError, RigError
from conrdata.formats.gltf import GltfDocument
from conrdata.poses.library import PoseLibrary
from conrdata.poses.retarget import map_source_names, retarget_world
from conrdata.rig.humanoid import HUMANOID_BONES, VRM0_RENAMES
from conrdata.rig.model import Rig
from conrdata.rig.rotations import (
    quat_conj,
    quat_from_matrix,
    quat_mul,
    quat_normalize,
    quat_slerp,
    quat_to_matrix,
)

INTERPOLATIONS = ("LINEAR", "STEP", "CUBICSPLINE")
MAX_SAMPLES = 1_000_000


def sample_channel(times: np.ndarray, values: np.ndarray, interpolation: str, t: np.ndarray,
                   rotation: bool) -> np.ndarray:
    """Sample one glTF animation sampler at times ``t`` (N,) -> (N, C).

    ``times`` (K,) increasing seconds; ``values`` (K, C), or (3K, C) for
    CUBICSPLINE (in-tangent, value, out-tangent per key). Outside the key range
    the first/last value holds.
    """
    times = np.asarray(times, np.float64)
    vals = np.asarray(values, np.float64)
    t = np.asarray(t, np.float64)
    K = len(times)
    if interpolation == "CUBICSPLINE":
        tan_in, v, tan_out = vals[0::3], vals[1::3], vals[2::3]
    else:
        v = vals
    if K == 1:
        out = np.repeat(v[:1], len(t), 0)
        return quat_normalize(out) if rotation else out
    k1 = np.clip(np.searchsorted(times, t, side="right"), 1, K - 1)
    k0 = k1 - 1
    dt = np.maximum(times[k1] - times[k0], 1e-12)
    s = np.clip((t - times[k0]) / dt, 0.0, 1.0)
    if interpolation == "STEP":
        out = np.where((t >= times[k1])[:, None], v[k1], v[k0])
    elif interpolation == "LINEAR":
        if rotation:
            out = quat_slerp(v[k0], v[k1], s)
        else:
            out = v[k0] + (v[k1] - v[k0]) * s[:, None]
    else:
        s2, s3 = s * s, s * s * s
        h00, h10 = 2 * s3 - 3 * s2 + 1, s3 - 2 * s2 + s
        h01, h11 = -2 * s3 + 3 * s2, s3 - s2
        out = (h00[:, None] * v[k0] + (h10 * dt)[:, None] * tan_out[k0] + h01[:, None] * v[k1]
               + (h11 * dt)[:, None] * tan_in[k1])
    return quat_normalize(out) if rotation else out


def _node_trs(doc: GltfDocument, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    node = doc.item("nodes", i)
    if "matrix" in node:
        m = doc.node_local_matrix(i)
        s = np.linalg.norm(m[:3, :3], axis=0)
        if np.any(s < 1e-12):
            raise FormatError(f"nodes[{i}].matrix is singular", doc.path)
        return m[:3, 3].copy(), quat_from_matrix(m[:3, :3] / s), s
    m = doc.node_local_matrix(i)  # validates the fields
    t = m[:3, 3].copy()
    r = np.asarray(node.get("rotation", [0, 0, 0, 1]), np.float64)
    s = np.asarray(node.get("scale", [1, 1, 1]), np.float64)
    return t, quat_normalize(r), s


def _hierarchy(doc: GltfDocument) -> tuple[np.ndarray, list[int]]:
    nodes = doc.list("nodes")
    parent = np.full(len(nodes), -1, np.int64)
    for i, n in enumerate(nodes):
        if not isinstance(n, dict):
            raise FormatError(f"nodes[{i}] is not an object", doc.path)
        for c in n.get("children", []) or []:
            if isinstance(c, bool) or not isinstance(c, int) or not 0 <= c < len(nodes) or c == i:
                raise FormatError(f"nodes[{i}].children holds a bad index {c!r}", doc.path)
            if parent[c] >= 0:
                raise FormatError(f"node {c} has two parents", doc.path)
            parent[c] = i
    order: list[int] = []
    seen = np.zeros(len(nodes), bool)
    stack = [i for i in range(len(nodes)) if parent[i] < 0][::-1]
    while stack:
        i = stack.pop()
        if seen[i]:
            continue
        seen[i] = True
        order.append(i)
        stack.extend(reversed([c for c in nodes[i].get("children", []) or []]))
    if len(order) != len(nodes):
        raise FormatError("node hierarchy has a cycle", doc.path)
    return parent, order


def humanoid_nodes(doc: GltfDocument) -> dict[str, int]:
    """Humanoid name -> node index from the VRM extension, else from node names."""
    ext = doc.extensions
    n_nodes = len(doc.list("nodes"))
    found: dict[str, int] = {}
    vrm1 = ext.get("VRMC_vrm")
    if not isinstance(vrm1, dict):
        vrm1 = ext.get("VRMC_vrm_animation")  # .vrma motion files map their nodes the same way
    vrm0 = ext.get("VRM")
    if isinstance(vrm1, dict):
        bones = ((vrm1.get("humanoid") or {}).get("humanBones") or {})
        if isinstance(bones, dict):
            for name, spec in bones.items():
                if isinstance(spec, dict) and isinstance(spec.get("node"), int):
                    found[VRM0_RENAMES.get(name, name)] = spec["node"]
    elif isinstance(vrm0, dict):
        bones = ((vrm0.get("humanoid") or {}).get("humanBones") or [])
        if isinstance(bones, list):
            for spec in bones:
                if not isinstance(spec, dict):
                    continue
                if isinstance(spec.get("node"), int) and isinstance(spec.get("bone"), str):
                    found[VRM0_RENAMES.get(spec["bone"], spec["bone"])] = spec["node"]
    found = {h: i for h, i in found.items() if h in HUMANOID_BONES and 0 <= i < n_nodes}
    if not found:
        found = map_source_names(doc.node_names)
    return found


def gltf_to_library(path: str | os.PathLike, target: Rig | None = None, fps: float = 30.0,
                    max_poses: int | None = None, name: str | None = None,
                    animations: list[int] | None = None) -> PoseLibrary:
    """Every (or the chosen) animation of a glTF/GLB/VRM file, sampled at ``fps``, retargeted to ``target``.

    Pose ids are ``<name>#<animation>@t<seconds>``. FormatError for a broken file,
    RigError when no hips can be identified, UserError when the file has no animation.
    """
    path = Path(path)
    name = name or path.stem
    if fps <= 0:
        raise ValueError("fps must be positive")
    doc = GltfDocument.open(path)
    anims = doc.list("animations")
    if not anims:
        raise FormatError("file has no animations", path)
    parent, order = _hierarchy(doc)
    N = len(parent)
    humanoid = humanoid_nodes(doc)
    if "hips" not in humanoid:
        raise RigError("no hips bone found (no VRM humanoid, node names not recognised)", path)
    rest_t = np.zeros((N, 3))
    rest_r = np.zeros((N, 4))
    rest_s = np.ones((N, 3))
    for i in range(N):
        rest_t[i], rest_r[i], rest_s[i] = _node_trs(doc, i)
    rest_world_r, rest_world_p = _world(parent, order, rest_r[None], rest_t[None], rest_s)
    libs = []
    ignored = 0
    chosen = range(len(anims)) if animations is None else animations
    for a in chosen:
        anim = doc.item("animations", a)
        channels = anim.get("channels") or []
        samplers = anim.get("samplers") or []
        if not isinstance(channels, list) or not isinstance(samplers, list):
            raise FormatError(f"animations[{a}] channels/samplers are not arrays", path)
        parsed = []
        t_end = 0.0
        for c_i, ch in enumerate(channels):
            tgt = ch.get("target") if isinstance(ch, dict) else None
            if not isinstance(tgt, dict):
                raise FormatError(f"animations[{a}].channels[{c_i}] has no target", path)
            node, what = tgt.get("node"), tgt.get("path")
            if what not in ("rotation", "translation"):
                ignored += 1
                continue
            if isinstance(node, bool) or not isinstance(node, int) or not 0 <= node < N:
                raise FormatError(f"animations[{a}].channels[{c_i}] targets a missing node", path)
            s_i = ch.get("sampler")
            if isinstance(s_i, bool) or not isinstance(s_i, int) or not 0 <= s_i < len(samplers):
                raise FormatError(f"animations[{a}].channels[{c_i}] has a bad sampler index", path)
            smp = samplers[s_i]
            if not isinstance(smp, dict):
                raise FormatError(f"animations[{a}].samplers[{s_i}] is not an object", path)
            interp = smp.get("interpolation", "LINEAR")
            if interp not in INTERPOLATIONS:
                raise FormatError(f"animations[{a}].samplers[{s_i}]: unknown interpolation {interp!r}", path)
            times = doc.accessor(smp.get("input")).astype(np.float64).reshape(-1)
            vals = doc.accessor(smp.get("output")).astype(np.float64)
            width = 4 if what == "rotation" else 3
            vals = vals.reshape(len(vals), -1) if len(vals) else vals.reshape(0, width)
            per_key = 3 if interp == "CUBICSPLINE" else 1
            if vals.shape[1] != width or len(vals) != per_key * len(times) or not len(times):
                raise FormatError(f"animations[{a}].samplers[{s_i}]: {len(times)} key times but output "
                                  f"shape {vals.shape}", path)
            if not (np.all(np.isfinite(times)) and np.all(np.isfinite(vals))):
                raise FormatError(f"animations[{a}].samplers[{s_i}] holds non-finite numbers", path)
            if np.any(np.diff(times) < 0):
                raise FormatError(f"animations[{a}].samplers[{s_i}] key times decrease", path)
            parsed.append((node, what, times, vals, interp))
            t_end = max(t_end, float(times[-1]))
        n = int(np.floor(t_end * fps + 1e-3)) + 1
        if n > MAX_SAMPLES:
            raise FormatError(f"animations[{a}] lasts {t_end:.0f} s: too many samples at {fps} fps", path)
        t = np.arange(n) / fps
        if max_poses is not None and n > max_poses:
            t = t[np.unique(np.linspace(0, n - 1, max_poses).round().astype(int))]
        loc_r = np.repeat(rest_r[None], len(t), 0)
        loc_t = np.repeat(rest_t[None], len(t), 0)
        for node, what, times, vals, interp in parsed:
            v = sample_channel(times, vals, interp, t, what == "rotation")
            if what == "rotation":
                loc_r[:, node] = v
            else:
                loc_t[:, node] = v
        world_r, world_p = _world(parent, order, loc_r, loc_t, rest_s)
        # Normalised world rotation: posed world times the inverse of the rest world.
        G = quat_mul(world_r, quat_conj(np.broadcast_to(rest_world_r, world_r.shape)))
        aname = str(anim.get("name") or f"anim{a}")
        ids = [f"{name}#{aname}@t{x:.3f}" for x in t]
        meta = {"source": "gltf", "motion": name, "animation": aname, "fps": float(fps),
                "ignored_channels": ignored}
        hips_p = world_p[:, humanoid["hips"]]
        libs.append(retarget_world(rest_world_p[0], G, hips_p, humanoid, ids, target, meta))
    return PoseLibrary.concatenate(libs, meta={"source": "gltf", "motion": name, "fps": float(fps),
                                               "ignored_channels": ignored})


def _world(parent, order, loc_r, loc_t, scale) -> tuple[np.ndarray, np.ndarray]:
    """World rotations (F, N, 4) and positions (F, N, 3) of nodes (static per-node ``scale`` applied)."""
    F, N = loc_r.shape[:2]
    wm = np.zeros((F, N, 3, 3))
    wp = np.zeros((F, N, 3))
    wr = np.zeros((F, N, 4))
    rots = quat_to_matrix(loc_r)
    for i in order:
        p = parent[i]
        lm = rots[:, i] * scale[i][None, None, :]
        if p < 0:
            wm[:, i] = lm
            wp[:, i] = loc_t[:, i]
        else:
            wm[:, i] = wm[:, p] @ lm
            wp[:, i] = wp[:, p] + np.einsum("fij,fj->fi", wm[:, p], loc_t[:, i])
        m = wm[:, i]
        norms = np.linalg.norm(m, axis=1, keepdims=True)
        wr[:, i] = quat_from_matrix(m / np.maximum(norms, 1e-12))
    return wr, wp
