"""Synthesis speed: (UDP + RGBA) pairs per second, ours vs pyrender's OffscreenRenderer, same run.

For each test character (procedural characters) and resolution (256, 512 px) both
sides do the same per-pair work a synthesis job does: take a pose, skin the mesh
(the same numpy FK + LBS), place a camera, and produce a colour image and a UDP.

- ours: :class:`conrdata.render.gl_rasterizer.GLRasterizer`, one pass, float32 UDP + RGBA8 +
  depth read back.
- baseline: pyrender as a pyrender user would do it: one OffscreenRenderer; per pose a new
  textured pyrender.Mesh (one primitive per material) for the colour pass and a new mesh
  with the UDP landmarks as vertex colours rendered FLAT for the UDP pass (8-bit,
  multisampled - which is exactly why we do not use it for UDP).

Each side runs in its own fresh process (one GL context, like one worker), so the peak
resident memory reported is per worker. Rounds alternate ours / baseline and the best
round of each side counts; besides wall-clock pairs/s, CPU milliseconds per pair (all
threads, llvmpipe rasterizes on its own) are reported, and the 5x goal is judged on
those, because on a machine shared with other jobs wall-clock ratios swing with the load.
Finally the whole job (pose sampling, render, PNG + UDP encoding, shard writing) is
timed with 1 and 2 local workers.

Real characters (``real``): Gene_light.pmx and Godette_vrm_v4.vrm from the shared assets
(``$CONR_ASSETS`` or ../shared/assets; skipped with the reason when absent) are converted and
rendered the way a synth worker does it (sampled pose -> posed mesh -> one raster pass -> skeleton
labels and torn share), once with the full pose evaluator (:mod:`conrdata.poses.evaluate`, what
``mesh_from_rig`` runs) and once with FK only (``posing="fk-only"``: the same process with
``mesh_from_rig``'s evaluator swapped for :func:`conrdata.rig.model.forward_kinematics`), each in a fresh
process: images/s and milliseconds per stage, i.e. what fidelity costs. Prints one JSON object.

``--speed`` (alone) measures instead every shared character that converts, at ``--sizes``: ours
(evaluator, skinning in the vertex shader, unlit colour + float32 UDP) beside ``ours_before`` (numpy
skinning, synchronous read-back) and pyrender alone (``pyrender``: meshes through trimesh per pose, as
the procedural baseline; ``pyrender_primitives``: textures wrapped once, bare primitives per pose), all
with the same posing; then the whole job on ``--job-character`` (``--job-poses`` poses x 4 views, 4
images per clip: the CLI's defaults) with the ``sequential`` path (numpy skinning, synchronous
read-back, every image posed, labelled and encoded inline), the ``pipelined`` one (today's default) and
the ``baseline``: the sequential path of commit ``--baseline-ref`` (the job before issue 15's last
changes, label measure included), extracted from this checkout with ``git archive``, alternating, for
each of ``--job-workers``. The load average before and after is recorded.

    python benchmarks/synth.py [--pairs 40] [--characters 2] [--sizes 256,512] [--no-baseline]
                               [--real-images 24] [--real-size 256] [--no-real]
    python benchmarks/synth.py --speed [--sizes 256,512] [--speed-pairs 12] [--rounds 2]
                               [--job-poses 16] [--job-workers 1,2] [--baseline-ref 12582e7]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import multiprocessing
import os
import platform
import resource
import sys
import time

os.environ.setdefault("PYOPENGL_PLATFORM", "egl")


def _cpu_seconds() -> float:
    """CPU time of this process, all threads (llvmpipe rasterizes on its own threads)."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def _poses(rig, count, seed):
    from conrdata.poses import poses_for_rig, sample_poses

    lib = sample_poses(count, seed, rig)
    return poses_for_rig(rig, lib)


def _cameras(rig, local, trans, size, seed):
    import numpy as np

    from conrdata.render.camera import random_camera
    from conrdata.rig.model import pose_vertices

    rng = np.random.default_rng(seed)
    return [random_camera(rng, pose_vertices(rig, q, t), width=size, height=size)
            for q, t in zip(local, trans)]


