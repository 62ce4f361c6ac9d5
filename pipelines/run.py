"""Run a pipeline config end to end: characters -> poses -> synthesis -> checks -> matting -> training
-> evaluation -> animation. Every step is the same CLI command a user would type, printed before it runs.

    python -m pipelines.run pipelines/demo.yaml                       # what `make demo` does
    python -m pipelines.run pipelines/demo.yaml --meshes my_models/   # the same on your own VRM/PMX/glTF
    python -m pipelines.run pipelines/demo.yaml --smallest            # the CI-sized run (a test runs it)
    python -m pipelines.run pipelines/paper.yaml --until eval          # stop after a step

Steps are skipped when their section of the config is null. The output folder gets a marker file; a rerun
into a folder with that marker starts it afresh (a folder without it is never deleted).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import yaml

from conrdata.synth.convert import list_characters
from conrmodel.inference.video import write_video
from pipelines.animation import write_animation_inputs
from pipelines.drawn import composite_renders
from pipelines.motion import write_demo_vmd

STEPS = ("characters", "poses", "synth", "split", "check", "matte", "train", "eval", "animation")
MARKER = ".conr-pipeline"

#: --smallest: the least work that still runs every step (the CI test).
SMALLEST = {
    "characters": {"count": 2},
    "split": {"val_characters": 1},
    "motion": {"fps": 5, "max_poses": 6},
    "poses": {"sample": 6},
    "synth": {"resolution": 64, "views": 1, "poses_per_character": 6, "images_per_clip": 6, "workers": 1},
    "matte": {"images": 3, "size": 64},
    "train": {"steps": 12},
    "eval": {"max_clips": 2},
    "animation": {"frames": 4, "size": 64, "sheet_views": 2},
}


class StepFailed(RuntimeError):
    pass


def load_config(path: str | os.PathLike, smallest: bool = False) -> dict:
    config = yaml.safe_load(Path(path).read_text())
    if smallest:
        for section, values in SMALLEST.items():
            if config.get(section) is not None:
                config[section].update(values)
    return config


def _run(cmd: list[str], log: list[str]) -> None:
    line = " ".join(shlex.quote(str(c)) for c in cmd)
    print(f"\n$ {line}", flush=True)
    log.append(line)
    started = time.perf_counter()
    done = subprocess.run([str(c) for c in cmd], env={**os.environ, "PYOPENGL_PLATFORM": "egl"})
    if done.returncode != 0:
        raise StepFailed(f"command failed with exit code {done.returncode}: {line}")
    print(f"  ({time.perf_counter() - started:.1f} s)", flush=True)


def _conrdata(*args) -> list[str]:
    return [sys.executable, "-m", "conrdata", *map(str, args)]


def _conrmodel(*args, launcher: str | None = None) -> list[str]:
    prefix = shlex.split(launcher) if launcher else [sys.executable]
    return [*prefix, "-m", "conrmodel", *map(str, args)]


class Pipeline:
    """One run of a config into ``out``; ``artefacts`` maps a description to the file it made."""

    def __init__(self, config: dict, out: Path, meshes: Path | None):
        self.config = config
        self.out = out
        self.meshes = meshes or (Path(config["meshes"]) if config.get("meshes") else out / "meshes")
        self.data = out / "data"
        self.run_dir = out / "run"
        self.poses = out / "poses.npz"
        self.commands: list[str] = []
        self.artefacts: dict[str, Path] = {}
        self.verdict: str | None = None  # the model against the mean-colour silhouette, from eval

    # --- steps -------------------------------------------------------------------------------------

    def characters(self) -> None:
        spec = self.config.get("characters")
        if spec is None or self.config.get("meshes_given"):
            return
        _run(_conrdata("make-character", "--count", spec["count"], "--seed", spec["seed"], self.meshes),
             self.commands)
        self.artefacts["procedural characters (GLB)"] = self.meshes

    def poses_step(self) -> None:
        motion, sampler = self.config["motion"], self.config["poses"]
        args = []
        if motion.get("demo_vmd"):
            motions = self.out / "motions"
            write_demo_vmd(motions / "demo_dance.vmd")
            self.artefacts["demo motion (VMD)"] = motions / "demo_dance.vmd"
            args.append(motions)
        elif motion.get("dir"):
            args.append(motion["dir"])
        args += [self.poses, "--fps", motion["fps"], "--max-poses", motion["max_poses"],
                 "--seed", sampler["seed"], "--preview", self.out / "poses.png"]
        if sampler.get("sample"):
            args += ["--sample", sampler["sample"]]
        _run(_conrdata("poses", *args), self.commands)
        self.artefacts["pose library"] = self.poses
        self.artefacts["pose preview strip"] = self.out / "poses.png"

    def synth(self) -> None:
        s = self.config["synth"]
        args = [self.meshes, self.data, "--poses", self.poses, "-p", s["poses_per_character"],
                "-v", s["views"], "-k", s["images_per_clip"], "-r", s["resolution"], "-s", s["seed"],
                "-w", s["workers"], "--engine", s["engine"]]
        if s.get("address"):
            args += ["--address", s["address"]]
        _run(_conrdata("synth", *args), self.commands)
        self.artefacts["training shards"] = self.data / "shards"
        self.artefacts["manifests"] = self.data / "manifests" / "clips.parquet"

    def split(self) -> None:
        n = (self.config.get("split") or {}).get("val_characters", 0)
        if not n:
            return
        ids = sorted(pq.read_table(self.data / "manifests" / "characters.parquet").column("id").to_pylist())
        pins = self.out / "val_pins.csv"
        pins.write_text("character_id,split\n" + "".join(f"{c},val\n" for c in ids[:n]))
        _run(_conrdata("split", self.data, "--pin", pins), self.commands)

    def check(self) -> None:
        _run(_conrdata("validate", self.data, "--report", self.out / "validate.json"), self.commands)
        _run(_conrdata("inspect", self.data), self.commands)
        _run(_conrdata("preview", self.data, "--out", self.out / "preview.png", "--html",
                       self.out / "preview.html", "--clips", 6), self.commands)
        self.artefacts["validation report"] = self.out / "validate.json"
        self.artefacts["preview sheet"] = self.out / "preview.png"
        self.artefacts["preview page"] = self.out / "preview.html"

    def matte(self) -> None:
        spec = self.config.get("matte")
        if spec is None:
            return
        drawn = self.out / "drawn"
        composite_renders(self.data, drawn, count=spec["images"], size=spec["size"])
        _run(_conrdata("matte", drawn, self.out / "matted", "-j", 1), self.commands)
        _run(_conrdata("pack-drawn", self.out / "matted", self.out / "drawn-data"), self.commands)
        _run(_conrdata("validate", self.out / "drawn-data"), self.commands)
        self.artefacts["drawings on backgrounds"] = drawn
        self.artefacts["matted RGBA + report"] = self.out / "matted" / "matte_report.csv"
        self.artefacts["unlabeled drawn shards"] = self.out / "drawn-data" / "shards"

    def train(self) -> None:
        t = self.config["train"]
        args = ["train", "--shards", self._shards("train"), "--out", self.run_dir, "--preset", t["preset"],
                "--steps", t["steps"], "--no-progress"]
        if self._has_split("val"):
            args += ["--val-shards", self._shards("val")]
        for item in t.get("set") or []:
            args += ["--set", item]
        if (self.run_dir / "checkpoints" / "latest.pt").exists():
            args.append("--resume")
        _run(_conrmodel(*args, launcher=t.get("launcher")), self.commands)
        self.artefacts["checkpoint"] = self.run_dir / "checkpoints" / "latest.pt"
        self.artefacts["training log"] = self.run_dir / "log.jsonl"

    def eval(self) -> None:
        e = self.config["eval"]
        split = "val" if self._has_split("val") else "train"
        args = ["eval", "--weights", self.run_dir, "--shards", self._shards(split),
                "--out", self.out / "eval", "--views", e["views"]]
        if e.get("max_clips"):
            args += ["--max-clips", e["max_clips"]]
        _run(_conrmodel(*args), self.commands)
        self.artefacts["evaluation metrics"] = next(iter(sorted((self.out / "eval").glob("metrics-*.json"))),
                                                    self.out / "eval" / "metrics.json")
        self.artefacts["evaluation grid"] = next(iter(sorted((self.out / "eval").glob("grid-*.png"))),
                                                 self.out / "eval" / "grid.png")
        self.verdict = learning_verdict(self.artefacts["evaluation metrics"], split)

    def animation(self) -> None:
        a = self.config.get("animation")
        if a is None:
            return
        table = pq.read_table(self.data / "manifests" / "characters.parquet").to_pylist()
        val = sorted(r["id"] for r in table if r.get("split") == "val") or sorted(r["id"] for r in table)
        paths = dict(list_characters(self.data / "characters"))
        folders = write_animation_inputs(paths[val[0]], self.poses, self.out / "animation",
                                         frames=a["frames"], size=a["size"], sheet_views=a["sheet_views"])
        gif = self.out / "animation.gif"
        _run(_conrmodel("render", "--weights", self.run_dir, "--sheet", folders["sheet"], "--poses",
                        folders["poses"], "--out", self.out / "animation" / "frames", "--video", gif,
                        "--size", a["size"], "--fps", a["fps"]), self.commands)
        truth_gif = self.out / "animation-truth.gif"
        write_video(truth_gif, sorted(folders["truth"].glob("*.png")), a["fps"], (255, 255, 255))
        self.artefacts[f"animation of val character {val[0]}"] = gif
        self.artefacts["ground truth of the same poses"] = truth_gif
        self.artefacts["character sheet used"] = folders["sheet"]

    # --- helpers -----------------------------------------------------------------------------------

    def _has_split(self, split: str) -> bool:
        return any((self.data / "shards").glob(f"{split}-*.tar"))

    def _shards(self, split: str) -> str:
        return str(self.data / "shards" / f"{split}-*.tar")

    def run(self, until: str | None = None) -> None:
        steps = {"characters": self.characters, "poses": self.poses_step, "synth": self.synth,
                 "split": self.split, "check": self.check, "matte": self.matte, "train": self.train,
                 "eval": self.eval, "animation": self.animation}
        for name in STEPS:
            print(f"\n=== {name}", flush=True)
            steps[name]()
            if name == until:
                break


def learning_verdict(metrics_json: Path, split: str) -> str | None:
    """One line per n from an eval metrics file: the model's foreground L1 against the mean-colour
    silhouette's (the ground-truth mask in the sheet's mean colour), and whether it beats it."""
    if not metrics_json.is_file():
        return None
    views = json.loads(metrics_json.read_text()).get("views", {})
    lines = []
    for key, view in views.items():
        if "model" not in view:
            continue
        model, sil = view["model"]["fg_l1"], view["baselines"]["silhouette"]["fg_l1"]
        gain = 1.0 - model / sil if sil > 0 else 0.0
        word = "beats" if model < sil else "does NOT beat"
        lines.append(f"  {key}: model foreground L1 {model:.4f} vs mean-colour silhouette {sil:.4f} "
                     f"({gain:+.0%}): the model {word} painting the true mask one colour")
    if not lines:
        return None
    where = "the validation character(s)" if split == "val" else "the training clips (no val split)"
    return f"on {where}, eval step:\n" + "\n".join(lines)


def _missing(artefacts: dict[str, Path]) -> list[str]:
    bad = []
    for what, path in artefacts.items():
        ok = path.exists() and (any(path.iterdir()) if path.is_dir() else path.stat().st_size > 0)
        if not ok:
            bad.append(f"{what}: {path}")
    return bad


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", help="pipeline config (pipelines/demo.yaml, paper.yaml, cluster.yaml)")
    parser.add_argument("--meshes", help="your own folder of VRM / glTF / GLB / PMX / PMD models")
    parser.add_argument("--out", help="output folder (default: the config's)")
    parser.add_argument("--smallest", action="store_true", help="the least work that runs every step")
    parser.add_argument("--until", choices=STEPS, help="stop after this step")
    args = parser.parse_args(argv)

    config = load_config(args.config, smallest=args.smallest)
    out = Path(args.out or config["out"]).resolve()
    if (out / MARKER).exists():
        shutil.rmtree(out)
    elif out.exists() and any(out.iterdir()):
        print(f"error: {out}: exists and was not made by a pipeline; choose another --out", file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text(f"made by python -m pipelines.run {args.config}\n")
    meshes = Path(args.meshes).resolve() if args.meshes else None
    if meshes is not None:
        config["meshes_given"] = True
        if not meshes.is_dir():
            print(f"error: {meshes}: not a folder", file=sys.stderr)
            return 2
    pipeline = Pipeline(config, out, meshes)
    started = time.perf_counter()
    try:
        pipeline.run(until=args.until)
    except StepFailed as err:
        print(f"\nerror: {err}", file=sys.stderr)
        return 1
    (out / "commands.sh").write_text("#!/bin/sh\nset -e\n" + "\n".join(pipeline.commands) + "\n")
    pipeline.artefacts["every command run"] = out / "commands.sh"
    print(f"\n=== done in {time.perf_counter() - started:.0f} s; artefacts:")
    width = max(len(k) for k in pipeline.artefacts)
    for what, path in pipeline.artefacts.items():
        print(f"  {what:<{width}}  {path}")
    if pipeline.verdict:
        print(f"\n=== does the renderer draw the character from its sheet? {pipeline.verdict}")
    missing = _missing(pipeline.artefacts)
    if missing:
        print("error: missing or empty artefacts:\n  " + "\n  ".join(missing), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
