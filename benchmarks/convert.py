"""Benchmark `conrdata convert`: seconds to convert each test character, milliseconds to skin one pose.

Test characters are the procedural ones written as GLB (T-pose, Blender-like bone axes), as VRM 0.x
and VRM 1.0, plus every model under $CONR_ASSETS / ../shared/assets when that folder exists.
Baselines in the same run: pygltflib's own parse of the same GLB versus our GltfDocument; loading a
character file with raw versus PNG-encoded textures.

Prints one JSON object. Usage: python benchmarks/convert.py [--repeat N]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from conrdata.formats.gltf import GltfDocument  # noqa: E402
from conrdata.formats.gltf_writer import rig_to_glb  # noqa: E402
from conrdata.rig.io import load_character, save_character  # noqa: E402
from conrdata.rig.model import forward_kinematics, pose_vertices, skin, skinning_matrices  # noqa: E402
from conrdata.rig.procedural import build_character, tpose, write_character_glb  # noqa: E402
from conrdata.synth.convert import convert_file, find_models  # noqa: E402


def timed(fn, repeat: int) -> float:
    """Median seconds of ``repeat`` calls."""
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return statistics.median(out)


def random_pose(num_bones: int, rng: np.random.Generator, deg: float = 25.0) -> np.ndarray:
    axis = rng.normal(size=(num_bones, 3))
    axis /= np.linalg.norm(axis, axis=1, keepdims=True)
    ang = np.radians(rng.uniform(-deg, deg, size=(num_bones, 1))) / 2
    return np.concatenate([axis * np.sin(ang), np.cos(ang)], axis=1)


def measure(f: Path, out_dir: Path, repeat: int, rng: np.random.Generator) -> dict:
    """Convert one file (median of ``repeat``) and time skinning one random pose of the result."""
    try:
        secs = timed(lambda: convert_file(f, out_dir), repeat)
    except Exception as err:  # a real asset that does not convert is reported, not fatal
        return {"file": f.name, "error": str(err)}
    row = convert_file(f, out_dir)
    rig = load_character(out_dir / row["path"])
    q = random_pose(rig.num_bones, rng)
    r, t = forward_kinematics(rig, q)
    m = skinning_matrices(rig, r, t)
    return {
        "file": f.name, "format": row["format"], "vertices": row["vertices"], "faces": row["faces"],
        "bones": row["bones"], "convert_s": round(secs, 4),
        "skin_pose_ms": round(timed(lambda: pose_vertices(rig, q), 20) * 1e3, 3),
        "fk_ms": round(timed(lambda: forward_kinematics(rig, q), 20) * 1e3, 3),
        "lbs_only_ms": round(timed(lambda: skin(rig, m), 20) * 1e3, 3),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    work = Path(tempfile.mkdtemp(prefix="bench_convert_"))
    meshes = work / "meshes"
    meshes.mkdir()
    for s in range(3):
        write_character_glb(meshes / f"procedural_{s}.glb", seed=s)
    rig_to_glb(tpose(build_character(3)), meshes / "procedural_3_vrm0.vrm", vrm="0",
               node_name=lambda n: "J_Bip_" + n)
    rig_to_glb(tpose(build_character(4)), meshes / "procedural_4_vrm1.vrm", vrm="1", bone_axes="along_bone")
    files = find_models(meshes)
    assets = Path(os.environ.get("CONR_ASSETS", Path(__file__).resolve().parents[2] / "shared" / "assets"))
    real = find_models(assets) if assets.is_dir() else []

    convert_file(files[0], work / "warmup")  # imports, caches
    per_char = [measure(f, work / "chars", args.repeat, rng) for f in files + real]

    import pygltflib

    glb = files[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pyg = timed(lambda: pygltflib.GLTF2.load(str(glb)), 5)
    ours = timed(lambda: GltfDocument.open(glb), 5)
    rig = build_character(0)
    raw = save_character(rig, work / "raw.npz")
    png = save_character(rig, work / "png.npz", png_textures=True)
    ok = [c for c in per_char if "convert_s" in c]
    result = {
        "benchmark": "convert",
        "characters": per_char,
        "real_assets": len(real),
        "real_assets_note": "" if real else f"no real assets at {assets}; procedural characters only",
        "mean_convert_s": round(statistics.mean(c["convert_s"] for c in ok), 4),
        "mean_skin_pose_ms": round(statistics.mean(c["skin_pose_ms"] for c in ok), 3),
        "baseline_parse_ms": {"pygltflib_GLTF2_load": round(pyg * 1e3, 3),
                              "GltfDocument_open": round(ours * 1e3, 3)},
        "character_load_ms": {"raw_textures": round(timed(lambda: load_character(raw), 10) * 1e3, 3),
                              "png_textures": round(timed(lambda: load_character(png), 10) * 1e3, 3),
                              "raw_bytes": raw.stat().st_size, "png_bytes": png.stat().st_size},
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
