"""Official-checkpoint compatibility: names and shapes of the four official files load strictly.

``tests/data/official_conr_state_dicts.json`` lists every state-dict entry (name -> shape) of the four
files of the official release, read off the official networks built with random weights.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from conrdata.errors import FormatError, UserError
from conrmodel.checkpoint import OFFICIAL_FILES, load_strict, read_state_dict
from conrmodel.inference.preprocess import (
    official_output,
    official_sheet_crop,
    official_target_crop,
    premultiplied_from_straight,
    square_box,
    straight_from_premultiplied,
)
from conrmodel.models.backbones import ResNetEncoder, load_torchvision_resnet
from conrmodel.models.factory import build_detector, build_renderer
from conrmodel.models.official import PAPER_PARAMS_M, load_official, save_official

LAYOUT = json.loads((Path(__file__).parent / "data" / "official_conr_state_dicts.json").read_text())


def _random_state(layout: dict[str, list[int]], seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {name: torch.randn(*shape, generator=g) * 0.01 for name, shape in layout.items()}


def test_official_layout_loads_strictly_into_the_official_preset():
    ren = build_renderer("official")
    for seed, part in enumerate(["udpparsernet", "target_pose_encoder", "shader", "rgbadecodernet"]):
        state = _random_state(LAYOUT[part], seed)
        module = getattr(ren, part)
        module.load_state_dict(state, strict=True)
        name = next(iter(state))
        assert torch.equal(module.state_dict()[name], state[name])
        count = sum(p.numel() for p in module.parameters())
        assert count == sum(math.prod(s) for s in LAYOUT[part].values())
        assert round(count / 1e6, 2 if count < 1e6 else 1) == pytest.approx(PAPER_PARAMS_M[part])
    del ren
    det = build_detector("official")
    det.load_state_dict(_random_state(LAYOUT["udpparsernet"], 9), strict=True)


def test_file_round_trip_and_shared_parser(tmp_path):
    torch.manual_seed(0)
    ren = build_renderer("tiny", parser_decoder=True).eval()
    save_official(ren, tmp_path)
    det2, ren2 = load_official(tmp_path, preset="tiny", parser_decoder=True)
    assert det2 is ren2.udpparsernet
    g = torch.Generator().manual_seed(1)
    target = torch.rand(1, 4, 64, 64, generator=g)
    refs = torch.rand(1, 2, 4, 64, 64, generator=g)
    with torch.no_grad():
        assert torch.equal(ren(target, refs, None), ren2(target, refs, None))


def test_missing_file_is_named(tmp_path):
    torch.manual_seed(0)
    save_official(build_renderer("tiny", parser_decoder=True), tmp_path)
    (tmp_path / "shader.pth").unlink()
    with pytest.raises(UserError, match="missing shader.pth"):
        load_official(tmp_path, preset="tiny", parser_decoder=True)


def test_wrong_architecture_is_a_format_error_naming_the_file(tmp_path):
    torch.manual_seed(0)
    save_official(build_renderer("small", parser_decoder=True), tmp_path)
    with pytest.raises(FormatError) as err:
        load_official(tmp_path, preset="tiny", parser_decoder=True)
    assert "udpparsernet.pth" in str(err.value) and "does not match" in str(err.value)


def test_corrupt_and_unsafe_files(tmp_path):
    bad = tmp_path / "junk.pth"
    bad.write_bytes(b"not a zip and not a pickle")
    with pytest.raises(FormatError, match="junk.pth"):
        read_state_dict(bad)
    unsafe = tmp_path / "unsafe.pth"
    torch.save({"w": torch.zeros(1), "obj": Path("x")}, unsafe)  # needs pickle code: refused
    with pytest.raises(FormatError, match="unsafe.pth"):
        read_state_dict(unsafe)
    wrapped = tmp_path / "wrapped.pth"
    torch.save({"state_dict": {"module.a": torch.ones(2)}}, wrapped)
    assert list(read_state_dict(wrapped)) == ["a"]


def test_load_strict_reports_shape_mismatch(tmp_path):
    module = torch.nn.Linear(3, 2)
    with pytest.raises(FormatError, match="other shapes"):
        load_strict(module, {"weight": torch.zeros(2, 4), "bias": torch.zeros(2)}, tmp_path / "x.pth")


def _torchvision_resnet18_layout() -> dict[str, tuple[int, ...]]:
    """torchvision.models.resnet18().state_dict() names and shapes, written from its definition."""
    out: dict[str, tuple[int, ...]] = {"conv1.weight": (64, 3, 7, 7)}

    def bn(prefix: str, c: int):
        for k in ("weight", "bias", "running_mean", "running_var"):
            out[f"{prefix}.{k}"] = (c,)
        out[f"{prefix}.num_batches_tracked"] = ()

    bn("bn1", 64)
    cin = 64
    for i, c in enumerate([64, 128, 256, 512], start=1):
        for j in range(2):
            p = f"layer{i}.{j}"
            out[f"{p}.conv1.weight"] = (c, cin if j == 0 else c, 3, 3)
            bn(f"{p}.bn1", c)
            out[f"{p}.conv2.weight"] = (c, c, 3, 3)
            bn(f"{p}.bn2", c)
            if j == 0 and i > 1:
                out[f"{p}.downsample.0.weight"] = (c, cin, 1, 1)
                bn(f"{p}.downsample.1", c)
        cin = c
    out["fc.weight"] = (1000, 512)
    out["fc.bias"] = (1000,)
    return out


@pytest.mark.parametrize("norm,in_channels", [("batch", 3), ("instance", 3), ("instance", 4)])
def test_torchvision_resnet18_checkpoint_loads(norm, in_channels):
    g = torch.Generator().manual_seed(0)
    state = {
        k: (torch.randn(*s, generator=g) if s else torch.tensor(5))
        for k, s in _torchvision_resnet18_layout().items()
    }
    enc = ResNetEncoder("resnet18", in_channels=in_channels, width=64, norm=norm, pool="max")
    load_torchvision_resnet(enc, state)
    own = enc.state_dict()
    assert torch.equal(own["7.1.conv2.weight"], state["layer4.1.conv2.weight"])
    assert torch.equal(own["0.weight"][:, :3], state["conv1.weight"])
    if in_channels == 4:
        assert float(own["0.weight"][:, 3].abs().sum()) == 0.0
    key = "7.0.downsample.1.norm.weight" if norm == "instance" else "7.0.downsample.1.weight"
    assert torch.equal(own[key], state["layer4.0.downsample.1.weight"])
    assert enc(torch.rand(1, in_channels, 64, 64)).shape == (1, 512, 2, 2)


def test_official_file_names():
    names = ("udpparsernet.pth", "target_pose_encoder.pth", "shader.pth", "rgbadecodernet.pth")
    assert names == OFFICIAL_FILES


# ------------------------------------------------------------- the official preprocessing, against OpenCV
# What the official release's data_loader.py / train.py (test mode) do, re-stated here step by step with
# OpenCV and numpy: RandomResizedCropWithAutoCenteringAndZeroPadding with scale (1, 1), ratio (1, 1) and no
# jitter, uint8 premultiplication of the sheet, the fake uint8 image of a target label, and save_output.


def _official_box(alpha_u8: np.ndarray) -> tuple[int, int, int]:
    left, top, w, h = cv2.boundingRect((alpha_u8 > 0).astype(np.uint8))
    side = int(round(h)) if 1.0 < h / w else int(round(w))
    return int(round(top - (side - h) / 2)), int(round(left - (side - w) / 2)), side


def _official_crop(img: np.ndarray, top: int, left: int, side: int) -> np.ndarray:
    ih, iw = img.shape[:2]
    crop = img[max(top, 0) : min(top + side, ih), max(left, 0) : min(left + side, iw)]
    pads = ((max(-top, 0), max(top + side - ih, 0)), (max(-left, 0), max(left + side - iw, 0)), (0, 0))
    return np.pad(crop, pads, mode="constant")


def _official_resize(img: np.ndarray, size: int, label: bool = False) -> np.ndarray:
    if img.shape[:2] == (size, size):
        return img
    if label:
        mode = cv2.INTER_NEAREST_EXACT
    else:
        mode = cv2.INTER_LINEAR if size > img.shape[1] and size > img.shape[0] else cv2.INTER_AREA
    return cv2.resize(img, (size, size), interpolation=mode)


def _official_sheet(rgba: np.ndarray, size: int) -> np.ndarray:
    mask = rgba[:, :, 3:4]
    rgb = (rgba[:, :, :3] * (rgba[:, :, 3][:, :, np.newaxis] / 255.0)).clip(0, 255).astype(np.uint8)
    image = np.concatenate((rgb, mask), axis=2)
    return _official_resize(_official_crop(image, *_official_box(image[:, :, 3])), size)


def _official_target(label: np.ndarray, size: int):
    image = (label * 255).clip(0, 255).astype(np.uint8)
    box = _official_box(image[:, :, 3])
    image = _official_resize(_official_crop(image, *box), size)
    label = _official_resize(_official_crop(label, *box), size, label=True)
    return box, label, image[:, :, 3]


def _official_save(pred: np.ndarray, box: tuple[int, int, int], shape: tuple[int, int]) -> np.ndarray:
    u8 = (np.clip(pred, 0, 1) * 255).astype(np.uint8)
    top, left, side = box
    back = cv2.resize(u8, (side, side), interpolation=cv2.INTER_AREA)
    out = np.zeros((*shape, 4), np.uint8)
    y0, x0, y1, x1 = max(top, 0), max(left, 0), min(top + side, shape[0]), min(left + side, shape[1])
    out[y0:y1, x0:x1] = back[y0 - top : y1 - top, x0 - left : x1 - left]
    return out


def _soft_blob(h: int, w: int, cy: float, cx: float, ry: float, rx: float, seed: int) -> np.ndarray:
    """A uint8 RGBA figure with anti-aliased (soft) edges and noisy colour."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:h, :w]
    d = np.sqrt(((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2)
    alpha = (np.clip((1.0 - d) * 8, 0, 1) * 255).astype(np.uint8)
    rgba = rng.integers(0, 256, (h, w, 4), dtype=np.uint8)
    rgba[..., 3] = alpha
    return rgba


# (image h, w, figure centre and radii): crops smaller than, equal to and larger than the network side,
# figures cut by the image border, odd and even box sides
FIGURES = [(90, 70, 45, 35, 40, 20), (64, 64, 31.5, 31.5, 40, 40), (300, 200, 160, 90, 120, 70),
           (50, 120, 25, 10, 20, 30), (33, 47, 16, 30, 15, 9)]


@pytest.mark.parametrize("size", [64, 128])
@pytest.mark.parametrize("figure", range(len(FIGURES)))
def test_sheet_preprocessing_equals_opencv(size, figure):
    h, w, cy, cx, ry, rx = FIGURES[figure]
    rgba = _soft_blob(h, w, cy, cx, ry, rx, figure)
    ours = official_sheet_crop(rgba, size)
    assert ours.dtype == np.uint8 and np.array_equal(ours, _official_sheet(rgba, size))


@pytest.mark.parametrize("size", [64, 128])
@pytest.mark.parametrize("figure", range(len(FIGURES)))
def test_target_preprocessing_and_output_equal_opencv(size, figure):
    h, w, cy, cx, ry, rx = FIGURES[figure]
    alpha = _soft_blob(h, w, cy, cx, ry, rx, figure)[..., 3].astype(np.float32) / 255.0
    alpha[alpha < 0.002] = 0.0015  # occupancy under 1/255 does not frame the crop
    alpha[: h // 4] = 0
    rng = np.random.default_rng(figure)
    label = np.concatenate([rng.random((h, w, 3), dtype=np.float32), alpha[..., None]], axis=-1)
    label[..., :3] *= label[..., 3:]
    box, landmarks, mask = official_target_crop(label, size)
    (top, left, side), want_landmarks, want_mask = _official_target(label, size)
    assert (box.top, box.left, box.side) == (top, left, side)
    assert landmarks.dtype == np.float32 and np.array_equal(landmarks, want_landmarks)
    assert mask.dtype == np.uint8 and np.array_equal(mask, want_mask)
    assert len(np.unique(mask)) > 3  # a soft mask: neither thresholded nor nearest-resized
    pred = rng.random((size, size, 4), dtype=np.float32)
    assert np.array_equal(official_output(pred, box, (h, w)), _official_save(pred, (top, left, side), (h, w)))


def test_official_preprocessing_differs_from_ours_where_the_issue_says():
    rgba = _soft_blob(90, 70, 45, 35, 40, 20, 0)
    assert official_sheet_crop(rgba, 64).shape == (64, 64, 4)
    longer = _official_box(rgba[..., 3])[2]
    assert square_box(rgba[..., 3] > 0, 1.0).side == longer == 79  # the box's longer side: official
    assert square_box(rgba[..., 3] > 0, 1.1).side == 87  # ours: 10% more
    soft = np.zeros((8, 8, 4), np.float32)
    soft[2:6, 2:6, 3] = 0.3  # under our 0.5 threshold, framed by the official rule
    assert official_target_crop(soft, 32) is not None
    assert square_box(soft[..., 3] > 0.5) is None


# ------------------------------------------------------------- end to end on weights in the official layout


@pytest.fixture(scope="module")
def official_dir(tmp_path_factory) -> Path:
    """The release's four files, random weights in the official names and shapes."""
    folder = tmp_path_factory.mktemp("official_weights")
    for seed, part in enumerate(["udpparsernet", "target_pose_encoder", "shader", "rgbadecodernet"]):
        torch.save(_random_state(LAYOUT[part], seed), folder / f"{part}.pth")
    return folder


def _run_cli(main, args: list[str]) -> None:
    try:
        main(args)
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise


@pytest.mark.slow
def test_render_defaults_on_official_weights_are_the_official_pipeline(official_dir, tmp_path):
    from conrmodel.cli import main
    from conrmodel.models.renderer import unpremultiply

    sheet, poses = tmp_path / "sheet", tmp_path / "poses"
    sheet.mkdir()
    poses.mkdir()
    views = [_soft_blob(90, 70, 45, 35, 40, 20, 0), _soft_blob(120, 100, 60, 45, 50, 30, 1)]
    for i, rgba in enumerate(views):
        Image.fromarray(rgba).save(sheet / f"v{i}.png")
    alpha = _soft_blob(80, 60, 42, 28, 30, 16, 2)[..., 3].astype(np.float32) / 255.0
    label = np.concatenate([np.random.default_rng(0).random((80, 60, 3), dtype=np.float32),
                            alpha[..., None]], axis=-1)
    label[..., :3] *= label[..., 3:]
    np.savez(poses / "pose.npz", i=label)

    out = tmp_path / "out"
    _run_cli(main, ["render", "--weights", str(official_dir), "--sheet", str(sheet), "--poses", str(poses),
                    "--out", str(out), "--size", "64", "--batch", "1", "--premultiplied-png"])
    report = json.loads((out / "render_report.json").read_text())
    assert report["weights_source"] == "official" and report["preprocess"] == "official"
    assert report["margin"] == 1.0 and report["premultiplied_png"]

    # the same inputs built step by step as the official loader does, through our networks
    _, renderer = load_official(official_dir)
    refs = torch.stack([torch.from_numpy(_official_sheet(v, 64)).permute(2, 0, 1) for v in views]) / 255.0
    box, landmarks, mask = _official_target(label, 64)
    target = np.concatenate([landmarks[..., :3], mask[..., None].astype(np.float32) / 255], axis=-1)
    with torch.no_grad():
        pred = renderer(torch.from_numpy(target).permute(2, 0, 1)[None], unpremultiply(refs)[None])
    want = _official_save(pred[0].permute(1, 2, 0).numpy(), box, (80, 60))
    got = np.asarray(Image.open(out / "pose.png"))
    assert got.shape == (80, 60, 4) and np.array_equal(got, want)
    top, left, side = box
    outside = np.ones((80, 60), bool)
    outside[max(top, 0) : top + side, max(left, 0) : left + side] = False
    assert want[..., 3].any() and not got[..., 3][outside].any()  # the official framing


def test_straight_and_premultiplied_png_forms():
    rgba = _soft_blob(30, 20, 15, 10, 12, 8, 3)
    premul = premultiplied_from_straight(rgba)
    assert np.array_equal(premul[..., 3], rgba[..., 3]) and (premul[..., :3] <= premul[..., 3:]).all()
    back = straight_from_premultiplied(premul)
    a = rgba[..., 3]
    # exact where alpha is opaque; within the rounding of a step of 255 / alpha elsewhere
    assert np.array_equal(back[a == 255], rgba[a == 255])
    err = np.abs(back[..., :3].astype(int) - rgba[..., :3].astype(int))[a > 0].max(axis=-1)
    assert (err <= np.ceil(255 / a[a > 0] / 2 + 1)).all()
    assert not back[a == 0].any()


@pytest.mark.slow
def test_eval_on_official_weights(official_dir, tmp_path):
    from conrdata.testing.toydata import write_toy_dataset
    from conrmodel.cli import main

    data = write_toy_dataset(tmp_path / "toy", characters=2, clips=1, images=3, size=48, val_characters=2)
    out = tmp_path / "ev"
    _run_cli(main, ["eval", "--weights", str(official_dir), "--shards", str(data), "--out", str(out),
                    "--size", "64", "--views", "1", "--max-clips", "1"])
    metrics = json.loads((out / "metrics-0000000.json").read_text())
    assert metrics["clips"] == 1 and 0 < metrics["views"]["n1"]["photo"] < 1
    assert metrics["preprocess"] == "official"
