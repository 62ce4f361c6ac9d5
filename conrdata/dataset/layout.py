"""Names inside a dataset folder: shard files, the split staging folder and journal, the next shard index.

One rule for the next index, used by :class:`~conrdata.dataset.writer.DatasetWriter` (new shards of a
run) and :mod:`conrdata.dataset.resplit` (shards staged by ``conrdata split``): a new shard of a split
takes one past the highest index any shard of that split uses, counting shards moved aside as
``NAME.orphan``, so a name is never reused.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from conrdata.dataset.split import SPLITS

#: A finished shard: ``{split}-NNNNNN.tar``.
SHARD_RE = re.compile(r"^(train|val)-(\d{6})\.tar$")
#: Folder (inside OUT) where ``conrdata split`` builds its new shards before the switch.
STAGING = ".split-staging"
#: File (inside OUT/manifests) whose presence commits a split: the roll-forward instructions.
JOURNAL = "split-journal.json"
ORPHAN_SUFFIX = ".orphan"


def shard_name(split: str, index: int) -> str:
    """``train-000012.tar`` for ("train", 12)."""
    return f"{split}-{index:06d}.tar"


def parse_shard_name(name: str) -> tuple[str, int] | None:
    """(split, index) of a shard file name, also of one moved aside as ``NAME.orphan``; None otherwise."""
    m = SHARD_RE.match(name.split(ORPHAN_SUFFIX)[0])
    return (m.group(1), int(m.group(2))) if m else None


def next_shard_indices(names: Iterable[str], start: dict[str, int] | None = None) -> dict[str, int]:
    """{split: index of its next new shard}: one past the highest index among ``names`` (file names in
    the shard folder, manifest shard names), and at least ``start[split]`` (default 0)."""
    out = {s: int((start or {}).get(s, 0)) for s in SPLITS}
    for name in names:
        parsed = parse_shard_name(name)
        if parsed is not None:
            split, index = parsed
            out[split] = max(out[split], index + 1)
    return out
