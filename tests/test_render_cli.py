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
from conrmodel.inference.runner import Box, CoNRInference, crop_square, load_models, paste_square, square_box
from conrmodel.inference.udp_io import iter_pose_frames, read_exr_udp, read_npz_udp
from conrmodel.models.factory import build_detector, build_renderer


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
    assert report["preprocess"] == "ours" and report["margin"] == 1.1  # what an unrecorded checkpoint gets
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


def test_bf16_autocast_path_runs_close_to_fp32(workspace):
    models = load_models(workspace / "run")
    sheet = [np.asarray(Image.open(p)) for p in sorted((workspace / "sheet").glob("*.png"))]
    udps = [_udp(64, 64, 0)]
    outs = []
    for precision in ("fp32", "bf16"):
        engine = CoNRInference(models.detector, models.renderer, 64, device="cpu", precision=precision)
        engine.set_sheet(sheet)
        outs.append(engine.render_udps(udps)[0].astype(int))
    assert np.abs(outs[0] - outs[1]).max() <= 16
    with pytest.raises(UserError, match="precision"):
        CoNRInference(models.detector, models.renderer, 64, device="cpu", precision="fp8")


def _write_exr(path: Path, rgba: np.ndarray, compression: int, half: bool = False) -> None:
    """A single-part scanline OpenEXR file, written from the file-layout spec (channels A, B, G, R)."""
    import struct
    import zlib

    h, w, _ = rgba.shape
    names = ["A", "B", "G", "R"]  # OpenEXR keeps channels sorted by name
    dtype = np.dtype("<f2") if half else np.dtype("<f4")
    ptype = 1 if half else 2  # HALF or FLOAT
    chlist = b"".join(n.encode() + b"\0" + struct.pack("<iB3xii", ptype, 0, 1, 1) for n in names) + b"\0"

    def attr(name, kind, value):
        return name.encode() + b"\0" + kind.encode() + b"\0" + struct.pack("<i", len(value)) + value

    header = b"".join([
        attr("channels", "chlist", chlist),
        attr("compression", "compression", bytes([compression])),
        attr("dataWindow", "box2i", struct.pack("<4i", 0, 0, w - 1, h - 1)),
        attr("displayWindow", "box2i", struct.pack("<4i", 0, 0, w - 1, h - 1)),
        attr("lineOrder", "lineOrder", b"\0"),
        attr("pixelAspectRatio", "float", struct.pack("<f", 1.0)),
        attr("screenWindowCenter", "v2f", struct.pack("<2f", 0, 0)),
        attr("screenWindowWidth", "float", struct.pack("<f", 1.0)),
    ]) + b"\0"
    lines = {0: 1, 1: 1, 2: 1, 3: 16}[compression]
    chunks = []
    for y in range(0, h, lines):
        rows = range(y, min(y + lines, h))
        raw = b"".join(rgba[r, :, "RGBA".index(n)].astype(dtype).tobytes() for r in rows for n in names)
        data = raw
        if compression:
            b = np.frombuffer(raw, np.uint8)
            split = np.concatenate([b[0::2], b[1::2]]).astype(np.int64)
            pred = split.copy()
            pred[1:] = (split[1:] - split[:-1] + 128 + 256) % 256
            pred = pred.astype(np.uint8).tobytes()
            packed = zlib.compress(pred) if compression > 1 else _rle(pred)
            data = packed if len(packed) < len(raw) else raw
        chunks.append(struct.pack("<ii", y, len(data)) + data)
    start = 8 + len(header) + 8 * len(chunks)
    offsets, at = [], start
    for c in chunks:
        offsets.append(at)
        at += len(c)
    path.write_bytes(b"\x76\x2f\x31\x01" + struct.pack("<i", 2) + header
                     + struct.pack(f"<{len(offsets)}Q", *offsets) + b"".join(chunks))


def _rle(buf: bytes) -> bytes:
    """OpenEXR RLE: count byte c >= 0 repeats the next byte c + 1 times; c < 0 copies -c literal bytes."""
    out, i, n = bytearray(), 0, len(buf)
    while i < n:
        run = 1
        while i + run < n and buf[i + run] == buf[i] and run < 128:
            run += 1
        if run >= 3:
            out += bytes([run - 1, buf[i]])
            i += run
        else:
            j = i
            while j < n and j - i < 127 and not (j + 2 < n and buf[j] == buf[j + 1] == buf[j + 2]):
                j += 1
            j = max(j, i + 1)
            out += bytes([256 - (j - i)]) + buf[i:j]
            i = j
    return bytes(out)


