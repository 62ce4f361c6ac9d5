"""Pack matted drawings as dataset clips without UDP: one-shot and unlabeled characters.

Grouping (``group_characters``):

- by folder: every immediate sub-folder of MATTED_DIR is one character (its
  images, recursively); an image lying directly in MATTED_DIR is a character of
  its own;
- by mapping: a CSV with the columns ``image`` (path relative to MATTED_DIR;
  a missing ``.jpg`` name is also looked up as the ``.png`` that
  ``conrdata matte`` wrote) and ``character`` (any name).

A character's id is ``drawn-<slug of its name>-<8 hex of sha256(name)>``: stable
for a name, unique across names that slug alike. A character with one usable
image becomes one *one-shot* clip (``clip_id`` "oneshot"); with more, its images
(sorted by path) are cut into *unlabeled* clips of at most ``clip_size`` images
(``c0000``, ``c0001``...). Every image is RGBA with ``udp=None``. Clips go
through :class:`conrdata.dataset.DatasetWriter`, which assigns the per-character
split and writes the manifests; a rerun skips clips already written.

Images that are not RGBA, fully transparent or unreadable are skipped and
listed in ``OUT_DIR/pack_drawn_report.csv`` (one row per image).
"""

from __future__ import annotations

import csv
import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from conrdata.dataset import Clip, ClipImage, DatasetWriter, clip_key
from conrdata.errors import FormatError, UserError
from conrdata.matte.batch import REPORT_NAME as MATTE_REPORT
from conrdata.matte.io import DEFAULT_MAX_PIXELS, is_image_file, read_image

REPORT_NAME = "pack_drawn_report.csv"
REPORT_COLUMNS = ("image", "character", "character_id", "clip_key", "status", "reason")
ONE_SHOT, UNLABELED = "one-shot", "unlabeled"
_SLUG = re.compile(r"[^a-z0-9]+")


@dataclass
class DrawnCharacter:
    """A named character and its image files (sorted)."""

    name: str
    character_id: str
    images: list[Path] = field(default_factory=list)


@dataclass
class PackReport:
    """Rows (one per image, keys :data:`REPORT_COLUMNS`) and totals of a pack run."""

    rows: list[dict]
    path: Path
    characters: int = 0
    clips_written: int = 0
    clips_existing: int = 0
    kinds: dict = field(default_factory=dict)
    splits: dict = field(default_factory=dict)

    @property
    def skipped(self) -> list[dict]:
        return [r for r in self.rows if r["status"] == "skipped"]


def character_id_for(name: str, prefix: str = "drawn") -> str:
    """``<prefix>-<slug>-<8 hex>``: stable for a name; distinct names never share an id."""
    slug = _SLUG.sub("-", name.lower()).strip("-")[:40] or "x"
    return f"{prefix}-{slug}-{hashlib.sha256(name.encode('utf-8')).hexdigest()[:8]}"


def _images_under(folder: Path) -> list[Path]:
    return sorted(
        p
        for p in folder.rglob("*")
        if p.is_file()
        and is_image_file(p)
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )


