"""`conrdata validate`: decode every sample and check UDPs, checksums and manifests."""

from __future__ import annotations

import sys
from pathlib import Path

import click


@click.command("validate")
@click.argument("out", type=click.Path(file_okay=False, path_type=str))
@click.option("--no-checksums", is_flag=True, help="Skip the sha256 of each shard.")
@click.option("--fast", is_flag=True, help="Decode RGBA and JSON only; skip UDP decoding and value checks.")
@click.option(
    "--alpha-tolerance",
    type=float,
    default=0.02,
    show_default=True,
    help="Allowed share of pixels where alpha >= 128 and occupancy disagree.",
)
@click.option(
    "--report", "report_path", type=click.Path(dir_okay=False), help="Also write the report as JSON."
)
@click.option("--max-lines", type=int, default=200, show_default=True, help="Problems printed at most.")
@click.option("--debug", is_flag=True, hidden=True)
def command(out, no_checksums, fast, alpha_tolerance, report_path, max_lines, debug) -> None:
    """Check dataset OUT end to end; exit 1 if anything is wrong.

    Every sample must decode; every UDP must be float32 H x W x 4, in [0, 1],
    occupancy in {0, 1}, background exactly 0, and agree with the RGBA alpha;
    shard sizes and sha256 must match shards.parquet, and the manifests must
    list exactly the clips in the shards, with no character in both splits.
    Skeleton labels must be well formed; a labelled image without joints and
    keypoints (a shard from before they were recorded) is a warning. The
    distribution of the images' torn-label shares (mean, max, count over the
    dataset's --max-torn) is printed. Each problem prints as
    `shard:key: kind: reason`.

    \b
    Example:
      conrdata validate out/
      conrdata validate out/ --report validate.json
    """
    from tqdm import tqdm

    from conrdata.dataset.validate import report_json, validate

    shards = sorted((Path(out) / "shards").glob("*.tar")) or sorted(Path(out).glob("*.tar"))
    with tqdm(total=len(shards), unit="shard", disable=None, file=sys.stderr) as bar:
        report = validate(
            out,
            checksums=not no_checksums,
            values=not fast,
            alpha_tolerance=alpha_tolerance,
            progress=lambda name: bar.update(1),
        )
    for problem in report.problems[:max_lines]:
        click.echo(str(problem))
    if len(report.problems) > max_lines:
        click.echo(f"... and {len(report.problems) - max_lines} more")
    if report_path:
        Path(report_path).write_text(report_json(report), encoding="utf-8")
    for warning in report.warnings:
        click.echo(f"warning: {warning}")
    torn = report.torn_summary()
    if torn["images"]:
        click.echo(f"torn labels: {torn['images']} images, mean {100 * torn['mean']:.2f} %, "
                   f"max {100 * torn['max']:.2f} %, "
                   f"{torn['over_threshold']} over {100 * torn['threshold']:.1f} %")
    kinds = ", ".join(f"{k} {n}" for k, n in sorted(report.kinds().items()))
    click.echo(
        f"{report.shards} shards, {report.clips} clips, {report.images} images: "
        + ("OK" if report.ok else f"{len(report.problems)} problems ({kinds})")
    )
    if not report.ok:
        sys.exit(1)
