"""Inverse kinematics on one pose: MMD-style CCD with per-link limits and a knee hinge, and two-bone leg IK.

State: a :class:`PoseState` holds one skeleton's local rotations (B, 3, 3),
local translations (B, 3) and world rotations / head positions, in the
normalised-bone convention of :mod:`conrdata.rig.model` (metres, project frame).
Solvers change local rotations of the chain's links and refresh the world
transforms along the chain; call :meth:`PoseState.refresh` to propagate to
every other bone afterwards.

Limits are (L, 2, 3) min/max Euler angles (radians; R = Rx @ Ry @ Rz) in the
link's world-aligned bind axes, NaN where unlimited (:class:`conrdata.rig.model.IKChain`).
A link whose Y and Z ranges are both zero and whose X range is not is a
*hinge* (MMD's knees): it only turns about its X axis, within its X range.

The knee problem: CCD cannot bend a straight leg towards a nearer target (the
effector and target directions coincide). Both solvers therefore first set the
hinge angle from the hip-to-target *distance* (law of cosines about the hinge
axis, :func:`hinge_angle_for_distance`), then aim the chain; CCD iterations
then polish with the limits in force.
"""

from __future__ import annotations

import math

import numpy as np

from conrdata.rig.model import IKChain
from conrdata.rig.rotations import axis_matrix, euler_to_matrix, matrix_from_axis_angle, matrix_to_euler


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.array([a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]])


def _unit(v: np.ndarray) -> np.ndarray | None:
    n = float(np.linalg.norm(v))
    return None if n < 1e-9 else v / n


class PoseState:
    """One pose of one skeleton, with cached world transforms (see the module docstring)."""

    def __init__(
        self,
        parents,
        heads,
        local_r: np.ndarray,
        local_t: np.ndarray | None = None,
        root_offset: np.ndarray | None = None,
    ):
        self.parents = np.asarray(parents, np.int64)
        self.heads = np.asarray(heads, np.float64)
        B = len(self.parents)
        self.local_r = np.array(local_r, np.float64).reshape(B, 3, 3)
        self.local_t = np.zeros((B, 3)) if local_t is None else np.array(local_t, np.float64).reshape(B, 3)
        self.root_offset = np.zeros(3) if root_offset is None else np.asarray(root_offset, np.float64)
        self.world_r = np.empty((B, 3, 3))
        self.world_p = np.empty((B, 3))
        self.children: list[list[int]] = [[] for _ in range(B)]
        for b, p in enumerate(self.parents):
            if p >= 0:
                self.children[p].append(b)
        self.refresh()

    def update(self, b: int) -> None:
        p = self.parents[b]
        off = self.heads[b] - (self.heads[p] if p >= 0 else 0.0) + self.local_t[b]
        if p < 0:
            self.world_r[b] = self.local_r[b]
            self.world_p[b] = off + self.root_offset
        else:
            self.world_r[b] = self.world_r[p] @ self.local_r[b]
            self.world_p[b] = self.world_p[p] + self.world_r[p] @ off

    def refresh(self, bones=None) -> None:
        """Recompute world transforms of ``bones`` (in parent-first order), or of every bone."""
        for b in range(len(self.parents)) if bones is None else bones:
            self.update(int(b))

    def subtree(self, b: int) -> list[int]:
        out, stack = [], [b]
        while stack:
            c = stack.pop()
            out.append(c)
            stack.extend(self.children[c])
        return sorted(out)


def chain_path(parents, top: int, effector: int) -> list[int]:
    """Bones from ``top`` down to ``effector`` (inclusive), parent first; ValueError if not an ancestor."""
    path = [effector]
    b = effector
    while b != top:
        b = int(parents[b])
        if b < 0:
            raise ValueError(f"bone {top} is not an ancestor of bone {effector}")
        path.append(b)
    return path[::-1]


def _is_hinge(lim: np.ndarray | None) -> bool:
    if lim is None or np.any(np.isnan(lim)):
        return False
    return bool(np.allclose(lim[:, 1:], 0.0, atol=1e-6) and lim[1, 0] - lim[0, 0] > 1e-6)


def hinge_angle_for_distance(
    hip: np.ndarray,
    knee: np.ndarray,
    end: np.ndarray,
    axis: np.ndarray,
    distance: float,
    current: float,
    lo: float,
    hi: float,
) -> float:
    """Hinge angle (radians, about ``axis`` through ``knee``) putting ``end`` at ``distance`` from ``hip``.

    ``current`` is the present hinge angle; of the two solutions the one inside
    [lo, hi] (then nearer to ``current``) wins; unreachable distances give the
    nearest achievable (straightest or most bent) angle within the limits.
    """
    u = knee - hip
    s = end - knee
    s_par = axis * float(axis @ s)
    s_perp = s - s_par
    a = float(u @ s_perp)
    b = float(u @ _cross(axis, s_perp))
    c = 0.5 * (distance**2 - u @ u - s @ s) - float(u @ s_par)
    r = math.hypot(a, b)
    cands = []
    if r > 1e-12:
        phi = math.atan2(b, a)
        k = max(-1.0, min(1.0, c / r))
        for sign in (1.0, -1.0):
            d = phi + sign * math.acos(k)
            total = current + math.atan2(math.sin(d), math.cos(d))
            for wrap in (0.0, 2 * math.pi, -2 * math.pi):
                cands.append(total + wrap)
    if not cands:
        return min(max(current, lo), hi)
    inside = [t for t in cands if lo - 1e-9 <= t <= hi + 1e-9]
    if inside:
        return min(inside, key=lambda t: abs(t - current))
    return min((min(max(t, lo), hi) for t in cands), key=lambda t: abs(t - current))


