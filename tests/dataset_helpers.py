"""Shared helpers for the tests/test_dataset_*.py files (synthetic clips and tiny datasets)."""

from __future__ import annotations

from pathlib import Path

from conrdata.dataset import DatasetWriter
from conrdata.testing.clips import synthetic_clip


def make_clips(n_characters: int = 6, clips_per_character: int = 2, n_images: int = 2, size: int = 32):
    """Synthetic clips; every third clip is unlabeled, one clip has a single image."""
    clips = []
    for c in range(n_characters):
        for k in range(clips_per_character):
            i = c * clips_per_character + k
            clips.append(
                synthetic_clip(
                    f"char{c:02d}-0a1b2c3d",
                    f"clip{k:03d}",
                    n_images=1 if i == 1 else n_images,
                    size=size,
                    seed=i,
                    labelled=i % 3 != 2,
                )
            )
    return clips


def write_dataset(out: Path, clips, **kwargs) -> Path:
    kwargs.setdefault("max_shard_clips", 3)
    with DatasetWriter(out, seed=0, **kwargs) as w:
        for clip in clips:
            w.add_character(clip.character_id, {"licence": "CC0-1.0", "source": "synthetic"})
            w.write(clip)
    return out
