"""`conrdata pack-udp UDP_DIR OUT_DIR`: UDPs made by other tools (.npz / .exr) -> dataset clips."""

from __future__ import annotations

import click

from conrdata.udp import AXIS_ORDERS


@click.command("pack-udp")
@click.argument("udp_dir", type=click.Path(file_okay=False, exists=True, path_type=str))
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=str))
@click.option("--axis-order", type=click.Choice(AXIS_ORDERS), default="XYZ", show_default=True,
              help="Which axis the first three channels hold (the community MMD tools offered several); "
                   "EXR channels named X, Y, Z are taken by name.")
@click.option("--clip-size", type=int, default=8, show_default=True,
              help="Frames per clip (a character's frames, in natural order, are cut into clips).")
@click.option("--no-images", is_flag=True,
              help="Pack every frame as pose-only, ignoring images beside the UDP files.")
@click.option("--seed", type=int, default=0, show_default=True, help="Recorded in the dataset's manifests.")
@click.option("--pins", type=click.Path(dir_okay=False, exists=True), default=None,
              help="CSV/JSON of character id -> train|val overriding the hashed split.")
@click.option("--max-shard-clips", type=int, default=None, help="Clips per shard at most.")
@click.option("--max-shard-bytes", type=int, default=None, help="Bytes per shard at most.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def command(udp_dir, out_dir, axis_order, clip_size, no_images, seed, pins, max_shard_clips, max_shard_bytes,
            quiet):
    """Pack a folder of UDPs made elsewhere as dataset clips.

    UDP files are the official CoNR form: NAME.npz with key 'i' or a 4-channel
    NAME.exr (xyz times occupancy, occupancy). An image of the same stem beside
    a UDP (NAME.png, ...) makes the frame labelled; without one the frame is
    pose-only (a black silhouette, for `conrmodel render` and evaluation, not
    for training). Sub-folders of UDP_DIR are characters (files directly in
    UDP_DIR are one character named after it); frames are cut into clips of
    --clip-size. OUT_DIR gets shards and manifests that `conrdata validate`
    checks. A rerun skips clips already written; bad files are skipped and
    listed in OUT_DIR/pack_udp_report.csv.

    \b
    Example:
      conrdata pack-udp blender_udps/ out/ --axis-order XYZ
      conrdata validate out/
      conrmodel render --weights weights/ --sheet sheet/ --poses out/ --out frames/
    """
    from conrdata.dataset.udp_pack import pack_udp

    pinned = None
    if pins:
        from conrdata.dataset import read_pins

        pinned = read_pins(pins)
    report = pack_udp(udp_dir, out_dir, axis_order=axis_order, clip_size=clip_size, use_images=not no_images,
                      seed=seed, max_shard_bytes=max_shard_bytes, max_shard_clips=max_shard_clips,
                      pinned=pinned, progress=not quiet)
    kinds = ", ".join(f"{n} {k}" for k, n in sorted(report.kinds.items())) or "none new"
    click.echo(f"{report.characters} character(s); {report.clips_written} clip(s) written ({kinds}), "
               f"{report.clips_existing} already present; report: {report.path}")
    for r in report.skipped:
        click.echo(f"skipped {r['udp']}: {r['reason']}", err=True)
