"""`conrdata synth`: rigged characters -> (UDP, RGBA) training pairs in WebDataset shards."""

from __future__ import annotations

from pathlib import Path

import click

from conrdata.errors import UserError


def _range(text: str, name: str) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError as err:
        raise UserError(f"--{name} takes two numbers 'LOW,HIGH', got {text!r}") from err
    if lo > hi:
        raise UserError(f"--{name}: LOW must not exceed HIGH, got {text!r}")
    return lo, hi


@click.command(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.argument("meshes_dir", type=click.Path(file_okay=False, path_type=Path))
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--characters", "characters_dir", type=click.Path(file_okay=False, path_type=Path),
              default=None,
              help="Folder of converted characters (default OUT_DIR/characters); converted ones are reused.")
@click.option("--motions", "motions_dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              default=None, help="Take poses from the VMD/BVH/glTF motions in this folder.")
@click.option("--poses", "poses_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, help="Take poses from a pose library (.npz from `conrdata poses`).")
@click.option("--poses-per-character", "-p", default=16, type=click.IntRange(1),
              help="Distinct poses per character (sampled, or drawn from the library).")
@click.option("--views", "-v", default=4, type=click.IntRange(1), help="Random views per pose.")
@click.option("--images-per-clip", "-k", default=4, type=click.IntRange(1, 100),
              help="Images per clip (one WebDataset sample; one character, distinct poses).")
@click.option("--resolution", "-r", default=512, type=click.IntRange(8, 8192), help="Image size in pixels.")
@click.option("--projection", type=click.Choice(["perspective", "orthographic", "mixed"]),
              default="perspective", help="Camera model (mixed: half and half, seeded).")
@click.option("--yaw", default="0,360", help="Camera yaw range in degrees (0 = front).")
@click.option("--pitch", default="-10,30", help="Camera pitch range in degrees (positive looks down).")
@click.option("--fov", default="20,40", help="Vertical field of view range in degrees (perspective).")
@click.option("--cel/--no-cel", default=True, help="Two-tone cel shading.")
@click.option("--outline/--no-outline", default=True,
              help="Inverted-hull outline (part of the body in the UDP).")
@click.option("--seed", "-s", default=0, type=int,
              help="Seed of every random choice; same seed, same shards.")
@click.option("--workers", "-w", default=1, type=click.IntRange(1),
              help="Render processes (one GL context each).")
@click.option("--engine", type=click.Choice(["local", "ray"]), default="local",
              help="local processes, or tasks on a Ray cluster.")
@click.option("--address", default=None, help="Ray cluster address (e.g. auto or ray://host:10001).")
@click.option("--max-torn", default=0.02, type=click.FloatRange(0.0, 1.0),
              help="Largest share of foreground UDP pixels that may disagree with the skeleton; an image "
                   "above it is not written (dropped from its clip) and is counted in the report.")
@click.option("--overlap/--no-overlap", default=True,
              help="Label and encode each image on a small thread pool per worker while the next one "
                   "renders (same bytes either way; --no-overlap is the sequential path).")
@click.option("--skinning", type=click.Choice(["gpu", "numpy"]), default="gpu",
              help="Skin in the GL vertex shader, or with numpy on the CPU (the reference).")
@click.option("--shard-clips", default=1000, type=click.IntRange(1), help="Most clips per shard.")
@click.option("--shard-mb", default=1024, type=click.IntRange(1), help="Most megabytes per shard.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@click.option("--debug", is_flag=True, hidden=True)
def command(meshes_dir, out_dir, characters_dir, motions_dir, poses_path, poses_per_character, views,
            images_per_clip, resolution, projection, yaw, pitch, fov, cel, outline, seed, workers, engine,
            address, max_torn, overlap, skinning, shard_clips, shard_mb, quiet, debug):
    """Render (UDP, RGBA) training pairs of every character in MESHES_DIR into OUT_DIR.

    Converts the meshes (VRM, glTF/GLB, PMX/PMD) into canonical A-pose characters
    (reusing ones already converted), poses each character POSES-PER-CHARACTER times
    (seeded joint-limited samples, or poses from --motions/--poses), renders every pose
    from VIEWS random cameras in one headless GL pass (UDP float32 + RGBA), and writes
    clips of IMAGES-PER-CLIP images as WebDataset shards with parquet manifests
    (OUT_DIR/shards, OUT_DIR/manifests). Every image records its posed joints and keypoints;
    an image whose UDP disagrees with the skeleton on more than MAX-TORN of its pixels is
    not written. Bad meshes and refused images are listed in the summary and
    OUT_DIR/synth_report.json. Rerunning resumes: clips already written are skipped.

    \b
    Examples:
      conrdata synth meshes/ out/ -p 16 -v 4 -r 512 --seed 0 --workers 2
      conrdata synth meshes/ out/ --poses poses.npz --engine ray --address auto
    """
    from conrdata.synth.job import SynthConfig, synth_folder

    if motions_dir is not None and poses_path is not None:
        raise UserError("give --motions or --poses, not both")
    skipped: list[dict] = []
    if motions_dir is not None:
        poses_path, skipped = _motions_library(motions_dir, out_dir, seed)
    config = SynthConfig(
        poses_per_character=poses_per_character, views=views, resolution=resolution, seed=seed,
        images_per_clip=images_per_clip, projection=projection, yaw_range=_range(yaw, "yaw"),
        pitch_range=_range(pitch, "pitch"), yfov_range=_range(fov, "fov"), cel=cel, outline=outline,
        poses_path=str(poses_path) if poses_path else None, max_shard_bytes=shard_mb << 20,
        max_shard_clips=shard_clips, max_torn=max_torn, overlap=overlap, gpu_skinning=skinning == "gpu",
    )
    report = synth_folder(meshes_dir, out_dir, config, characters_dir=characters_dir, engine_name=engine,
                          workers=workers, address=address, progress=not quiet, skipped=skipped)
    click.echo(report.summary())
    click.echo(f"report: {Path(out_dir) / 'synth_report.json'}")
    if report.clips_written == 0 and report.clips_already_done == 0:
        raise UserError("nothing was synthesized", out_dir)


def _motions_library(motions_dir: Path, out_dir: Path, seed: int) -> tuple[Path, list[dict]]:
    """Every motion under ``motions_dir`` as one pose library, OUT_DIR/poses/motions.npz (kept for
    reruns, so a resumed run uses the same poses), and the motion files skipped with their reasons."""
    from conrdata.poses import load_pose_library, save_pose_library
    from conrdata.poses.build import build_library

    path = Path(out_dir) / "poses" / "motions.npz"
    if path.exists():
        skipped = load_pose_library(path).meta.get("skipped", {})
    else:
        lib, report = build_library(motions_dir, None, seed=seed)
        if len(lib) == 0:
            reasons = "; ".join(f"{Path(f).name}: {why}" for f, why in list(report.skipped.items())[:3])
            raise UserError(f"no poses could be read from the motions here ({reasons or 'no motion files'})",
                            motions_dir)
        path.parent.mkdir(parents=True, exist_ok=True)
        save_pose_library(lib, path)
        skipped = report.skipped
    return path, [{"item": str(f), "reason": str(why)} for f, why in skipped.items()]
