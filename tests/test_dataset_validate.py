"""`validate` names every failure kind with shard, key and reason; readers skip bad samples and go on."""

from __future__ import annotations

import json
import shutil
import warnings

import numpy as np
import pytest

from conrdata.dataset import BadSampleWarning, ReadStats, iter_clips
from conrdata.dataset.codec import encode_rgba, encode_udp
from conrdata.dataset.manifests import read_manifest, write_manifests
from conrdata.dataset.tario import write_tar
from conrdata.dataset.validate import KINDS, check_udp_values, validate
from conrdata.dataset.writer import encode_clip
from conrdata.testing.clips import synthetic_clip
from tests.dataset_helpers import make_clips, write_dataset


def _members(seed: int = 0, character: str = "c0-00000000", clip: str = "k0", split: str = "train"):
    key, members, _ = encode_clip(synthetic_clip(character, clip, n_images=2, size=24, seed=seed), split)
    return key, dict(members)


def _udp(members, key, i=0):
    from conrdata.dataset.codec import decode_udp

    return decode_udp(members[f"{key}.{i:02d}.udp.udpz"]).copy()


def _bad_sample(kind: str, seed: int):
    """(key, members) of one clip broken in the way ``kind`` names."""
    key, m = _members(seed, clip=f"k{seed}")
    udp_name, png_name, json_name = f"{key}.00.udp.udpz", f"{key}.00.rgba.png", f"{key}.json"
    udp = _udp(m, key)
    body = udp[..., 3] == 1
    if kind == "corrupt-png":
        m[png_name] = m[png_name][:40] + b"\0" * 64
    elif kind == "corrupt-udp":
        m[udp_name] = b"UDPZ garbage"
    elif kind == "missing-file":
        del m[f"{key}.01.rgba.png"]
    elif kind == "bad-json":
        m[json_name] = b"{not json"
    elif kind == "udp-dtype":
        m[udp_name] = encode_udp(udp.astype(np.float64))
    elif kind == "udp-shape":
        m[udp_name] = encode_udp(udp[..., :3].copy())
    elif kind == "udp-range":
        udp[body, 0] = 1.5
        m[udp_name] = encode_udp(udp)
    elif kind == "udp-occupancy":
        udp[body, 3] = 0.5
        m[udp_name] = encode_udp(udp)
    elif kind == "udp-background":
        udp[~body, 1] = 0.25
        m[udp_name] = encode_udp(udp)
    elif kind == "alpha-mismatch":
        from conrdata.dataset.codec import decode_rgba

        rgba = decode_rgba(m[png_name])
        rgba[..., 3] = 255
        m[png_name] = encode_rgba(rgba)
    else:
        raise AssertionError(kind)
    return key, m


SAMPLE_KINDS = [
    "corrupt-png",
    "corrupt-udp",
    "missing-file",
    "bad-json",
    "udp-dtype",
    "udp-shape",
    "udp-range",
    "udp-occupancy",
    "udp-background",
    "alpha-mismatch",
]


@pytest.mark.parametrize("kind", SAMPLE_KINDS)
def test_each_sample_failure_is_named_with_shard_key_and_reason(tmp_path, kind):
    good_key, good = _members(100, clip="good")
    bad_key, bad = _bad_sample(kind, SAMPLE_KINDS.index(kind))
    write_tar(tmp_path / "train-000000.tar", [*good.items(), *bad.items()])
    report = validate(tmp_path)
    assert [(p.shard, p.key, p.kind) for p in report.problems] == [("train-000000.tar", bad_key, kind)]
    assert report.problems[0].message
    assert str(report.problems[0]).startswith(f"train-000000.tar:{bad_key}: {kind}: ")


def test_check_udp_values_accepts_clean_images():
    clip = synthetic_clip("c", "k", n_images=3, size=32)
    for im in clip.images:
        assert check_udp_values(im.rgba, im.udp) == []


