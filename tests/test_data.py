"""The streaming pipeline: view selection, augmentation (UDP never interpolated), splitting, skipping."""

from __future__ import annotations

import io
import tarfile
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from conrdata.errors import UserError
from conrdata.testing.toydata import render_toy, toy_clip, toy_pose, write_toy_dataset
from conrmodel.data.augment import (
    Backgrounds,
    CropBox,
    character_bbox,
    composite,
    crop_rgba,
    crop_udp,
    random_crop_box,
)
from conrmodel.data.stream import (
    TrainStream,
    choose_views,
    expand_urls,
    make_example,
    make_loader,
    worker_stream,
)
from conrmodel.train.config import DataConfig

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def toy_out(tmp_path_factory):
    """3 labelled characters + 1 unlabeled, 3 clips each, over several shards."""
    out = tmp_path_factory.mktemp("toy")
    return write_toy_dataset(out, characters=4, clips=3, images=4, unlabeled_characters=1, max_shard_clips=4)


def _cfg(**kw):
    base = dict(size=32, refs=2, backgrounds=2, batch_size=2, shuffle_buffer=4)
    base.update(kw)
    return DataConfig(**base)


# ------------------------------------------------------------------ view selection


def test_choose_views_distinct_poses():
    poses = ["a", "b", "c", "d", "e", "f"]
    for seed in range(30):
        ch = choose_views(poses, 4, np.random.default_rng(seed))
        assert ch.distinct and len(ch.refs) == 4
        assert len(set(ch.refs)) == 4  # enough images: no reuse
        assert poses[ch.target] not in {poses[r] for r in ch.refs}


def test_choose_views_with_repeated_poses_never_picks_target_pose():
    poses = ["a", "a", "b", "b", "c"]
    for seed in range(30):
        ch = choose_views(poses, 2, np.random.default_rng(seed))
        assert all(poses[r] != poses[ch.target] for r in ch.refs)


def test_choose_views_reuses_when_short():
    poses = ["a", "b", "c"]
    for seed in range(30):
        ch = choose_views(poses, 4, np.random.default_rng(seed))
        others = {i for i in range(3) if i != ch.target}
        assert ch.distinct and len(ch.refs) == 4
        assert set(ch.refs) == others  # every other view used, the rest reused


def test_choose_views_one_image_clip():
    ch = choose_views(["only"], 4, np.random.default_rng(0))
    assert ch.target == 0 and ch.refs == [0, 0, 0, 0] and not ch.distinct
    ch = choose_views(["same", "same"], 3, np.random.default_rng(0))
    assert not ch.distinct and set(ch.refs) == {1 - ch.target}


def test_make_example_flags_unlabeled():
    clip = toy_clip(0, 0, images=3, size=48, labeled=False)
    from conrdata.dataset.schema import ClipArrays

    arrays = ClipArrays(
        "k",
        "toy000",
        "train",
        [im.rgba for im in clip.images],
        [None] * 3,
        {"images": [{"pose_id": im.pose_id} for im in clip.images]},
    )
    ex = make_example(arrays, _cfg(), np.random.default_rng(0), Backgrounds())
    assert ex["labeled"] is False and ex["distinct"] is True
    assert not ex["ref_udp"].any() and not ex["target_udp"].any()
    assert ex["det_rgb"].shape == (2, 2, 3, 32, 32) and ex["det_rgb"].dtype == np.uint8


# ------------------------------------------------------------------ augmentation


def _value_set(udp: np.ndarray) -> set:
    return {tuple(v) for v in udp.reshape(-1, 4).tolist()}


@settings(max_examples=40, deadline=None)
@given(
    y0=st.integers(-20, 40),
    x0=st.integers(-20, 40),
    side=st.integers(2, 90),
    size=st.sampled_from([16, 32, 64]),
)
def test_crop_udp_never_interpolates(y0, x0, side, size):
    _, udp = render_toy(1, toy_pose(np.random.default_rng(3)), 48)
    out = crop_udp(udp, CropBox(y0, x0, side), size)
    assert out.shape == (size, size, 4) and out.dtype == np.float32
    assert _value_set(out) <= _value_set(udp) | {(0.0, 0.0, 0.0, 0.0)}


def test_example_udp_values_exist_in_source():
    clip = toy_clip(2, 1, images=4, size=64)
    from conrdata.dataset.schema import ClipArrays

    arrays = ClipArrays(
        "k",
        "toy002",
        "train",
        [im.rgba for im in clip.images],
        [im.udp for im in clip.images],
        {"images": [{"pose_id": im.pose_id} for im in clip.images]},
    )
    allowed = set().union(*(_value_set(im.udp) for im in clip.images))
    for seed in range(5):
        ex = make_example(
            arrays,
            _cfg(size=32, crop_margin=[0.6, 1.6], crop_jitter=0.3),
            np.random.default_rng(seed),
            Backgrounds(),
        )
        for udp in list(ex["ref_udp"]) + [ex["target_udp"]]:
            assert _value_set(np.moveaxis(udp, 0, -1)) <= allowed
        assert ex["labeled"] is True


def test_crop_is_centred_on_character():
    rgba, _ = render_toy(0, toy_pose(np.random.default_rng(0)), 64, scale=0.5, offset=(0.2, -0.1))
    box = random_crop_box(None, rgba[..., 3], (1.2, 1.2), 0.0)
    out = crop_rgba(rgba, box, 64)
    y0, y1, x0, x1 = character_bbox(out[..., 3])
    assert abs((y0 + y1) / 2 - 32) <= 2 and abs((x0 + x1) / 2 - 32) <= 2
    assert max(y1 - y0, x1 - x0) == pytest.approx(64 / 1.2, abs=3)


