"""Round trip: clips written by DatasetWriter come back bit-identical via iter_clips and plain webdataset."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import webdataset

from conrdata.dataset import (
    ClipImage,
    DatasetWriter,
    clip_key,
    decode_udp,
    encode_udp,
    iter_clips,
    shard_paths,
)
from conrdata.dataset import wds as cw
from conrdata.errors import FormatError
from conrdata.testing.clips import synthetic_clip, synthetic_image
from tests.dataset_helpers import make_clips, write_dataset


def _assert_same(clip, got):
    assert got.key == clip_key(clip.character_id, clip.clip_id)
    assert got.character_id == clip.character_id
    assert len(got.rgba) == len(clip.images)
    for im, rgba, udp, rec in zip(clip.images, got.rgba, got.udp, got.meta["images"]):
        assert rgba.dtype == np.uint8 and np.array_equal(rgba, im.rgba)
        if im.udp is None:
            assert udp is None
        else:
            assert udp.dtype == np.float32
            assert udp.tobytes() == im.udp.tobytes()  # bit-identical
        assert rec["pose_id"] == im.pose_id and rec["source"] == im.source
        assert rec["camera"]["position"] == [0.0, 1.0, 3.0]
    assert got.meta["meta"] == clip.meta


def test_udp_codec_is_lossless_for_awkward_arrays():
    rng = np.random.default_rng(0)
    cases = [
        synthetic_image(48, seed=1)[1],
        rng.random((7, 5, 4)).astype(np.float32),
        np.array([[[np.nan, np.inf, -0.0, 1e-45]]], np.float32),  # NaN, inf, negative zero, denormal
        np.zeros((16, 16, 4), np.float32),
        rng.random((3, 3, 4)),  # float64
        np.arange(24, dtype=np.int16).reshape(2, 3, 4),
        np.zeros((0, 4), np.float32),
    ]
    for arr in cases:
        for codec in ("zlib", "lzma"):
            back = decode_udp(encode_udp(arr, codec))
            assert back.dtype == arr.dtype and back.shape == arr.shape
            assert back.tobytes() == arr.tobytes()


def test_udp_foreground_mask_is_any_nonzero_byte_per_pixel():
    """The codec's fast mask (pixel bytes OR-ed as wide words) is the per-channel "any non-zero"."""
    from conrdata.dataset.codec import _UINT, _nonzero_pixels

    rng = np.random.default_rng(5)
    for dtype, channels in ((np.float32, 4), (np.float32, 3), (np.uint8, 3), (np.float64, 2), (np.int16, 5),
                            (np.uint8, 1), (np.float32, 20)):
        arr = rng.integers(0, 3, (9, 7, channels)).astype(dtype) * (rng.random((9, 7, 1)) > 0.4)
        arr[0, 0, -1] = -0.0 if arr.dtype.kind == "f" else arr[0, 0, -1]  # -0.0 has a bit set
        u = arr.reshape(-1, channels).view(_UINT[arr.dtype.itemsize])
        assert (_nonzero_pixels(arr.reshape(-1), len(u)) == np.any(u != 0, axis=1)).all()


