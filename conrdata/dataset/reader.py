"""Read clips back as numpy arrays, without webdataset: :func:`iter_clips`.

Bad samples (corrupt PNG or UDP, missing members, a truncated tar) are skipped,
counted in a :class:`ReadStats` and reported with a :class:`BadSampleWarning`,
so an epoch never dies on one broken file.
"""

from __future__ import annotations

import glob
import os
import warnings
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import braceexpand

from conrdata.dataset.keys import split_member
from conrdata.dataset.manifests import SHARD_DIR, read_manifest
from conrdata.dataset.schema import ClipArrays
from conrdata.dataset.tario import TarTruncated, iter_members
from conrdata.dataset.wds import SampleError, decode_sample
from conrdata.errors import UserError


class BadSampleWarning(UserWarning):
    """A sample or shard was skipped while reading."""


@dataclass
class ReadStats:
    """What a read saw: clips yielded, samples skipped by failure kind, and the first problems."""

    clips: int = 0
    images: int = 0
    skipped: int = 0
    kinds: Counter = field(default_factory=Counter)
    problems: list[tuple[str, str, str, str]] = field(default_factory=list)  # (shard, key, kind, message)

    def record(self, shard: str, key: str, kind: str, message: str, limit: int = 1000) -> None:
        self.skipped += 1
        self.kinds[kind] += 1
        if len(self.problems) < limit:
            self.problems.append((shard, key, kind, message))


def shard_paths(source, split: str | None = None) -> list[Path]:
    """Shard files named by ``source``: an OUT dir (its manifests' shards, else ``shards/*.tar``), a
    folder of shards, one shard, a glob or brace pattern (``train-{000000..000009}.tar``), or a list
    of any of these. ``split`` keeps only shards whose name starts with ``{split}-``."""
    if isinstance(source, str | os.PathLike):
        items = [source]
    elif isinstance(source, Iterable):
        items = list(source)
    else:
        raise TypeError(f"cannot read clips from {source!r}")
    paths: list[Path] = []
    for item in items:
        text = os.fspath(item)
        p = Path(text)
        if p.is_dir():
            if (p / SHARD_DIR).is_dir():
                listed = read_manifest(p, "shards")
                names = [r["name"] for r in listed] or sorted(x.name for x in (p / SHARD_DIR).glob("*.tar"))
                paths.extend(p / SHARD_DIR / n for n in sorted(names))
            else:
                paths.extend(sorted(p.glob("*.tar")))
        elif "{" in text:
            paths.extend(Path(x) for x in braceexpand.braceexpand(text))
        elif any(c in text for c in "*?["):
            paths.extend(Path(x) for x in sorted(glob.glob(text)))
        else:
            if not p.exists():
                raise UserError("no such shard or dataset folder", p)
            paths.append(p)
    if split is not None:
        paths = [p for p in paths if p.name.startswith(f"{split}-")]
    return paths


def iter_raw_samples(path: Path, stats: ReadStats | None = None, warn: bool = True) -> Iterator[dict]:
    """webdataset-style raw samples ``{"__key__", "__url__", ext: bytes}`` of one shard, grouping
    adjacent members by key. A truncated or unreadable tar is recorded in ``stats`` (kind
    "truncated-tar") after its complete samples are yielded; the last, possibly partial, sample is
    yielded too, so the decoder can name what is missing."""
    current: dict | None = None
    try:
        for name, data, _ in iter_members(path):
            key, ext = split_member(name)
            if current is None or current["__key__"] != key:
                if current is not None:
                    yield current
                current = {"__key__": key, "__url__": str(path)}
            current[ext] = data
    except (TarTruncated, OSError) as err:
        if current is not None:
            yield current
            current = None
        kind = "truncated-tar" if isinstance(err, TarTruncated) else "unreadable-shard"
        if stats is not None:
            stats.record(path.name, "", kind, str(err))
        if warn:
            msg = f"{path}: truncated or unreadable tar ({err}); skipping the rest"
            warnings.warn(msg, BadSampleWarning, stacklevel=3)
    if current is not None:
        yield current


def iter_clips(
    source, split: str | None = None, stats: ReadStats | None = None, udp: bool = True
) -> Iterator[ClipArrays]:
    """Clips of ``source`` (see :func:`shard_paths`) as :class:`ClipArrays`, in shard order.

    ``split`` filters by shard name; ``udp=False`` skips decoding UDPs (they come back as None).
    Bad samples are skipped with a :class:`BadSampleWarning` and counted in ``stats``.
    """
    stats = stats if stats is not None else ReadStats()
    for path in shard_paths(source, split):
        for sample in iter_raw_samples(path, stats):
            try:
                clip = decode_sample(sample, udp=udp)
            except SampleError as err:
                stats.record(path.name, sample["__key__"], err.kind, err.detail)
                warnings.warn(f"{path.name}: {err.message}; skipped", BadSampleWarning, stacklevel=2)
                continue
            stats.clips += 1
            stats.images += len(clip)
            yield clip
