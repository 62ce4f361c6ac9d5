"""`conrdata matte IN_DIR OUT_DIR`: cut hand-drawn characters out of their background."""

from __future__ import annotations

import os

import click

from conrdata.errors import UserError


def _colors(values: tuple[str, ...]):
    from conrdata.matte.background import parse_color

    out = []
    for v in values:
        for part in v.split(";"):
            if part.strip():
                try:
                    out.append(parse_color(part))
                except ValueError as err:
                    raise click.BadParameter(str(err), param_hint="--bg-color") from None
    return tuple(out) or None


@click.command("matte")
@click.argument("in_dir", type=click.Path(file_okay=False, path_type=str))
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=str))
@click.option(
    "--bg-color",
    "bg_color",
    multiple=True,
    metavar="COLOR",
    help="Background colour(s) instead of the border estimate: '#ffffff' or '255,255,255'; "
    "repeat (or separate with ';') for several tones.",
)
@click.option(
    "--hints",
    "hints_dir",
    type=click.Path(file_okay=False, exists=True),
    default=None,
    help="Folder of hint masks mirroring IN_DIR (NAME.hint.png); hints beside the images are always used.",
)
@click.option(
    "--holes",
    type=click.Choice(["auto", "fill", "cut"]),
    default="auto",
    show_default=True,
    help="Enclosed background-coloured regions: cut only evident ones (auto), keep all as "
    "foreground (fill) or cut all (cut).",
)
@click.option(
    "--feather",
    type=float,
    default=0.0,
    show_default=True,
    help="Soften the alpha edge with a Gaussian of this many pixels (0 = hard edge).",
)
@click.option(
    "--max-side",
    type=int,
    default=1024,
    show_default=True,
    help="Working resolution: longest side in pixels; larger images are matted smaller and the "
    "mask is upsampled with edge-aware refinement.",
)
@click.option(
    "--max-pixels",
    type=int,
    default=100_000_000,
    show_default=True,
    help="Refuse images with more pixels than this (decompression-bomb guard).",
)
@click.option(
    "--threshold",
    type=float,
    default=0.5,
    show_default=True,
    help="Images whose confidence is below this are listed for review.",
)
@click.option(
    "--workers", "-j", type=int, default=None, help="Parallel processes (default: number of CPUs, at most 8)."
)
@click.option("--overwrite", is_flag=True, help="Redo images whose output already exists.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def command(
    in_dir,
    out_dir,
    bg_color,
    hints_dir,
    holes,
    feather,
    max_side,
    max_pixels,
    threshold,
    workers,
    overwrite,
    quiet,
):
    """Matte every drawing in IN_DIR onto transparency: RGBA PNGs in OUT_DIR.

    Works on characters drawn on flat, gradient, noisy-paper or two-tone
    backgrounds: the background is modelled from the image border, markers are
    placed in sure background and sure foreground, and OpenCV's watershed
    decides the edge. Sub-folders are mirrored. Images that already have
    transparency are copied as they are.

    \b
    Hard cases:
      --bg-color '#f0e8d8'      say what the background is
      NAME.hint.png             a scribble beside NAME.jpg: white = character,
                                black = background, grey/transparent = no hint
    The report OUT_DIR/matte_report.csv has a confidence per image; images
    below --threshold are listed for review. Broken files are skipped with the
    reason. A rerun skips finished images.

    \b
    Example:
      conrdata matte drawings/ matted/ -j 4
      conrdata pack-drawn matted/ out/
    """
    from conrdata.matte.batch import run_matte
    from conrdata.matte.watershed import MatteOptions

    if not os.path.isdir(in_dir):
        raise UserError("input folder not found", in_dir)
    if max_side < 16:
        raise click.BadParameter("must be at least 16", param_hint="--max-side")
    if feather < 0:
        raise click.BadParameter("must be >= 0", param_hint="--feather")
    opts = MatteOptions(bg_colors=_colors(bg_color), max_side=max_side, holes=holes, feather=feather)
    workers = workers or min(8, os.cpu_count() or 1)
    report = run_matte(
        in_dir,
        out_dir,
        opts,
        workers=workers,
        hints_dir=hints_dir,
        max_pixels=max_pixels,
        overwrite=overwrite,
        threshold=threshold,
        progress=not quiet,
    )
    done, failed, review = report.done, report.failed, report.review
    new = len(done) - report.reused
    rate = f" ({new / report.seconds:.1f} images/s)" if new and report.seconds > 0 else ""
    click.echo(
        f"matted {new} image(s){rate}, {report.reused} already done, {len(failed)} skipped; "
        f"report: {report.path}"
    )
    if review:
        click.echo(f"{len(review)} image(s) below confidence {threshold} - please look at them:")
        for r in sorted(review, key=lambda r: float(r["confidence"] or 0)):
            click.echo(f"  {r['source']}  confidence {float(r['confidence']):.2f}  ({r['reason']})")
    for r in failed:
        click.echo(f"skipped {r['source']}: {r['reason']}", err=True)