def test_truncated_tar_is_named_and_reader_keeps_going(tmp_path):
    clips = make_clips(n_characters=4, clips_per_character=2)
    out = write_dataset(tmp_path / "out", clips, max_shard_clips=4)
    shards = sorted((out / "shards").glob("*.tar"))
    assert len(shards) >= 2
    data = shards[0].read_bytes()
    shards[0].write_bytes(data[: len(data) // 2 + 100])
    report = validate(out)
    kinds = {(p.shard, p.kind) for p in report.problems}
    assert (shards[0].name, "truncated-tar") in kinds
    assert (shards[0].name, "checksum") in kinds
    stats = ReadStats()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = list(iter_clips(out, stats=stats))
    assert any(issubclass(w.category, BadSampleWarning) for w in caught)
    assert stats.kinds["truncated-tar"] == 1
    assert 0 < len(got) < len(clips)  # later shards still read; complete clips of the cut shard too
    assert {c.key for c in got} >= {c.key for c in iter_clips(shards[1:])}


def test_reader_skips_and_counts_bad_samples(tmp_path):
    good_key, good = _members(1, clip="good")
    bad_key, bad = _bad_sample("corrupt-png", 2)
    dtype_key, dtype = _bad_sample("udp-dtype", 3)
    write_tar(tmp_path / "train-000000.tar", [*bad.items(), *good.items(), *dtype.items()])
    stats = ReadStats()
    with pytest.warns(BadSampleWarning):
        got = [c.key for c in iter_clips(tmp_path / "train-000000.tar", stats=stats)]
    assert got == [good_key]
    assert stats.skipped == 2 and stats.kinds == {"corrupt-png": 1, "udp-dtype": 1}


def test_manifest_checksum_duplicate_and_leak_failures(tmp_path):
    clips = make_clips(n_characters=4, clips_per_character=2)
    out = write_dataset(tmp_path / "out", clips, max_shard_clips=3)
    assert validate(out).ok
    shard_dir = out / "shards"
    names = sorted(p.name for p in shard_dir.glob("*.tar"))
    clip_rows = read_manifest(out, "clips")
    shard_rows = read_manifest(out, "shards")
    chars = read_manifest(out, "characters")

    # checksum: bytes appended after the end marker (still a readable tar), and a wrong sha256
    with open(shard_dir / names[0], "ab") as f:
        f.write(b"\0" * 512)
    shard_rows[1]["sha256"] = "0" * 64
    # manifest: a clip row dropped, a listed shard deleted, an unlisted shard added
    dropped = next(r for r in clip_rows if r["shard"] == names[1])
    clip_rows.remove(dropped)
    (shard_dir / names[2]).unlink()
    shutil.copy(shard_dir / names[1], shard_dir / "train-000099.tar")  # also duplicates keys
    # split-leak: one character's clip marked val in the manifest
    leaked = next(r for r in clip_rows if r["shard"] == names[0])
    leaked["split"] = "val"
    write_manifests(out, chars, clip_rows, shard_rows)

    report = validate(out)
    got = {(p.shard, p.key, p.kind) for p in report.problems}
    assert (names[0], "", "checksum") in got
    assert (names[1], "", "checksum") in got
    assert (names[1], dropped["key"], "manifest") in got
    assert (names[2], "", "manifest") in got  # listed but missing
    assert ("train-000099.tar", "", "manifest") in got  # on disk but unlisted
    assert ("train-000099.tar", dropped["key"], "duplicate-key") in got
    assert ("manifests", leaked["character"], "split-leak") in got
    assert (names[0], leaked["key"], "manifest") in got  # clips.parquet split disagrees with KEY.json
    assert set(report.kinds()) <= set(KINDS)


def test_clip_in_the_other_splits_shard_is_a_leak(tmp_path):
    key, m = _members(5, split="train")
    write_tar(tmp_path / "val-000000.tar", list(m.items()))
    assert [(p.key, p.kind) for p in validate(tmp_path).problems] == [(key, "split-leak")]


def test_validate_report_json_lists_problems(tmp_path):
    from conrdata.dataset.validate import report_json

    key, m = _bad_sample("udp-range", 1)
    write_tar(tmp_path / "train-000000.tar", list(m.items()))
    data = json.loads(report_json(validate(tmp_path)))
    assert data["ok"] is False and data["kinds"] == {"udp-range": 1}
    assert data["problems"][0]["key"] == key


def test_a_tar_cut_exactly_between_clips_is_still_truncated(tmp_path):
    clips = make_clips(n_characters=2, clips_per_character=2)
    out = write_dataset(tmp_path / "out", clips, max_shard_clips=4)
    rows = sorted(read_manifest(out, "clips"), key=lambda r: r["offset"])
    shard = out / "shards" / rows[-1]["shard"]
    last = [r for r in rows if r["shard"] == shard.name][-1]
    shard.write_bytes(shard.read_bytes()[: last["offset"]])  # a clean member boundary
    got = {(p.shard, p.key, p.kind) for p in validate(out, checksums=False).problems}
    assert (shard.name, "", "truncated-tar") in got
    assert (shard.name, last["key"], "manifest") in got
    stats = ReadStats()
    with pytest.warns(BadSampleWarning):
        keys = [c.key for c in iter_clips(shard, stats=stats)]
    assert last["key"] not in keys and len(keys) == sum(r["shard"] == shard.name for r in rows) - 1
