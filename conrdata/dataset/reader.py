"""Read clips back as numpy arrays, without webdataset: :func:`iter_clips`.

Bad samples (corrupt PNG or UDP, missing members, a truncated tar) are skipped,
counted in a :class:`ReadStats` and reported with a :class:`BadSampleWarning`,
so an epoch never dies on one broken file.
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from conrdata.dataset.keys import split_member
from conrdata.dataset.schema import ClipArrays
from conrdata.dataset.shardlist import expand_shards, is_remote
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
    """Local shard files named by ``source``: an OUT dir, a folder of shards, one shard, a glob or brace
    pattern, or a list of these, by the rule of :mod:`conrdata.dataset.shardlist`; ``split`` keeps a
    folder's ``{split}-*`` shards. Remote URLs are for the training stream: UserError here."""
    urls = expand_shards(source, split)
    remote = [u for u in urls if is_remote(u)]
    if remote:
        raise UserError("remote shards are read by the training stream, not iter_clips", remote[0])
    return [Path(u) for u in urls]


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
