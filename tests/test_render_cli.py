"""`conrmodel render` end to end on files the tests write: a tiny checkpoint, a sheet, UDP poses."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conrdata.errors import FormatError, UserError
from conrmodel.cli import main
from conrmodel.inference import Box, CoNRInference, crop_square, load_models, paste_square, square_box
from conrmodel.models import build_detector, build_renderer
from conrmodel.udp_io import iter_pose_frames, read_exr_udp, read_npz_udp


def _ellipse(h, w, cy, cx, ry, rx):
    y, x = np.mgrid[:h, :w]
    return ((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2 <= 1


def _udp(h, w, shift):
    m = _ellipse(h, w, h / 2, w / 2 + shift, h * 0.35, w * 0.2)
    y, x = np.mgrid[:h, :w]
    udp = np.zeros((h, w, 4), np.float32)
    udp[..., 0], udp[..., 1], udp[..., 2], udp[..., 3] = x / w, 1 - y / h, 0.5, m
    udp[..., :3] *= udp[..., 3:]
    return udp


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("render")
    torch.manual_seed(0)
    det, ren = build_detector("tiny"), build_renderer("tiny")
    (root / "run" / "checkpoints").mkdir(parents=True)
    torch.save(
        {"detector": det.state_dict(), "renderer": ren.state_dict(), "step": 1,
         "config": {"model": {"detector": "tiny", "renderer": "tiny"}, "data": {"size": 64}}},
        root / "run" / "checkpoints" / "latest.pt",
    )
    (root / "sheet").mkdir()
    for i in range(3):
        rgba = np.zeros((96, 80, 4), np.uint8)
        rgba[_ellipse(96, 80, 48, 40, 40, 18 + 3 * i)] = (200, 60 * i, 100, 255)
        Image.fromarray(rgba).save(root / "sheet" / f"view{i}.png")
    (root / "poses").mkdir()
    for i in range(4):
        np.savez(root / "poses" / f"frame{i}.npz", i=_udp(80, 60, i))
    return root


def _run(args: list[str]) -> None:
    try:
        main(args)
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise


def test_render_frames_video_and_report(workspace, tmp_path):
    out = tmp_path / "frames"
    _run(["render", "--weights", str(workspace / "run"), "--sheet", str(workspace / "sheet"),
          "--poses", str(workspace / "poses"), "--out", str(out), "--video", str(tmp_path / "a.gif"),
          "--batch", "3", "--fps", "10"])
    pngs = sorted(out.glob("*.png"))
    assert [p.stem for p in pngs] == [f"frame{i}" for i in range(4)]
    for i, p in enumerate(pngs):
        im = np.asarray(Image.open(p))
        assert im.shape == (80, 60, 4)  # back in the pose's own framing
        # nothing is drawn outside the crop square around the pose
        box = square_box(_udp(80, 60, i)[..., 3] > 0.5, 1.1)
        outside = np.ones((80, 60), bool)
        outside[max(box.top, 0) : box.top + box.side, max(box.left, 0) : box.left + box.side] = False
        assert not im[..., 3][outside].any()
    report = json.loads((out / "render_report.json").read_text())
    assert report["frames"] == 4 and report["weights_source"] == "checkpoint" and report["size"] == 64
    gif = Image.open(tmp_path / "a.gif")
    total = 0
    for k in range(gif.n_frames):  # Pillow merges identical frames, adding their durations
        gif.seek(k)
        total += gif.info["duration"]
    assert total == 4 * 100


def test_deterministic_and_batch_independent(workspace, tmp_path):
    models = load_models(workspace / "run")
    sheet = [np.asarray(Image.open(p)) for p in sorted((workspace / "sheet").glob("*.png"))]
    udps = [_udp(80, 60, i) for i in range(3)]
    one = CoNRInference(models.detector, models.renderer, 64, device="cpu", batch=1)
    one.set_sheet(sheet)
    a = [one.render_udps([u])[0] for u in udps]
    again = [one.render_udps([u])[0] for u in udps]
    three = CoNRInference(models.detector, models.renderer, 64, device="cpu", batch=3)
    three.set_sheet(sheet)
    b = three.render_udps(udps)
    for x, y, z in zip(a, again, b):
        assert np.array_equal(x, y)
        assert np.abs(x.astype(int) - z.astype(int)).max() <= 1
    uncached = CoNRInference(models.detector, models.renderer, 64, device="cpu", batch=3, cache_sheet=False)
    uncached.set_sheet(sheet)
    assert all(np.array_equal(x, y) for x, y in zip(b, uncached.render_udps(udps)))


def test_sheet_without_transparency_points_at_matte(workspace, tmp_path, capsys):
    sheet = tmp_path / "opaque"
    sheet.mkdir()
    Image.fromarray(np.full((64, 64, 3), 128, np.uint8)).save(sheet / "flat.png")
    with pytest.raises(SystemExit) as exc:
        main(["render", "--weights", str(workspace / "run"), "--sheet", str(sheet),
              "--poses", str(workspace / "poses"), "--out", str(tmp_path / "o")])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "flat.png" in err and "conrdata matte" in err


def test_bad_pose_file_is_skipped_and_reported(workspace, tmp_path):
    poses = tmp_path / "poses"
    shutil.copytree(workspace / "poses", poses)
    (poses / "frame9.npz").write_bytes(b"garbage")
    np.savez(poses / "frame8.npz", x=np.zeros((4, 4, 4), np.float32))
    out = tmp_path / "out"
    _run(["render", "--weights", str(workspace / "run"), "--sheet", str(workspace / "sheet"),
          "--poses", str(poses), "--out", str(out)])
    report = json.loads((out / "render_report.json").read_text())
    assert report["frames"] == 4
    reasons = {Path(s["path"]).name: s["reason"] for s in report["skipped"]}
    assert set(reasons) == {"frame8.npz", "frame9.npz"} and "no array 'i'" in reasons["frame8.npz"]


def test_image_poses_go_through_the_detector(workspace, tmp_path):
    poses = tmp_path / "img_poses"
    poses.mkdir()
    rgba = np.zeros((64, 64, 4), np.uint8)
    rgba[_ellipse(64, 64, 32, 32, 25, 12)] = (10, 200, 30, 255)
    Image.fromarray(rgba).save(poses / "drawn.png")
    out = tmp_path / "out"
    _run(["render", "--weights", str(workspace / "run"), "--sheet", str(workspace / "sheet"),
          "--poses", str(poses), "--out", str(out)])
    assert (out / "drawn.png").is_file()


def test_mp4_needs_ffmpeg(workspace, tmp_path, capsys):
    try:
        import imageio_ffmpeg  # noqa: F401

        pytest.skip("ffmpeg available: mp4 is supported here")
    except ImportError:
        if shutil.which("ffmpeg"):
            pytest.skip("ffmpeg available: mp4 is supported here")
    with pytest.raises(SystemExit) as exc:
        main(["render", "--weights", str(workspace / "run"), "--sheet", str(workspace / "sheet"),
              "--poses", str(workspace / "poses"), "--out", str(tmp_path / "o"),
              "--video", str(tmp_path / "a.mp4")])
    assert exc.value.code == 2 and ".gif" in capsys.readouterr().err


def test_missing_weights_and_cuda_errors(workspace, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UserError, match="official"):
        load_models(empty)
    if not torch.cuda.is_available():
        models = load_models(workspace / "run")
        with pytest.raises(UserError, match="CUDA"):
            CoNRInference(models.detector, models.renderer, 64, device="cuda")


def test_npz_axis_orders_and_exr_errors(tmp_path):
    udp = _udp(16, 16, 0)
    zxy = np.concatenate([udp[..., [2, 0, 1]], udp[..., 3:]], axis=-1)
    np.savez(tmp_path / "p.npz", i=zxy)
    assert np.allclose(read_npz_udp(tmp_path / "p.npz", "ZXY"), udp)
    (tmp_path / "bad.exr").write_bytes(b"not an exr")
    with pytest.raises(FormatError, match="bad.exr"):
        read_exr_udp(tmp_path / "bad.exr")
    frames = list(iter_pose_frames(tmp_path, errors=(errs := [])))
    assert [f.name for f in frames] == ["p"] and errs and errs[0][0].endswith("bad.exr")


def test_crop_and_paste_round_trip():
    arr = np.arange(5 * 7 * 1, dtype=np.float32).reshape(5, 7, 1)
    box = Box(-2, 3, 6)
    crop = crop_square(arr, box)
    assert crop.shape == (6, 6, 1) and crop[0, 0, 0] == 0 and crop[2, 0, 0] == arr[0, 3, 0]
    back = paste_square(np.zeros_like(arr), crop, box)
    assert np.array_equal(back[:4, 3:], arr[:4, 3:])
    assert square_box(np.zeros((4, 4), bool)) is None


@pytest.mark.slow
def test_official_weights_folder_renders(workspace, tmp_path):
    """The four official file names in a folder take the official path (random weights, 64 px)."""
    from conrmodel.official import save_official

    torch.manual_seed(0)
    save_official(build_renderer("official"), tmp_path / "weights")
    out = tmp_path / "out"
    poses = tmp_path / "poses"
    poses.mkdir()
    shutil.copy(workspace / "poses" / "frame0.npz", poses)
    _run(["render", "--weights", str(tmp_path / "weights"), "--sheet", str(workspace / "sheet"),
          "--poses", str(poses), "--out", str(out), "--size", "64"])
    report = json.loads((out / "render_report.json").read_text())
    assert report["weights_source"] == "official" and report["frames"] == 1
    assert np.asarray(Image.open(out / "frame0.png")).shape == (80, 60, 4)
