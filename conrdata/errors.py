"""The project's one error convention.

A user's mistake or a broken file raises :class:`UserError` (or a subclass).
The CLIs turn it into one line on stderr, ``error: <file>: <problem>``, and
exit code 2; the traceback is shown only with ``--debug``. Batch jobs catch
:class:`UserError` per item, record ``str(err)`` as the skip reason, and go on.
"""

from __future__ import annotations

import os

EXIT_USER_ERROR = 2


class UserError(Exception):
    """A problem the user can fix: bad input file, bad option, missing data.

    ``path`` names the file or folder at fault (may be None); ``message`` says
    what is wrong with it, in one line.
    """

    def __init__(self, message: str, path: str | os.PathLike | None = None):
        self.message = str(message)
        self.path = None if path is None else os.fspath(path)
        super().__init__(self.__str__())

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class FormatError(UserError):
    """A file is truncated, corrupt or not of the format it claims to be."""


class RigError(UserError):
    """A model parsed but cannot become a canonical rig (no skeleton, no humanoid bones, absurd size)."""
