"""DatasetWriter: clips -> ``OUT/shards/{split}-NNNNNN.tar`` + ``OUT/manifests/*.parquet``.

Each split has at most one open shard, written to ``shards/.{name}.tmp`` and
renamed to its final name when full (by bytes or clip count) or on close; the
manifests are rewritten atomically after every finished shard. A run killed
at any point therefore leaves finished shards, maybe a temp file, and
manifests describing all or all-but-the-last finished shards. Reopening the
same OUT reconciles that (deletes temp files, adopts a finished shard the
manifests missed, drops manifest rows whose shard vanished), after which
:meth:`DatasetWriter.has_clip` tells the caller which clips still need
writing: rerunning the same job gives every clip exactly once.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import numpy as np

from conrdata.dataset.codec import encode_rgba, encode_udp
from conrdata.dataset.journal import finish_pending_split
from conrdata.dataset.keys import clip_key, image_member, json_member, split_member
from conrdata.dataset.layout import ORPHAN_SUFFIX, SHARD_RE, next_shard_indices, shard_name
from conrdata.dataset.manifests import (
    MANIFEST_DIR,
    SHARD_DIR,
    DatasetLock,
    label_columns,
    read_dataset_info,
    read_manifest,
    write_dataset_info,
    write_manifests,
)
from conrdata.dataset.schema import SCHEMA, Clip, clip_record, dump_record
from conrdata.dataset.split import split_of
from conrdata.dataset.tario import (
    BLOCK,
    RECORD,
    DeterministicTarWriter,
    TarTruncated,
    iter_members,
    member_bytes,
)
from conrdata.errors import UserError

log = logging.getLogger(__name__)

DEFAULT_MAX_SHARD_BYTES = 1 << 30
DEFAULT_MAX_SHARD_CLIPS = 1000
MAX_IMAGES_PER_CLIP = 100


def encode_clip(clip: Clip, split: str, udp_codec: str = "zlib") -> tuple[str, list[tuple[str, bytes]], dict]:
    """A clip -> (key, tar members in write order, KEY.json record). Checks array types and shapes."""
    if not clip.images:
        raise ValueError(f"clip {clip.character_id}/{clip.clip_id} has no images")
    if len(clip.images) > MAX_IMAGES_PER_CLIP:
        raise ValueError(f"clip {clip.clip_id} has {len(clip.images)} images (max {MAX_IMAGES_PER_CLIP})")
    key = clip_key(clip.character_id, clip.clip_id)
    record = clip_record(clip, key, split)
    members = [(json_member(key), dump_record(record))]
    for i, im in enumerate(clip.images):
        rgba = np.asarray(im.rgba)
        members.append((image_member(key, i, "rgba"), encode_rgba(rgba)))
        if im.udp is not None:
            udp = np.asarray(im.udp)
            if udp.dtype != np.float32 or udp.shape != (*rgba.shape[:2], 4):
                raise ValueError(
                    f"clip {key} image {i}: UDP must be float32 {(*rgba.shape[:2], 4)}, "
                    f"got {udp.dtype} {udp.shape}"
                )
            members.append((image_member(key, i, "udp"), encode_udp(udp, udp_codec)))
    return key, members, record


def scan_shard(path: Path) -> list[dict]:
    """Clip rows (as in clips.parquet) of a finished shard, read from its tar.

    Raises TarTruncated or ValueError for a shard that is not a complete dataset shard."""
    rows: dict[str, dict] = {}
    for name, data, offset in iter_members(path):
        key, rest = split_member(name)
        row = rows.get(key)
        if row is None:
            row = rows[key] = {"key": key, "shard": path.name, "offset": offset, "bytes": 0}
        row["bytes"] += member_bytes(name, len(data))
        if rest == "json":
            rec = json.loads(data)
            n_lab = sum(bool(im.get("udp")) for im in rec["images"])
            row.update(
                character=rec["character_id"],
                clip_id=rec.get("clip_id", ""),
                n_images=len(rec["images"]),
                n_labelled=n_lab,
                labelled=n_lab == len(rec["images"]) > 0,
                split=rec["split"],
                **label_columns(rec),
            )
    for row in rows.values():
        if "character" not in row:
            raise ValueError(f"clip {row['key']} has no KEY.json")
    return list(rows.values())


class _OpenShard:
    def __init__(self, directory: Path, split: str, index: int):
        self.split = split
        self.name = shard_name(split, index)
        self.final = directory / self.name
        self.tmp = directory / f".{self.name}.tmp"
        self.writer = DeterministicTarWriter(self.tmp)
        self.clips: list[dict] = []
        self.images = 0
        self.dirty = False  # True while a clip's members are half written


class DatasetWriter:
    """Write clips of characters into WebDataset shards with parquet manifests.

    ``with DatasetWriter(out) as w: w.add_character(cid, {"licence": ...}); w.write(clip)``.

    - ``max_shard_bytes`` / ``max_shard_clips`` bound each shard (a single clip larger than the
      byte bound gets a shard of its own).
    - ``pinned``: {character id: "train"|"val"} overrides the hash split for new characters; a
      character already in the manifests keeps its split (a different pin is refused as a leak;
      ``conrdata split`` moves characters).
    - ``seed`` and ``metadata`` are recorded in ``manifests/dataset.json``; reopening an OUT written
      with another seed is refused.
    - ``udp_codec``: "zlib" (default) or "lzma" for the ``.udpz`` container.
    - ``shard_start``: lowest shard index per split (``conrdata split`` stages shards with it).
    """

    def __init__(
        self,
        out_dir: str | os.PathLike,
        max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES,
        max_shard_clips: int = DEFAULT_MAX_SHARD_CLIPS,
        *,
        seed: int | None = None,
        metadata: dict | None = None,
        pinned: dict | None = None,
        udp_codec: str = "zlib",
        shard_start: dict[str, int] | None = None,
    ):
        if max_shard_clips < 1 or max_shard_bytes < 1:
            raise ValueError("shard bounds must be positive")
        self.out_dir = Path(out_dir)
        self.shard_dir = self.out_dir / SHARD_DIR
        self.max_shard_bytes = int(max_shard_bytes)
        self.max_shard_clips = int(max_shard_clips)
        self.udp_codec = udp_codec
        self.pinned = dict(pinned or {})
        self.shard_dir.mkdir(parents=True, exist_ok=True)
        (self.out_dir / MANIFEST_DIR).mkdir(parents=True, exist_ok=True)
        self._lock = DatasetLock(self.out_dir)
        self._open: dict[str, _OpenShard] = {}
        self._closed = False
        self.written = 0  # clips written by this session
        self._shard_start = shard_start
        try:
            self._init_dataset_info(seed, metadata)
            self._load_state()
        except BaseException:
            self._lock.release()
            raise

    # -- state ---------------------------------------------------------------------------------
    def _init_dataset_info(self, seed, metadata) -> None:
        info = read_dataset_info(self.out_dir)
        if info and seed is not None and info.get("seed") is not None and info["seed"] != seed:
            raise UserError(
                f"was written with seed {info['seed']}, not {seed}; use a new output folder", self.out_dir
            )
        merged = dict(info.get("metadata") or {})
        merged.update(metadata or {})
        info.update(
            schema=SCHEMA,
            udp_encoding="udpz/1",
            udp_codec=self.udp_codec,
            rgba_encoding="png",
            seed=info.get("seed") if seed is None else seed,
            metadata=merged,
        )
        write_dataset_info(self.out_dir, info)

    def _load_state(self) -> None:
        finish_pending_split(self.out_dir)
        for tmp in self.shard_dir.glob(".*.tmp"):
            log.warning("removing unfinished shard %s from an interrupted run", tmp.name)
            tmp.unlink()
        self._characters = {r["id"]: r for r in read_manifest(self.out_dir, "characters")}
        shards = {r["name"]: r for r in read_manifest(self.out_dir, "shards")}
        clips = {r["key"]: r for r in read_manifest(self.out_dir, "clips")}
        changed = False
        for name in list(shards):
            if not (self.shard_dir / name).exists():
                log.warning(
                    "shard %s is listed in the manifests but missing; its clips will be rewritten", name
                )
                del shards[name]
                changed = True
        on_disk = sorted(p.name for p in self.shard_dir.iterdir() if SHARD_RE.match(p.name))
        for name in on_disk:
            if name in shards:
                continue
            changed = True
            path = self.shard_dir / name
            try:
                rows = scan_shard(path)
            except (TarTruncated, ValueError, KeyError, TypeError) as err:
                self._quarantine(path, f"unreadable ({err})")
                continue
            keys = {r["key"] for r in rows}
            if all(k not in clips for k in keys) or all(clips.get(k, {}).get("shard") == name for k in keys):
                size = path.stat().st_size
                shards[name] = {
                    "name": name,
                    "split": SHARD_RE.match(name).group(1),
                    "bytes": size,
                    "clips": len(rows),
                    "images": sum(r["n_images"] for r in rows),
                    "sha256": _sha256_file(path),
                }
                for r in rows:
                    clips[r["key"]] = r
                    self._characters.setdefault(
                        r["character"], {"id": r["character"], "split": r["split"], "pinned": False}
                    )
                log.warning("adopted finished shard %s that the manifests missed", name)
            else:
                self._quarantine(path, "its clips are already in other shards")
        stale = [k for k, r in clips.items() if r["shard"] not in shards]
        for k in stale:
            del clips[k]
        changed = changed or bool(stale)
        self._shards = shards
        self._clips = clips
        self._keys = set(clips)
        self._next_index = next_shard_indices([*shards, *(p.name for p in self.shard_dir.iterdir())],
                                              self._shard_start)
        if changed:
            self._write_manifests()

    def _quarantine(self, path: Path, reason: str) -> None:
        target = path.with_name(path.name + ORPHAN_SUFFIX)
        log.warning("moving shard %s aside to %s: %s", path.name, target.name, reason)
        os.replace(path, target)

    def _write_manifests(self) -> None:
        write_manifests(
            self.out_dir,
            list(self._characters.values()),
            list(self._clips.values()),
            list(self._shards.values()),
        )

    # -- public API ----------------------------------------------------------------------------
    def split_for(self, character_id: str) -> str:
        row = self._characters.get(character_id)
        if row is not None:
            return row["split"]
        return split_of(character_id, self.pinned)

    def add_character(self, character_id: str, info: dict | None = None) -> str:
        """Register a character (its split is fixed now) with info columns for characters.parquet;
        returns its split. Calling again updates the info."""
        character_id = str(character_id)
        if not character_id:
            raise ValueError("character id must be non-empty")
        row = self._characters.get(character_id)
        pinned = character_id in self.pinned
        if row is None:
            row = {"id": character_id, "split": split_of(character_id, self.pinned), "pinned": pinned}
        elif pinned and self.pinned[character_id] != row["split"]:
            raise UserError(
                f"character {character_id!r} already has clips in split {row['split']!r}; pinning it to "
                f"{self.pinned[character_id]!r} would leak it across splits (use `conrdata split --pin`)",
                self.out_dir,
            )
        for k, v in (info or {}).items():
            if k in ("id", "split", "pinned"):
                raise ValueError(f"character info may not set the reserved column {k!r}")
            row[k] = v
        self._characters[character_id] = row
        return row["split"]

    def has_clip(self, key: str) -> bool:
        """True when a clip with this key is in a finished shard or was written by this session."""
        return key in self._keys

    def write(self, clip: Clip) -> str:
        """Append one clip (to its character's split); returns its key. A key already present raises."""
        if self._closed:
            raise ValueError("writer is closed")
        if clip.character_id not in self._characters:
            self.add_character(clip.character_id)
        split = self._characters[clip.character_id]["split"]
        key, members, record = encode_clip(clip, split, self.udp_codec)
        return self.write_encoded(key, members, record)

    def write_encoded(self, key: str, members: list[tuple[str, bytes]], record: dict) -> str:
        """Append a clip already encoded as tar members (``KEY.json`` first) with its parsed record;
        used to move clips between shards without re-encoding images."""
        if self._closed:
            raise ValueError("writer is closed")
        character = str(record["character_id"])
        if character not in self._characters:
            self.add_character(character)
        split = self._characters[character]["split"]
        if record["split"] != split:
            raise ValueError(f"clip {key} is marked {record['split']!r} but its character is in {split!r}")
        if key in self._keys:
            raise ValueError(f"clip {key} is already in the dataset (check has_clip first)")
        size = sum(member_bytes(n, len(d)) for n, d in members)
        shard = self._open.get(split)
        if shard is not None and (
            len(shard.clips) >= self.max_shard_clips
            or _final_size(shard.writer.tell() + size) > self.max_shard_bytes
        ):
            self._finish(split)
            shard = None
        if shard is None:
            shard = self._open[split] = _OpenShard(self.shard_dir, split, self._next_index[split])
            self._next_index[split] += 1
        offset = shard.writer.tell()
        shard.dirty = True
        for name, data in members:
            shard.writer.add(name, data)
        shard.writer.flush()
        shard.dirty = False
        n_images = len(record["images"])
        n_lab = sum(bool(im.get("udp")) for im in record["images"])
        shard.clips.append(
            {
                "key": key,
                "shard": shard.name,
                "character": character,
                "clip_id": str(record.get("clip_id", "")),
                "n_images": n_images,
                "n_labelled": n_lab,
                "labelled": n_lab == n_images > 0,
                "split": split,
                "offset": offset,
                "bytes": size,
                **label_columns(record),
            }
        )
        shard.images += n_images
        self._keys.add(key)
        self.written += 1
        if len(shard.clips) >= self.max_shard_clips:
            self._finish(split)
        return key

    def _finish(self, split: str) -> None:
        shard = self._open.pop(split)
        size, sha = shard.writer.finish()
        os.replace(shard.tmp, shard.final)
        _fsync_dir(self.shard_dir)
        self._shards[shard.name] = {
            "name": shard.name,
            "split": split,
            "bytes": size,
            "clips": len(shard.clips),
            "images": shard.images,
            "sha256": sha,
        }
        for row in shard.clips:
            self._clips[row["key"]] = row
        self._write_manifests()

    def close(self) -> None:
        """Finish open shards and write the manifests."""
        if self._closed:
            return
        for split in sorted(self._open):
            if self._open[split].dirty:  # interrupted inside write(): never publish a half clip
                log.warning("dropping shard %s: a clip was interrupted mid-write", self._open[split].name)
                self._open.pop(split).writer.abort()
            else:
                self._finish(split)
        self._write_manifests()
        self._closed = True
        self._lock.release()

    def abort(self) -> None:
        """Drop open (unfinished) shards; finished shards and manifests stay."""
        for shard in self._open.values():
            shard.writer.abort()
        self._open.clear()
        self._closed = True
        self._lock.release()

    def __enter__(self) -> DatasetWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        # Clips in open shards are complete (a clip is encoded before any byte is written), so
        # they are kept even when the caller failed; only a failing close falls back to abort.
        try:
            self.close()
        except BaseException:
            self.abort()
            if exc_type is None:
                raise


def _final_size(payload: int) -> int:
    """Bytes of a tar with ``payload`` member bytes once the end blocks and record padding are added."""
    return -(-(payload + 2 * BLOCK) // RECORD) * RECORD


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