def group_by_folder(matted_dir: str | os.PathLike) -> list[DrawnCharacter]:
    """One character per sub-folder, and one per loose image at the top level; sorted by name."""
    root = Path(matted_dir)
    chars: dict[str, DrawnCharacter] = {}
    for entry in sorted(root.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            images = _images_under(entry)
            if images:
                chars[entry.name] = DrawnCharacter(entry.name, character_id_for(entry.name), images)
        elif entry.is_file() and is_image_file(entry):
            name = entry.stem
            if name in chars:  # a.png and a.jpg at the top level: keep them apart
                name = entry.name
            chars[name] = DrawnCharacter(name, character_id_for(name), [entry])
    return [chars[k] for k in sorted(chars)]


def group_by_mapping(
    matted_dir: str | os.PathLike, mapping_csv: str | os.PathLike
) -> tuple[list[DrawnCharacter], list[dict]]:
    """Characters from a CSV (columns ``image``, ``character``) and report rows for unusable lines."""
    root, mapping_csv = Path(matted_dir), Path(mapping_csv)
    try:
        with open(mapping_csv, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            fields = [f.strip().lower() for f in (reader.fieldnames or [])]
            if "image" not in fields or "character" not in fields:
                raise UserError(f"needs the columns 'image' and 'character', found {fields}", mapping_csv)
            rows = [{(k or "").strip().lower(): (v or "").strip() for k, v in r.items()} for r in reader]
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise UserError(f"cannot read the mapping ({err})", mapping_csv) from None
    chars: dict[str, DrawnCharacter] = {}
    missing = []
    for line, r in enumerate(rows, start=2):
        image, name = r.get("image", ""), r.get("character", "")
        if not image or not name:
            missing.append(
                {
                    "image": image,
                    "character": name,
                    "status": "skipped",
                    "reason": f"mapping line {line}: empty image or character",
                }
            )
            continue
        path = Path(image) if Path(image).is_absolute() else root / image
        if not path.is_file() and path.with_suffix(".png").is_file():
            path = path.with_suffix(".png")
        if not path.is_file():
            missing.append(
                {
                    "image": image,
                    "character": name,
                    "character_id": character_id_for(name),
                    "status": "skipped",
                    "reason": "file not found",
                }
            )
            continue
        chars.setdefault(name, DrawnCharacter(name, character_id_for(name))).images.append(path)
    for c in chars.values():
        c.images = sorted(set(c.images))
    return [chars[k] for k in sorted(chars)], missing


def group_characters(matted_dir, mapping_csv=None) -> tuple[list[DrawnCharacter], list[dict]]:
    """Characters by mapping CSV when given, else by folder; also returns rows for unusable mapping lines."""
    if not Path(matted_dir).is_dir():
        raise UserError("matted folder not found", matted_dir)
    if mapping_csv is not None:
        return group_by_mapping(matted_dir, mapping_csv)
    return group_by_folder(matted_dir), []


def load_rgba(
    path: str | os.PathLike,
    size: int | None = None,
    margin: float = 0.05,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> np.ndarray:
    """A matted image as (H, W, 4) uint8; with ``size``, cropped to its alpha's bounding box plus
    ``margin`` (fraction of the box), centred on a transparent square and resized to size x size.

    Raises FormatError for an image without alpha or with nothing opaque."""
    img = read_image(path, max_pixels)
    if img.alpha is None:
        raise FormatError("has no alpha channel; run `conrdata matte` on it first", path)
    alpha = img.alpha
    if not (alpha > 0).any():
        raise FormatError("is fully transparent", path)
    rgba = np.dstack([img.rgb, alpha])
    if size is None:
        return rgba
    ys, xs = np.nonzero(alpha > 0)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    side = int(np.ceil(max(y1 - y0, x1 - x0) * (1 + 2 * margin)))
    canvas = np.zeros((side, side, 4), np.float32)
    oy, ox = (side - (y1 - y0)) // 2, (side - (x1 - x0)) // 2
    crop = rgba[y0:y1, x0:x1].astype(np.float32)
    a = crop[..., 3:4] / 255.0
    canvas[oy : oy + y1 - y0, ox : ox + x1 - x0] = np.concatenate([crop[..., :3] * a, crop[..., 3:4]], -1)
    interp = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
    out = cv2.resize(canvas, (size, size), interpolation=interp)  # premultiplied: no dark fringes
    a = out[..., 3:4] / 255.0
    rgb = np.where(a > 1e-6, out[..., :3] / np.maximum(a, 1e-6), 0.0)
    return np.clip(np.round(np.concatenate([rgb, out[..., 3:4]], -1)), 0, 255).astype(np.uint8)


def _rel(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def _matte_confidences(root: Path) -> dict[str, float]:
    """Output path -> confidence from a `conrdata matte` report in ``root`` (empty when absent)."""
    out = {}
    try:
        with open(root / MATTE_REPORT, newline="") as fh:
            for r in csv.DictReader(fh):
                try:
                    out[r["output"]] = float(r["confidence"])
                except (KeyError, TypeError, ValueError):
                    continue
    except (OSError, csv.Error, UnicodeDecodeError):
        return {}
    return out


def pack_drawn(
    matted_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    mapping_csv=None,
    clip_size: int = 8,
    size: int | None = None,
    seed: int = 0,
    max_shard_bytes: int | None = None,
    max_shard_clips: int | None = None,
    pinned: dict | None = None,
    min_confidence: float | None = None,
    progress: bool = True,
) -> PackReport:
    """Group matted drawings into characters and write them as unlabeled / one-shot clips.

    ``min_confidence``: skip images whose confidence in ``MATTED_DIR/matte_report.csv`` is lower
    (images the report does not list are kept)."""
    if clip_size < 1:
        raise UserError("clip size must be at least 1")
    if size is not None and size < 8:
        raise UserError("size must be at least 8 pixels")
    root, out_dir = Path(matted_dir), Path(out_dir)
    characters, rows = group_characters(root, mapping_csv)
    confidences = _matte_confidences(root) if min_confidence is not None else {}
    kw = {}
    if max_shard_bytes:
        kw["max_shard_bytes"] = max_shard_bytes
    if max_shard_clips:
        kw["max_shard_clips"] = max_shard_clips
    report = PackReport(rows, out_dir / REPORT_NAME)
    metadata = {"drawn": {"clip_size": clip_size, "size": size, "source_dir": str(root)}}
    with DatasetWriter(out_dir, seed=seed, metadata=metadata, pinned=pinned, **kw) as writer:
        for char in tqdm(characters, desc="pack-drawn", unit="char", disable=not progress):
            good: list[tuple[Path, np.ndarray]] = []
            for path in char.images:
                row = {"image": _rel(path, root), "character": char.name, "character_id": char.character_id}
                conf = confidences.get(row["image"])
                if conf is not None and conf < min_confidence:
                    rows.append(
                        {
                            **row,
                            "status": "skipped",
                            "reason": f"matte confidence {conf:.2f} below {min_confidence}",
                        }
                    )
                    continue
                try:
                    good.append((path, load_rgba(path, size)))
                except FormatError as err:
                    rows.append({**row, "status": "skipped", "reason": err.message})
                    continue
                rows.append({**row, "status": "pending", "reason": ""})
            if not good:
                continue
            kind = ONE_SHOT if len(good) == 1 else UNLABELED
            split = writer.add_character(
                char.character_id, {"name": char.name, "source": "drawn", "kind": kind, "n_images": len(good)}
            )
            report.characters += 1
            report.kinds[kind] = report.kinds.get(kind, 0) + 1
            report.splits[split] = report.splits.get(split, 0) + 1
            chunks = (
                [good]
                if kind == ONE_SHOT
                else [good[i : i + clip_size] for i in range(0, len(good), clip_size)]
            )
            by_image = {r["image"]: r for r in rows if r.get("character_id") == char.character_id}
            for n, chunk in enumerate(chunks):
                clip_id = "oneshot" if kind == ONE_SHOT else f"c{n:04d}"
                key = clip_key(char.character_id, clip_id)
                existed = writer.has_clip(key)
                if not existed:
                    images = [
                        ClipImage(rgba=rgba, udp=None, source=f"drawn:{_rel(p, root)}") for p, rgba in chunk
                    ]
                    writer.write(
                        Clip(
                            char.character_id,
                            clip_id,
                            images,
                            meta={"kind": kind, "name": char.name, "drawn": True},
                        )
                    )
                    report.clips_written += 1
                else:
                    report.clips_existing += 1
                for p, _ in chunk:
                    by_image[_rel(p, root)].update(clip_key=key, status="existing" if existed else "written")
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = report.path.with_name(f".{report.path.name}.tmp")
    with open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=REPORT_COLUMNS, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, report.path)
    return report