def run_ours(char_seed: int, size: int, pairs: int, warmup: int, anime: bool = False) -> dict:
    from conrdata.render.gl_rasterizer import GLRasterizer
    from conrdata.render.scene import Shading, bind_landmarks, mesh_from_rig
    from conrdata.rig.procedural import build_character

    rig = build_character(char_seed)
    local, trans = _poses(rig, pairs + warmup, 1)
    cams = _cameras(rig, local, trans, size, 2)
    landmarks = bind_landmarks(rig)
    shading = Shading(cel=anime, outline=anime)
    raster = GLRasterizer(size, size)
    fg = 0
    for i in range(warmup):
        raster.render(mesh_from_rig(rig, local[i], trans[i], landmarks=landmarks, key="c"), cams[i], shading)
    start, cpu = time.perf_counter(), _cpu_seconds()
    for i in range(warmup, warmup + pairs):
        mesh = mesh_from_rig(rig, local[i], trans[i], landmarks=landmarks, key="c")
        res = raster.render(mesh, cams[i], shading, depth=False)
        fg += int(res.udp[..., 3].sum())
    seconds, cpu = time.perf_counter() - start, _cpu_seconds() - cpu
    raster.close()
    return {"pairs_per_s": pairs / seconds, "seconds": seconds, "cpu_ms_per_pair": 1000 * cpu / pairs,
            "mean_foreground_px": fg / pairs,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "triangles": int(len(rig.faces)), "vertices": int(len(rig.vertices))}


