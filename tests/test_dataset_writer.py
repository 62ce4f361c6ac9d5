"""DatasetWriter: shard bounds, atomic writes, and resume after a kill with no duplicate and no gap."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tarfile
from collections import Counter
from pathlib import Path

import pytest

from conrdata.dataset import DatasetWriter, clip_key, iter_clips
from conrdata.dataset.manifests import read_manifest, write_manifests
from conrdata.errors import UserError
from tests.dataset_helpers import make_clips, write_dataset

REPO = Path(__file__).resolve().parents[1]

# The job a user reruns: write every clip not yet present. With a pause count it stops after that
# many clips (holding the open shard) and waits to be killed.
JOB = """
import sys, time
from conrdata.dataset import DatasetWriter, clip_key
from tests.dataset_helpers import make_clips
out, pause_after = sys.argv[1], int(sys.argv[2])
with DatasetWriter(out, max_shard_clips=4, seed=0) as w:
    for clip in make_clips(n_characters=10, clips_per_character=2, size=24):
        w.add_character(clip.character_id, {"licence": "CC0-1.0"})
        if w.has_clip(clip_key(clip.character_id, clip.clip_id)):
            continue
        w.write(clip)
        print("wrote", flush=True)
        if w.written == pause_after:
            print("paused", flush=True)
            time.sleep(600)
print("done", flush=True)
"""


def _members_by_key(out: Path) -> Counter:
    """How many times each key's JSON occurs over all finished shards."""
    count = Counter()
    for shard in sorted((out / "shards").glob("*.tar")):
        with tarfile.open(shard) as tar:
            for name in tar.getnames():
                if name.endswith(".json"):
                    count[name.split(".")[0]] += 1
    return count


def _check_consistent(out: Path, expected_keys: set[str]) -> None:
    counts = _members_by_key(out)
    assert set(counts) == expected_keys  # no missing clip
    assert max(counts.values()) == 1  # no duplicate
    clips = read_manifest(out, "clips")
    assert {r["key"] for r in clips} == expected_keys
    shards = {r["name"]: r for r in read_manifest(out, "shards")}
    assert set(shards) == {p.name for p in (out / "shards").glob("*.tar")}
    for name, row in shards.items():
        assert row["bytes"] == (out / "shards" / name).stat().st_size
        assert row["clips"] == sum(r["shard"] == name for r in clips)
    assert not list((out / "shards").glob(".*.tmp"))


def test_shards_are_bounded_by_count_and_bytes(tmp_path):
    clips = make_clips(n_characters=8, clips_per_character=2)
    out = write_dataset(tmp_path / "count", clips, max_shard_clips=3)
    shards = read_manifest(out, "shards")
    assert all(r["clips"] <= 3 for r in shards)
    assert sum(r["clips"] for r in shards) == len(clips)
    limit = 40_000
    out = write_dataset(tmp_path / "bytes", clips, max_shard_clips=1000, max_shard_bytes=limit)
    shards = read_manifest(out, "shards")
    assert len(shards) > 1
    for row in shards:
        assert row["bytes"] <= limit or row["clips"] == 1
        assert row["name"].startswith(row["split"] + "-")
    assert sum(1 for _ in iter_clips(out)) == len(clips)


def test_kill_mid_shard_then_rerun_gives_every_clip_once(tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-c", JOB, str(out), "6"], stdout=subprocess.PIPE, text=True, env=env, cwd=REPO
    )
    # 6 clips = one finished shard of 4 + 2 in the open one; then the writer waits to be killed
    lines = []
    while not lines or lines[-1] != "paused\n":
        lines.append(proc.stdout.readline())
        assert lines[-1], "writer ended early"
    assert lines.count("wrote\n") == 6
    assert list((out / "shards").glob(".*.tmp")), "expected an unfinished shard when killing"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    finished = {p.name for p in (out / "shards").glob("*.tar")}
    assert len(finished) >= 1

    result = subprocess.run(
        [sys.executable, "-c", JOB, str(out), "-1"], capture_output=True, text=True, env=env, cwd=REPO
    )
    assert result.returncode == 0, result.stderr
    assert "unfinished shard" in result.stderr
    expected = {
        clip_key(c.character_id, c.clip_id) for c in make_clips(n_characters=10, clips_per_character=2)
    }
    _check_consistent(out, expected)
    assert len(finished) == 1
    assert finished <= {p.name for p in (out / "shards").glob("*.tar")}  # finished shards are never rewritten
    assert result.stdout.count("wrote") == len(expected) - 4 * len(finished)


def test_resume_adopts_a_shard_the_manifests_missed(tmp_path):
    clips = make_clips(n_characters=4, clips_per_character=2)
    out = write_dataset(tmp_path / "out", clips)
    keys = {clip_key(c.character_id, c.clip_id) for c in clips}
    # Simulate a kill between renaming the last shard and rewriting the manifests.
    shards = read_manifest(out, "shards")
    last = max(shards, key=lambda r: r["name"])["name"]
    write_manifests(
        out,
        read_manifest(out, "characters"),
        [r for r in read_manifest(out, "clips") if r["shard"] != last],
        [r for r in shards if r["name"] != last],
    )
    with DatasetWriter(out, max_shard_clips=3) as w:
        assert all(w.has_clip(k) for k in keys)
    _check_consistent(out, keys)
    assert {r["sha256"] for r in read_manifest(out, "shards")} == {r["sha256"] for r in shards}


def test_resume_rewrites_clips_of_a_vanished_shard(tmp_path):
    clips = make_clips(n_characters=4, clips_per_character=2)
    out = write_dataset(tmp_path / "out", clips)
    first = sorted((out / "shards").glob("*.tar"))[0]
    lost = {r["key"] for r in read_manifest(out, "clips") if r["shard"] == first.name}
    first.unlink()
    with DatasetWriter(out, max_shard_clips=3) as w:
        todo = [c for c in clips if not w.has_clip(clip_key(c.character_id, c.clip_id))]
        assert {clip_key(c.character_id, c.clip_id) for c in todo} == lost
        for clip in todo:
            w.write(clip)
    _check_consistent(out, {clip_key(c.character_id, c.clip_id) for c in clips})


def test_reopening_with_another_seed_is_refused(tmp_path):
    write_dataset(tmp_path / "out", make_clips(n_characters=1))
    with pytest.raises(UserError, match="seed"):
        DatasetWriter(tmp_path / "out", seed=1)


def test_characters_manifest_holds_info_and_split(tmp_path):
    out = tmp_path / "out"
    with DatasetWriter(out) as w:
        w.add_character("a-00000000", {"licence": "CC-BY-4.0", "format": "vrm", "tags": ["x", "y"]})
        w.add_character("b-00000000", {"licence": "CC0-1.0", "height_m": 1.52})
    rows = {r["id"]: r for r in read_manifest(out, "characters")}
    assert rows["a-00000000"]["licence"] == "CC-BY-4.0" and rows["a-00000000"]["tags"] == '["x", "y"]'
    assert rows["b-00000000"]["height_m"] == pytest.approx(1.52) and rows["a-00000000"]["height_m"] is None
    assert {r["split"] for r in rows.values()} <= {"train", "val"}


def test_a_second_writer_on_the_same_folder_is_refused(tmp_path):
    with DatasetWriter(tmp_path / "out") as w:
        with pytest.raises(UserError, match="another process"):
            DatasetWriter(tmp_path / "out")
        w.write(make_clips(n_characters=1, clips_per_character=1)[0])
    with DatasetWriter(tmp_path / "out") as w:  # released on close
        assert w.has_clip(clip_key("char00-0a1b2c3d", "clip000"))
