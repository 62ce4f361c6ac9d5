"""The per-character train/val split of docs/design.md.

A character is in "val" when the sha256 of its id, read as an integer, is 0
mod 16 (about 1/16 of the characters), unless pinned. Splitting is by
character, never by image: the same character never appears in both splits.
"""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

from conrdata.errors import UserError

SPLITS = ("train", "val")
VAL_MODULUS = 16


def hashed_split(character_id: str) -> str:
    """The split of ``character_id`` by hash alone."""
    h = int.from_bytes(hashlib.sha256(str(character_id).encode("utf-8")).digest(), "big")
    return "val" if h % VAL_MODULUS == 0 else "train"


def split_of(character_id: str, pinned: dict | None = None) -> str:
    """ "train" or "val" for a character: ``pinned[character_id]`` when given, else by hash."""
    if pinned and character_id in pinned:
        value = pinned[character_id]
        if value not in SPLITS:
            raise UserError(
                f"character {character_id!r} pinned to unknown split {value!r} (use train or val)"
            )
        return value
    return hashed_split(character_id)


def read_pins(path: str | Path) -> dict[str, str]:
    """A pin CSV (header ``character_id,split``; ``id`` is accepted too) -> {character id: split}.

    A character pinned twice to different splits is a leak and is refused.
    """
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except OSError as err:
        raise UserError(f"cannot read pin file ({err.strerror})", path) from None
    pins: dict[str, str] = {}
    for n, row in enumerate(rows, start=2):
        cid = (row.get("character_id") or row.get("id") or "").strip()
        split = (row.get("split") or "").strip().lower()
        if not cid or split not in SPLITS:
            raise UserError(f"line {n}: need columns character_id and split (train or val)", path)
        if pins.get(cid, split) != split:
            raise UserError(
                f"line {n}: character {cid!r} pinned to both {pins[cid]} and {split} (a leak)", path
            )
        pins[cid] = split
    return pins
