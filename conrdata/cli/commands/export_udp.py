"""`conrdata export-udp SOURCE DEST`: a dataset's UDPs in the official CoNR form (.npz or .exr)."""

from __future__ import annotations

import click

from conrdata.udp import AXIS_ORDERS, UDP_FILE_FORMATS


@click.command("export-udp")
@click.argument("source", type=click.Path(exists=True, path_type=str))
@click.argument("dest", type=click.Path(file_okay=False, path_type=str))
@click.option("--udp-format", type=click.Choice(UDP_FILE_FORMATS), default="npz", show_default=True,
              help="npz (key 'i', float32) or exr (channels R, G, B, A; float32, or half with --half).")
@click.option("--axis-order", type=click.Choice(AXIS_ORDERS), default="XYZ", show_default=True,
              help="Axis held by each of the first three channels.")
@click.option("--half", is_flag=True, help="Write EXRs as half floats (smaller, 11-bit precision).")
@click.option("--limit", type=int, default=None, help="Export at most this many clips.")
def command(source, dest, udp_format, axis_order, half, limit):
    """Write every labelled image of the clips in SOURCE (a dataset OUT folder or shards) as
    DEST/<clip key>/<NN>.<npz|exr> in the official CoNR form (xyz times occupancy, occupancy),
    with its RGBA as <NN>.png, so the official code and the community's tools read our poses.

    \b
    Example:
      conrdata export-udp out/ poses/ --udp-format exr --axis-order ZXY
    """
    from conrdata.dataset.export import export_clips_official
    from conrdata.errors import UserError

    if half and udp_format != "exr":
        raise UserError("--half applies to --udp-format exr")
    n = export_clips_official(source, dest, axis_order, limit, udp_format, half)
    click.echo(f"wrote {n} UDP(s) as .{udp_format} to {dest}")
