"""`conrmodel`: train, evaluate and run CoNR's UDP detector and collaborative renderer.

Each sub-command lives in ``conrmodel/cli/commands/<name>.py`` as ``command``.
"""

from __future__ import annotations

import click

from conrdata.cli.lazy import LazyGroup, run_group

__all__ = ["COMMANDS", "group", "main"]

COMMANDS = {
    "train": "conrmodel.cli.commands.train:command",
    "eval": "conrmodel.cli.commands.eval:command",
    "render": "conrmodel.cli.commands.render:command",
}


@click.group(cls=LazyGroup, lazy_commands=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show full tracebacks instead of one-line errors.")
@click.version_option(package_name="conr-toolkit")
def group(debug: bool) -> None:
    """Train and run CoNR (UDP detector + collaborative renderer).

    \b
    Typical run:
      conrmodel train --shards 'out/shards/train-{000000..000003}.tar' --out run/ --preset tiny
      conrmodel eval --weights run/ --shards 'out/shards/val-{000000..000000}.tar'
      conrmodel render --weights run/ --sheet sheet/ --poses poses/ --out frames/ --video anim.gif

    Errors print one line naming the file at fault and exit with code 2;
    add --debug for the traceback.
    """


def main(argv: list[str] | None = None) -> None:
    run_group(group, argv)


if __name__ == "__main__":
    main()
