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


@pytest.fixture
def assets_dir() -> Path:
    return assets_or_skip()