def run_pyrender(char_seed: int, size: int, pairs: int, warmup: int) -> dict:
    import numpy as np
    import pyrender
    import trimesh
    from PIL import Image

    from conrdata.render.scene import bind_landmarks
    from conrdata.rig.model import pose_vertices
    from conrdata.rig.procedural import build_character

    rig = build_character(char_seed)
    local, trans = _poses(rig, pairs + warmup, 1)
    cams = _cameras(rig, local, trans, size, 2)
    landmarks = bind_landmarks(rig)
    renderer = pyrender.OffscreenRenderer(size, size)
    materials = []
    for mat in rig.materials:
        tex = None if mat.texture is None else Image.fromarray(mat.texture)
        materials.append((mat, tex))

    def one_pair(i):
        verts = pose_vertices(rig, local[i], trans[i])
        cam = cams[i]
        pcam = pyrender.PerspectiveCamera(yfov=cam.yfov, aspectRatio=1.0, znear=cam.znear, zfar=cam.zfar)
        # Colour pass: one textured primitive per material, unlit (flat).
        colour = pyrender.Scene(bg_color=[0, 0, 0, 0], ambient_light=[1, 1, 1])
        for m, (mat, tex) in enumerate(materials):
            faces = rig.faces[rig.face_material == m]
            if not len(faces):
                continue
            visual = trimesh.visual.TextureVisuals(uv=rig.uvs * [1, -1] + [0, 1], image=tex) if tex else None
            tm = trimesh.Trimesh(verts, faces, visual=visual, process=False)
            pm = pyrender.MetallicRoughnessMaterial(baseColorFactor=mat.base_color, baseColorTexture=None,
                                                    doubleSided=mat.double_sided,
                                                    alphaMode=mat.alpha_mode, alphaCutoff=mat.alpha_cutoff)
            mesh = pyrender.Mesh.from_trimesh(tm, material=pm if tex is None else None, smooth=False)
            colour.add(mesh)
        colour.add(pcam, pose=cam.cam_to_world)
        rgba, _ = renderer.render(colour, flags=pyrender.RenderFlags.FLAT | pyrender.RenderFlags.RGBA)
        # UDP pass: landmarks as vertex colours, flat, 8-bit.
        udp_scene = pyrender.Scene(bg_color=[0, 0, 0, 0], ambient_light=[1, 1, 1])
        colours = np.concatenate(
            [(landmarks * 255).astype(np.uint8), np.full((len(verts), 1), 255, np.uint8)], axis=1)
        tm = trimesh.Trimesh(verts, rig.faces, vertex_colors=colours, process=False)
        udp_scene.add(pyrender.Mesh.from_trimesh(tm, smooth=False))
        udp_scene.add(pcam, pose=cam.cam_to_world)
        udp, depth = renderer.render(udp_scene, flags=pyrender.RenderFlags.FLAT | pyrender.RenderFlags.RGBA)
        return rgba, udp, depth

    for i in range(warmup):
        one_pair(i)
    start, cpu = time.perf_counter(), _cpu_seconds()
    for i in range(warmup, warmup + pairs):
        one_pair(i)
    seconds, cpu = time.perf_counter() - start, _cpu_seconds() - cpu
    renderer.delete()
    return {"pairs_per_s": pairs / seconds, "seconds": seconds, "cpu_ms_per_pair": 1000 * cpu / pairs,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def _child(conn, fn_name, args):
    try:
        conn.send(("ok", globals()[fn_name](*args)))
    except Exception as err:  # report, do not hang the parent
        conn.send(("error", f"{type(err).__name__}: {err}"))
    conn.close()


def _child_at(conn, tree, fn_name, args):
    sys.path.insert(0, tree)  # before any conrdata import: this child runs that tree's code
    _child(conn, fn_name, args)


def in_fresh_process(fn_name: str, *args, tree: str | None = None) -> dict:
    """``fn_name(*args)`` in a spawned process; ``tree``: a source tree whose ``conrdata`` the child
    imports instead of the installed one (the baseline at an older commit)."""
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    if tree is None:
        proc = ctx.Process(target=_child, args=(child, fn_name, args))
    else:
        proc = ctx.Process(target=_child_at, args=(child, tree, fn_name, args))
    proc.start()
    status, value = parent.recv()
    proc.join()
    if status != "ok":
        return {"error": value}
    return value


def run_job(size: int, characters: int, poses: int, workers: int = 1) -> dict:
    """The whole job, inline engine: run_synth over already converted procedural characters, with pose
    sampling, PNG and UDP encoding and shard writing included (what `conrdata synth --workers 1`
    sustains once converted)."""
    import tempfile
    from pathlib import Path

    from conrdata.rig.io import save_character
    from conrdata.rig.procedural import build_character
    from conrdata.synth.engines import make_engine
    from conrdata.synth.job import SynthConfig, run_synth

    with tempfile.TemporaryDirectory() as tmp:
        chars = []
        for c in range(characters):
            path = save_character(build_character(c), Path(tmp) / f"c{c}.npz")
            chars.append((f"c{c}", path))
        engine = make_engine("local", workers)
        try:
            # Warm up (GL contexts, shader JIT, imports) so the figure is the steady state.
            warm = SynthConfig(poses_per_character=workers, views=1, resolution=size, images_per_clip=1)
            run_synth(chars[:1], Path(tmp) / "warm", warm, engine, progress=False)
            cfg = SynthConfig(poses_per_character=poses, views=2, resolution=size, images_per_clip=4)
            report = run_synth(chars, Path(tmp) / "out", cfg, engine, progress=False)
        finally:
            engine.close()
        shard_bytes = sum(p.stat().st_size for p in (Path(tmp) / "out" / "shards").glob("*.tar"))
    return {"images_per_s": report.images_per_second, "images": report.images_written,
            "render_share": report.render_seconds / report.seconds,
            "bytes_per_image": shard_bytes / report.images_written,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


REAL_CHARACTERS = ("gene/Gene_light.pmx", "godot-vrm/Godette_vrm_v4.vrm")
POSING = ("evaluator", "fk-only")


def _assets_dir():
    from pathlib import Path

    return Path(os.environ.get("CONR_ASSETS", Path(__file__).resolve().parents[2] / "shared" / "assets"))


def run_real(mesh_rel: str, size: int, images: int, posing: str) -> dict:
    """Per-image synth work on one real character: pose (evaluator or FK only), render, labels."""
    import tempfile
    from pathlib import Path

    import numpy as np

    import conrdata.render.scene as scene
    from conrdata.poses import poses_for_rig, sample_poses
    from conrdata.render.camera import frame_points, random_view
    from conrdata.render.gl_rasterizer import GLRasterizer
    from conrdata.render.labels import image_labels, skeleton_spec
    from conrdata.rig.io import load_character
    from conrdata.rig.model import forward_kinematics
    from conrdata.synth.convert import convert_folder, list_characters
    from conrdata.synth.job import SynthConfig

    if posing == "fk-only":  # the switch: mesh_from_rig poses with plain FK in this process
        scene.evaluate_pose = forward_kinematics
    source = _assets_dir() / "meshes" / mesh_rel
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "in").mkdir()
        os.symlink(source, Path(tmp) / "in" / source.name)
        for extra in source.parent.iterdir():  # textures next to the model
            if extra != source and not (Path(tmp) / "in" / extra.name).exists():
                os.symlink(extra, Path(tmp) / "in" / extra.name)
        convert_folder(Path(tmp) / "in", Path(tmp) / "chars", progress=False)
        chars = list_characters(Path(tmp) / "chars")
        if not chars:
            return {"error": f"{source.name} did not convert"}
        rig = load_character(chars[0][1])
    lib = sample_poses(images + 2, 5, rig)
    local, trans = poses_for_rig(rig, lib)
    spec = skeleton_spec(rig)
    landmarks = scene.bind_landmarks(rig)
    shading = SynthConfig(resolution=size).shading()  # synth's look: cel shading and the outline hull
    raster = GLRasterizer(size, size)
    rng = np.random.default_rng(0)
    stages = {"pose_ms": 0.0, "render_ms": 0.0, "labels_ms": 0.0}
    shares = []
    for i in range(images + 2):
        t0 = time.perf_counter()
        mesh = scene.mesh_from_rig(rig, local[i], trans[i], landmarks=landmarks, key="real")
        t1 = time.perf_counter()
        view = random_view(rng)
        camera = frame_points(mesh.positions, view["yaw"], view["pitch"], width=size, height=size,
                              yfov_deg=view["yfov"], margin=0.08)
        res = raster.render(mesh, camera, shading)
        t2 = time.perf_counter()
        labels = image_labels(spec, mesh.bone_world_r, mesh.bone_world_t, camera, res.udp, res.depth)
        t3 = time.perf_counter()
        if i >= 2:  # two warm-up images (shader compile, texture upload)
            stages["pose_ms"] += 1000 * (t1 - t0)
            stages["render_ms"] += 1000 * (t2 - t1)
            stages["labels_ms"] += 1000 * (t3 - t2)
            shares.append(labels["torn_share"])
    raster.close()
    per_image = {k: v / images for k, v in stages.items()}
    total = sum(per_image.values())
    return {"images_per_s": 1000 / total, **per_image, "images": images,
            "torn_share_mean": float(np.mean(shares)), "torn_share_max": float(np.max(shares)),
            "bones": rig.num_bones, "vertices": int(len(rig.vertices))}


def _best(runs: list[dict]) -> dict:
    ok = [r for r in runs if "pairs_per_s" in r or "images_per_s" in r]
    if not ok:
        return runs[-1]
    key = "pairs_per_s" if "pairs_per_s" in ok[0] else "images_per_s"
    best = dict(max(ok, key=lambda r: r[key]))
    best["rounds"] = [round(r[key], 2) for r in ok]
    if "cpu_ms_per_pair" in ok[0]:
        best["cpu_ms_per_pair"] = min(r["cpu_ms_per_pair"] for r in ok)
    return best


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=40)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--characters", type=int, default=2)
    ap.add_argument("--sizes", default="256,512")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds; the best of each side counts")
    ap.add_argument("--no-baseline", action="store_true")
    ap.add_argument("--no-job", action="store_true")
    ap.add_argument("--real-images", type=int, default=24, help="images per real character and posing")
    ap.add_argument("--real-size", type=int, default=256)
    ap.add_argument("--no-real", action="store_true", help="skip the real characters (shared assets)")
    ap.add_argument("--speed", action="store_true",
                    help="only the full-size real-character figures: ours vs pyrender alone on every shared "
                         "character that converts, and the whole job, sequential vs pipelined path")
    ap.add_argument("--speed-pairs", type=int, default=12, help="pairs per real-character measurement")
    ap.add_argument("--job-poses", type=int, default=16,
                    help="poses (x 4 views, the CLI's default) per whole-job measurement")
    ap.add_argument("--baseline-ref", default=BASELINE_REF,
                    help="git commit whose sequential job path is the 'baseline' (empty: none)")
    ap.add_argument("--job-character", default="gene/Gene_light.pmx")
    ap.add_argument("--job-workers", default="1,2")
    args = ap.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    if args.speed:
        out = {"benchmark": "synth-speed", "python": platform.python_version(), "cpus": os.cpu_count(),
               "load_average_before": os.getloadavg()}
        out |= speed_real_rows(sizes, args.speed_pairs, args.rounds, args.job_poses, args.job_character,
                               [int(w) for w in args.job_workers.split(",")], args.baseline_ref or None)
        out["load_average_after"] = os.getloadavg()
        _round_floats(out)
        print(json.dumps(out, indent=2))
        return
    out = {"benchmark": "synth", "python": platform.python_version(), "cpus": os.cpu_count(),
           "pairs_per_measurement": args.pairs, "rounds": args.rounds,
           "note": "pairs/s = one (UDP float32, RGBA8) pair incl. posing (FK+LBS) and camera; best of the "
                   "alternating rounds; each side in a fresh process (one GL context = one worker); "
                   "ours_matched = unlit textured colour + UDP (the baseline's work), ours_anime adds cel "
                   "shading and the outline hull.",
           "results": []}
    ratios, anime_ratios, cpu_ratios = [], [], []
    for c in range(args.characters):
        for size in sizes:
            row = {"character": f"procedural-{c}", "size": size}
            runs = {"ours_matched": [], "ours_anime": [], "pyrender": []}
            work = (c, size, args.pairs, args.warmup)
            for _ in range(args.rounds):
                runs["ours_matched"].append(in_fresh_process("run_ours", *work, False))
                runs["ours_anime"].append(in_fresh_process("run_ours", *work, True))
                if not args.no_baseline:
                    runs["pyrender"].append(in_fresh_process("run_pyrender", *work))
            for side, rs in runs.items():
                if rs:
                    row[side] = _best(rs)
            base = row.get("pyrender", {}).get("pairs_per_s")
            if base:
                for side, acc in (("ours_matched", ratios), ("ours_anime", anime_ratios)):
                    if "pairs_per_s" in row[side]:
                        row[f"speedup_{side[5:]}"] = row[side]["pairs_per_s"] / base
                        acc.append(row[f"speedup_{side[5:]}"])
                if "cpu_ms_per_pair" in row["ours_matched"]:
                    # CPU time per pair is what a loaded machine does not distort.
                    row["speedup_matched_cpu"] = (row["pyrender"]["cpu_ms_per_pair"]
                                                  / row["ours_matched"]["cpu_ms_per_pair"])
                    cpu_ratios.append(row["speedup_matched_cpu"])
            out["results"].append(row)
            print(f"{row['character']} {size}px done", file=sys.stderr)
    if ratios:
        out["speedup_matched_min"] = min(ratios)
        out["speedup_matched_geomean"] = math.prod(ratios) ** (1 / len(ratios))
        out["speedup_anime_min"] = min(anime_ratios) if anime_ratios else None
        out["speedup_matched_cpu_min"] = min(cpu_ratios) if cpu_ratios else None
        # Judged on CPU time per pair: on a shared machine wall-clock ratios swing with the load.
        out["goal_5x_met"] = bool(cpu_ratios) and min(cpu_ratios) >= 5.0
        out["goal_5x_met_wall_clock"] = min(ratios) >= 5.0
    if not args.no_job:
        out["job_256px_1_worker"] = in_fresh_process("run_job", 256, args.characters, 16, 1)
        out["job_256px_2_workers"] = in_fresh_process("run_job", 256, args.characters, 16, 2)
    if not args.no_real:
        out["real"] = real_rows(args.real_size, args.real_images)
    _round_floats(out)
    print(json.dumps(out, indent=2))


