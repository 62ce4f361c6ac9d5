"""Does training make the renderer draw the character from its sheet? Model against baselines, on CPU.

1. Dataset (cached: reused when ``--data`` already holds one made with the same settings):
   ``--characters`` procedural characters (``conrdata make-character``; hair, top, skirt, legwear, shoes
   and skin colours drawn independently per seed), joint-limited random poses (``conrdata poses
   --sample``), ``conrdata synth`` at ``--resolution`` px, and a per-character split with the first
   ``--val-characters`` (sorted ids) pinned to val (``conrdata split --pin``).
2. Training: ``conrmodel train`` with ``--preset`` for a fixed number of steps (``--steps``, so the
   result does not depend on how busy the CPU is; the wall time is printed too) at ``--size`` px.
3. Evaluation: ``conrmodel eval`` on the val characters, n = 1 and n = 4, with the baselines of
   :mod:`conrmodel.baselines` (empty, mean-colour silhouette, nearest reference).

Prints one JSON object: the budget, the wall times, every metric of the model and the baselines, and the
goals of issue 16 (at n = 4 foreground and chroma L1 >= 25 % below the mean-colour silhouette's, and
n = 4 >= 10 % below n = 1 on foreground L1) with whether they are met.

    OMP_NUM_THREADS=1 python benchmarks/learning.py --data /tmp/conr-learning --steps 1500
    python benchmarks/learning.py --device cuda --resolution 192 --size 128 --data /tmp/conr-learning-192
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA_VERSION = 2  # bump when the dataset recipe changes (procedural colours, synth settings)


def _run(cmd: list, quiet: bool = False) -> None:
    cmd = [str(c) for c in cmd]
    print("$ " + " ".join(shlex.quote(c) for c in cmd), file=sys.stderr, flush=True)
    env = {**os.environ, "PYOPENGL_PLATFORM": os.environ.get("PYOPENGL_PLATFORM", "egl")}
    done = subprocess.run(cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL if quiet else sys.stderr)
    if done.returncode != 0:
        sys.exit(f"error: command failed ({done.returncode}): {' '.join(cmd)}")


def dataset_recipe(args) -> dict:
    return {
        "version": DATA_VERSION,
        "characters": args.characters,
        "val_characters": args.val_characters,
        "seed": args.data_seed,
        "poses": args.poses,
        "views": args.views,
        "images_per_clip": args.images_per_clip,
        "resolution": args.resolution,
    }


def build_dataset(data: Path, args) -> tuple[Path, float]:
    """The dataset folder (``data/dataset``) for ``args``, built unless a matching one is cached."""
    recipe = dataset_recipe(args)
    stamp = data / "recipe.json"
    out = data / "dataset"
    if stamp.exists() and json.loads(stamp.read_text()) == recipe:
        return out, 0.0
    t0 = time.perf_counter()
    py = sys.executable
    data.mkdir(parents=True, exist_ok=True)
    stamp.unlink(missing_ok=True)
    for sub in ("meshes", "dataset"):
        if (data / sub).exists():
            import shutil

            shutil.rmtree(data / sub)
    _run([py, "-m", "conrdata", "make-character", "--count", args.characters, "--seed", args.data_seed,
          data / "meshes"], quiet=True)
    _run([py, "-m", "conrdata", "poses", data / "poses.npz", "--sample", args.poses * 4,
          "--seed", args.data_seed, "-q"], quiet=True)
    _run([py, "-m", "conrdata", "synth", data / "meshes", out, "--poses", data / "poses.npz",
          "-p", args.poses, "-v", args.views, "-k", args.images_per_clip, "-r", args.resolution,
          "-s", args.data_seed, "-w", args.synth_workers], quiet=True)
    import pyarrow.parquet as pq

    ids = sorted(pq.read_table(out / "manifests" / "characters.parquet").column("id").to_pylist())
    pins = data / "val_pins.csv"
    pins.write_text("character_id,split\n" + "".join(
        f"{c},{'val' if i < args.val_characters else 'train'}\n" for i, c in enumerate(ids)))
    _run([py, "-m", "conrdata", "split", out, "--pin", pins], quiet=True)
    stamp.write_text(json.dumps(recipe))
    return out, time.perf_counter() - t0


def goals(views: dict) -> dict:
    """Issue 16's three goals from an eval result's ``views`` (needs n1 and n4)."""
    n1, n4 = views["n1"], views["n4"]
    model4, sil4 = n4["model"], n4["baselines"]["silhouette"]
    out = {
        "fg_l1_vs_silhouette_n4": 1.0 - model4["fg_l1"] / sil4["fg_l1"],
        "chroma_l1_vs_silhouette_n4": 1.0 - model4["chroma_l1"] / sil4["chroma_l1"],
        "fg_l1_n4_vs_n1": 1.0 - model4["fg_l1"] / n1["model"]["fg_l1"],
    }
    out = {k: round(v, 4) for k, v in out.items()}
    out["met"] = (out["fg_l1_vs_silhouette_n4"] >= 0.25 and out["chroma_l1_vs_silhouette_n4"] >= 0.25
                  and out["fg_l1_n4_vs_n1"] >= 0.10)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=os.environ.get("CONR_LEARNING_DATA", "/tmp/conr-learning"),
                    help="dataset cache folder (reused when its recipe matches)")
    ap.add_argument("--run", help="training run folder (default DATA/runs/PRESET-STEPS-SIZE)")
    ap.add_argument("--characters", type=int, default=72)
    ap.add_argument("--val-characters", type=int, default=8)
    ap.add_argument("--data-seed", type=int, default=1000)
    ap.add_argument("--poses", type=int, default=12, help="poses per character")
    ap.add_argument("--views", type=int, default=2, help="camera views per pose")
    ap.add_argument("--images-per-clip", type=int, default=8)
    ap.add_argument("--resolution", type=int, default=96, help="synthesis resolution (px)")
    ap.add_argument("--synth-workers", type=int, default=2)
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--steps", type=int, default=1500, help="the training budget, in optimiser steps")
    ap.add_argument("--size", type=int, default=64, help="training and evaluation crop (px)")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    ap.add_argument("--workers", type=int, default=1, help="data loader processes")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--set", dest="sets", action="append", default=[], help="extra conrmodel train --set")
    ap.add_argument("--eval-clips", type=int, default=None, help="at most this many val clips")
    ap.add_argument("--only-data", action="store_true", help="build the dataset and stop")
    args = ap.parse_args(argv)

    data = Path(args.data).resolve()
    dataset, data_s = build_dataset(data, args)
    if args.only_data:
        print(json.dumps({"dataset": str(dataset), "build_s": round(data_s, 1)}))
        return 0
    tag = hashlib.sha256(json.dumps([args.device, *args.sets]).encode()).hexdigest()[:8]
    run = Path(args.run) if args.run else data / "runs" / f"{args.preset}-{args.steps}-{args.size}-{tag}"
    py = sys.executable
    train_cmd = [py, "-m", "conrmodel", "train", "--shards", dataset / "shards" / "train-*.tar",
                 "--out", run, "--preset", args.preset, "--steps", args.steps, "--no-progress",
                 "--set", f"data.size={args.size}", "--set", f"train.threads={args.threads}",
                 "--set", f"data.workers={args.workers}", "--set", f"train.device={args.device}",
                 "--set", "train.image_every=0"]
    for s in args.sets:
        train_cmd += ["--set", s]
    if (run / "checkpoints" / "latest.pt").exists():
        train_cmd.append("--resume")
    t0 = time.perf_counter()
    _run(train_cmd)
    train_s = time.perf_counter() - t0
    summary = json.loads((run / "summary.json").read_text())

    t0 = time.perf_counter()
    eval_cmd = [py, "-m", "conrmodel", "eval", "--weights", run, "--shards", dataset / "shards" / "val-*.tar",
                "--out", run / "eval", "--views", "1,4", "--size", args.size, "--device", args.device]
    if args.eval_clips:
        eval_cmd += ["--max-clips", args.eval_clips]
    _run(eval_cmd, quiet=True)
    eval_s = time.perf_counter() - t0
    metrics = json.loads(sorted((run / "eval").glob("metrics-*.json"))[-1].read_text())

    out = {
        "budget": {"preset": args.preset, "steps": args.steps, "size": args.size, "threads": args.threads,
                   "device": args.device, "extra_sets": args.sets},
        "dataset": {**dataset_recipe(args), "path": str(dataset), "build_s": round(data_s, 1)},
        "wall_s": {"train": round(train_s, 1), "eval": round(eval_s, 1)},
        "train_it_per_s": round(float(summary.get("it_per_s", 0.0)), 3),
        "train_samples_per_s": None,
        "eval": metrics,
        "goals": goals(metrics["views"]),
    }
    if summary.get("it_per_s"):
        import yaml

        batch = yaml.safe_load((run / "config.yaml").read_text())["data"]["batch_size"]
        out["train_samples_per_s"] = round(float(summary["it_per_s"]) * batch, 2)
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
