"""`conrdata inspect`: counts, labelled share, bytes and split ratio of a dataset."""

from __future__ import annotations

import json

import click


@click.command("inspect")
@click.argument("out", type=click.Path(file_okay=False, path_type=str))
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
@click.option("--debug", is_flag=True, hidden=True)
def command(out: str, as_json: bool, debug: bool) -> None:
    """Summarise dataset OUT from its manifests (fast; no shard is read).

    Prints characters, clips (one-shot, unlabelled), images (labelled share),
    shards and bytes, per split, the split ratio, and the distribution of the
    images' torn-label shares (mean, max, count over the synth --max-torn).
    `conrdata validate` checks that the manifests tell the truth.

    \b
    Example:
      conrdata inspect out/
      conrdata inspect out/ --json > stats.json
    """
    from conrdata.dataset.inspect import format_summary, summarize

    summary = summarize(out)
    click.echo(json.dumps(summary, indent=1, default=str) if as_json else format_summary(summary))