def real_rows(size: int, images: int) -> list[dict]:
    """One row per real character: evaluator and FK-only figures and the cost ratio."""
    rows = []
    for rel in REAL_CHARACTERS:
        row = {"character": rel, "size": size}
        if not (_assets_dir() / "meshes" / rel).exists():
            row["skipped"] = f"shared asset not found: {_assets_dir() / 'meshes' / rel} (set CONR_ASSETS)"
            rows.append(row)
            continue
        for posing in POSING:
            row[posing] = in_fresh_process("run_real", rel, size, images, posing)
        ev, fk = row["evaluator"].get("images_per_s"), row["fk-only"].get("images_per_s")
        if ev and fk:
            row["evaluator_cost"] = fk / ev  # > 1: the evaluator makes an image this much slower
        rows.append(row)
        print(f"{rel} done", file=sys.stderr)
    return rows


# --- real characters at full size: ours vs pyrender alone, and the whole job old vs new path ---------
# (issue 15). Every shared mesh that converts is measured; each measurement in its own fresh process.

JOB_PATHS = ("sequential", "pipelined")
# The code the job's "baseline" runs: its sequential path at this commit, i.e. the job as it was before
# issue 15's last changes (numpy skinning, synchronous read-back, labels and encoding inline, each
# image posed on its own, the label measure before its speed-up). `--baseline-ref` picks another.
BASELINE_REF = "12582e7"


