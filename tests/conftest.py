"""Shared fixtures: the shared real assets (skipped with a reason when absent) and temp output dirs."""

from __future__ import annotations

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
