"""Helpers shared by the training tests (test_train.py, test_train_ddp.py)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path


def train_cli_args(shards: Path, out: Path, steps: int, sets: Iterable[str], *extra: str) -> list[str]:
    """Arguments of ``conrmodel train`` without a progress bar: the extra options, then a --set a setting."""
    args = ["train", "--shards", str(shards), "--out", str(out), "--steps", str(steps), "--no-progress"]
    args += extra
    for s in sets:
        args += ["--set", s]
    return args
