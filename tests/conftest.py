"""Shared fixtures: the shared real assets (skipped with a reason when absent) and temp output dirs."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

os.environ.setdefault("PYOPENGL_PLATFORM", "egl")

REPO = Path(__file__).resolve().parents[1]
ASSETS = Path(os.environ.get("CONR_ASSETS", REPO.parent / "shared" / "assets"))


def assets_or_skip(*parts: str) -> Path:
    """Path under ../shared/assets (or $CONR_ASSETS); skips the test with the reason when absent."""
    path = ASSETS.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared asset folder not found: {path} (set CONR_ASSETS to a copy of ../shared/assets)")
    return path


def asset_files_or_skip(folder: str, *suffixes: str) -> list[Path]:
    """Sorted files with one of ``suffixes`` (e.g. ".pmx") below shared asset ``folder``; skips when none."""
    path = assets_or_skip(folder)
    files = sorted(p for p in path.rglob("*") if p.suffix.lower() in suffixes)
    if not files:
        pytest.skip(f"no {'/'.join(suffixes)} file under {path}")
    return files


#: Real files under meshes/ that are not characters, and the words convert's skip reason must contain.
NOT_CHARACTERS: dict[str, str] = {
    "babylon-mmd/constraint_test.pmx": "not a humanoid",
    "babylon-mmd/matcap_sample.pmx": "not a humanoid",
    "babylon-mmd/uv_morph_test.pmx": "not a humanoid",
    "ige/Fox.glb": "not a humanoid",
    "univrm/EmissionMigration_v0.107.0.vrm": "no skin",
    "vrm-addon-for-blender/debug_robot.vrm": "no skin",
    "vrm-specification/VRMC_materials_mtoon_UV_Animation_Test.vrm": "no skin",
}


def vrm_spec(path: Path) -> str | None:
    """"0" (VRM 0.x), "1" (VRM 1.0) or None, from the extensions in a GLB's JSON chunk."""
    with open(path, "rb") as f:
        head = f.read(20)
        if head[:4] != b"glTF":
            return None
        doc = json.loads(f.read(int.from_bytes(head[12:16], "little")))
    ext = doc.get("extensions") or {}
    return "1" if "VRMC_vrm" in ext else "0" if "VRM" in ext else None


def mesh_files_or_skip(*suffixes: str, vrm: str | None = None, characters: bool = True) -> list[Path]:
    """Sorted files with one of ``suffixes`` anywhere under shared ``meshes/``; skips when none.

    ``vrm`` ("0" / "1") keeps VRM files of that spec version (told by content, not name);
    ``characters`` drops the files listed in :data:`NOT_CHARACTERS`.
    """
    root = assets_or_skip("meshes")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in suffixes)
    if vrm is not None:
        files = [p for p in files if vrm_spec(p) == vrm]
    if characters:
        files = [p for p in files if p.relative_to(root).as_posix() not in NOT_CHARACTERS]
    if not files:
        what = f"VRM {vrm} " if vrm else ""
        pytest.skip(f"no {what}{'character ' if characters else ''}{'/'.join(suffixes)} file under {root}")
    return files


@pytest.fixture
def assets_dir() -> Path:
    return assets_or_skip()


@pytest.fixture
def one_thread():
    """The test machine is shared: one intra-op torch thread avoids OpenMP oversubscription.

    Torch test modules take it for every test with ``pytestmark = pytest.mark.usefixtures("one_thread")``.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
