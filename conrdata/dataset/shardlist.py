"""Shard lists: what ``--shards`` (and ``iter_clips(source)``) names, expanded to shard files or URLs.

One rule for every reader (:func:`conrdata.dataset.iter_clips`, the training stream, evaluation):

- ``spec`` is a path, a string, or a list of them; a string may join several with ``::`` (as
  webdataset does).
- A dataset OUT folder (one holding ``shards/``) stands for the shards its manifest lists, else for
  its ``shards/*.tar``; any other folder for its ``*.tar`` files. ``split`` keeps a folder's
  ``{split}-*`` shards only; shards named explicitly are read as named.
- A brace pattern (``train-{000000..000009}.tar``) is expanded; a glob (``train-*.tar``) is matched,
  sorted.
- Remote URLs (``http://``, ``s3://``, ``pipe:`` ...) are kept as they are, brace-expanded.

A local shard that does not exist, a glob that matches nothing and a folder with no ``.tar`` at all
are :class:`~conrdata.errors.UserError`; a split with no shards in a folder gives no shards.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable
from pathlib import Path

import braceexpand

from conrdata.dataset.manifests import SHARD_DIR, read_manifest
from conrdata.errors import UserError

__all__ = ["expand_shards", "is_remote"]


def is_remote(url: str) -> bool:
    """True for a URL webdataset streams (``scheme://...`` or ``pipe:...``), not a local file."""
    return "://" in url or url.startswith("pipe:")


def _folder_shards(folder: Path, split: str | None) -> list[str]:
    if (folder / SHARD_DIR).is_dir():
        listed = read_manifest(folder, "shards")
        names = [r["name"] for r in listed] or [x.name for x in (folder / SHARD_DIR).glob("*.tar")]
        paths = [folder / SHARD_DIR / n for n in sorted(names)]
    else:
        paths = sorted(folder.glob("*.tar"))
    if not paths:
        raise UserError("no .tar shards in this folder", folder)
    if split is not None:
        paths = [p for p in paths if p.name.startswith(f"{split}-")]
    return [str(p) for p in paths]


def _parts(spec) -> list[str]:
    if isinstance(spec, str | os.PathLike):
        return os.fspath(spec).split("::") if isinstance(spec, str) else [os.fspath(spec)]
    if isinstance(spec, Iterable):
        return [part for item in spec for part in _parts(item)]
    raise TypeError(f"cannot read shards from {spec!r}")


def expand_shards(spec, split: str | None = None) -> list[str]:
    """The shard files (and remote URLs) ``spec`` names, in order (see the module docstring)."""
    out: list[str] = []
    for part in _parts(spec):
        if is_remote(part):
            out.extend(braceexpand.braceexpand(part))
        elif Path(part).is_dir():
            out.extend(_folder_shards(Path(part), split))
        elif "{" in part:
            out.extend(braceexpand.braceexpand(part))
        elif any(c in part for c in "*?["):
            found = sorted(glob.glob(part))
            if not found:
                raise UserError("no shard matches this pattern", part)
            out.extend(found)
        else:
            out.append(part)
    missing = [u for u in out if not is_remote(u) and not Path(u).exists()]
    if missing:
        raise UserError(f"shard not found ({len(missing)} of {len(out)} missing)", missing[0])
    return out
