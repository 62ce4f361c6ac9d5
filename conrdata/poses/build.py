"""Motions folder (VMD / BVH / glTF) and/or the sampler -> one pose library, with a skip report."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from conrdata.errors import UserError
from conrdata.poses.bvh import read_bvh
from conrdata.poses.gltf_anim import gltf_to_library
from conrdata.poses.library import PoseLibrary, empty_library
from conrdata.poses.mmd import vmd_to_library
from conrdata.poses.retarget import bvh_to_library
from conrdata.poses.sampler import sample_poses
from conrdata.poses.vmd import read_vmd
from conrdata.rig.model import Rig

MOTION_EXTENSIONS = (".vmd", ".bvh", ".glb", ".gltf", ".vrm", ".vrma")


def motion_library(path: str | os.PathLike, rig: Rig | None = None, fps: float = 30.0,
                   max_poses: int | None = None) -> PoseLibrary:
    """One motion file -> library, by extension. UserError/FormatError for bad or unsupported files."""
    path = Path(path)
    ext = path.suffix.lower()
    warns: list[str] = []  # what the reader tolerated in the file
    if ext == ".vmd":
        motion = read_vmd(path)
        if not motion.tracks:
            raise UserError("VMD has no bone keyframes (a camera or facial motion?)", path)
        warns = list(motion.warnings)
        lib = vmd_to_library(motion, rig, fps=fps, max_poses=max_poses, name=path.stem)
    elif ext == ".bvh":
        bvh = read_bvh(path)
        warns = list(bvh.warnings)
        lib = bvh_to_library(bvh, rig, fps=fps, max_poses=max_poses, name=path.stem)
    elif ext in (".glb", ".gltf", ".vrm", ".vrma"):
        lib = gltf_to_library(path, rig, fps=fps, max_poses=max_poses, name=path.stem)
    else:
        known = ", ".join(MOTION_EXTENSIONS)
        raise UserError(f"unsupported motion format {ext!r} (supported: {known})", path)
    lib.meta.setdefault("files", [str(path)])
    if warns:
        lib.meta["warnings"] = warns
    return lib


def find_motions(folder: str | os.PathLike) -> list[Path]:
    """Motion files under ``folder`` (recursive), sorted; a single file is returned as is."""
    folder = Path(folder)
    if folder.is_file():
        return [folder]
    if not folder.is_dir():
        raise UserError("motions folder not found", folder)
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in MOTION_EXTENSIONS)


@dataclass
class BuildReport:
    sources: dict[str, int] = field(default_factory=dict)  # file -> poses taken
    skipped: dict[str, str] = field(default_factory=dict)  # file -> reason
    missing_bones: dict[str, list[str]] = field(default_factory=dict)
    warnings: dict[str, list[str]] = field(default_factory=dict)  # file -> what its reader tolerated
    sampled: int = 0


def build_library(
    motions: str | os.PathLike | None = None,
    rig: Rig | None = None,
    fps: float = 30.0,
    max_poses: int | None = None,
    sample: int = 0,
    seed: int = 0,
    progress: Callable | None = None,
) -> tuple[PoseLibrary, BuildReport]:
    """Every motion under ``motions`` (at most ``max_poses`` of them, evenly spaced across all motions)
    plus ``sample`` sampled poses. Bad files are skipped and reported."""
    report = BuildReport()
    libs: list[PoseLibrary] = []
    files = find_motions(motions) if motions is not None else []
    it = progress(files) if progress is not None and files else files
    for f in it:
        try:
            lib = motion_library(f, rig, fps=fps, max_poses=max_poses)
        except UserError as e:
            report.skipped[str(f)] = e.message
            continue
        if len(lib) == 0:
            report.skipped[str(f)] = "no poses"
            continue
        libs.append(lib)
        report.sources[str(f)] = len(lib)
        missing = lib.meta.get("missing_bones")
        if missing:
            report.missing_bones[str(f)] = list(missing)
        if lib.meta.get("warnings"):
            report.warnings[str(f)] = list(lib.meta["warnings"])
    motion_lib = PoseLibrary.concatenate(libs) if libs else None
    if motion_lib is not None and max_poses is not None and len(motion_lib) > max_poses:
        keep = np.unique(np.linspace(0, len(motion_lib) - 1, max_poses).round().astype(int))
        motion_lib = motion_lib.select(keep)
    parts = [motion_lib] if motion_lib is not None else []
    if sample:
        parts.append(sample_poses(sample, seed, rig))
        report.sampled = sample
    meta = {"sources": report.sources, "skipped": report.skipped, "fps": fps, "seed": seed,
            "sampled": sample, "missing_bones": report.missing_bones, "warnings": report.warnings}
    if rig is not None:
        meta["character"] = str(rig.meta.get("source", ""))
    lib = PoseLibrary.concatenate(parts, meta=meta) if parts else empty_library(meta)
    return lib, report
