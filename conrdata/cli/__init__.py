"""`conrdata`: from rigged characters and drawings to CoNR training shards.

Each sub-command lives in ``conrdata/cli/commands/<name>.py`` as ``command``.
"""

from __future__ import annotations

import click

from conrdata.cli.lazy import LazyGroup, run_group

__all__ = ["COMMANDS", "group", "main"]

COMMANDS = {
    "make-character": "conrdata.cli.commands.make_character:command",
    "convert": "conrdata.cli.commands.convert:command",
    "poses": "conrdata.cli.commands.poses:command",
    "synth": "conrdata.cli.commands.synth:command",
    "matte": "conrdata.cli.commands.matte:command",
    "pack-drawn": "conrdata.cli.commands.pack_drawn:command",
    "pack-udp": "conrdata.cli.commands.pack_udp:command",
    "export-udp": "conrdata.cli.commands.export_udp:command",
    "split": "conrdata.cli.commands.split:command",
    "inspect": "conrdata.cli.commands.inspect:command",
    "validate": "conrdata.cli.commands.validate:command",
    "preview": "conrdata.cli.commands.preview:command",
}


@click.group(cls=LazyGroup, lazy_commands=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show full tracebacks instead of one-line errors.")
@click.version_option(package_name="conr-toolkit")
def group(debug: bool) -> None:
    """Turn rigged anime characters and hand-drawn art into CoNR training data.

    \b
    Typical run:
      conrdata make-character --count 3 meshes/      # procedural rigged characters (GLB)
      conrdata convert meshes/ characters/            # any VRM/glTF/PMX/PMD -> canonical A-pose rigs
      conrdata poses --sample 50 poses.npz            # or from VMD/BVH/glTF motions
      conrdata synth meshes/ out/                     # UDP + RGBA pairs as WebDataset shards
      conrdata validate out/ && conrdata preview out/ --out sheet.png

    Errors print one line naming the file at fault and exit with code 2;
    add --debug for the traceback.
    """


def main(argv: list[str] | None = None) -> None:
    run_group(group, argv)


if __name__ == "__main__":
    main()