def baseline_tree(ref: str, dest: str) -> str:
    """Extract ``conrdata`` at git commit ``ref`` of this checkout into ``dest``; returns ``dest``.
    Raises RuntimeError with git's message when the checkout or the commit is not there."""
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    archive = subprocess.run(["git", "-C", str(root), "archive", ref, "conrdata"], capture_output=True)
    if archive.returncode != 0:
        raise RuntimeError(archive.stderr.decode(errors="replace").strip() or f"git archive {ref} failed")
    Path(dest).mkdir(parents=True, exist_ok=True)
    unpack = subprocess.run(["tar", "-x", "-C", dest], input=archive.stdout, capture_output=True)
    if unpack.returncode != 0:
        raise RuntimeError(unpack.stderr.decode(errors="replace").strip() or "tar failed")
    return dest


def convert_shared(dest: str) -> list[dict]:
    """Convert every mesh under the shared assets' meshes/ into ``dest``: one row per character
    (id, npz path, source path relative to meshes/), then one row per mesh that did not convert
    (``skipped`` with the reason)."""
    from pathlib import Path

    from conrdata.rig.io import load_character
    from conrdata.synth.convert import convert_folder, list_characters

    meshes = _assets_dir() / "meshes"
    report = convert_folder(meshes, Path(dest), strict=False, progress=False)
    rows = []
    for cid, path in list_characters(Path(dest)):
        rig = load_character(path)
        src = Path(str(rig.meta.get("source") or rig.meta.get("source_path") or path))
        rel = src.relative_to(meshes).as_posix() if src.is_relative_to(meshes) else src.name
        rows.append({"character": rel, "id": cid, "path": str(path), "faces": int(len(rig.faces)),
                     "vertices": int(len(rig.vertices)), "bones": rig.num_bones,
                     "materials": len(rig.materials)})
    rows.sort(key=lambda r: r["character"])
    for s in report.skipped:
        src = Path(str(s.get("path")))
        rel = src.relative_to(meshes).as_posix() if src.is_relative_to(meshes) else src.name
        rows.append({"character": rel, "skipped": str(s.get("reason"))[:200]})
    return rows


