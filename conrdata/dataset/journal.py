"""The split journal: the commit point of ``conrdata split`` and the roll-forward that completes it.

:func:`commit_split` writes ``OUT/manifests/split-journal.json`` atomically once the new shards are
staged in ``OUT/.split-staging/``; :func:`finish_pending_split` (idempotent) then moves them into
``OUT/shards/``, rewrites the manifests and deletes the replaced shards. Any later
``conrdata split`` or :class:`~conrdata.dataset.writer.DatasetWriter` on OUT calls it first, so a
run killed after the commit is rolled forward and one killed before it leaves OUT untouched.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

from conrdata.dataset.layout import JOURNAL, STAGING
from conrdata.dataset.manifests import MANIFEST_DIR, SHARD_DIR, write_manifests
from conrdata.errors import UserError

log = logging.getLogger(__name__)


def commit_split(out_dir, journal: dict) -> Path:
    """Write the journal (``remove``/``add`` shard names; final ``characters``, ``clips``, ``shards``
    manifest rows) atomically: from here on the split happens even if this process dies."""
    path = Path(out_dir) / MANIFEST_DIR / JOURNAL
    tmp = path.with_name(f".{JOURNAL}.tmp")
    tmp.write_text(json.dumps(journal, default=str), encoding="utf-8")
    os.replace(tmp, path)
    return path


def finish_pending_split(out_dir) -> bool:
    """Roll a committed split forward (idempotent), or discard uncommitted staging. True if it acted."""
    out_dir = Path(out_dir)
    path = out_dir / MANIFEST_DIR / JOURNAL
    staging = out_dir / STAGING
    if not path.exists():
        if staging.exists() and out_dir.name != STAGING:
            log.warning("discarding the staging folder of an interrupted `conrdata split`")
            shutil.rmtree(staging)
            return True
        return False
    journal = json.loads(path.read_text(encoding="utf-8"))
    shard_dir = out_dir / SHARD_DIR
    for name in journal["add"]:
        src = staging / SHARD_DIR / name
        if src.exists():
            os.replace(src, shard_dir / name)
        elif not (shard_dir / name).exists():
            raise UserError(f"split journal names shard {name}, which is neither staged nor in place", path)
    write_manifests(out_dir, journal["characters"], journal["clips"], journal["shards"])
    for name in journal["remove"]:
        (shard_dir / name).unlink(missing_ok=True)
    path.unlink()
    if staging.exists():
        shutil.rmtree(staging)
    return True