def _hinge_current(local: np.ndarray) -> float:
    return math.atan2(local[2, 1], local[1, 1])


def _set_hinge_by_distance(
    state: PoseState,
    path: list[int],
    hinge: int,
    effector: int,
    top: int,
    target: np.ndarray,
    lo: float,
    hi: float,
) -> None:
    p = state.parents[hinge]
    axis = state.world_r[p] @ np.array([1.0, 0, 0])
    cur = _hinge_current(state.local_r[hinge])
    dist = float(np.linalg.norm(target - state.world_p[top]))
    ang = hinge_angle_for_distance(
        state.world_p[top], state.world_p[hinge], state.world_p[effector], axis, dist, cur, lo, hi
    )
    state.local_r[hinge] = axis_matrix("X", ang)
    state.refresh(path[path.index(hinge) :])


def _aim(
    state: PoseState,
    path: list[int],
    link: int,
    effector: int,
    target: np.ndarray,
    max_angle: float = math.pi,
) -> None:
    """Turn ``link`` (freely) so the effector points at the target."""
    j = state.world_p[link]
    v1 = _unit(state.world_p[effector] - j)
    v2 = _unit(target - j)
    if v1 is None or v2 is None:
        return
    axis = _unit(_cross(v1, v2))
    if axis is None:
        return
    angle = min(math.acos(max(-1.0, min(1.0, float(v1 @ v2)))), max_angle)
    p = state.parents[link]
    wp = state.world_r[p] if p >= 0 else np.eye(3)
    state.local_r[link] = wp.T @ matrix_from_axis_angle(axis, angle) @ wp @ state.local_r[link]
    state.refresh(path[path.index(link) :])


def solve_two_bone(
    state: PoseState,
    upper: int,
    lower: int,
    effector: int,
    target: np.ndarray,
    hinge_range: tuple[float, float] = (0.0, math.pi),
) -> float:
    """Analytic leg IK: knee ``lower`` hinges about its X axis within ``hinge_range`` (radians; positive X
    bends the shin backwards), then ``upper`` turns by the minimal rotation that puts ``effector`` on the
    target, which keeps the knee's facing from the keyframed thigh. Returns the remaining error (metres)."""
    path = chain_path(state.parents, upper, effector)
    _set_hinge_by_distance(state, path, lower, effector, upper, np.asarray(target, np.float64), *hinge_range)
    _aim(state, path, upper, effector, target)
    return float(np.linalg.norm(state.world_p[effector] - target))


def solve_ccd(state: PoseState, chain: IKChain, target: np.ndarray | None = None, tol: float = 1e-5) -> float:
    """MMD-style CCD for one :class:`IKChain`. ``target`` defaults to the IK bone's current position.

    Links turn in order (effector's parent first) by at most ``chain.max_angle`` per step; limited links
    are clamped in Euler XYZ; hinge links turn only about X. Returns the remaining error (metres).
    """
    target = state.world_p[chain.ik_bone].copy() if target is None else np.asarray(target, np.float64)
    links = [int(k) for k in chain.links]
    if not links:
        return float(np.linalg.norm(state.world_p[chain.target_bone] - target))
    limits = chain.limits
    top = links[-1]
    path = chain_path(state.parents, top, chain.target_bone)
    max_angle = float(chain.max_angle) if chain.max_angle and chain.max_angle > 0 else math.pi
    lim_of = [None if limits is None else limits[k] for k in range(len(links))]
    hinge = [_is_hinge(lim) for lim in lim_of]
    limited = [lim is not None and not np.all(np.isnan(lim)) for lim in lim_of]
    # Distance first for a hinge (the knee), so the iterations start from the right bend.
    if len(links) >= 2 and hinge[0]:
        _set_hinge_by_distance(
            state,
            path,
            links[0],
            chain.target_bone,
            top,
            target,
            float(lim_of[0][0, 0]),
            float(lim_of[0][1, 0]),
        )
        _aim(state, path, top, chain.target_bone, target)
    prev = math.inf
    for _ in range(max(1, int(chain.iterations))):
        for k, link in enumerate(links):
            lim = lim_of[k]
            if hinge[k]:
                p = state.parents[link]
                axis = state.world_r[p] @ np.array([1.0, 0, 0])
                j = state.world_p[link]
                v1 = state.world_p[chain.target_bone] - j
                v2 = target - j
                v1 -= axis * (axis @ v1)
                v2 -= axis * (axis @ v2)
                if _unit(v1) is None or _unit(v2) is None:
                    continue
                delta = math.atan2(float(axis @ _cross(v1, v2)), float(v1 @ v2))
                delta = max(-max_angle, min(max_angle, delta))
                ang = min(max(_hinge_current(state.local_r[link]) + delta, lim[0, 0]), lim[1, 0])
                state.local_r[link] = axis_matrix("X", ang)
                state.refresh(path[path.index(link) :])
            else:
                _aim(state, path, link, chain.target_bone, target, max_angle)
                if limited[k]:
                    e = matrix_to_euler(state.local_r[link])
                    lo = np.where(np.isnan(lim[0]), -np.inf, lim[0])
                    hi = np.where(np.isnan(lim[1]), np.inf, lim[1])
                    state.local_r[link] = euler_to_matrix(np.clip(e, lo, hi))
                    state.refresh(path[path.index(link) :])
        err = float(np.linalg.norm(state.world_p[chain.target_bone] - target))
        if err < tol or prev - err < 1e-7:  # reached, or stalled (unreachable / at a limit)
            break
        prev = err
    return float(np.linalg.norm(state.world_p[chain.target_bone] - target))
