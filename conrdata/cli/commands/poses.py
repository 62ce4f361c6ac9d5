"""`conrdata poses`: motions (VMD / BVH / glTF) and/or sampled poses -> a pose library and a preview."""

from __future__ import annotations

from pathlib import Path

import click


def _load_character(path: Path):
    from conrdata.errors import UserError

    if path.suffix.lower() == ".npz":
        from conrdata.rig.io import load_character

        return load_character(path)
    try:
        from conrdata.synth.convert import prepare_model
    except ImportError as e:  # pragma: no cover - only while the model readers are missing
        raise UserError(f"cannot read model files here ({e})", path) from None
    return prepare_model(path)  # humanoid mapping (name rules, topology) + A-pose, as convert does


@click.command("poses")
@click.argument("args", nargs=-1, required=True, metavar="[MOTIONS] OUT.npz")
@click.option("--fps", default=30.0, show_default=True, type=click.FloatRange(min=0.01),
              help="Sampling rate for motions (MMD motions play at 30 fps).")
@click.option("--max-poses", type=click.IntRange(min=1), default=None,
              help="Keep at most this many motion poses (evenly spaced through all motions).")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the random pose sampler.")
@click.option("--sample", default=0, show_default=True, type=click.IntRange(min=0),
              help="Add this many random joint-limited poses (on top of --max-poses).")
@click.option("--character", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Converted character (.npz) or model file to solve IK on and fit the sampler to.")
@click.option("--preview", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write a PNG strip of a few poses (skeleton, plus skinned points with --character).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def command(args, fps, max_poses, seed, sample, character, preview, quiet) -> None:
    """Turn motions into a pose library that drives any converted character.

    MOTIONS is a VMD / BVH / glTF (GLB, VRM, VRMA) file or a folder searched
    recursively. VMD motions are played with MMD's IK (on the --character's own
    IK chains when it is an MMD model, with two-bone leg IK otherwise); BVH and
    glTF motions are retargeted onto the humanoid, compensating their rest pose
    (often a T-pose) against the A-pose. Without MOTIONS, --sample N draws
    random joint-limited poses. Broken or unsupported files are skipped and
    listed; bones a motion keys but the character lacks are reported.

    \b
    Examples:
      conrdata poses motions/ poses.npz --fps 10 --max-poses 200 --preview poses.png
      conrdata poses dance.vmd poses.npz --character characters/miku-1a2b3c4d.npz
      conrdata poses poses.npz --sample 200 --seed 7
    """
    from tqdm import tqdm

    from conrdata.errors import UserError
    from conrdata.poses.build import build_library
    from conrdata.poses.library import save_pose_library

    if len(args) > 2:
        raise click.UsageError("expected [MOTIONS] OUT.npz")
    motions = Path(args[0]) if len(args) == 2 else None
    out = Path(args[-1])
    if out.suffix.lower() != ".npz":
        raise click.UsageError(f"the output must be a .npz file, got {out}")
    if motions is None and not sample:
        raise click.UsageError("give a MOTIONS file or folder, or --sample N")
    rig = _load_character(character) if character is not None else None

    def bar(items):
        return tqdm(items, desc="motions", unit="file", disable=quiet)

    lib, report = build_library(motions, rig, fps=fps, max_poses=max_poses, sample=sample, seed=seed,
                                progress=bar)
    for f, why in report.skipped.items():
        click.echo(f"skipped {f}: {why}", err=True)
    for f, lines in report.warnings.items():
        for line in lines:
            click.echo(f"warning: {Path(f).name}: {line}", err=True)
    if len(lib) == 0:
        raise UserError("no poses: every motion was skipped", motions)
    save_pose_library(lib, out)
    if preview is not None:
        from conrdata.poses.preview import save_preview

        save_preview(preview, lib, rig)
    for f, names in report.missing_bones.items():
        shown = ", ".join(names[:8]) + (" ..." if len(names) > 8 else "")
        click.echo(f"note: {Path(f).name}: {len(names)} keyed bones not on the skeleton ({shown})")
    click.echo(f"{len(lib)} poses from {len(report.sources)} motion file(s)"
               f"{f' + {report.sampled} sampled' if report.sampled else ''}; {len(report.skipped)} skipped"
               f" -> {out}" + (f" (preview {preview})" if preview is not None else ""))
