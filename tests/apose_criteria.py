"""The A-pose criteria of the characters issue, in one place, for every test that checks a converted rig."""

from __future__ import annotations

import numpy as np

from conrdata.rig.apose import measure_apose
from conrdata.rig.model import Rig, identity_rotations, pose_vertices


def apose_failures(rig: Rig, tol_arm: float = 1.0, tol_leg: float = 2.0, tol_bind: float = 1e-4) -> list[str]:
    """Every criterion ``rig`` misses (empty when it is a canonical A-pose bind).

    Upper arms 45 +- ``tol_arm`` degrees below horizontal, outwards and in the frontal
    plane; legs within ``tol_leg`` degrees of vertical; lowest vertex at y = 0 and hips
    on the Y axis (1 mm); facing +Z; the bind pose skins to itself (``tol_bind`` metres: float32
    rounding of real meshes reaches 2e-5 m).
    """
    m = measure_apose(rig)
    out = []
    for side in ("left", "right"):
        if abs(m[f"{side}_arm_drop_deg"] - 45) > tol_arm:
            out.append(f"{side} arm drop {m[f'{side}_arm_drop_deg']:.2f} deg")
        if m[f"{side}_arm_outwards"] <= 0:
            out.append(f"{side} arm points inwards")
    if m["arm_out_of_plane_deg"] > tol_arm:
        out.append(f"arm out of the frontal plane by {m['arm_out_of_plane_deg']:.2f} deg")
    if m["leg_tilt_deg"] > tol_leg:
        out.append(f"leg tilt {m['leg_tilt_deg']:.2f} deg")
    if abs(m["lowest_y"]) > 1e-3:
        out.append(f"lowest vertex at y = {m['lowest_y']:.4f}")
    if m["hips_xz"] > 1e-3:
        out.append(f"hips {m['hips_xz']:.4f} m off the Y axis")
    if m["facing_z"] <= 0.99:
        out.append(f"facing z {m['facing_z']:.3f}")
    err = float(np.abs(pose_vertices(rig, identity_rotations(rig)) - rig.vertices).max())
    if err > tol_bind:
        out.append(f"bind pose does not skin to itself ({err:.2e} m)")
    return out


def assert_apose(rig: Rig, tol_arm: float = 1.0, tol_leg: float = 2.0, what: str = "",
                 tol_bind: float = 1e-4) -> None:
    failures = apose_failures(rig, tol_arm, tol_leg, tol_bind)
    assert not failures, f"{what or rig.meta.get('source')}: {'; '.join(failures)}"
