"""Pack UDPs made by other tools (official-form ``.npz`` / ``.exr``, with or without images) as clips.

Input layout: every immediate sub-folder of UDP_DIR is one character (its files, recursively), and
files lying directly in UDP_DIR are one character named after UDP_DIR. A *frame* is a UDP file
(``NAME.npz`` with key ``i`` or ``NAME.exr``, read by :func:`conrdata.udp.read_udp_file` in the given
axis order) and, when present, the image of the same stem beside it (``NAME.png``, ``.webp``, ...).
Frames are taken in natural order of their paths and cut into clips of at most ``clip_size``.

* A frame with an image is *labelled*: the RGBA is the image (an image without alpha gets the UDP's
  occupancy as alpha, colour zeroed outside it); its alpha and the UDP's occupancy must agree as
  ``conrdata validate`` requires, else the frame is skipped.
* A frame without an image is *pose-only*: its RGBA is the black silhouette of the occupancy. Such clips
  drive ``conrmodel render`` and serve as evaluation targets; they carry ``"kind": "pose-only"`` in the
  clip meta and ``"pose_only": true`` per image, and are not meant for training (no colour).

A clip is ``labelled`` when all its frames are; else ``pose-only``. Occupancy is binarised at 0.5 (our
encoding). The character id is ``udp-<slug of its name>-<8 hex of sha256(name)>``; the split is the
usual per-character hash. A rerun skips clips already written; bad files are skipped and listed in
``OUT_DIR/pack_udp_report.csv``.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from conrdata.dataset.keys import clip_key
from conrdata.dataset.schema import Clip, ClipImage
from conrdata.dataset.validate import check_udp_values
from conrdata.dataset.writer import DatasetWriter
from conrdata.errors import FormatError, UserError
from conrdata.imageio import DEFAULT_MAX_PIXELS, read_image
from conrdata.matte.io import is_image_file
from conrdata.matte.pack import PackReport, character_id_for
from conrdata.udp import natural_key, read_udp_file

REPORT_NAME = "pack_udp_report.csv"
REPORT_COLUMNS = ("udp", "image", "character", "character_id", "clip_key", "status", "reason")
UDP_FILE_SUFFIXES = (".npz", ".exr")
LABELLED, POSE_ONLY = "labelled", "pose-only"


@dataclass
class UdpCharacter:
    """A named character and its frames: (UDP file, image file or None), in order."""

    name: str
    character_id: str
    frames: list[tuple[Path, Path | None]] = field(default_factory=list)


class UdpPackReport(PackReport):
    """Rows (one per frame, keys :data:`REPORT_COLUMNS`) and totals of a pack run; ``kinds``: clip kind ->
    clips written (``splits`` is not counted here)."""


def udp_character_id(name: str) -> str:
    """``udp-<slug>-<8 hex>`` (:func:`conrdata.matte.pack.character_id_for` with prefix ``udp``)."""
    return character_id_for(name, "udp")


def _path_key(path: Path) -> list:
    return natural_key(path.as_posix())


def _frames_under(folder: Path, recursive: bool) -> list[tuple[Path, Path | None]]:
    files = folder.rglob("*") if recursive else folder.iterdir()
    files = [p for p in files if p.is_file() and not p.name.startswith(".")]
    images = {}
    for p in files:
        if is_image_file(p):
            images.setdefault(p.with_suffix(""), p)
    udps = sorted((p for p in files if p.suffix.lower() in UDP_FILE_SUFFIXES), key=_path_key)
    return [(p, images.get(p.with_suffix(""))) for p in udps]


def group_udp_characters(udp_dir: str | os.PathLike) -> list[UdpCharacter]:
    """Characters of UDP_DIR (see the module doc), each with at least one UDP file."""
    root = Path(udp_dir)
    if not root.is_dir():
        raise UserError("not a folder", root)
    out = []
    loose = _frames_under(root, recursive=False)
    if loose:
        name = root.resolve().name or "udp"
        out.append(UdpCharacter(name, udp_character_id(name), loose))
    subs = (p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    for sub in sorted(subs, key=_path_key):
        frames = _frames_under(sub, recursive=True)
        if frames:
            out.append(UdpCharacter(sub.name, udp_character_id(sub.name), frames))
    if not out:
        raise UserError("no UDP files found (expected .npz with key 'i' or .exr, optionally in sub-folders)",
                        root)
    return out


def load_frame(udp_path: Path, image_path: Path | None, axis_order: str = "XYZ",
               max_pixels: int = DEFAULT_MAX_PIXELS, alpha_tolerance: float = 0.02) -> ClipImage:
    """One frame -> a :class:`ClipImage` (see the module doc); FormatError when it cannot be packed."""
    udp = read_udp_file(udp_path, axis_order, max_pixels)
    occ = udp[..., 3] > 0
    if not occ.any():
        raise FormatError("the UDP occupies no pixel", udp_path)
    if image_path is None:
        rgba = np.zeros((*udp.shape[:2], 4), np.uint8)
        rgba[..., 3] = occ * 255
        return ClipImage(rgba, udp, pose_id=udp_path.stem, source=f"udp:{udp_path.name}",
                         labels={"pose_only": True})
    img = read_image(image_path, max_pixels)
    if img.rgb.shape[:2] != udp.shape[:2]:
        (h, w), (ih, iw) = udp.shape[:2], img.rgb.shape[:2]
        raise FormatError(f"image is {iw}x{ih} but its UDP is {w}x{h}", image_path)
    alpha = img.alpha if img.alpha is not None else (occ * 255).astype(np.uint8)
    rgba = np.dstack([img.rgb, alpha])
    if img.alpha is None:
        rgba[~occ] = 0
    problems = check_udp_values(rgba, udp, alpha_tolerance)
    if problems:
        raise FormatError(f"image and UDP disagree ({problems[0][0]}: {problems[0][1]})", image_path)
    return ClipImage(rgba, udp, pose_id=udp_path.stem, source=f"udp:{udp_path.name}",
                     labels={"pose_only": False})


def _rel(path: Path | None, root: Path) -> str:
    if path is None:
        return ""
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def pack_udp(
    udp_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    axis_order: str = "XYZ",
    clip_size: int = 8,
    use_images: bool = True,
    seed: int = 0,
    max_shard_bytes: int | None = None,
    max_shard_clips: int | None = None,
    pinned: dict | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    progress: bool = True,
) -> UdpPackReport:
    """Write the frames of UDP_DIR as clips into the dataset OUT_DIR (see the module doc).

    ``use_images=False`` packs every frame as pose-only, ignoring images beside the UDPs."""
    if clip_size < 1:
        raise UserError("clip size must be at least 1")
    root, out_dir = Path(udp_dir), Path(out_dir)
    characters = group_udp_characters(root)
    rows: list[dict] = []
    report = UdpPackReport(rows, out_dir / REPORT_NAME)
    kw = {k: v for k, v in (("max_shard_bytes", max_shard_bytes), ("max_shard_clips", max_shard_clips)) if v}
    metadata = {"udp_pack": {"clip_size": clip_size, "axis_order": axis_order, "source_dir": str(root)}}
    with DatasetWriter(out_dir, seed=seed, metadata=metadata, pinned=pinned, **kw) as writer:
        for char in tqdm(characters, desc="pack-udp", unit="char", disable=not progress):
            good: list[tuple[dict, ClipImage]] = []
            for udp_path, image_path in char.frames:
                image_path = image_path if use_images else None
                row = {"udp": _rel(udp_path, root), "image": _rel(image_path, root), "character": char.name,
                       "character_id": char.character_id, "clip_key": "", "status": "", "reason": ""}
                rows.append(row)
                try:
                    good.append((row, load_frame(udp_path, image_path, axis_order, max_pixels)))
                except FormatError as err:
                    row.update(status="skipped", reason=str(err))
            if not good:
                continue
            info = {"name": char.name, "source": "udp", "n_images": len(good)}
            writer.add_character(char.character_id, info)
            report.characters += 1
            for n in range(0, len(good), clip_size):
                chunk = good[n : n + clip_size]
                kind = POSE_ONLY if any(im.labels["pose_only"] for _, im in chunk) else LABELLED
                clip_id = f"c{n // clip_size:04d}"
                key = clip_key(char.character_id, clip_id)
                existed = writer.has_clip(key)
                if not existed:
                    writer.write(Clip(char.character_id, clip_id, [im for _, im in chunk],
                                      meta={"kind": kind, "name": char.name, "udp_pack": True}))
                    report.clips_written += 1
                    report.kinds[kind] = report.kinds.get(kind, 0) + 1
                else:
                    report.clips_existing += 1
                for row, _ in chunk:
                    row.update(clip_key=key, status="existing" if existed else "written")
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = report.path.with_name(f".{report.path.name}.tmp")
    with open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=REPORT_COLUMNS)
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, report.path)
    return report