def _real_work(path: str, size: int, count: int):
    """(rig, landmarks, posed meshes' inputs, cameras): ``count`` sampled poses and framed views."""
    import numpy as np

    from conrdata.poses import poses_for_rig, sample_poses
    from conrdata.render.camera import frame_points, random_view
    from conrdata.render.scene import bind_landmarks, mesh_from_rig
    from conrdata.rig.io import load_character

    rig = load_character(path)
    local, trans = poses_for_rig(rig, sample_poses(count, 5, rig))
    landmarks = bind_landmarks(rig)
    rng = np.random.default_rng(3)
    cams = []
    for i in range(count):
        view = random_view(rng)
        pts = mesh_from_rig(rig, local[i], trans[i], landmarks=landmarks).positions
        cams.append(frame_points(pts, view["yaw"], view["pitch"], width=size, height=size,
                                 yfov_deg=view["yfov"], margin=0.08))
    return rig, landmarks, local, trans, cams


def run_ours_real(path: str, size: int, pairs: int, warmup: int, new: bool = True) -> dict:
    """Ours on a real character, the baseline's work: pose (evaluator + skinning), unlit textured colour
    and float32 UDP, read back. ``new=False``: numpy skinning and synchronous read-back (before issue 15)."""
    from conrdata.render.gl_rasterizer import GLRasterizer
    from conrdata.render.scene import Shading, mesh_from_rig

    rig, landmarks, local, trans, cams = _real_work(path, size, pairs + warmup)
    raster = GLRasterizer(size, size)
    raster.read_with_pbo = new
    shading = Shading()
    fg = 0
    start = cpu = None
    for i in range(pairs + warmup):
        if i == warmup:
            start, cpu = time.perf_counter(), _cpu_seconds()
        mesh = mesh_from_rig(rig, local[i], trans[i], landmarks=landmarks, key="real", gpu_skinning=new)
        res = raster.render(mesh, cams[i], shading, depth=False)
        fg += int(res.udp[..., 3].sum()) if i >= warmup else 0
    seconds, cpu = time.perf_counter() - start, _cpu_seconds() - cpu
    raster.close()
    return {"pairs_per_s": pairs / seconds, "cpu_ms_per_pair": 1000 * cpu / pairs,
            "mean_foreground_px": fg / pairs,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def run_pyrender_real(path: str, size: int, pairs: int, warmup: int, style: str = "trimesh") -> dict:
    """pyrender alone on a real character: per pose the same posing as ours (evaluator + numpy
    skinning), an unlit textured colour pass (one primitive per material) and a flat vertex-colour UDP
    pass (8-bit, multisampled). ``style`` "trimesh" builds each pose's meshes through trimesh, as the
    procedural baseline (:func:`run_pyrender`) does; "primitives" is a careful pyrender user: textures
    and materials wrapped once, bare primitives per pose."""
    import numpy as np
    import pyrender
    import trimesh
    from PIL import Image

    from conrdata.render.scene import mesh_from_rig

    rig, landmarks, local, trans, cams = _real_work(path, size, pairs + warmup)
    renderer = pyrender.OffscreenRenderer(size, size)
    materials = []
    for mat in rig.materials:
        tex = None if mat.texture is None else pyrender.Texture(source=mat.texture, source_channels="RGBA")
        materials.append(pyrender.MetallicRoughnessMaterial(
            baseColorFactor=np.asarray(mat.base_color, np.float32), baseColorTexture=tex,
            doubleSided=mat.double_sided, alphaMode=mat.alpha_mode, alphaCutoff=mat.alpha_cutoff))
    groups = [(m, np.ascontiguousarray(rig.faces[rig.face_material == m])) for m in range(len(rig.materials))]
    groups = [(m, f) for m, f in groups if len(f)]
    uv = np.asarray(rig.uvs, np.float32) * [1, -1] + [0, 1]
    colours = np.concatenate([landmarks, np.ones((len(landmarks), 1), np.float32)], axis=1)
    images = [None if mat.texture is None else Image.fromarray(mat.texture) for mat in rig.materials]
    colours8 = (colours * 255).astype(np.uint8)
    flags = pyrender.RenderFlags.FLAT | pyrender.RenderFlags.RGBA

    def colour_meshes(verts):
        if style == "primitives":
            return [pyrender.Mesh([pyrender.Primitive(positions=verts, texcoord_0=uv, indices=f,
                                                      material=materials[m]) for m, f in groups])]
        out = []
        for m, f in groups:
            visual = None if images[m] is None else trimesh.visual.TextureVisuals(uv=uv, image=images[m])
            tm = trimesh.Trimesh(verts, f, visual=visual, process=False)
            out.append(pyrender.Mesh.from_trimesh(tm, material=materials[m] if visual is None else None,
                                                  smooth=False))
        return out

    def udp_mesh(verts):
        if style == "primitives":
            return pyrender.Mesh([pyrender.Primitive(positions=verts, color_0=colours, indices=rig.faces)])
        tm = trimesh.Trimesh(verts, rig.faces, vertex_colors=colours8, process=False)
        return pyrender.Mesh.from_trimesh(tm, smooth=False)

    start = cpu = None
    for i in range(pairs + warmup):
        if i == warmup:
            start, cpu = time.perf_counter(), _cpu_seconds()
        verts = mesh_from_rig(rig, local[i], trans[i], landmarks=landmarks).positions
        cam = cams[i]
        pcam = pyrender.PerspectiveCamera(yfov=cam.yfov, aspectRatio=1.0, znear=cam.znear, zfar=cam.zfar)
        colour = pyrender.Scene(bg_color=[0, 0, 0, 0], ambient_light=[1, 1, 1])
        for mesh in colour_meshes(verts):
            colour.add(mesh)
        colour.add(pcam, pose=cam.cam_to_world)
        renderer.render(colour, flags=flags)
        udp_scene = pyrender.Scene(bg_color=[0, 0, 0, 0], ambient_light=[1, 1, 1])
        udp_scene.add(udp_mesh(verts))
        udp_scene.add(pcam, pose=cam.cam_to_world)
        renderer.render(udp_scene, flags=flags)
    seconds, cpu = time.perf_counter() - start, _cpu_seconds() - cpu
    renderer.delete()
    return {"pairs_per_s": pairs / seconds, "cpu_ms_per_pair": 1000 * cpu / pairs,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def run_job_real(cid: str, path: str, size: int, poses: int, workers: int, job_path: str,
                 views: int = 4) -> dict:
    """The whole job (pose, render, labels, encode, write) on one converted real character, with the
    CLI's clip settings (``views`` views per pose, 4 images per clip).

    ``job_path`` "sequential" is the path before issue 15 (numpy skinning, synchronous read-back,
    each image posed, labelled and encoded after its render on the same thread, default BLAS
    threads); "pipelined" is today's default (skinning in the vertex shader, PBO read-back, each pose
    posed once for its views, labels and encoding on the worker's thread pool overlapping the next
    views and the next clip, one BLAS thread). Both run today's label and codec functions."""
    import tempfile
    from pathlib import Path

    import conrdata
    from conrdata.synth.engines import make_engine
    from conrdata.synth.job import SynthConfig, run_synth

    new = job_path == "pipelined"
    # A baseline tree (an older commit) may lack the newer switches: pass those its config has.
    known = {f.name for f in dataclasses.fields(SynthConfig)}
    switches = {k: new for k in ("overlap", "gpu_skinning", "reuse_poses") if k in known}
    chars = [(cid, Path(path))]
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine("local", workers) if workers > 1 else None
        try:
            warm = SynthConfig(poses_per_character=2 * workers, views=1, resolution=size, images_per_clip=2,
                               **switches)
            run_synth(chars, Path(tmp) / "warm", warm, engine, progress=False)
            cfg = SynthConfig(poses_per_character=poses, views=views, resolution=size, **switches)
            wall, cpu, own = time.perf_counter(), _cpu_seconds(), time.thread_time()
            report = run_synth(chars, Path(tmp) / "out", cfg, engine, progress=False)
            wall, cpu, own = time.perf_counter() - wall, _cpu_seconds() - cpu, time.thread_time() - own
        finally:
            if engine is not None:
                engine.close()
    row = {"images_per_s": report.images_per_second, "images": report.images_written,
           "images_refused": report.images_refused, "wall_s": wall,
           "code": str(Path(conrdata.__file__).parent.parent)}
    if workers == 1:  # the worker is this process: its CPU time is the job's
        n = max(1, report.images_written)
        row["cpu_ms_per_image"] = 1000 * cpu / n
        row["cpu_utilisation"] = cpu / wall
        # The GL thread's own CPU per image (this thread; llvmpipe's raster threads and the encoder pool
        # are not in it): with a core per stage, the pipelined worker's pace is set by the slower stage.
        row["gl_thread_cpu_ms_per_image"] = 1000 * own / n
    return row


def speed_real_rows(sizes: list[int], pairs: int, rounds: int, job_poses: int, job_character: str,
                    job_workers: list[int], baseline_ref: str | None = BASELINE_REF) -> dict:
    """Every shared character that converts: ours vs pyrender alone at each size (alternating rounds,
    best of each side; ratios of wall-clock and of CPU time per pair), then the whole job on
    ``job_character`` with the sequential and the pipelined path and, when ``baseline_ref`` can be
    extracted from this checkout, that commit's sequential path ("baseline"), alternating, for each
    worker count."""
    import os
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        tree, tree_error = None, None
        if baseline_ref:
            try:
                tree = baseline_tree(baseline_ref, os.path.join(tmp, "baseline"))
            except (RuntimeError, OSError) as err:
                tree_error = str(err)[:200]
        chars = in_fresh_process("convert_shared", os.path.join(tmp, "characters"))
        if "error" in chars:
            return {"error": chars["error"]}
        rows, wall_ratios, cpu_ratios = [], [], []
        for ch in chars:
            if "skipped" in ch:
                rows.append(ch)
                continue
            for size in sizes:
                row = {k: ch[k] for k in ("character", "faces", "vertices", "bones", "materials")}
                row["size"] = size
                runs = {"ours": [], "ours_before": [], "pyrender": [], "pyrender_primitives": []}
                for _ in range(rounds):
                    runs["ours"].append(in_fresh_process("run_ours_real", ch["path"], size, pairs, 2, True))
                    runs["ours_before"].append(in_fresh_process("run_ours_real", ch["path"], size, pairs, 2,
                                                                False))
                    runs["pyrender"].append(in_fresh_process("run_pyrender_real", ch["path"], size, pairs, 2))
                    runs["pyrender_primitives"].append(
                        in_fresh_process("run_pyrender_real", ch["path"], size, pairs, 2, "primitives"))
                for side, rs in runs.items():
                    row[side] = _best(rs)
                if "pairs_per_s" in row["ours"] and "pairs_per_s" in row["pyrender"]:
                    row["speedup"] = row["ours"]["pairs_per_s"] / row["pyrender"]["pairs_per_s"]
                    row["speedup_cpu"] = row["pyrender"]["cpu_ms_per_pair"] / row["ours"]["cpu_ms_per_pair"]
                    wall_ratios.append(row["speedup"])
                    cpu_ratios.append(row["speedup_cpu"])
                    if "pairs_per_s" in row["ours_before"]:
                        before = row["ours_before"]["pairs_per_s"]
                        row["speedup_before"] = before / row["pyrender"]["pairs_per_s"]
                    if "pairs_per_s" in row["pyrender_primitives"]:
                        careful = row["pyrender_primitives"]["pairs_per_s"]
                        row["speedup_vs_primitives"] = row["ours"]["pairs_per_s"] / careful
                rows.append(row)
                print(f"{ch['character']} {size}px: ours vs pyrender done", file=sys.stderr)
        out = {"characters": rows}
        if wall_ratios:
            out["speedup_min"], out["speedup_cpu_min"] = min(wall_ratios), min(cpu_ratios)
            out["goal_5x_met_wall_clock"] = min(wall_ratios) >= 5.0
            out["goal_5x_met_cpu"] = min(cpu_ratios) >= 5.0
        job = [c for c in chars if c["character"] == job_character and "skipped" not in c]
        paths = JOB_PATHS + (("baseline",) if tree else ())
        jobs = []
        for ch in job:
            for size in sizes:
                for workers in job_workers:
                    entry = {"character": ch["character"], "size": size, "workers": workers,
                             "images": job_poses * 4}
                    runs = {p: [] for p in paths}
                    for _ in range(rounds):
                        for p in paths:
                            work = (ch["id"], ch["path"], size, job_poses, workers)
                            if p == "baseline":
                                runs[p].append(
                                    in_fresh_process("run_job_real", *work, "sequential", tree=tree))
                            else:
                                runs[p].append(in_fresh_process("run_job_real", *work, p))
                    for p in paths:
                        entry[p] = _best(runs[p])
                    new = entry["pipelined"].get("images_per_s")
                    for p, key in (("sequential", "speedup"), ("baseline", "speedup_vs_baseline")):
                        before = entry.get(p, {}).get("images_per_s")
                        if before and new:
                            entry[key] = new / before
                    if "cpu_ms_per_image" in entry["sequential"] and "cpu_ms_per_image" in entry["pipelined"]:
                        entry["cpu_ms_per_image_ratio"] = (entry["sequential"]["cpu_ms_per_image"]
                                                           / entry["pipelined"]["cpu_ms_per_image"])
                    jobs.append(entry)
                    print(f"job {ch['character']} {size}px {workers} worker(s) done", file=sys.stderr)
        out["job"] = jobs
        out["baseline_ref"] = baseline_ref if tree else None
        if tree_error:
            out["baseline_skipped"] = f"cannot extract commit {baseline_ref}: {tree_error}"
        one = [j for j in jobs if j["workers"] == 1 and j["size"] == 512 and "speedup_vs_baseline" in j]
        if one:
            out["goal_2x_job_met"] = all(j["speedup_vs_baseline"] >= 2.0 for j in one)
        if not job:
            out["job_skipped"] = f"{job_character} did not convert or is not in the shared assets"
    return out


def _round_floats(obj):
    if isinstance(obj, dict):
        for k, v in obj.items():
            if isinstance(v, float):
                obj[k] = round(v, 3)
            else:
                _round_floats(v)
    elif isinstance(obj, list):
        for v in obj:
            _round_floats(v)


if __name__ == "__main__":
    main()