def test_composite_and_backgrounds(tmp_path):
    fg = np.zeros((8, 8, 4), np.uint8)
    fg[:4, :, :3] = 200
    fg[:4, :, 3] = 255
    bg = np.full((8, 8, 3), 50, np.uint8)
    out = composite(fg, bg)
    assert (out[:4] == 200).all() and (out[4:] == 50).all()
    rng = np.random.default_rng(0)
    kinds = {bool(Backgrounds().sample(rng, 16).reshape(-1, 3).std(0).max() > 0) for _ in range(12)}
    assert kinds == {True, False}  # flat and textured procedural backgrounds
    Image.fromarray(np.full((40, 30, 3), 7, np.uint8)).save(tmp_path / "a.png")
    folder = Backgrounds(tmp_path)
    assert (folder.sample(rng, 16) == 7).all()
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no images"):
        Backgrounds(tmp_path / "empty")
    # backgrounds packed in a tar (e.g. shards of background images)
    with tarfile.open(tmp_path / "empty" / "bg.tar", "w") as tar:
        buf = io.BytesIO()
        Image.fromarray(np.full((20, 20, 3), 99, np.uint8)).save(buf, format="PNG")
        info = tarfile.TarInfo("k0.png")
        info.size = len(buf.getvalue())
        tar.addfile(info, io.BytesIO(buf.getvalue()))
    assert (Backgrounds(tmp_path / "empty" / "bg.tar").sample(rng, 8) == 99).all()
    assert (Backgrounds(tmp_path / "empty").sample(rng, 8) == 99).all()


# ------------------------------------------------------------------ stream


def _keys(stream, n):
    it = iter(make_loader(stream, 0))
    return [next(it) for _ in range(n)]


def test_stream_is_deterministic_and_resumable(toy_out):
    urls = expand_urls(toy_out)
    a = _keys(TrainStream(urls, _cfg(), seed=3), 5)
    b = _keys(TrainStream(urls, _cfg(), seed=3), 5)
    for x, y in zip(a, b):
        assert x["keys"] == y["keys"] and (x["det_rgb"] == y["det_rgb"]).all()
    # restart at the position after batch 2: batches 3.. are identical
    c = _keys(TrainStream(urls, _cfg(), seed=3, start_batch=2, positions=[a[1]["position"]]), 3)
    for x, y in zip(a[2:], c):
        assert x["keys"] == y["keys"]
        assert (x["det_rgb"] == y["det_rgb"]).all() and (x["ref_udp"] == y["ref_udp"]).all()
    other = _keys(TrainStream(urls, _cfg(), seed=4), 5)
    assert [x["keys"] for x in other] != [x["keys"] for x in a]


def test_stream_flags_unlabeled_clips(toy_out):
    batches = _keys(TrainStream(expand_urls(toy_out), _cfg(batch_size=4), seed=0), 6)
    labeled = [(k, bool(f)) for b in batches for k, f in zip(b["keys"], b["labeled"])]
    assert {f for k, f in labeled if k.startswith("toy003")} == {False}
    assert {f for k, f in labeled if not k.startswith("toy003")} == {True}
    for b in batches:
        assert not b["ref_udp"][~b["labeled"]].any()


@pytest.mark.parametrize("n_urls", [1, 4])
def test_worker_and_rank_split_partitions_an_epoch(toy_out, n_urls):
    urls = expand_urls(toy_out)[:n_urls]

    def first_epoch(gid, total):
        keys = []
        for s in worker_stream(urls, 0, gid, total):
            if s["__key__"] in keys:  # the next epoch started
                return keys
            keys.append(s["__key__"])

    one_epoch = first_epoch(0, 1)
    parts = [first_epoch(g, 4) for g in range(4)]
    if n_urls >= 4:
        assert sorted(k for p in parts for k in p) == sorted(one_epoch)
    else:
        assert [len(p) for p in parts] == [len(one_epoch[g::4]) for g in range(4)]
        assert sorted(k for p in parts for k in p) == sorted(one_epoch)


def test_bad_clip_is_skipped(tmp_path, toy_out):
    bad = tmp_path / "bad.tar"
    with tarfile.open(bad, "w") as tar:
        for name, data in [
            ("broken.json", b'{"character_id": "x", "images": [{"pose_id": "p"}]}'),
            ("broken.00.rgba.png", b"not a png"),
        ]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    urls = [str(bad)] + expand_urls(toy_out)[:1]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        batch = _keys(TrainStream(urls, _cfg(shuffle_buffer=1), seed=0), 3)[-1]
    assert batch["skipped"] >= 1 and "broken" not in sum((b for b in [batch["keys"]]), [])
    assert any("broken" in str(w.message) for w in caught)


def test_expand_urls(tmp_path, toy_out):
    urls = expand_urls(toy_out)
    assert len(urls) >= 2 and all(u.endswith(".tar") and "/train-" in u for u in urls)
    pattern = urls[0].replace("000000", "{000000..000001}")
    assert expand_urls(pattern) == urls[:2]
    assert expand_urls(f"{urls[0]}::{urls[1]}") == urls[:2]
    with pytest.raises(UserError, match="not found"):
        expand_urls(str(tmp_path / "x-{000000..000001}.tar"))
    with pytest.raises(UserError, match="no .tar"):
        expand_urls(tmp_path)
