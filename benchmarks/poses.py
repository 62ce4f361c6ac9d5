"""Benchmark of the pose module: poses per second, with baselines measured in the same run.

Prints one JSON object:

- ``vmd_ik_proxy``: VMD sampling + two-bone leg IK + toe IK on the procedural character (proxy MMD
  skeleton), and ``vmd_no_ik`` the same motion with IK switched off (the FK-only baseline);
- ``vmd_ik_pmx_ccd``: the same on a small PMX rig with its own IK chains (CCD), when the test
  PMX writer is importable;
- ``bvh_retarget``: BVH forward kinematics + retargeting onto the procedural character;
- ``sampler``: joint-limited sampling with the self-penetration test, and its rejection rate;
- ``pose_for_rig``: applying library poses to the rig (the per-image cost synthesis pays);
- ``evaluator``: per real character (``Gene_light.pmx``, ``Godette_vrm_v4.vrm`` from the shared
  assets, converted to the A-pose), poses per second through the full pose evaluator
  (:func:`conrdata.poses.evaluate.evaluate_poses`: MMD inherit, IK chains, physics bones, VRM
  constraints) against plain FK (:func:`conrdata.rig.model.forward_kinematics`) on the same sampled poses,
  and the two with skinning; an entry holds ``skipped`` with the reason when the asset is absent.

Motions are synthetic (smooth random keys on every standard bone): no real motion is bundled.

    python benchmarks/poses.py [--frames 300] [--assets ../shared/assets]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from conrdata.poses import poses_for_rig, sample_poses  # noqa: E402
from conrdata.poses.bvh import BvhMotion  # noqa: E402
from conrdata.poses.evaluate import deform_rules, evaluate_poses  # noqa: E402
from conrdata.poses.mmd import vmd_to_library  # noqa: E402
from conrdata.poses.retarget import bvh_to_library  # noqa: E402
from conrdata.poses.vmd import VmdMotion, make_track  # noqa: E402
from conrdata.rig.bonemaps import MMD_TO_HUMANOID  # noqa: E402
from conrdata.rig.model import forward_kinematics, skin, skinning_matrices  # noqa: E402
from conrdata.rig.procedural import build_character  # noqa: E402
from conrdata.rig.rotations import euler_to_quat  # noqa: E402

EVALUATOR_CHARACTERS = {"Gene_light.pmx": ("meshes", "gene", "Gene_light.pmx"),
                        "Godette_vrm_v4.vrm": ("meshes", "godot-vrm", "Godette_vrm_v4.vrm")}


def synthetic_vmd(frames: int, rng: np.random.Generator) -> VmdMotion:
    m = VmdMotion("bench")
    keys = np.arange(0, frames + 1, 10)
    for name in list(MMD_TO_HUMANOID)[:30]:
        ang = np.radians(rng.uniform(-25, 25, size=(len(keys), 3)))
        m.tracks[name] = make_track(keys, rotations=euler_to_quat(ang))
    for ik in ("左足ＩＫ", "右足ＩＫ"):
        m.tracks[ik] = make_track(keys, positions=rng.uniform(-1.5, 1.5, size=(len(keys), 3)) + [0, 1.5, 0])
    m.tracks["センター"] = make_track(keys, positions=rng.uniform(-1, 1, size=(len(keys), 3)))
    return m


def synthetic_bvh(frames: int, rng: np.random.Generator) -> BvhMotion:
    names = ["Hips", "LowerBack", "Spine", "Spine1", "Neck", "Head"]
    parents = [-1, 0, 1, 2, 3, 4]
    offs = [[0, 90, 0], [0, 8, 0], [0, 12, 0], [0, 12, 0], [0, 12, 0], [0, 8, 0]]
    for S, sg in (("Left", 1), ("Right", -1)):
        base = len(names)
        names += [f"{S}Shoulder", f"{S}Arm", f"{S}ForeArm", f"{S}Hand"]
        parents += [3, base, base + 1, base + 2]
        offs += [[sg * 3, 8, 0], [sg * 12, 0, 0], [sg * 25, 0, 0], [sg * 22, 0, 0]]
    for S, sg in (("Left", 1), ("Right", -1)):
        base = len(names)
        names += [f"{S}UpLeg", f"{S}Leg", f"{S}Foot", f"{S}ToeBase"]
        parents += [0, base, base + 1, base + 2]
        offs += [[sg * 9, -4, 0], [0, -40, 0], [0, -40, 0], [0, -6, 12]]
    chans = [["Xposition", "Yposition", "Zposition", "Zrotation", "Xrotation", "Yrotation"]] + [
        ["Zrotation", "Xrotation", "Yrotation"]] * (len(names) - 1)
    data = rng.uniform(-20, 20, size=(frames, sum(len(c) for c in chans)))
    data[:, :3] = [0, 90, 0]
    return BvhMotion(names, np.array(parents), np.array(offs, float), chans, data, 1 / 30)


def rate(fn, n_items: int, repeat: int = 2) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return n_items / best


def evaluator_figures(path: Path, poses: int = 64) -> dict:
    """Full evaluator against FK only, on ``poses`` sampled poses of the converted character at ``path``."""
    from conrdata.formats import load_model
    from conrdata.rig.apose import align_to_apose

    rig = align_to_apose(load_model(path))
    rules = deform_rules(rig)
    local, trans = poses_for_rig(rig, sample_poses(poses, 0, rig))

    def fk():
        return [forward_kinematics(rig, local[i], trans[i]) for i in range(poses)]

    def skinned(results):
        for r, t in results:
            skin(rig, skinning_matrices(rig, r, t))

    ev = evaluate_poses(rig, local, trans)
    out = {"bones": rig.num_bones, "vertices": len(rig.vertices), "poses": poses,
           "inherit_and_ik_steps": len(rules.steps), "physics_bones": len(rules.physics),
           "control_ik_chains": len(rules.control),
           "evaluator_poses_per_s": rate(lambda: evaluate_poses(rig, local, trans), poses),
           "fk_only_poses_per_s": rate(fk, poses)}
    out["evaluator_cost_x"] = out["fk_only_poses_per_s"] / out["evaluator_poses_per_s"]
    out["evaluator_skinned_poses_per_s"] = rate(lambda: skinned(zip(*evaluate_poses(rig, local, trans))),
                                                poses)
    out["fk_only_skinned_poses_per_s"] = rate(lambda: skinned(fk()), poses)
    fr = np.stack([r for r, _ in fk()])
    out["max_rotation_change_vs_fk"] = float(np.abs(ev[0] - fr).max())
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=300, help="frames of the synthetic motions (30 fps)")
    ap.add_argument("--assets", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "assets",
                    help="the shared real assets folder (for the evaluator figures)")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    rig = build_character(0)
    vmd = synthetic_vmd(args.frames, rng)
    n = args.frames + 1
    out: dict = {"machine": platform.processor() or platform.machine(), "python": platform.python_version(),
                 "frames": n}
    out["vmd_ik_proxy_poses_per_s"] = rate(lambda: vmd_to_library(vmd, rig, fps=30), n)
    no_ik = synthetic_vmd(args.frames, np.random.default_rng(0))
    no_ik.ik_keys = [(0, {"左足ＩＫ": False, "右足ＩＫ": False})]
    out["vmd_no_ik_poses_per_s"] = rate(lambda: vmd_to_library(no_ik, rig, fps=30), n)
    try:
        from conrdata.formats.pmx import read_pmx
        from conrdata.rig.apose import align_to_apose
        from tests.mmd_writer import tiny_humanoid, write_pmx, write_textures

        with tempfile.TemporaryDirectory() as d:
            write_textures(Path(d))
            pmx = align_to_apose(read_pmx(write_pmx(Path(d) / "m.pmx", tiny_humanoid())))
        out["vmd_ik_pmx_ccd_poses_per_s"] = rate(lambda: vmd_to_library(vmd, pmx, fps=30), n)
    except ImportError as e:
        out["vmd_ik_pmx_ccd_poses_per_s"] = None
        out["vmd_ik_pmx_ccd_note"] = f"PMX test writer unavailable: {e}"
    bvh = synthetic_bvh(n, rng)
    out["bvh_retarget_poses_per_s"] = rate(lambda: bvh_to_library(bvh, rig), n)
    lib = sample_poses(200, 0, rig)
    out["sampler_poses_per_s"] = rate(lambda: sample_poses(200, 1, rig), 200)
    out["sampler_rejection_rate"] = lib.meta["rejected_candidates"] / (lib.meta["rejected_candidates"] + 200)
    out["pose_for_rig_poses_per_s"] = rate(lambda: poses_for_rig(rig, lib), len(lib))
    out["evaluator"] = {}
    for name, parts in EVALUATOR_CHARACTERS.items():
        path = args.assets.joinpath(*parts)
        if not path.is_file():
            out["evaluator"][name] = {"skipped": f"asset not found: {path}"}
            continue
        out["evaluator"][name] = {k: (round(v, 2) if isinstance(v, float) else v)
                                  for k, v in evaluator_figures(path).items()}
    print(json.dumps({k: (round(v, 2) if isinstance(v, float) else v) for k, v in out.items()}, indent=1))


if __name__ == "__main__":
    main()
