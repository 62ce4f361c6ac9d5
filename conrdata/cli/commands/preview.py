"""`conrdata preview`: a contact sheet (PNG, and optionally HTML) of a few clips."""

from __future__ import annotations

import click


@click.command("preview")
@click.argument("out", type=click.Path(exists=True, path_type=str))
@click.option(
    "--out",
    "sheet",
    type=click.Path(dir_okay=False),
    default="sheet.png",
    show_default=True,
    help="Contact sheet PNG to write.",
)
@click.option("--html", "html_path", type=click.Path(dir_okay=False), help="Also write an HTML page.")
@click.option("--clips", "n_clips", type=int, default=8, show_default=True, help="Number of clips.")
@click.option("--split", type=click.Choice(["train", "val"]), default=None, help="Only this split.")
@click.option(
    "--seed", type=int, default=None, help="Pick clips at random with this seed (default: first N)."
)
@click.option("--tile", type=int, default=96, show_default=True, help="Tile size in pixels.")
@click.option("--max-images", type=int, default=8, show_default=True, help="Images shown per clip.")
@click.option("--debug", is_flag=True, hidden=True)
def command(out, sheet, html_path, n_clips, split, seed, tile, max_images, debug) -> None:
    """Draw N clips of dataset (or shard) OUT as a contact sheet.

    One row per clip; per image three tiles: the RGBA over a checkerboard, the
    UDP xyz as colour (x red, y green, z blue), and the mask (white body, red
    where alpha and occupancy disagree; hatched UDP tile = unlabeled image).

    \b
    Example:
      conrdata preview out/ --out sheet.png --html sheet.html --clips 12 --seed 0
    """
    import random

    from conrdata.dataset.preview import contact_sheet, write_html, write_png
    from conrdata.dataset.reader import ReadStats, iter_clips

    stats = ReadStats()
    if seed is None:
        clips = []
        for clip in iter_clips(out, split=split, stats=stats):
            clips.append(clip)
            if len(clips) >= n_clips:
                break
    else:  # reservoir sample: one pass, n_clips in memory
        rng = random.Random(seed)
        clips = []
        for i, clip in enumerate(iter_clips(out, split=split, stats=stats)):
            if len(clips) < n_clips:
                clips.append(clip)
            else:
                j = rng.randrange(i + 1)
                if j < n_clips:
                    clips[j] = clip
    if not clips:
        from conrdata.errors import UserError

        raise UserError("no readable clips to preview", out)
    path = write_png(contact_sheet(clips, tile, max_images), sheet)
    click.echo(f"wrote {path} ({len(clips)} clips)")
    if html_path:
        click.echo(f"wrote {write_html(clips, html_path, max(tile, 128), max_images, title=str(out))}")
    if stats.skipped:
        click.echo(f"skipped {stats.skipped} bad samples (run `conrdata validate`)", err=True)
