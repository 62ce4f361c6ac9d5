"""Generate docs/cli.md from the CLIs' own --help, so the reference never drifts.

    python -m pipelines.cli_reference            # rewrite docs/cli.md
    python -m pipelines.cli_reference --check    # exit 1 if docs/cli.md is stale (tests run this)
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from conrdata.cli import group as conrdata_group
from conrmodel.cli import group as conrmodel_group

WIDTH = 100  # fixed, so the text does not depend on the terminal
DOC = Path(__file__).resolve().parents[1] / "docs" / "cli.md"


def _help_text(group: click.Group, name: str, sub: str | None) -> str:
    ctx = click.Context(group, info_name=name, terminal_width=WIDTH, max_content_width=WIDTH)
    if sub is None:
        return group.get_help(ctx)
    cmd = group.get_command(ctx, sub)
    sub_ctx = click.Context(cmd, info_name=sub, parent=ctx, terminal_width=WIDTH, max_content_width=WIDTH)
    return cmd.get_help(sub_ctx)


def render_reference() -> str:
    parts = [
        "# Command-line reference\n",
        "Generated from `--help` by `python -m pipelines.cli_reference`; a test keeps it in step.\n",
    ]
    for name, group in (("conrdata", conrdata_group), ("conrmodel", conrmodel_group)):
        ctx = click.Context(group, info_name=name)
        parts.append(f"\n## `{name}`\n\n```text\n{_help_text(group, name, None)}\n```\n")
        for sub in group.list_commands(ctx):
            parts.append(f"\n### `{name} {sub}`\n\n```text\n{_help_text(group, name, sub)}\n```\n")
    return "".join(parts)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    text = render_reference()
    if "--check" in argv:
        if not DOC.exists() or DOC.read_text() != text:
            print(f"{DOC} is stale: run `python -m pipelines.cli_reference`", file=sys.stderr)
            return 1
        return 0
    DOC.write_text(text)
    print(f"wrote {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
