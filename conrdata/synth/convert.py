"""`conrdata convert`: a folder of model files -> canonical A-pose characters + a manifest.

Every supported file under ``meshes_dir`` (see :data:`conrdata.formats.SUPPORTED_EXTENSIONS`)
is read (:func:`conrdata.formats.load_model`), aligned
(:func:`conrdata.rig.apose.align_to_apose`) and written as
``characters_dir/<id>.npz`` (:mod:`conrdata.rig.io`). The character id
is a slug of the file stem plus the first 8 hex digits of the file's sha256,
so it is stable across machines and runs and holds no dots.

``characters_dir/characters.parquet`` has one row per character (id, source
path, format, sha256, counts, humanoid bones found and how each was found,
licence, warnings, ...). Rigs without a humanoid table are mapped by
:func:`conrdata.rig.humanoid_infer.resolve_humanoid` (name rules, topology, a user
``--bone-map``); its record is the ``humanoid_sources`` (JSON: humanoid bone ->
vrm | pmx | pmd | name | topology | user | stand-in | limb) and ``humanoid_notes``
columns, and ``bone_map`` holds the user entries that applied (a file is converted
again when they change).
``characters_dir/convert_report.json`` lists what the last run converted,
reused and skipped, with the reason for each skip. A rerun skips files whose
sha256 is already in the manifest (and whose character file exists); a killed
run loses at most the files in flight (the manifest is checkpointed, and each
character file is written atomically).
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import re
import tempfile
import time
import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from conrdata.errors import UserError
from conrdata.formats import SUPPORTED_EXTENSIONS, format_of, load_model
from conrdata.rig.apose import align_to_apose
from conrdata.rig.humanoid_infer import bone_map_for, resolve_humanoid
from conrdata.rig.io import save_character

MANIFEST = "characters.parquet"
REPORT = "convert_report.json"
CHECKPOINT_EVERY = 25

MANIFEST_COLUMNS = (
    "id", "path", "source_path", "format", "sha256", "vertices", "faces", "bones", "humanoid_bones",
    "humanoid_count", "height_m", "licence", "warnings", "convert_seconds", "humanoid_sources",
    "humanoid_notes", "bone_map",
)


@dataclass
class ConvertReport:
    """What one :func:`convert_folder` run did.

    ``converted``: manifest rows written by this run; ``reused``: (source path,
    id) of files already converted before; ``skipped``: dicts with ``path`` and
    ``reason``.
    """

    converted: list[dict] = field(default_factory=list)
    reused: list[tuple[str, str]] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return bool(self.converted or self.reused)

    def summary(self) -> str:
        return (f"converted {len(self.converted)}, already converted {len(self.reused)}, "
                f"skipped {len(self.skipped)} in {self.seconds:.1f} s")

    def to_dict(self) -> dict:
        return {"converted": [r["id"] for r in self.converted],
                "reused": [{"path": p, "id": i} for p, i in self.reused],
                "skipped": self.skipped, "seconds": self.seconds, "summary": self.summary()}


def slugify(stem: str, max_len: int = 40) -> str:
    """Lower-case ASCII letters, digits and '-' only (no dots: ids are WebDataset keys)."""
    s = re.sub(r"[^a-z0-9]+", "-", stem.lower()).strip("-")
    return s[:max_len].strip("-") or "model"


def character_id(path, sha256: str) -> str:
    """Stable id of a model file: ``<slug of stem>-<first 8 hex of sha256>``."""
    return f"{slugify(Path(path).stem)}-{sha256[:8]}"


def file_sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def find_models(meshes_dir) -> list[Path]:
    """Supported model files under ``meshes_dir`` (recursive, hidden folders skipped), sorted.

    Symbolic links to folders and files are followed (a library of linked model folders is common);
    a folder reached again through a link (a cycle, or two links to one folder) is walked once,
    with a warning for a cycle. The same file reached twice is skipped later by its sha256.
    """
    root = Path(meshes_dir)
    out = []
    walked: dict[str, tuple[int, int]] = {}  # folder path as walked -> its (device, inode)
    seen: set[tuple[int, int]] = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        try:
            st = os.stat(dirpath)
        except OSError:
            dirnames[:] = []
            continue
        folder = (st.st_dev, st.st_ino)
        if folder in seen:
            dirnames[:] = []
            up, below = os.path.dirname(dirpath), dirpath
            while up in walked and up != below and walked[up] != folder:  # climb the walked ancestors
                up, below = os.path.dirname(up), up
            if walked.get(up) == folder:
                warnings.warn(f"{dirpath}: symbolic link to a folder above it; not followed", stacklevel=1)
            continue
        walked[dirpath] = folder
        seen.add(folder)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in filenames:
            if not name.startswith(".") and os.path.splitext(name)[1].lower() in SUPPORTED_EXTENSIONS:
                out.append(Path(dirpath) / name)
    return sorted(out)


def prepare_model(path, bone_map: dict | None = None):
    """Read a model file and make it a canonical rig: humanoid mapping, then A-pose alignment.

    ``bone_map`` is a :func:`conrdata.rig.humanoid_infer.read_bone_map` result (or None).
    """
    return align_to_apose(resolve_humanoid(load_model(path), bone_map_for(bone_map, path)))


def _bone_map_key(bone_map: dict | None, path) -> str:
    """The user bone-map entries that apply to ``path``, as canonical JSON ("" when none)."""
    entries = bone_map_for(bone_map, path)
    return json.dumps(entries, sort_keys=True, ensure_ascii=False) if entries else ""


def convert_file(path, characters_dir, sha256: str | None = None, bone_map: dict | None = None) -> dict:
    """Convert one model file; returns its manifest row. Raises UserError (or a subclass) on bad input."""
    t0 = time.perf_counter()
    path = Path(path)
    sha = sha256 or file_sha256(path)
    cid = character_id(path, sha)
    rig = prepare_model(path, bone_map)
    meta = dict(rig.meta)
    meta.update({"character_id": cid, "sha256": sha, "source": str(path)})
    rig = rig.replace(meta=meta)
    out = save_character(rig, Path(characters_dir) / f"{cid}.npz")
    return {
        "id": cid,
        "path": out.name,
        "source_path": str(path),
        "format": str(meta.get("format") or format_of(path)),
        "sha256": sha,
        "vertices": int(len(rig.vertices)),
        "faces": int(len(rig.faces)),
        "bones": int(rig.num_bones),
        "humanoid_bones": sorted(rig.humanoid),
        "humanoid_count": int(len(rig.humanoid)),
        "height_m": float(rig.height()),
        "licence": json.dumps(meta.get("licence") or {}, ensure_ascii=False, sort_keys=True, default=str),
        "warnings": [str(w) for w in rig.warnings],
        "convert_seconds": float(time.perf_counter() - t0),
        "humanoid_sources": json.dumps(meta.get("humanoid_sources") or {}, sort_keys=True),
        "humanoid_notes": [str(n) for n in meta.get("humanoid_notes") or []],
        "bone_map": _bone_map_key(bone_map, path),
    }


def _work(args: tuple) -> tuple[str, dict | None, str | None]:
    """Worker: (path, characters_dir, sha, bone_map) -> (path, row, skip reason). Never raises."""
    path, characters_dir, sha, bone_map = args
    try:
        return path, convert_file(path, characters_dir, sha, bone_map), None
    except UserError as err:
        return path, None, str(err)
    except MemoryError:
        return path, None, f"{path}: out of memory while converting"
    except Exception as err:  # a reader bug must not stop the batch; the report keeps the reason
        return path, None, f"{path}: internal error ({type(err).__name__}: {err})"


def read_manifest(characters_dir) -> list[dict]:
    """Rows of ``characters_dir/characters.parquet`` ([] if absent)."""
    path = Path(characters_dir) / MANIFEST
    if not path.exists():
        return []
    try:
        return pq.read_table(path).to_pylist()
    except Exception as err:  # pyarrow raises ArrowInvalid, OSError, ...
        raise UserError(f"cannot read the character manifest ({err})", path) from None


def write_manifest(characters_dir, rows: list[dict]) -> Path:
    """Write the manifest atomically, rows sorted by id."""
    schema = pa.schema([
        ("id", pa.string()), ("path", pa.string()), ("source_path", pa.string()), ("format", pa.string()),
        ("sha256", pa.string()), ("vertices", pa.int64()), ("faces", pa.int64()), ("bones", pa.int64()),
        ("humanoid_bones", pa.list_(pa.string())), ("humanoid_count", pa.int64()), ("height_m", pa.float64()),
        ("licence", pa.string()), ("warnings", pa.list_(pa.string())), ("convert_seconds", pa.float64()),
        ("humanoid_sources", pa.string()), ("humanoid_notes", pa.list_(pa.string())),
        ("bone_map", pa.string()),
    ])
    rows = sorted(rows, key=lambda r: r["id"])
    table = pa.Table.from_pylist([{k: r.get(k) for k in MANIFEST_COLUMNS} for r in rows], schema=schema)
    out = Path(characters_dir) / MANIFEST
    fd, tmp = tempfile.mkstemp(prefix="characters.", suffix=".tmp", dir=out.parent)
    os.close(fd)
    try:
        pq.write_table(table, tmp)
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out


def convert_folder(meshes_dir, characters_dir, workers: int = 1, strict: bool = False,
                   progress: bool = True, bone_map: dict | None = None) -> ConvertReport:
    """Convert every supported model under ``meshes_dir`` into ``characters_dir`` (see module docstring).

    ``workers`` > 1 converts in a process pool. Bad files are skipped with their
    reason in the report. ``strict`` does not change what is converted; the CLI
    uses it to turn any skip into a failing exit code. ``bone_map`` (from
    :func:`conrdata.rig.humanoid_infer.read_bone_map`) overrides humanoid bones per model.
    Raises UserError when ``meshes_dir`` does not exist.
    """
    del strict  # the decision is the caller's; kept for a uniform signature with the CLI
    t0 = time.perf_counter()
    meshes_dir, characters_dir = Path(meshes_dir), Path(characters_dir)
    if not meshes_dir.is_dir():
        raise UserError("meshes folder not found", meshes_dir)
    characters_dir.mkdir(parents=True, exist_ok=True)
    report = ConvertReport()
    rows = {r["id"]: r for r in read_manifest(characters_dir) if (characters_dir / r["path"]).is_file()}
    by_sha = {(r["sha256"], r.get("bone_map") or ""): r["id"] for r in rows.values()}

    jobs: list[tuple] = []
    seen_in_run: dict[str, str] = {}
    for path in find_models(meshes_dir):
        try:
            sha = file_sha256(path)
        except OSError as err:
            report.skipped.append({"path": str(path), "reason": f"{path}: cannot read ({err.strerror})"})
            continue
        if (sha, _bone_map_key(bone_map, path)) in by_sha:
            report.reused.append((str(path), by_sha[sha, _bone_map_key(bone_map, path)]))
        elif sha in seen_in_run:
            report.skipped.append({"path": str(path), "reason": f"{path}: identical to {seen_in_run[sha]}"})
        else:
            seen_in_run[sha] = str(path)
            jobs.append((str(path), str(characters_dir), sha, bone_map))

    done_since_checkpoint = 0

    def record(path: str, row: dict | None, reason: str | None) -> None:
        nonlocal done_since_checkpoint
        if row is None:
            report.skipped.append({"path": path, "reason": reason})
            return
        rows[row["id"]] = row
        report.converted.append(row)
        done_since_checkpoint += 1
        if done_since_checkpoint >= CHECKPOINT_EVERY:
            write_manifest(characters_dir, list(rows.values()))
            done_since_checkpoint = 0

    bar = tqdm(total=len(jobs), desc="convert", unit="model", disable=not progress or not jobs)
    if workers <= 1 or len(jobs) <= 1:
        for job in jobs:
            record(*_work(job))
            bar.update()
    else:
        ctx = multiprocessing.get_context("spawn")  # no fork: callers may hold GL contexts or threads
        with ProcessPoolExecutor(max_workers=min(workers, len(jobs)), mp_context=ctx) as pool:
            futures = [pool.submit(_work, job) for job in jobs]
            for fut in as_completed(futures):
                record(*fut.result())
                bar.update()
    bar.close()
    report.converted.sort(key=lambda r: r["id"])
    report.skipped.sort(key=lambda s: s["path"])
    if report.converted or not (characters_dir / MANIFEST).exists():
        write_manifest(characters_dir, list(rows.values()))
    report.seconds = time.perf_counter() - t0
    (characters_dir / REPORT).write_text(json.dumps(report.to_dict(), indent=2, ensure_ascii=False))
    return report


def list_characters(characters_dir) -> list[tuple[str, Path]]:
    """(id, path) of every converted character in ``characters_dir``, sorted by id.

    Uses the manifest when present (rows whose file exists), else every ``*.npz``.
    """
    characters_dir = Path(characters_dir)
    rows = read_manifest(characters_dir)
    if rows:
        found = [(r["id"], characters_dir / r["path"]) for r in rows]
        return sorted((i, p) for i, p in found if p.is_file())
    return sorted((p.stem, p) for p in characters_dir.glob("*.npz"))
