"""The folder job behind `conrdata matte`: every image of IN_DIR -> an RGBA PNG in OUT_DIR, plus a report.

Outputs mirror the input tree (``IN_DIR/a/b.jpg -> OUT_DIR/a/b.png``; when two
inputs of one folder share a stem, the extension joins the name:
``b_jpg.png``). Images that already carry transparency are passed through.
A bad file is skipped and its reason recorded; a finished output is never
redone unless ``overwrite`` is set, so a killed run resumes where it stopped.
The report ``OUT_DIR/matte_report.csv`` has one row per input (see
:data:`REPORT_COLUMNS`); rows below the confidence threshold have
``review=True``.
"""

from __future__ import annotations

import csv
import multiprocessing
import os
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import cv2
from tqdm import tqdm

from conrdata.errors import UserError
from conrdata.matte.io import (
    DEFAULT_MAX_PIXELS,
    hint_path_for,
    is_image_file,
    read_hint,
    read_image,
    write_rgba_png,
)
from conrdata.matte.watershed import MatteOptions, matte_array

REPORT_NAME = "matte_report.csv"
REPORT_COLUMNS = (
    "source",
    "output",
    "status",
    "confidence",
    "review",
    "reason",
    "width",
    "height",
    "bg_kind",
    "fg_fraction",
    "border_fg",
    "holes_cut",
    "holes_ambiguous",
    "hint",
    "seconds",
)
STATUS_OK, STATUS_PASSTHROUGH, STATUS_ERROR = "ok", "passthrough", "error"


@dataclass
class MatteReport:
    """Rows (one dict per input, keys :data:`REPORT_COLUMNS`), where the CSV is, and the threshold used."""

    rows: list[dict]
    path: Path
    threshold: float
    reused: int = 0
    seconds: float = 0.0
    counts: dict = field(default_factory=dict)

    @property
    def failed(self) -> list[dict]:
        return [r for r in self.rows if r["status"] == STATUS_ERROR]

    @property
    def review(self) -> list[dict]:
        return [r for r in self.rows if r["status"] != STATUS_ERROR and _truthy(r["review"])]

    @property
    def done(self) -> list[dict]:
        return [r for r in self.rows if r["status"] != STATUS_ERROR]


def _truthy(v) -> bool:
    return v is True or str(v).lower() in ("true", "1", "yes")


def list_images(in_dir: str | os.PathLike) -> list[Path]:
    """Image files under ``in_dir`` (recursive, hint files and hidden files excluded), sorted."""
    root = Path(in_dir)
    return sorted(
        p
        for p in root.rglob("*")
        if p.is_file()
        and is_image_file(p)
        and not any(part.startswith(".") for part in p.relative_to(root).parts)
    )


def output_paths(sources: list[Path], in_dir: Path, out_dir: Path) -> dict[Path, Path]:
    """Map each source to its output PNG under ``out_dir`` (collision-free)."""
    by_target: dict[Path, list[Path]] = {}
    for src in sources:
        rel = src.relative_to(in_dir)
        by_target.setdefault(rel.with_suffix(".png"), []).append(src)
    out = {}
    for target, srcs in by_target.items():
        for src in srcs:
            if len(srcs) == 1:
                out[src] = out_dir / target
            else:
                out[src] = out_dir / target.with_name(f"{src.stem}_{src.suffix.lstrip('.').lower()}.png")
    return out


