"""Shared click plumbing for the `conrdata` and `conrmodel` command groups.

Both groups load their sub-commands lazily (``name -> "module:attribute"``) so
that ``--help`` is fast and a heavy dependency (torch, OpenGL, ray) is imported
only by the command that needs it. Errors follow :mod:`conrdata.errors`.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import warnings

import click

from conrdata.errors import EXIT_USER_ERROR, UserError


class LazyGroup(click.Group):
    """A click group whose sub-commands live in their own modules, imported on use."""

    def __init__(self, *args, lazy_commands: dict[str, str] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.lazy_commands = dict(lazy_commands or {})

    def list_commands(self, ctx):
        present = {n for n, target in self.lazy_commands.items() if _module_exists(target.split(":")[0])}
        return sorted(set(super().list_commands(ctx)) | present)

    def get_command(self, ctx, name):
        if name in self.lazy_commands:
            if not _module_exists(self.lazy_commands[name].split(":")[0]):
                return None
            module_name, attr = self.lazy_commands[name].split(":")
            return getattr(importlib.import_module(module_name), attr)
        return super().get_command(ctx, name)


def _module_exists(module_name: str) -> bool:
    try:
        return importlib.util.find_spec(module_name) is not None
    except ModuleNotFoundError:
        return False


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings from a CLI are for the user: one line, no source excerpt (``--debug`` keeps Python's form)."""
    print(f"warning: {message}", file=sys.stderr if file is None else file)


def run_group(group: click.Group, argv: list[str] | None = None) -> None:
    """Run a click group with the project's error convention.

    ``UserError`` -> ``error: <message>`` on stderr and exit 2, unless ``--debug``
    is among the arguments, in which case the traceback propagates.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    if not debug:
        warnings.showwarning = _one_line_warning
    try:
        group.main(args=argv, standalone_mode=False)
    except UserError as err:
        if debug:
            raise
        click.echo(f"error: {err}", err=True)
        sys.exit(EXIT_USER_ERROR)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as err:
        err.show()
        sys.exit(EXIT_USER_ERROR if err.exit_code == 1 else err.exit_code)
    except click.exceptions.Exit as err:
        sys.exit(err.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
