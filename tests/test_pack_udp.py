"""`conrdata pack-udp`: UDPs made elsewhere (EXR / npz, with or without images) become clips that
`conrdata validate` accepts and that drive `conrmodel render`."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from conrdata.cli import main as conrdata_main
from conrdata.dataset import iter_clips, write_official_udp
from conrdata.dataset.validate import validate
from conrdata.udp import to_official
from conrmodel.cli import main as conrmodel_main
from conrmodel.models.factory import build_detector, build_renderer


def _figure(h: int, w: int, shift: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(our UDP, the matching straight RGBA image) of an ellipse moved right by ``shift``."""
    y, x = np.mgrid[:h, :w]
    occ = ((y - h / 2) / (h * 0.38)) ** 2 + ((x - w / 2 - shift) / (w * 0.22)) ** 2 <= 1
    udp = np.zeros((h, w, 4), np.float32)
    udp[..., 0], udp[..., 1], udp[..., 2], udp[..., 3] = x / w, 1 - y / h, 0.25 + 0.01 * seed, occ
    udp[..., :3] *= udp[..., 3:]
    rgba = np.zeros((h, w, 4), np.uint8)
    rgba[occ] = (200, 40 * seed % 256, 90, 255)
    return udp, rgba


def _run(main, args):
    try:
        main(args)
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise


@pytest.fixture()
def udp_dir(tmp_path):
    """``alice/``: 5 EXR frames (ZXY order) with PNGs, one of them broken; ``bob/``: 3 npz frames alone."""
    root = tmp_path / "udps"
    truth = {}
    for i in range(5):
        udp, rgba = _figure(40, 32, i - 2, i)
        write_official_udp(udp, root / "alice" / f"frame{i}.exr", "ZXY", format="exr")
        Image.fromarray(rgba).save(root / "alice" / f"frame{i}.png")
        truth[("alice", f"frame{i}")] = (udp, rgba)
    (root / "alice" / "frame9.exr").write_bytes(b"\x76\x2f\x31\x01 truncated")
    for i in range(3):
        udp, _ = _figure(36, 36, i, 7)
        zxy = to_official(udp, "ZXY")
        (root / "bob").mkdir(exist_ok=True)
        np.savez(root / "bob" / f"{i}.npz", i=zxy)
        truth[("bob", str(i))] = (udp, None)
    return root, truth


def test_pack_validate_and_read_back(udp_dir, tmp_path, capsys):
    root, truth = udp_dir
    out = tmp_path / "out"
    _run(conrdata_main, ["pack-udp", str(root), str(out), "--axis-order", "ZXY", "--clip-size", "3", "-q"])
    assert "skipped alice/frame9.exr" in capsys.readouterr().err
    report = validate(out)
    assert report.ok, [str(p) for p in report.problems]
    clips = sorted(iter_clips(out), key=lambda c: c.key)
    kinds = {c.key: c.meta["meta"]["kind"] for c in clips}
    assert sorted(kinds.values()) == ["labelled", "labelled", "pose-only"]  # alice 3 + 2, bob 3
    seen = 0
    for clip in clips:
        name = clip.meta["meta"]["name"]
        for image, rgba, udp in zip(clip.meta["images"], clip.rgba, clip.udp):
            want_udp, want_rgba = truth[(name, image["pose_id"])]
            assert np.array_equal(udp, want_udp)
            if want_rgba is None:
                assert image["pose_only"] and not rgba[..., :3].any()
                assert np.array_equal(rgba[..., 3] > 0, want_udp[..., 3] > 0)
            else:
                assert not image["pose_only"] and np.array_equal(rgba, want_rgba)
            seen += 1
    assert seen == 8
    rows = (out / "pack_udp_report.csv").read_text().splitlines()
    assert len(rows) == 1 + 9 and sum("skipped" in r for r in rows) == 1
    # a rerun writes nothing twice
    _run(conrdata_main, ["pack-udp", str(root), str(out), "--axis-order", "ZXY", "--clip-size", "3", "-q"])
    assert len(list(iter_clips(out))) == 3 and validate(out).ok


def test_image_that_disagrees_with_its_udp_is_skipped(udp_dir, tmp_path):
    root, _ = udp_dir
    Image.fromarray(np.full((40, 32, 4), 255, np.uint8)).save(root / "alice" / "frame1.png")
    Image.fromarray(np.zeros((10, 10, 4), np.uint8)).save(root / "alice" / "frame2.png")
    from conrdata.dataset.udp_pack import pack_udp

    report = pack_udp(root, tmp_path / "out", axis_order="ZXY", progress=False)
    reasons = {r["udp"]: r["reason"] for r in report.skipped}
    assert "alpha-mismatch" in reasons["alice/frame1.exr"] and "10x10" in reasons["alice/frame2.exr"]
    assert validate(tmp_path / "out").ok


def test_packed_pose_only_clips_drive_render(udp_dir, tmp_path):
    root, _ = udp_dir
    out = tmp_path / "out"
    _run(conrdata_main, ["pack-udp", str(root / "bob"), str(out), "--no-images", "-q"])
    torch.manual_seed(0)
    run = tmp_path / "run" / "checkpoints"
    run.mkdir(parents=True)
    nets = {"detector": build_detector("tiny").state_dict(), "renderer": build_renderer("tiny").state_dict()}
    torch.save({**nets, "config": {"model": {"detector": "tiny", "renderer": "tiny"}, "data": {"size": 64}}},
               run / "latest.pt")
    sheet = tmp_path / "sheet"
    sheet.mkdir()
    Image.fromarray(_figure(48, 40, 0, 3)[1]).save(sheet / "front.png")
    frames = tmp_path / "frames"
    _run(conrmodel_main, ["render", "--weights", str(tmp_path / "run"), "--sheet", str(sheet),
                          "--poses", str(out), "--out", str(frames)])
    report = json.loads((frames / "render_report.json").read_text())
    assert report["frames"] == 3 and report["preprocess"] == "ours"
    assert all(np.asarray(Image.open(p)).shape == (36, 36, 4) for p in sorted(frames.glob("*.png")))


def test_export_then_pack_round_trip(udp_dir, tmp_path):
    root, _ = udp_dir
    first, exported, second = tmp_path / "first", tmp_path / "exported", tmp_path / "second"
    _run(conrdata_main, ["pack-udp", str(root / "alice"), str(first), "--axis-order", "ZXY", "-q"])
    _run(conrdata_main, ["export-udp", str(first), str(exported), "--udp-format", "exr",
                         "--axis-order", "XZY"])
    assert len(list(exported.rglob("*.exr"))) == 5 and len(list(exported.rglob("*.png"))) == 5
    _run(conrdata_main, ["pack-udp", str(exported), str(second), "--axis-order", "XZY", "-q"])
    assert validate(second).ok
    (a,), (b,) = list(iter_clips(first)), list(iter_clips(second))
    assert len(a) == len(b) == 5
    for x, y in zip(a.udp + a.rgba, b.udp + b.rgba):
        assert np.array_equal(x, y)
