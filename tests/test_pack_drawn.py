"""`conrdata pack-drawn`: grouping into characters, one-shot vs unlabeled clips, no UDP, valid shards."""

from __future__ import annotations

import csv

import numpy as np
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from PIL import Image

from conrdata.cli import group, main
from conrdata.dataset import iter_clips, split_of
from conrdata.errors import UserError
from conrdata.matte.pack import character_id_for, group_characters, load_rgba, pack_drawn
from conrdata.testing.figures import draw_figure


def _rgba(path, seed, size=48):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(draw_figure(size, seed), "RGBA").save(path)
    return path


@pytest.fixture
def matted(tmp_path):
    root = tmp_path / "matted"
    for i in range(5):
        _rgba(root / "alice" / f"{i}.png", i)
    _rgba(root / "bob" / "front.png", 10)
    _rgba(root / "carol.png", 11)  # a loose image: a one-shot character
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(root / "bob" / "no_alpha.png")
    Image.fromarray(np.zeros((20, 20, 4), np.uint8), "RGBA").save(root / "bob" / "empty.png")
    (root / "alice" / "junk.png").write_bytes(b"junk")
    return root


def _validate(out):
    result = CliRunner().invoke(group, ["validate", str(out)])
    assert result.exit_code == 0, result.output
    assert "OK" in result.output


def test_folders_become_characters_and_clips_hold_no_udp(matted, tmp_path):
    out = tmp_path / "out"
    report = pack_drawn(matted, out, clip_size=2, progress=False)
    assert report.characters == 3 and report.kinds == {"unlabeled": 1, "one-shot": 2}
    assert report.clips_written == 3 + 1 + 1  # alice: 5 images in clips of 2
    skipped = {r["image"]: r["reason"] for r in report.skipped}
    assert set(skipped) == {"bob/no_alpha.png", "bob/empty.png", "alice/junk.png"}
    assert "no alpha" in skipped["bob/no_alpha.png"] and "transparent" in skipped["bob/empty.png"]
    clips = sorted(iter_clips(out), key=lambda c: c.key)
    by_char = {}
    for c in clips:
        assert all(u is None for u in c.udp) and not c.labelled
        assert c.split == split_of(c.character_id)
        by_char.setdefault(c.character_id, []).append(c)
    alice = by_char[character_id_for("alice")]
    assert [len(c) for c in alice] == [2, 2, 1]
    assert all(c.meta["meta"]["kind"] == "unlabeled" for c in alice)
    (bob,) = by_char[character_id_for("bob")]
    assert len(bob) == 1 and bob.meta["meta"]["kind"] == "one-shot" and bob.key.endswith("oneshot")
    np.testing.assert_array_equal(bob.rgba[0], draw_figure(48, 10))
    chars = {r["id"]: r for r in pq.read_table(out / "manifests" / "characters.parquet").to_pylist()}
    assert chars[character_id_for("carol")]["kind"] == "one-shot"
    assert chars[character_id_for("alice")]["n_images"] == 5
    clip_rows = pq.read_table(out / "manifests" / "clips.parquet").to_pylist()
    assert all(r["n_labelled"] == 0 for r in clip_rows) and len(clip_rows) == 5
    _validate(out)


def test_rerun_writes_nothing_new_and_validation_still_passes(matted, tmp_path):
    out = tmp_path / "out"
    pack_drawn(matted, out, progress=False)
    again = pack_drawn(matted, out, progress=False)
    assert again.clips_written == 0 and again.clips_existing == 3
    assert len(list(iter_clips(out))) == 3
    _validate(out)


def test_mapping_csv_and_square_resize(matted, tmp_path):
    mapping = tmp_path / "map.csv"
    with open(mapping, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["image", "character"])
        w.writerow(["alice/0.png", "Zed"])
        w.writerow(["bob/front.jpg", "Zed"])  # matte wrote front.png: found via the .png name
        w.writerow(["carol.png", "Yan"])
        w.writerow(["gone.png", "Yan"])
    out = tmp_path / "out"
    report = pack_drawn(matted, out, mapping_csv=mapping, size=32, progress=False)
    assert report.kinds == {"unlabeled": 1, "one-shot": 1}
    assert [r["reason"] for r in report.skipped] == ["file not found"]
    clips = {c.character_id: c for c in iter_clips(out)}
    zed = clips[character_id_for("Zed")]
    assert len(zed) == 2 and all(im.shape == (32, 32, 4) for im in zed.rgba)
    _validate(out)


def test_load_rgba_square_crop_keeps_character_centred():
    rgba = np.zeros((40, 100, 4), np.uint8)
    rgba[10:30, 60:70] = (200, 10, 10, 255)
    out = load_rgba_from_array(rgba, 64)
    ys, xs = np.nonzero(out[..., 3] >= 128)
    assert abs(ys.mean() - 31.5) < 1.5 and abs(xs.mean() - 31.5) < 1.5
    assert ys.max() - ys.min() + 1 >= 54  # the 20-pixel-tall box fills the square up to the margin
    opaque = out[..., 3] == 255
    assert (out[opaque, :3] == (200, 10, 10)).all()  # premultiplied resize: no dark fringe colours


def load_rgba_from_array(rgba, size):
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "x.png"
        Image.fromarray(rgba, "RGBA").save(p)
        return load_rgba(p, size)


def test_bad_inputs_are_user_errors(tmp_path, capsys):
    with pytest.raises(UserError, match="not found"):
        group_characters(tmp_path / "nope")
    bad = tmp_path / "bad.csv"
    bad.write_text("file,who\na.png,x\n")
    (tmp_path / "m").mkdir()
    with pytest.raises(UserError, match="columns"):
        group_characters(tmp_path / "m", bad)
    with pytest.raises(SystemExit) as ex:
        main(["pack-drawn", str(tmp_path / "nope"), str(tmp_path / "out")])
    assert ex.value.code == 2 and "matted folder not found" in capsys.readouterr().err


def test_min_confidence_uses_the_matte_report(matted, tmp_path):
    with open(matted / "matte_report.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["source", "output", "confidence"])
        w.writeheader()
        w.writerow({"source": "carol.jpg", "output": "carol.png", "confidence": "0.2"})
        w.writerow({"source": "bob/front.jpg", "output": "bob/front.png", "confidence": "0.9"})
    result = CliRunner().invoke(
        group, ["pack-drawn", str(matted), str(tmp_path / "out"), "-q", "--min-confidence", "0.5"]
    )
    assert result.exit_code == 0, result.output
    assert "2 character(s)" in result.output
    ids = {c.character_id for c in iter_clips(tmp_path / "out")}
    assert character_id_for("carol") not in ids and character_id_for("bob") in ids


def test_character_ids_are_stable_distinct_and_key_safe():
    assert character_id_for("Alice") == character_id_for("Alice")
    assert character_id_for("Alice") != character_id_for("alice")
    assert "." not in character_id_for("a.b c") and character_id_for("a.b c").startswith("drawn-a-b-c-")


def test_pinned_character_goes_to_val_shards(matted, tmp_path):
    out = tmp_path / "out"
    bob = character_id_for("bob")
    pack_drawn(matted, out, pinned={bob: "val"}, progress=False)
    assert (out / "shards" / "val-000000.tar").exists()
    splits = {c.character_id: c.split for c in iter_clips(out)}
    assert splits[bob] == "val"
    assert all(s == split_of(c) for c, s in splits.items() if c != bob)
    _validate(out)
