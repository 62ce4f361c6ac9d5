"""Evaluation: deterministic view choice, metrics for n = 1 and n = 4, LPIPS from local files, grid PNG."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from conrdata.errors import UserError
from conrdata.testing.toydata import write_toy_dataset
from conrmodel.baselines import BASELINES, empty, mean_colour_silhouette, nearest_reference, sheet_mean_colour
from conrmodel.data.stream import DataPosition
from conrmodel.evaluate import eval_views, evaluate, load_models, run_eval
from conrmodel.metrics import METRIC_NAMES, all_metrics, chroma_l1, fg_l1
from conrmodel.models.vgg import VGGFeatures
from conrmodel.train.config import load_config
from conrmodel.train.loop import DistInfo, build_optimizer, build_system, save_checkpoint
from conrmodel.train.losses import photo_loss

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def val_out(tmp_path_factory):
    out = tmp_path_factory.mktemp("val")
    return write_toy_dataset(
        out, characters=3, clips=1, images=3, size=48, val_characters=2, unlabeled_characters=1
    )


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A run dir holding a checkpoint of an untrained tiny model."""
    run = tmp_path_factory.mktemp("run")
    cfg = load_config("tiny", None, ["data.size=64"])
    torch.manual_seed(0)
    system = build_system(cfg)
    opt, sched = build_optimizer(system, cfg)
    save_checkpoint(run, 5, system, opt, sched, None, cfg, DataPosition(1), DistInfo())
    return run


def test_eval_views_rules():
    assert eval_views(["a", "b", "c", "d", "e"], 4) == (4, [0, 1, 2, 3], True)
    assert eval_views(["a", "b", "c"], 4) == (2, [0, 1, 0, 1], True)
    assert eval_views(["a", "b", "b"], 1) == (2, [0], True)
    assert eval_views(["a"], 2) == (0, [0, 0], False)


def _lpips_files(tmp_path):
    torch.manual_seed(0)
    torch.save(VGGFeatures("vgg16").state_dict(), tmp_path / "vgg16.pth")
    lin = {f"lin{i}.model.1.weight": torch.rand(1, c, 1, 1) for i, c in enumerate([64, 128, 256, 512, 512])}
    torch.save(lin, tmp_path / "lin.pth")
    return str(tmp_path / "vgg16.pth"), str(tmp_path / "lin.pth")


def test_run_eval_json_and_grid(tmp_path, val_out, run_dir):
    res = run_eval(
        run_dir, val_out, tmp_path / "ev", lpips_weights=_lpips_files(tmp_path), views=(1, 4), progress=False
    )
    assert res["step"] == 5 and res["clips"] == 2 and res["size"] == 64
    for n in ("n1", "n4"):
        view = res["views"][n]
        assert 0 < view["photo"] < 1 and view["lpips"] > 0
        assert view["photo"] == view["model"]["photo"] and set(view["baselines"]) == set(BASELINES)
        for entry in [view["model"], *view["baselines"].values()]:
            assert set(entry) == {*METRIC_NAMES, "lpips"}
            assert all(np.isfinite(v) for v in entry.values())
        base = view["baselines"]
        # the empty prediction is all black on the foreground; the silhouette has the right shape
        assert base["empty"]["ssim_fg"] < base["silhouette"]["ssim_fg"]
        assert base["silhouette"]["photo"] < base["empty"]["photo"]
    on_disk = json.loads((tmp_path / "ev" / "metrics-0000005.json").read_text())
    assert on_disk["views"] == res["views"]
    grid = np.asarray(Image.open(res["grid"]))
    # 2 clips x 2 view counts = 4 rows; the widest row has 4 refs + UDP + prediction + silhouette +
    # nearest reference + GT = 9 tiles
    assert grid.shape[0] == 4 * 66 + 2 and grid.shape[1] == 9 * 66 + 2


def test_evaluate_is_deterministic_and_skips_unlabeled(val_out, run_dir):
    det, ren, _ = load_models(run_dir)
    a = evaluate(det, ren, val_out, views=(1,), size=64)
    b = evaluate(det, ren, val_out, views=(1,), size=64)
    assert a == b and a["skipped_unlabeled"] == 0
    # the unlabeled character is in train: evaluating there counts it as skipped
    train_shards = sorted((val_out / "shards").glob("train-*.tar"))
    with pytest.raises(UserError, match="no labelled clips"):
        evaluate(det, ren, train_shards, views=(1,), size=64)


def test_load_models_errors(tmp_path):
    with pytest.raises(UserError, match="no checkpoint"):
        load_models(tmp_path)
    (tmp_path / "bad.pt").write_bytes(b"garbage")
    with pytest.raises(UserError, match="cannot read checkpoint"):
        load_models(tmp_path / "bad.pt")