def matte_file(
    src: Path, dst: Path, hint: Path | None, options: MatteOptions, max_pixels: int, threshold: float
) -> dict:
    """Matte one file (the unit of work of the pool). Never raises: failures become an error row."""
    cv2.setNumThreads(1)
    start = time.perf_counter()
    row = {
        "status": STATUS_OK,
        "confidence": "",
        "review": False,
        "reason": "",
        "width": "",
        "height": "",
        "bg_kind": "",
        "fg_fraction": "",
        "border_fg": "",
        "holes_cut": "",
        "holes_ambiguous": "",
        "hint": hint is not None,
    }
    try:
        img = read_image(src, max_pixels)
        h, w = img.rgb.shape[:2]
        row.update(width=w, height=h)
        if img.has_transparency and hint is None:
            write_rgba_png(dst, img.rgb, img.alpha)
            row.update(
                status=STATUS_PASSTHROUGH,
                confidence=1.0,
                bg_kind="alpha",
                fg_fraction=round(float((img.alpha >= 128).mean()), 5),
                reason="input already has alpha",
            )
        else:
            hint_arr = read_hint(hint, (h, w), max_pixels) if hint is not None else None
            try:
                res = matte_array(img.rgb, hint_arr, options)
            except ValueError as err:
                raise UserError(str(err), src) from None
            write_rgba_png(dst, img.rgb, res.alpha)
            info = res.info
            row.update(
                confidence=res.confidence,
                bg_kind=info["bg_kind"],
                fg_fraction=info["fg_fraction"],
                border_fg=info["border_fg"],
                holes_cut=info["holes_cut"],
                holes_ambiguous=info["holes_ambiguous"],
            )
            if res.confidence < threshold:
                row.update(review=True, reason=info["review_reason"])
    except UserError as err:
        row.update(status=STATUS_ERROR, reason=err.message)
    except MemoryError:
        row.update(status=STATUS_ERROR, reason="out of memory (lower --max-pixels or --max-side)")
    except Exception as err:  # noqa: BLE001 - a batch job records any failure and goes on
        row.update(status=STATUS_ERROR, reason=f"internal error: {type(err).__name__}: {err}")
    row["seconds"] = round(time.perf_counter() - start, 3)
    return row


def _read_report(path: Path) -> dict[str, dict]:
    if not path.is_file():
        return {}
    try:
        with open(path, newline="") as fh:
            return {r["source"]: r for r in csv.DictReader(fh) if "source" in r}
    except (OSError, csv.Error, UnicodeDecodeError):
        return {}


def write_report(rows: list[dict], path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=REPORT_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)


def run_matte(
    in_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    options: MatteOptions | None = None,
    *,
    workers: int = 1,
    hints_dir: str | os.PathLike | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    overwrite: bool = False,
    threshold: float = 0.5,
    progress: bool = True,
) -> MatteReport:
    """Matte every image under ``in_dir`` into ``out_dir``; returns the report (also written as CSV)."""
    start = time.perf_counter()
    in_dir, out_dir = Path(in_dir), Path(out_dir)
    if not in_dir.is_dir():
        raise UserError("input folder not found", in_dir)
    if out_dir.resolve() == in_dir.resolve():
        raise UserError("output folder must differ from the input folder", out_dir)
    options = options or MatteOptions()
    out_resolved = out_dir.resolve()
    # OUT_DIR may sit inside IN_DIR: its PNGs are outputs, not inputs.
    sources = [p for p in list_images(in_dir) if out_resolved not in p.resolve().parents]
    out_dir.mkdir(parents=True, exist_ok=True)
    report_path = out_dir / REPORT_NAME
    previous = _read_report(report_path)
    targets = output_paths(sources, in_dir, out_dir)
    rows: dict[str, dict] = {}
    todo = []
    for src in sources:
        key = src.relative_to(in_dir).as_posix()
        dst = targets[src]
        base = {"source": key, "output": dst.relative_to(out_dir).as_posix()}
        if dst.exists() and not overwrite:
            old = previous.get(key)
            rows[key] = (
                {**(old or {}), **base}
                if old and old.get("status") != STATUS_ERROR
                else {**base, "status": STATUS_OK, "reason": "output existed before this run"}
            )
            continue
        hint = hint_path_for(src, in_dir, hints_dir)
        todo.append((key, base, (src, dst, hint, options, max_pixels, threshold)))
    reused = len(rows)
    bar = tqdm(total=len(todo), desc="matte", unit="img", disable=not progress)
    if workers <= 1 or len(todo) <= 1:
        for key, base, args in todo:
            rows[key] = {**base, **matte_file(*args)}
            bar.update()
    else:
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
            futures = {pool.submit(matte_file, *args): (key, base) for key, base, args in todo}
            for fut in as_completed(futures):
                key, base = futures[fut]
                rows[key] = {**base, **fut.result()}
                bar.update()
    bar.close()
    ordered = [rows[k] for k in sorted(rows)]
    for r in ordered:
        if r.get("status") == STATUS_ERROR:
            r["output"] = ""
    write_report(ordered, report_path)
    counts = Counter(r["status"] for r in ordered)
    return MatteReport(ordered, report_path, threshold, reused, time.perf_counter() - start, dict(counts))
