"""`conrdata pack-drawn MATTED_DIR OUT_DIR`: matted drawings -> unlabeled / one-shot dataset clips."""

from __future__ import annotations

import click


@click.command("pack-drawn")
@click.argument("matted_dir", type=click.Path(file_okay=False, path_type=str))
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=str))
@click.option(
    "--mapping",
    type=click.Path(dir_okay=False, exists=True),
    default=None,
    help="CSV with columns image,character (image paths relative to MATTED_DIR) instead of "
    "one folder per character.",
)
@click.option(
    "--clip-size",
    type=int,
    default=8,
    show_default=True,
    help="Images per unlabeled clip (a character's images are cut into clips of this size).",
)
@click.option(
    "--size",
    type=int,
    default=None,
    help="Crop each image to its character, centre it on a transparent square and resize to "
    "SIZE x SIZE (default: keep the image as it is).",
)
@click.option(
    "--min-confidence",
    type=float,
    default=None,
    help="Skip images whose confidence in MATTED_DIR/matte_report.csv is below this "
    "(e.g. 0.5 leaves out what `conrdata matte` listed for review).",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Recorded in the dataset's manifests.")
@click.option(
    "--pins",
    type=click.Path(dir_okay=False, exists=True),
    default=None,
    help="CSV/JSON of character id -> train|val overriding the hashed split.",
)
@click.option("--max-shard-clips", type=int, default=None, help="Clips per shard at most.")
@click.option("--max-shard-bytes", type=int, default=None, help="Bytes per shard at most.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def command(
    matted_dir,
    out_dir,
    mapping,
    clip_size,
    size,
    min_confidence,
    seed,
    pins,
    max_shard_clips,
    max_shard_bytes,
    quiet,
):
    """Pack matted drawings (RGBA PNGs from `conrdata matte`) as training clips without UDP.

    Characters are the sub-folders of MATTED_DIR (an image lying directly in
    MATTED_DIR is a character of its own), or the groups of a --mapping CSV.
    A character with one image becomes a one-shot clip; one with more becomes
    unlabeled clips of up to --clip-size images. The split is per character
    (stable hash of its id, about 1 in 16 to val), as for synthetic data, and
    OUT_DIR gets shards and manifests that `conrdata validate` checks. A rerun
    skips clips already written; bad images are skipped and listed in
    OUT_DIR/pack_drawn_report.csv.

    \b
    Example:
      conrdata matte drawings/ matted/
      conrdata pack-drawn matted/ out/ --size 256
      conrdata validate out/
    """
    from conrdata.matte.pack import pack_drawn

    pinned = None
    if pins:
        from conrdata.dataset import read_pins

        pinned = read_pins(pins)
    report = pack_drawn(
        matted_dir,
        out_dir,
        mapping_csv=mapping,
        clip_size=clip_size,
        size=size,
        seed=seed,
        max_shard_bytes=max_shard_bytes,
        max_shard_clips=max_shard_clips,
        pinned=pinned,
        min_confidence=min_confidence,
        progress=not quiet,
    )
    kinds = ", ".join(f"{n} {k}" for k, n in sorted(report.kinds.items())) or "none"
    splits = ", ".join(f"{n} {k}" for k, n in sorted(report.splits.items())) or "none"
    click.echo(
        f"{report.characters} character(s) ({kinds}; split: {splits}); {report.clips_written} clip(s) "
        f"written, {report.clips_existing} already present; report: {report.path}"
    )
    for r in report.skipped:
        click.echo(f"skipped {r['image']}: {r['reason']}", err=True)
