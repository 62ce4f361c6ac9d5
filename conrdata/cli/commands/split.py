"""`conrdata split`: reassign characters to train/val from the manifests, moving their clips."""

from __future__ import annotations

import click


@click.command("split")
@click.argument("out", type=click.Path(file_okay=False, path_type=str))
@click.option(
    "--pin", "pin_csv", type=click.Path(dir_okay=False), help="CSV with columns character_id,split."
)
@click.option("--dry-run", is_flag=True, help="Only print what would move.")
@click.option(
    "--max-shard-clips", type=int, default=None, help="Clips per rewritten shard (default: as now)."
)
@click.option("--debug", is_flag=True, hidden=True)
def command(out: str, pin_csv: str | None, dry_run: bool, max_shard_clips: int | None, debug: bool) -> None:
    """Reassign the per-character split of dataset OUT and rewrite the shards that must change.

    Every character goes to "val" when sha256(id) mod 16 == 0, else "train",
    unless pinned: by --pin CSV (header `character_id,split`) or by an earlier
    pin recorded in manifests/characters.parquet. Shards holding a clip that
    changes split are rewritten (images copied byte for byte); the switch is
    journaled, so a killed run is finished by the next one. A pin file that
    puts one character in both splits is refused, and so is any result with a
    character in both splits.

    \b
    Example:
      printf 'character_id,split\\nalice-1a2b3c4d,val\\n' > pins.csv
      conrdata split out/ --pin pins.csv
    """
    from conrdata.dataset.resplit import apply_split, plan_split
    from conrdata.dataset.split import read_pins

    pins = read_pins(pin_csv) if pin_csv else {}
    plan = plan_split(out, pins)
    for cid in plan.unknown_pins:
        click.echo(f"warning: pinned character {cid!r} is not in the dataset", err=True)
    for cid, (old, new) in sorted(plan.moves.items()):
        click.echo(f"{cid}: {old} -> {new}")
    click.echo(
        f"{len(plan.moves)} characters change split; {plan.clips_moved} clips move, "
        f"{plan.clips_copied} are copied along; {len(plan.shards)} shards to rewrite"
    )
    if dry_run:
        return
    new = apply_split(out, plan, max_shard_clips=max_shard_clips)
    click.echo(f"done: {len(plan.shards)} shards replaced by {len(new)}")
