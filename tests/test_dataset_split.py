"""The per-character split: stable hash, pins, `conrdata split` moving clips, and leak refusal."""

from __future__ import annotations

import hashlib

import pytest

from conrdata.dataset import DatasetWriter, iter_clips, split_of
from conrdata.dataset.manifests import read_manifest
from conrdata.dataset.resplit import STAGING, apply_split, plan_split
from conrdata.dataset.split import hashed_split, read_pins
from conrdata.dataset.validate import validate
from conrdata.errors import UserError
from tests.dataset_helpers import make_clips, write_dataset


def _content(out):
    """{key: (character, split, digest of all image bytes)} of every clip."""
    result = {}
    for clip in iter_clips(out):
        h = hashlib.sha256()
        for rgba, udp in zip(clip.rgba, clip.udp):
            h.update(rgba.tobytes())
            h.update(b"-" if udp is None else udp.tobytes())
        result[clip.key] = (clip.character_id, clip.split, h.hexdigest())
    return result


def test_split_is_a_stable_hash_about_one_in_sixteen():
    ids = [f"character-{i:05d}" for i in range(3200)]
    splits = [split_of(i) for i in ids]
    assert splits == [split_of(i) for i in ids]
    assert 120 < splits.count("val") < 290  # expected 200
    for cid in ids[:50]:
        expected = "val" if int(hashlib.sha256(cid.encode()).hexdigest(), 16) % 16 == 0 else "train"
        assert hashed_split(cid) == expected
    assert split_of(ids[0], {ids[0]: "val"}) == "val"
    assert split_of(ids[0], {"other": "val"}) == hashed_split(ids[0])
    with pytest.raises(UserError):
        split_of(ids[0], {ids[0]: "test"})


def test_pin_file_pinning_one_character_to_both_splits_is_refused(tmp_path):
    pins = tmp_path / "pins.csv"
    pins.write_text("character_id,split\na,val\nb,train\na,val\n")
    assert read_pins(pins) == {"a": "val", "b": "train"}
    pins.write_text("character_id,split\na,val\na,train\n")
    with pytest.raises(UserError, match="both"):
        read_pins(pins)
    pins.write_text("character_id,split\na,holdout\n")
    with pytest.raises(UserError, match="line 2"):
        read_pins(pins)


def test_writer_refuses_a_pin_that_would_leak_a_character(tmp_path):
    clips = make_clips(n_characters=2, clips_per_character=1)
    out = write_dataset(tmp_path / "out", clips)
    cid = clips[0].character_id
    current = read_manifest(out, "characters")[0]["split"]
    other = "val" if current == "train" else "train"
    with pytest.raises(UserError, match="leak"):
        DatasetWriter(out, pinned={cid: other}).add_character(cid)


def test_split_moves_pinned_characters_and_keeps_every_clip(tmp_path):
    clips = make_clips(n_characters=5, clips_per_character=3)
    out = write_dataset(tmp_path / "out", clips, max_shard_clips=4)
    before = _content(out)
    target = clips[0].character_id
    old = split_of(target)
    new = "val" if old == "train" else "train"
    plan = plan_split(out, {target: new})
    assert set(plan.moves) == {target} and plan.clips_moved == 3
    apply_split(out, plan)
    after = _content(out)
    assert set(after) == set(before)
    for key, (cid, split, digest) in before.items():
        assert after[key][2] == digest  # images bit-identical
        assert after[key][1] == (new if cid == target else split)
    assert all(
        name.startswith(new)
        for name in {r["shard"] for r in read_manifest(out, "clips") if r["character"] == target}
    )
    rows = {r["id"]: r for r in read_manifest(out, "characters")}
    assert rows[target]["split"] == new and rows[target]["pinned"]
    assert validate(out).ok
    # the pin sticks: a later split without pins changes nothing; the writer keeps using it
    assert not plan_split(out).moves
    with DatasetWriter(out, max_shard_clips=4) as w:
        assert w.split_for(target) == new
    # unpinning by pinning back to the hashed split moves it back
    apply_split(out, plan_split(out, {target: old}))
    assert _content(out) == before
    assert validate(out).ok


def test_a_split_killed_after_its_commit_point_is_finished_on_reopen(tmp_path):
    clips = make_clips(n_characters=4, clips_per_character=2)
    out = write_dataset(tmp_path / "out", clips, max_shard_clips=3)
    before = _content(out)
    target = clips[-1].character_id
    new = "val" if split_of(target) == "train" else "train"
    apply_split(out, plan_split(out, {target: new}), commit_only=True)
    assert (out / STAGING).exists() and (out / "manifests" / "split-journal.json").exists()
    with DatasetWriter(out):
        pass
    assert not (out / STAGING).exists()
    assert validate(out).ok
    after = _content(out)
    assert {k: v[2] for k, v in after.items()} == {k: v[2] for k, v in before.items()}
    assert {v[1] for v in after.values() if v[0] == target} == {new}


def test_staging_without_a_journal_is_discarded(tmp_path):
    clips = make_clips(n_characters=2, clips_per_character=2)
    out = write_dataset(tmp_path / "out", clips)
    before = _content(out)
    (out / STAGING / "shards").mkdir(parents=True)
    (out / STAGING / "shards" / "train-000050.tar").write_bytes(b"partial")
    plan = plan_split(out)
    apply_split(out, plan)
    assert not (out / STAGING).exists()
    assert _content(out) == before and validate(out).ok
