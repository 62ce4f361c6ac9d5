"""`conrdata convert`: model files -> canonical A-pose characters and characters.parquet."""

from __future__ import annotations

import os
from pathlib import Path

import click

from conrdata.errors import UserError


@click.command("convert")
@click.argument("meshes_dir", type=click.Path(path_type=Path))
@click.argument("characters_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--workers", "-j", default=max(1, min(4, os.cpu_count() or 1)), show_default=True,
              type=click.IntRange(1, 256), help="Parallel worker processes.")
@click.option("--strict", is_flag=True, help="Exit with code 2 if any file was skipped.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@click.option("--bone-map", "bone_map_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              metavar="FILE.yaml", help="Humanoid bones to use instead of the ones found (see below).")
def command(meshes_dir: Path, characters_dir: Path, workers: int, strict: bool, quiet: bool,
            bone_map_path: Path | None) -> None:
    """Convert every VRM / glTF / GLB / PMX / PMD under MESHES_DIR into canonical rigs.

    Each model is read, turned to face +Z, posed into the canonical A-pose
    (arms 45 degrees down, legs vertical, feet on y = 0, hips at x = z = 0),
    re-bound so that this A-pose is its bind pose, and written as
    CHARACTERS_DIR/<id>.npz; CHARACTERS_DIR/characters.parquet lists them
    (id, source, format, sha256, counts, humanoid bones, licence, warnings).
    Files already converted (same sha256) are skipped; broken files are
    skipped with their reason in CHARACTERS_DIR/convert_report.json.

    Humanoid bones come from the file's own table (VRM humanBones, MMD
    standard names), else from name rules (Mixamo, Unity, Unreal, Rigify,
    Quaternius, Kenney, Character Creator, Daz, Ready Player Me, MMD
    English...), else from the skeleton's shape (legs, arms, spine, head).
    Missing hips/spine bones get virtual stand-ins; a limb that is one bone is
    mapped as the whole limb; humanoid bones hung outside their chain are
    re-attached. Each bone's source is in the manifest's humanoid_sources
    column. Skeletons that are not humanoid (animals, props) are skipped with
    "not a humanoid: ...".

    --bone-map FILE.yaml overrides any of that. Top-level keys are humanoid
    bone names (VRM names) and apply to every model; under "models", a glob
    on the file name applies to the models it matches; null unmaps a bone:

    \b
      hips: Pelvis
      models:
        "character-*.glb":
          hips: torso
          leftUpperArm: arm-left
          leftToes: null

    Exit code 0 when at least one character is available, 2 when none is,
    or with --strict when any file was skipped.

    \b
    Example:
      conrdata make-character --count 3 meshes/
      conrdata convert meshes/ characters/ --workers 2
      conrdata convert meshes/ characters/ --bone-map bones.yaml
    """
    from conrdata.rig.humanoid_infer import read_bone_map
    from conrdata.synth.convert import REPORT, convert_folder, find_models

    bone_map = read_bone_map(bone_map_path) if bone_map_path is not None else None
    if not meshes_dir.is_dir():
        raise UserError("meshes folder not found", meshes_dir)
    if not find_models(meshes_dir):
        raise UserError("no VRM/glTF/GLB/PMX/PMD files found", meshes_dir)
    report = convert_folder(meshes_dir, characters_dir, workers=workers, strict=strict, progress=not quiet,
                            bone_map=bone_map)
    click.echo(report.summary())
    for skip in report.skipped[:20]:
        click.echo(f"  skipped: {skip['reason']}", err=True)
    if len(report.skipped) > 20:
        click.echo(f"  ... and {len(report.skipped) - 20} more (see {characters_dir / REPORT})", err=True)
    warned = [r for r in report.converted if r["warnings"]]
    if warned:
        click.echo(f"{len(warned)} converted with warnings (see the manifest's 'warnings' column)")
    if not report.ok:
        raise UserError(f"no character could be converted ({len(report.skipped)} skipped)", meshes_dir)
    if strict and report.skipped:
        raise UserError(f"--strict and {len(report.skipped)} file(s) skipped", meshes_dir)
