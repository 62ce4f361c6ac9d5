"""Reassign characters to splits after the fact (``conrdata split``), moving their clips.

Shards are immutable, so every shard holding a clip that changes split is
rewritten: its clips are copied (images byte for byte, only ``KEY.json``'s
split changes) into new shards built in ``OUT/.split-staging/``. The switch is
journaled: ``manifests/split-journal.json`` is written once staging is
complete (the commit point); then staged shards move into ``shards/``, old
shards are deleted and the manifests rewritten. A run killed before the
journal leaves the dataset untouched (staging is discarded); one killed after
it is rolled forward by the next ``conrdata split`` or ``DatasetWriter``
(:mod:`conrdata.dataset.journal`). New shard names follow
:func:`conrdata.dataset.layout.next_shard_indices`.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from conrdata.dataset.journal import commit_split, finish_pending_split
from conrdata.dataset.keys import split_member
from conrdata.dataset.layout import STAGING, next_shard_indices
from conrdata.dataset.manifests import MANIFEST_DIR, SHARD_DIR, DatasetLock, read_manifest, write_manifests
from conrdata.dataset.schema import dump_record
from conrdata.dataset.split import SPLITS, hashed_split
from conrdata.dataset.tario import iter_members
from conrdata.dataset.writer import DEFAULT_MAX_SHARD_BYTES, DatasetWriter
from conrdata.errors import UserError

__all__ = ["STAGING", "SplitPlan", "apply_split", "character_leaks", "finish_pending_split", "plan_split"]


@dataclass
class SplitPlan:
    """Characters whose split changes ({id: (old, new)}) and the shards to rewrite."""

    moves: dict[str, tuple[str, str]] = field(default_factory=dict)
    shards: list[str] = field(default_factory=list)
    clips_moved: int = 0
    clips_copied: int = 0
    unknown_pins: list[str] = field(default_factory=list)
    targets: dict[str, tuple[str, bool]] = field(default_factory=dict)  # id -> (split, pinned)


def character_leaks(clips: list[dict], characters: list[dict] | None = None) -> dict[str, set[str]]:
    """{character id: splits} for every character whose clips (or manifest row) span both splits."""
    seen: dict[str, set[str]] = {}
    for r in clips:
        seen.setdefault(r["character"], set()).add(r["split"])
    for r in characters or []:
        if r["id"] in seen:
            seen[r["id"]].add(r["split"])
    return {c: s for c, s in seen.items() if len(s) > 1}


def plan_split(out_dir, pins: dict[str, str] | None = None) -> SplitPlan:
    """What :func:`apply_split` would do: pinned characters go where pinned (earlier pins stay
    unless overridden), the rest by hash."""
    out_dir = Path(out_dir)
    pins = dict(pins or {})
    for cid, split in pins.items():
        if split not in SPLITS:
            raise UserError(f"character {cid!r} pinned to unknown split {split!r}")
    characters = read_manifest(out_dir, "characters")
    clips = read_manifest(out_dir, "clips")
    if not (out_dir / MANIFEST_DIR / "shards.parquet").exists():
        raise UserError("no manifests/shards.parquet: not a dataset folder", out_dir)
    plan = SplitPlan()
    known = {r["id"]: r for r in characters}
    for r in clips:
        known.setdefault(r["character"], {"id": r["character"], "split": r["split"], "pinned": False})
    plan.unknown_pins = sorted(set(pins) - set(known))
    for cid, row in known.items():
        if cid in pins:
            plan.targets[cid] = (pins[cid], True)
        elif row.get("pinned"):
            plan.targets[cid] = (row["split"], True)
        else:
            plan.targets[cid] = (hashed_split(cid), False)
    shards = set()
    for r in clips:
        new = plan.targets[r["character"]][0]
        if r["split"] != new:
            plan.moves[r["character"]] = (r["split"], new)
            shards.add(r["shard"])
    for cid, row in known.items():
        if row["split"] != plan.targets[cid][0]:
            plan.moves.setdefault(cid, (row["split"], plan.targets[cid][0]))
    plan.shards = sorted(shards)
    plan.clips_moved = sum(r["split"] != plan.targets[r["character"]][0] for r in clips)
    plan.clips_copied = sum(r["shard"] in shards for r in clips) - plan.clips_moved
    return plan


def apply_split(
    out_dir,
    plan: SplitPlan,
    max_shard_bytes: int | None = None,
    max_shard_clips: int | None = None,
    commit_only: bool = False,
):
    """Carry out ``plan``; returns the names of the new shards. Refuses to leave a character in two splits.

    ``commit_only`` stops right after the commit point (journal written, nothing switched yet), the
    state a kill there leaves; the next :func:`finish_pending_split` completes it. Used by tests."""
    with DatasetLock(out_dir):
        return _apply_split_locked(Path(out_dir), plan, max_shard_bytes, max_shard_clips, commit_only)


def _apply_split_locked(
    out_dir: Path, plan: SplitPlan, max_shard_bytes, max_shard_clips, commit_only
) -> list[str]:
    finish_pending_split(out_dir)
    staging = out_dir / STAGING
    if staging.exists():
        shutil.rmtree(staging)
    characters = read_manifest(out_dir, "characters")
    clips = read_manifest(out_dir, "clips")
    shards = read_manifest(out_dir, "shards")
    char_rows = {r["id"]: dict(r) for r in characters}
    for cid, (split, pinned) in plan.targets.items():
        row = char_rows.setdefault(cid, {"id": cid})
        row.update(split=split, pinned=bool(pinned))
    if not plan.shards:
        if plan.moves:  # characters without clips only change their manifest row
            write_manifests(out_dir, list(char_rows.values()), clips, shards)
        return []
    start = next_shard_indices(p.name for p in (out_dir / SHARD_DIR).iterdir())
    if max_shard_clips is None:
        max_shard_clips = max([r["clips"] for r in shards] + [1])
    pinned = {cid: s for cid, (s, _) in plan.targets.items()}
    with DatasetWriter(
        staging,
        max_shard_bytes=max_shard_bytes or DEFAULT_MAX_SHARD_BYTES,
        max_shard_clips=max_shard_clips,
        pinned=pinned,
        shard_start=start,
    ) as w:
        for name in plan.shards:
            group: list[tuple[str, bytes]] = []
            for member, data, _ in iter_members(out_dir / SHARD_DIR / name):
                if group and split_member(member)[0] != split_member(group[0][0])[0]:
                    _copy_clip(w, group, pinned)
                    group = []
                group.append((member, data))
            if group:
                _copy_clip(w, group, pinned)
    new_shards = read_manifest(staging, "shards")
    new_clips = read_manifest(staging, "clips")
    moved_keys = {r["key"] for r in new_clips}
    kept_clips = [r for r in clips if r["shard"] not in plan.shards]
    if moved_keys & {r["key"] for r in kept_clips}:
        raise UserError("staged clips overlap clips that stay; dataset left unchanged", out_dir)
    final_clips = kept_clips + new_clips
    leaks = character_leaks(final_clips, list(char_rows.values()))
    if leaks:
        shutil.rmtree(staging)
        some = ", ".join(sorted(leaks)[:5])
        raise UserError(
            f"refusing: characters would span both splits ({some}); dataset left unchanged", out_dir
        )
    journal = {
        "remove": plan.shards,
        "add": [r["name"] for r in new_shards],
        "characters": list(char_rows.values()),
        "clips": final_clips,
        "shards": [r for r in shards if r["name"] not in plan.shards] + new_shards,
    }
    commit_split(out_dir, journal)  # commit point
    if not commit_only:
        finish_pending_split(out_dir)
    return [r["name"] for r in new_shards]


def _copy_clip(writer, members: list[tuple[str, bytes]], pinned: dict[str, str]) -> None:
    key = split_member(members[0][0])[0]
    json_name = f"{key}.json"
    record = None
    out = []
    for name, data in members:
        if name == json_name:
            record = json.loads(data)
            record["split"] = pinned.get(record["character_id"], record["split"])
            data = dump_record(record)
        out.append((name, data))
    if record is None:
        raise UserError(f"clip {key} has no KEY.json; run `conrdata validate` first")
    out.sort(key=lambda m: (m[0] != json_name, m[0]))
    writer.write_encoded(key, out, record)