def _rgba(rgb, alpha):
    """Straight RGBA [1, 4, H, W] from a colour per pixel [3, H, W] and alpha [H, W]."""
    return torch.cat([torch.as_tensor(rgb, dtype=torch.float32), torch.as_tensor(alpha)[None].float()])[None]


def _premul(x):
    return torch.cat([x[:, :3] * x[:, 3:4], x[:, 3:4]], 1)


def test_silhouette_takes_its_colour_from_the_sheet_not_the_target():
    h = w = 8
    alpha = torch.zeros(h, w)
    alpha[2:6, 2:6] = 1.0
    alpha[2, 2] = 0.5  # a soft edge pixel counts half
    red = torch.tensor([1.0, 0.0, 0.0]).view(3, 1, 1).expand(3, h, w)
    blue = torch.tensor([0.0, 0.0, 1.0]).view(3, 1, 1).expand(3, h, w)
    # the sheet: one red and one blue reference, the blue one with twice the area; background pixels
    # carry a colour too, which must not count (alpha 0)
    big = torch.zeros(h, w)
    big[0:8, 0:4] = 1.0
    sheet = torch.stack([_rgba(red, alpha)[0], _rgba(blue, big)[0]])[None]  # [1, 2, 4, H, W]
    target = _rgba(torch.tensor([0.0, 1.0, 0.0]).view(3, 1, 1).expand(3, h, w), alpha)  # a green target
    sil = mean_colour_silhouette(sheet, target[:, 3:4])
    area_red, area_blue = alpha.sum(), big.sum()
    expected = torch.tensor([area_red, 0.0, area_blue]) / (area_red + area_blue)
    torch.testing.assert_close(sheet_mean_colour(sheet)[0], expected)
    assert sil[0, 1].abs().max() == 0  # no green: nothing comes from the target's colours
    torch.testing.assert_close(sil[0, :3], expected.view(3, 1, 1) * alpha)  # premultiplied, target's mask
    torch.testing.assert_close(sil[0, 3], alpha)


def test_empty_baseline_photo_is_the_mean_alpha_weighted_intensity():
    g = torch.Generator().manual_seed(0)
    target = torch.rand(3, 4, 16, 16, generator=g)  # straight RGBA, soft alpha everywhere
    gt = _premul(target)
    rgb, a = target[:, :3], target[:, 3]
    # L_photo = mean over pixels and the 4 channels of |0 - (a r, a g, a b, a)| = mean a (r + g + b + 1) / 4
    intensity = (a * (rgb.sum(1) + 1.0) / 4.0).flatten(1).mean(1)
    torch.testing.assert_close(photo_loss(empty(gt[:, 3:4]), gt), intensity)
    torch.testing.assert_close(all_metrics(empty(gt[:, 3:4]), gt)["photo"], intensity)


def test_foreground_and_chroma_metrics():
    h = w = 8
    alpha = torch.zeros(h, w)
    alpha[:, :4] = 1.0
    colour = torch.tensor([0.9, 0.3, 0.3]).view(3, 1, 1).expand(3, h, w)
    gt = _premul(_rgba(colour, alpha))
    grey = _premul(_rgba(torch.full((3, h, w), 0.5), alpha))  # the right grey level, no colour
    # fg L1: |0.9 - 0.5| + 2 |0.3 - 0.5| over 3 channels; only foreground pixels count
    assert float(fg_l1(grey, gt)[0]) == pytest.approx((0.4 + 0.2 + 0.2) / 3, abs=1e-6)
    # chroma of the truth: (0.4, -0.2, -0.2); of grey: 0
    assert float(chroma_l1(grey, gt)[0]) == pytest.approx((0.4 + 0.2 + 0.2) / 3, abs=1e-6)
    brighter = _premul(_rgba(colour + 0.05, alpha))  # same chroma, other light level
    assert float(chroma_l1(brighter, gt)[0]) == pytest.approx(0.0, abs=1e-6)
    assert float(fg_l1(brighter, gt)[0]) == pytest.approx(0.05, abs=1e-6)
    same = all_metrics(gt, gt)
    assert float(same["ssim"][0]) == pytest.approx(1.0, abs=1e-5) and float(same["psnr_fg"][0]) > 90
    assert float(all_metrics(grey, gt)["ssim_fg"][0]) < 1.0


def test_nearest_reference_picks_the_closest_pose():
    g = torch.Generator().manual_seed(1)
    ref_rgba = torch.rand(1, 3, 4, 8, 8, generator=g)
    ref_udp = torch.rand(1, 3, 4, 8, 8, generator=g)
    target_udp = ref_udp[:, 2] + 0.01
    out = nearest_reference(ref_rgba, ref_udp, target_udp)
    torch.testing.assert_close(out, _premul(ref_rgba[:, 2]))
