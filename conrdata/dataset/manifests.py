"""The parquet manifests beside the shards: ``OUT/manifests/{characters,clips,shards}.parquet``.

Fixed columns (extra ``characters`` columns come from the caller's info dicts):

- characters: ``id`` string, ``split`` string ("train"/"val"), ``pinned`` bool (split set by a pin,
  not by hash), then one column per info key (scalars as given; lists/dicts as JSON strings).
- clips: ``key``, ``shard`` (file name), ``character``, ``clip_id``, ``n_images`` int32,
  ``n_labelled`` int32, ``labelled`` bool (every image has a UDP), ``split``, ``offset`` int64 (byte
  offset of the clip's first tar header), ``bytes`` int64 (its bytes in the tar), ``torn_shares``
  list<double> (each image's ``torn_share`` from KEY.json, null where an image has none) and
  ``torn_share_max`` double (null when no image has one). The two label columns are optional when
  read: manifests written before them read as null.
- shards: ``name``, ``split``, ``bytes`` int64, ``clips`` int32, ``images`` int32, ``sha256`` (hex).

``OUT/manifests/dataset.json`` records the schema version, UDP codec, seed and caller metadata.
Every file is replaced atomically (temp file, then rename).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from conrdata.errors import FormatError, UserError

MANIFEST_DIR = "manifests"
SHARD_DIR = "shards"

CHARACTER_SCHEMA = pa.schema([("id", pa.string()), ("split", pa.string()), ("pinned", pa.bool_())])
CLIP_SCHEMA = pa.schema(
    [
        ("key", pa.string()),
        ("shard", pa.string()),
        ("character", pa.string()),
        ("clip_id", pa.string()),
        ("n_images", pa.int32()),
        ("n_labelled", pa.int32()),
        ("labelled", pa.bool_()),
        ("split", pa.string()),
        ("offset", pa.int64()),
        ("bytes", pa.int64()),
        ("torn_shares", pa.list_(pa.float64())),
        ("torn_share_max", pa.float64()),
    ]
)
#: Columns a manifest written by an older version may lack; they read back as None.
OPTIONAL_COLUMNS = {"clips": ("torn_shares", "torn_share_max")}
SHARD_SCHEMA = pa.schema(
    [
        ("name", pa.string()),
        ("split", pa.string()),
        ("bytes", pa.int64()),
        ("clips", pa.int32()),
        ("images", pa.int32()),
        ("sha256", pa.string()),
    ]
)
SCHEMAS = {"characters": CHARACTER_SCHEMA, "clips": CLIP_SCHEMA, "shards": SHARD_SCHEMA}


class DatasetLock:
    """An exclusive advisory lock on ``OUT/manifests/.lock`` held by the one process writing OUT.

    The OS releases it when the process dies, so a killed writer never blocks the rerun.
    """

    def __init__(self, out_dir: str | os.PathLike):
        import fcntl

        path = Path(out_dir) / MANIFEST_DIR / ".lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(self._fd)
            self._fd = None
            raise UserError(
                "another process is writing this dataset (manifests/.lock is held)", out_dir
            ) from None

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None

    def __enter__(self) -> DatasetLock:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def label_columns(record: dict) -> dict:
    """The clips.parquet label columns of a clip from its parsed KEY.json record."""
    shares = [im.get("torn_share") for im in record.get("images", [])]
    shares = [float(v) if isinstance(v, int | float) else None for v in shares]
    measured = [v for v in shares if v is not None]
    return {"torn_shares": shares, "torn_share_max": max(measured) if measured else None}


def manifest_path(out_dir: str | os.PathLike, name: str) -> Path:
    return Path(out_dir) / MANIFEST_DIR / f"{name}.parquet"


def _flatten_info(value):
    if isinstance(value, dict | list | tuple):
        return json.dumps(value, sort_keys=True, default=str)
    return value


def characters_table(rows: list[dict]) -> pa.Table:
    """Rows {"id", "split", "pinned", **info} -> table; fixed columns first, info columns sorted."""
    extra = sorted({k for r in rows for k in r} - set(CHARACTER_SCHEMA.names))
    fields = list(CHARACTER_SCHEMA)
    columns = {f.name: pa.array([r.get(f.name) for r in rows], f.type) for f in CHARACTER_SCHEMA}
    for name in extra:
        values = [_flatten_info(r.get(name)) for r in rows]
        try:
            arr = pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            arr = pa.array([None if v is None else str(v) for v in values], pa.string())
        if pa.types.is_null(arr.type):
            arr = arr.cast(pa.string())
        columns[name] = arr
        fields.append(pa.field(name, arr.type))
    return pa.Table.from_arrays([columns[f.name] for f in fields], schema=pa.schema(fields))


def write_table(table: pa.Table, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)


def write_manifests(out_dir, characters: list[dict], clips: list[dict], shards: list[dict]) -> None:
    """Write all three manifests (rows sorted by id / key / name), each atomically."""
    write_table(
        characters_table(sorted(characters, key=lambda r: r["id"])), manifest_path(out_dir, "characters")
    )
    clips = sorted(clips, key=lambda r: r["key"])
    write_table(pa.Table.from_pylist(clips, schema=CLIP_SCHEMA), manifest_path(out_dir, "clips"))
    shards = sorted(shards, key=lambda r: r["name"])
    write_table(pa.Table.from_pylist(shards, schema=SHARD_SCHEMA), manifest_path(out_dir, "shards"))


def read_manifest(out_dir, name: str) -> list[dict]:
    """Rows of one manifest as dicts ([] when the file does not exist)."""
    path = manifest_path(out_dir, name)
    if not path.exists():
        return []
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as err:
        raise FormatError(f"unreadable manifest ({err})", path) from None
    optional = OPTIONAL_COLUMNS.get(name, ())
    missing = set(SCHEMAS[name].names) - set(table.column_names)
    if missing - set(optional):
        raise FormatError(f"manifest lacks columns {sorted(missing - set(optional))}", path)
    rows = table.to_pylist()
    for row in rows:
        for column in missing:
            row[column] = None
    return rows


def read_dataset_info(out_dir) -> dict:
    path = Path(out_dir) / MANIFEST_DIR / "dataset.json"
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise FormatError(f"unreadable dataset record ({err})", path) from None


def write_dataset_info(out_dir, info: dict) -> None:
    path = Path(out_dir) / MANIFEST_DIR / "dataset.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(info, sort_keys=True, indent=1, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)


DESCRIPTIONS = {
    "characters": {
        "id": "character id (conrdata convert: stable slug of the file stem + 8 hex of its sha256)",
        "split": "train or val; every clip of the character is in this split",
        "pinned": "true when the split was set by a pin rather than by sha256(id) mod 16",
    },
    "clips": {
        "key": "WebDataset sample key (no dots): <character>__<clip>, see conrdata.dataset.clip_key",
        "shard": "file name of the shard under OUT/shards/",
        "character": "character id",
        "clip_id": "clip id, unique within the character",
        "n_images": "images in the clip (1 = one-shot)",
        "n_labelled": "images that have a UDP",
        "labelled": "every image has a UDP",
        "split": "train or val",
        "offset": "byte offset of the clip's first tar header in the shard",
        "bytes": "bytes the clip's members take in the shard (headers and padding included)",
        "torn_shares": "per image, the share of foreground UDP pixels that disagree with the skeleton "
                       "(KEY.json torn_share; null where not measured)",
        "torn_share_max": "largest torn_share of the clip's images (null when none was measured)",
    },
    "shards": {
        "name": "{split}-{NNNNNN}.tar",
        "split": "train or val",
        "bytes": "file size",
        "clips": "clips in the shard",
        "images": "images in the shard",
        "sha256": "hex sha256 of the whole file",
    },
}
EXTRA_CHARACTER_COLUMNS = (
    "one column per key of the info dicts given to DatasetWriter.add_character "
    "(e.g. licence, source, format; scalars as given, lists and dicts as JSON strings)"
)


def schema_description() -> dict:
    """{manifest: document}: exactly what ``manifests/<name>.schema.json`` in the repository holds."""
    docs = {}
    for name, schema in SCHEMAS.items():
        doc = {
            "manifest": f"OUT/{MANIFEST_DIR}/{name}.parquet",
            "columns": [
                {"name": f.name, "type": str(f.type), "description": DESCRIPTIONS[name][f.name]}
                for f in schema
            ],
        }
        if name == "characters":
            doc["extra_columns"] = EXTRA_CHARACTER_COLUMNS
        docs[name] = doc
    return docs


def write_schema_files(folder) -> list[Path]:
    """Write ``<folder>/<name>.schema.json`` for each manifest (the repository's manifests/ folder)."""
    paths = []
    for name, doc in schema_description().items():
        path = Path(folder) / f"{name}.schema.json"
        path.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
        paths.append(path)
    return paths
