"""`conrdata matte` on folders: outputs, report, hint files, bad files, huge images, resume, parallel."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from PIL import Image

from conrdata.cli import main
from conrdata.errors import FormatError
from conrdata.matte.batch import REPORT_NAME, run_matte
from conrdata.matte.io import read_hint, read_image
from conrdata.testing.figures import composite, draw_figure, make_background


def _write(path, rgb):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(path)
    return path


def _figure(seed=0, size=96, kind="flat"):
    fig = draw_figure(size, seed)
    return composite(fig, make_background(kind, size, seed)), fig[..., 3] >= 128


def _report(out):
    with open(out / REPORT_NAME, newline="") as fh:
        return {r["source"]: r for r in csv.DictReader(fh)}


@pytest.fixture
def drawings(tmp_path):
    src = tmp_path / "in"
    for s in range(2):
        _write(src / "alice" / f"{s}.png", _figure(s)[0])
    _write(src / "bob.png", _figure(3, kind="gradient")[0])
    (src / "broken.png").write_bytes(Image.new("RGB", (50, 50)).tobytes()[:10])
    png = (src / "alice" / "0.png").read_bytes()
    (src / "truncated.png").write_bytes(png[: len(png) // 2])
    (src / "empty.jpg").write_bytes(b"")
    _write(src / "huge.png", np.full((300, 400, 3), 255, np.uint8))
    return src


def test_folder_job_outputs_report_and_skips_bad_files(drawings, tmp_path, capsys):
    out = tmp_path / "out"
    main(["matte", str(drawings), str(out), "-q", "-j", "1", "--max-pixels", "100000"])
    rows = _report(out)
    assert set(rows) == {
        "alice/0.png",
        "alice/1.png",
        "bob.png",
        "broken.png",
        "truncated.png",
        "empty.jpg",
        "huge.png",
    }
    for name in ("alice/0.png", "alice/1.png", "bob.png"):
        assert rows[name]["status"] == "ok"
        rgba = np.asarray(Image.open(out / rows[name]["output"]))
        assert rgba.shape[2] == 4 and (rgba[..., 3] == 0).any() and (rgba[..., 3] == 255).any()
    _, truth = _figure(0)
    alpha = np.asarray(Image.open(out / "alice" / "0.png"))[..., 3] >= 128
    assert (alpha & truth).sum() / (alpha | truth).sum() > 0.95
    for bad in ("broken.png", "truncated.png", "empty.jpg", "huge.png"):
        assert rows[bad]["status"] == "error" and rows[bad]["reason"] and rows[bad]["output"] == ""
        assert not (out / bad).with_suffix(".png").exists()
    assert "over the limit" in rows["huge.png"]["reason"]
    assert "truncated" in rows["truncated.png"]["reason"]
    err = capsys.readouterr().err
    assert "skipped broken.png" in err and "skipped huge.png" in err


def test_rerun_resumes_and_overwrite_redoes(drawings, tmp_path):
    out = tmp_path / "out"
    first = run_matte(drawings, out, progress=False)
    assert first.reused == 0 and len(first.done) == 4  # huge.png is fine under the default limit
    (out / "bob.png").unlink()
    second = run_matte(drawings, out, progress=False)
    assert second.reused == 3
    assert {r["source"] for r in second.done} == {r["source"] for r in first.done}
    assert _report(out)["alice/0.png"]["confidence"] == str(first.rows[1]["confidence"])
    third = run_matte(drawings, out, progress=False, overwrite=True)
    assert third.reused == 0 and not list(out.rglob(".*.tmp"))


def test_parallel_run_matches_serial(drawings, tmp_path):
    a = run_matte(drawings, tmp_path / "a", progress=False, workers=1)
    b = run_matte(drawings, tmp_path / "b", progress=False, workers=2)
    assert [(r["source"], r["status"]) for r in a.rows] == [(r["source"], r["status"]) for r in b.rows]
    for r in a.done:
        pa = np.asarray(Image.open(tmp_path / "a" / r["output"]))
        pb = np.asarray(Image.open(tmp_path / "b" / r["output"]))
        np.testing.assert_array_equal(pa, pb)


def test_hint_file_beside_image_is_used(tmp_path):
    import cv2

    size = 96
    rgb = np.full((size, size, 3), 255, np.uint8)
    cv2.circle(rgb, (48, 48), 32, (200, 60, 60), -1, lineType=cv2.LINE_8)
    cv2.circle(rgb, (48, 48), 14, (255, 255, 255), -1, lineType=cv2.LINE_8)
    src = tmp_path / "in"
    _write(src / "ring.png", rgb)
    hint = np.full((size, size, 4), 0, np.uint8)  # transparent = no hint
    hint[46:51, 46:51] = (0, 0, 0, 255)  # black dot in the hole
    Image.fromarray(hint, "RGBA").save(src / "ring.hint.png")
    report = run_matte(src, tmp_path / "out", progress=False)
    assert [r["source"] for r in report.rows] == ["ring.png"]  # the hint is not an input
    assert report.rows[0]["hint"] is True
    alpha = np.asarray(Image.open(tmp_path / "out" / "ring.png"))[..., 3]
    assert alpha[48, 48] == 0 and alpha[48, 30] == 255
    # Without the hint, the white hole on white paper stays filled (ambiguous).
    (src / "ring.hint.png").unlink()
    run_matte(src, tmp_path / "out2", progress=False)
    assert np.asarray(Image.open(tmp_path / "out2" / "ring.png"))[48, 48, 3] == 255


def test_passthrough_of_images_with_alpha_and_name_collisions(tmp_path):
    src = tmp_path / "in"
    fig = draw_figure(64, 1)
    Image.fromarray(fig, "RGBA").save(src.mkdir() or src / "a.png")
    _write(src / "a.jpg", _figure(2, 64)[0])
    report = run_matte(src, tmp_path / "out", progress=False)
    rows = {r["source"]: r for r in report.rows}
    assert rows["a.png"]["status"] == "passthrough"
    assert rows["a.png"]["output"] != rows["a.jpg"]["output"]
    back = np.asarray(Image.open(tmp_path / "out" / rows["a.png"]["output"]))
    np.testing.assert_array_equal(back[..., 3], fig[..., 3])


def test_read_image_errors_name_the_file(tmp_path):
    bad = tmp_path / "x.png"
    bad.write_bytes(b"not an image")
    with pytest.raises(FormatError) as ex:
        read_image(bad)
    assert str(bad) in str(ex.value)
    big = _write(tmp_path / "big.png", np.zeros((40, 50, 3), np.uint8))
    with pytest.raises(FormatError, match="over the limit"):
        read_image(big, max_pixels=1999)
    assert read_image(big, max_pixels=2000).rgb.shape == (40, 50, 3)
    grey16 = tmp_path / "g16.png"
    Image.fromarray(np.full((8, 8), 65535, np.uint16)).save(grey16)
    assert read_image(grey16).rgb.max() == 255


def test_read_hint_convention_and_aspect_check(tmp_path):
    h = np.full((20, 40), 128, np.uint8)
    h[:, :5] = 255
    h[:, -5:] = 0
    p = _write(tmp_path / "a.hint.png", h)
    hint = read_hint(p, (40, 80))  # resized, same aspect
    assert hint.shape == (40, 80) and (hint[:, :10] == 255).all() and (hint[:, -10:] == 0).all()
    assert (hint[:, 20:60] == 128).all()
    with pytest.raises(FormatError, match="aspect"):
        read_hint(p, (40, 40))


def test_cli_errors_on_missing_folder(tmp_path, capsys):
    with pytest.raises(SystemExit) as ex:
        main(["matte", str(tmp_path / "nope"), str(tmp_path / "out")])
    assert ex.value.code == 2
    assert "input folder not found" in capsys.readouterr().err


def test_output_folder_inside_input_is_not_read_back(tmp_path):
    src = tmp_path / "art"
    _write(src / "a.png", _figure(1, 64)[0])
    first = run_matte(src, src / "matted", progress=False)
    second = run_matte(src, src / "matted", progress=False)
    assert [r["source"] for r in first.rows] == [r["source"] for r in second.rows] == ["a.png"]
    assert second.reused == 1