def test_udp_codec_beats_raw_and_rejects_corruption():
    udp = synthetic_image(128, seed=3)[1]
    data = encode_udp(udp)
    assert len(data) < udp.nbytes / 8
    broken = bytearray(data)
    broken[len(broken) // 2] ^= 0xFF
    with pytest.raises(FormatError):
        decode_udp(bytes(broken))
    with pytest.raises(FormatError):
        decode_udp(data[: len(data) // 2])
    with pytest.raises(FormatError):
        decode_udp(b"not a udp")


def test_round_trip_iter_clips(tmp_path):
    clips = make_clips()
    write_dataset(tmp_path / "out", clips)
    got = {c.key: c for c in iter_clips(tmp_path / "out")}
    assert len(got) == len(clips)
    for clip in clips:
        _assert_same(clip, got[clip_key(clip.character_id, clip.clip_id)])
    # one shard, a list of shards and a brace pattern name the same clips
    paths = shard_paths(tmp_path / "out")
    assert sum(1 for _ in iter_clips(paths)) == len(clips)
    assert sum(1 for _ in iter_clips(paths[0])) >= 1
    n_train = sum(1 for p in paths if p.name.startswith("train-"))
    pattern = str(tmp_path / "out" / "shards" / f"train-{{000000..{n_train - 1:06d}}}.tar")
    assert {c.key for c in iter_clips(pattern)} == {k for k, c in got.items() if c.split == "train"}


def test_plain_webdataset_reads_shards(tmp_path):
    clips = make_clips(n_characters=3)
    write_dataset(tmp_path / "out", clips)
    urls = [str(p) for p in shard_paths(tmp_path / "out")]
    by_key = {clip_key(c.character_id, c.clip_id): c for c in clips}
    seen = set()
    for sample in webdataset.WebDataset(urls, shardshuffle=False).decode(*cw.handlers()):
        assert isinstance(sample["json"], dict)
        got = cw.decode_sample(sample)
        _assert_same(by_key[got.key], got)
        seen.add(got.key)
    assert seen == set(by_key)
    # undecoded samples decode the same way
    raw = next(iter(webdataset.WebDataset(urls, shardshuffle=False)))
    assert isinstance(raw["json"], bytes)
    _assert_same(by_key[raw["__key__"]], cw.decode_sample(raw))
    assert len(list(cw.open_webdataset(urls))) == len(clips)


def test_same_inputs_give_byte_identical_shards(tmp_path):
    clips = make_clips(n_characters=3)
    digests = []
    for run in ("a", "b"):
        out = write_dataset(tmp_path / run, clips)
        digests.append(
            {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted((out / "shards").iterdir())}
        )
    assert digests[0] == digests[1] and digests[0]


def test_keys_are_stable_unique_and_dotless():
    pairs = [
        ("a", "b"),
        ("a.b", "c"),
        ("a-b", "c"),
        ("a__b", "c"),
        ("a", "b__c"),
        ("x" * 200, "y"),
        ("é", "1"),
    ]
    keys = [clip_key(*p) for p in pairs]
    assert len(set(keys)) == len(keys)
    assert all("." not in k and "/" not in k and len(k) <= 80 for k in keys)
    assert keys == [clip_key(*p) for p in pairs]
    assert clip_key("char-1a2b3c4d", "c0001") == "char-1a2b3c4d__c0001"


def test_writer_rejects_bad_arrays_and_duplicates(tmp_path):
    rgba, udp = synthetic_image(16)
    with DatasetWriter(tmp_path / "out") as w:
        with pytest.raises(ValueError, match="float32"):
            w.write(
                synthetic_clip("c", "k", 1, 16).__class__("c", "k", [ClipImage(rgba, udp.astype(np.float64))])
            )
        w.write(synthetic_clip("c", "k", 1, 16))
        assert w.has_clip(clip_key("c", "k"))
        with pytest.raises(ValueError, match="already"):
            w.write(synthetic_clip("c", "k", 1, 16))
    assert [c.key for c in iter_clips(tmp_path / "out")] == ["c__k"]


def test_manifest_schema_files_match_the_code():
    from conrdata.dataset.manifests import schema_description

    folder = Path(__file__).resolve().parents[1] / "manifests"
    for name, doc in schema_description().items():
        assert json.loads((folder / f"{name}.schema.json").read_text()) == doc


def test_official_export_form(tmp_path):
    from conrdata.dataset import write_official_udp
    from conrdata.dataset.export import export_clips_official
    from conrdata.udp import from_official

    udp = synthetic_image(32, seed=2)[1]
    for order in ("XYZ", "ZXY", "XZY"):
        path = write_official_udp(udp, tmp_path / f"{order}.npz", order)
        with np.load(path) as z:
            assert list(z.keys()) == ["i"] and z["i"].dtype == np.float32 and z["i"].shape == udp.shape
            assert np.array_equal(from_official(z["i"], order), udp)
    clips = make_clips(n_characters=2, clips_per_character=1)
    write_dataset(tmp_path / "out", clips)
    n = export_clips_official(tmp_path / "out", tmp_path / "official")
    assert n == sum(im.udp is not None for c in clips for im in c.images)
    assert len(list((tmp_path / "official").rglob("*.npz"))) == n