@pytest.mark.parametrize("compression,half,noisy", [(0, False, False), (1, False, False), (2, False, False),
                                                    (3, False, False), (3, True, False), (3, False, True)])
def test_exr_written_from_the_file_layout_spec_reads(tmp_path, compression, half, noisy):
    udp = _udp(37, 21, 0)  # 37 rows: the last ZIP chunk is short
    if noisy:  # incompressible: chunks are stored raw even under ZIP compression
        udp[..., :3] = np.random.default_rng(0).random((37, 21, 3)) * udp[..., 3:]
    path = tmp_path / "pose.exr"
    _write_exr(path, udp, compression, half)
    got = read_exr_udp(path)
    assert got.shape == (37, 21, 4)
    assert np.allclose(got, udp, atol=1e-3 if half else 0)
    frames = list(iter_pose_frames(tmp_path))
    assert len(frames) == 1 and frames[0].udp is not None


def test_truncated_exr_is_a_format_error(tmp_path):
    path = tmp_path / "cut.exr"
    _write_exr(path, _udp(8, 8, 0), 3)
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(FormatError, match="cut.exr"):
        read_exr_udp(path)


def test_preprocess_switch_and_premultiplied_png(workspace, tmp_path):
    poses = tmp_path / "poses"
    poses.mkdir()
    shutil.copy(workspace / "poses" / "frame1.npz", poses)
    faint = _udp(80, 60, 0)
    faint[..., 3] *= 0.3  # soft occupancy under our 0.5 threshold: official framing still sees it
    np.savez(poses / "faint.npz", i=faint)
    frames, reports = {}, {}
    for mode, extra in (("ours", []), ("official", []), ("official", ["--premultiplied-png"])):
        out = tmp_path / f"{mode}{len(extra)}"
        _run(["render", "--weights", str(workspace / "run"), "--sheet", str(workspace / "sheet"),
              "--poses", str(poses), "--out", str(out), "--preprocess", mode] + extra)
        reports[mode, len(extra)] = json.loads((out / "render_report.json").read_text())
        frames[mode, len(extra)] = {p.stem: np.asarray(Image.open(p)) for p in out.glob("*.png")}
    assert reports["ours", 0]["margin"] == 1.1 and reports["official", 0]["margin"] == 1.0
    assert reports["official", 1]["premultiplied_png"] and not reports["official", 0]["premultiplied_png"]
    assert not frames["ours", 0]["faint"][..., 3].any() and frames["official", 0]["faint"][..., 3].any()
    assert not np.array_equal(frames["ours", 0]["frame1"], frames["official", 0]["frame1"])
    straight = frames["official", 0]["frame1"].astype(int)
    premul = frames["official", 1]["frame1"].astype(int)
    assert np.array_equal(straight[..., 3], premul[..., 3]) and premul[..., 3].any()
    assert (premul[..., :3] <= premul[..., 3:]).all()
    assert np.abs(straight[..., :3] * straight[..., 3:] / 255 - premul[..., :3]).max() <= 1


def test_poses_from_our_shards(tmp_path):
    from conrdata.dataset import Clip, ClipImage, DatasetWriter

    rgba = np.zeros((32, 32, 4), np.uint8)
    rgba[_ellipse(32, 32, 16, 16, 10, 6)] = (255, 0, 0, 255)
    with DatasetWriter(tmp_path / "out", seed=0) as writer:
        writer.add_character("chr0", {"source": "test"})
        writer.write(Clip("chr0", "c0", [ClipImage(rgba, _udp(32, 32, 0), pose_id="p0"),
                                         ClipImage(rgba, None, pose_id="p1")]))
    frames = list(iter_pose_frames(tmp_path / "out"))
    assert len(frames) == 2
    assert frames[0].udp is not None and np.array_equal(frames[0].udp, _udp(32, 32, 0))
    assert frames[1].udp is None and frames[1].image.shape == (32, 32, 4)
    shards = sorted((tmp_path / "out" / "shards").glob("*.tar"))
    assert len(list(iter_pose_frames(shards[0]))) == 2


def test_video_flattens_premultiplied_frames_like_straight_ones():
    from conrmodel.inference.preprocess import premultiplied_from_straight
    from conrmodel.inference.video import flatten

    rgba = np.random.default_rng(0).integers(0, 256, (16, 16, 4), dtype=np.uint8)
    straight = flatten(rgba, (255, 255, 255)).astype(int)
    pm = premultiplied_from_straight(rgba)
    assert np.abs(straight - flatten(pm, (255, 255, 255), premultiplied=True).astype(int)).max() <= 1
    assert np.abs(straight - flatten(pm, (255, 255, 255)).astype(int)).max() > 50  # read as straight: wrong
