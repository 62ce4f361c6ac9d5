"""Losses (paper Eq. 2-5), VGG feature extractor, LPIPS, config and LR schedule."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conrdata.errors import FormatError, UserError
from conrmodel.models.detector import udp_from_prediction
from conrmodel.models.lpips import LPIPS
from conrmodel.models.vgg import VGGFeatures, VGGLoss, load_vgg
from conrmodel.train.config import Config, config_from_dict, load_config
from conrmodel.train.loop import LRLambda, make_vgg_loss
from conrmodel.train.losses import (
    consistency_loss,
    mask_loss,
    photo_loss,
    predicted_udp,
    udp_loss,
    weighted_mean,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def _udp(n=2, s=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    occ = (torch.rand(n, 1, s, s, generator=g) > 0.5).float()
    return torch.cat([torch.rand(n, 3, s, s, generator=g) * occ, occ], 1)


def test_udp_loss_is_masked_l1():
    gt = _udp()
    pred = gt.clone()
    pred[:, 3] = 5.0
    assert torch.allclose(udp_loss(pred, gt), torch.zeros(2))
    # changes on the background do not count
    pred_bg = pred.clone()
    pred_bg[:, :3] += (1 - gt[:, 3:4]) * 0.7
    assert torch.allclose(udp_loss(pred_bg, gt), torch.zeros(2))
    # a constant offset of 0.1 on the body gives exactly 0.1
    pred_off = pred.clone()
    pred_off[:, :3] += 0.1 * gt[:, 3:4]
    assert torch.allclose(udp_loss(pred_off, gt), torch.full((2,), 0.1), atol=1e-6)


def test_mask_loss_matches_bce():
    gt = _udp()
    logits = torch.randn(2, 4, 8, 8)
    expect = (
        F.binary_cross_entropy_with_logits(logits[:, 3:4], gt[:, 3:4], reduction="none").flatten(1).mean(1)
    )
    assert torch.allclose(mask_loss(logits, gt), expect)


def test_consistency_is_std_over_passes():
    base = torch.randn(3, 1, 4, 8, 8)
    same = base.expand(3, 4, 4, 8, 8)
    assert torch.allclose(consistency_loss(same), torch.zeros(3), atol=1e-6)
    assert torch.allclose(consistency_loss(base), torch.zeros(3))  # k = 1
    two = torch.cat([torch.zeros(1, 1, 4, 2, 2), torch.ones(1, 1, 4, 2, 2)], 1)
    two[:, :, 3] = 0.0  # identical mask logits: only landmarks differ, std 0.5 on 3 of 4 channels
    assert torch.allclose(consistency_loss(two), torch.tensor([0.375]))


def test_photo_and_weighted_mean():
    a, b = torch.zeros(2, 4, 4, 4), torch.full((2, 4, 4, 4), 0.25)
    assert torch.allclose(photo_loss(a, b), torch.full((2,), 0.25))
    v = torch.tensor([1.0, 3.0], requires_grad=True)
    assert float(weighted_mean(v.detach(), torch.tensor([0.0, 1.0]))) == 3.0
    zero = weighted_mean(v, torch.zeros(2))
    zero.backward()
    assert float(zero.detach()) == 0.0 and torch.equal(v.grad, torch.zeros(2))


def test_predicted_udp_forward_matches_inference_and_has_gradient():
    out = torch.randn(2, 4, 8, 8, requires_grad=True)
    udp = predicted_udp(out)
    hard = udp_from_prediction(out.detach())[:, 3:4]
    expect = torch.cat([out.detach()[:, :3].clamp(0, 1) * hard, hard], 1)
    assert torch.allclose(udp, expect)
    assert set(udp[:, 3].unique().tolist()) <= {0.0, 1.0}
    udp.sum().backward()
    assert out.grad[:, 3].abs().sum() > 0  # the mask logit learns through the renderer


# ------------------------------------------------------------------ VGG


def _save_vgg(path, arch, extra=True, seed=0):
    torch.manual_seed(seed)
    sd = VGGFeatures(arch).state_dict()
    if extra:
        sd["classifier.0.weight"] = torch.zeros(2, 2)
    torch.save(sd, path)
    return sd


def test_vgg_state_dict_uses_torchvision_keys(tmp_path):
    keys = VGGFeatures("vgg19").state_dict().keys()
    convs = sorted({int(k.split(".")[1]) for k in keys})
    # torchvision vgg19().features conv indices
    assert convs == [0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34]
    assert VGGFeatures("vgg16").state_dict()["features.28.weight"].shape == (512, 512, 3, 3)
    sd = _save_vgg(tmp_path / "vgg19.pth", "vgg19")
    model = load_vgg(tmp_path / "vgg19.pth", "vgg19", last=17)
    assert torch.equal(model.features[14].weight, sd["features.14.weight"])
    assert not any(p.requires_grad for p in model.parameters())
    x = torch.rand(1, 3, 32, 32)
    feats = model(x, [3, 8, 17])
    assert [f.shape[1] for f in feats] == [64, 128, 256]


def test_vgg_bad_files(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_vgg(tmp_path / "missing.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a torch file")
    with pytest.raises(FormatError, match="cannot read"):
        load_vgg(tmp_path / "junk.pth")
    _save_vgg(tmp_path / "vgg16.pth", "vgg16")
    with pytest.raises(FormatError):  # a VGG-16 is not a VGG-19
        load_vgg(tmp_path / "vgg16.pth", "vgg19")


def test_vgg_loss(tmp_path):
    _save_vgg(tmp_path / "vgg19.pth", "vgg19")
    loss = VGGLoss(load_vgg(tmp_path / "vgg19.pth", "vgg19", last=8), taps=(3, 8))
    a = torch.rand(2, 4, 32, 32, requires_grad=True)
    b = torch.rand(2, 4, 32, 32)
    assert torch.allclose(loss(b, b), torch.zeros(2))
    val = loss(a, b)
    assert (val > 0).all()
    val.sum().backward()
    assert a.grad.abs().sum() > 0


def test_vgg_off_warns_once(tmp_path):
    cfg = Config()
    import conrmodel.train.loop as tr

    tr._VGG_WARNED = False
    with pytest.warns(UserWarning, match="L_vgg is off"):
        assert make_vgg_loss(cfg, torch.device("cpu")) is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert make_vgg_loss(cfg, torch.device("cpu")) is None
    _save_vgg(tmp_path / "v.pth", "vgg19")
    cfg.loss.vgg_weights = str(tmp_path / "v.pth")
    assert isinstance(make_vgg_loss(cfg, torch.device("cpu")), VGGLoss)


# ------------------------------------------------------------------ LPIPS


def _lpips_files(tmp_path, bad_shape=False):
    _save_vgg(tmp_path / "vgg16.pth", "vgg16")
    g = torch.Generator().manual_seed(1)
    lin = {
        f"lin{i}.model.1.weight": torch.rand(1, c, 1, 1, generator=g)
        for i, c in enumerate([64, 128, 256, 512, 512])
    }
    if bad_shape:
        lin["lin2.model.1.weight"] = torch.rand(1, 64, 1, 1)
    torch.save(lin, tmp_path / "lin.pth")
    return tmp_path / "vgg16.pth", tmp_path / "lin.pth"


def test_lpips_properties(tmp_path):
    lp = LPIPS(*_lpips_files(tmp_path))
    a, b = torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64)
    assert torch.allclose(lp(a, a), torch.zeros(2), atol=1e-7)
    d = lp(a, b)
    assert (d > 0).all()
    assert torch.allclose(d, lp(b, a), rtol=1e-5)
    near = (a + 0.01 * (b - a)).clamp(0, 1)
    assert (lp(a, near) < d).all()


def test_lpips_bad_linear_file(tmp_path):
    with pytest.raises(FormatError, match="lin2"):
        LPIPS(*_lpips_files(tmp_path, bad_shape=True))


# ------------------------------------------------------------------ config and schedule


def test_presets_and_overrides(tmp_path):
    paper = load_config("paper")
    assert paper.optim.steps == 224000 and paper.data.size == 256 and paper.data.batch_size * 4 == 24
    assert paper.optim.weight_decay == 1e-4 and paper.data.refs == 4 and paper.data.backgrounds == 4
    tiny = load_config("tiny", None, ["optim.lr=3e-4", "data.refs=2", "loss.vgg_weights=/x.pth"])
    assert tiny.optim.lr == 3e-4 and tiny.data.refs == 2 and tiny.loss.vgg_weights == "/x.pth"
    assert config_from_dict(tiny.to_dict()) == tiny
    with pytest.raises(UserError, match="unknown config key 'optim.lrr'"):
        load_config("tiny", None, ["optim.lrr=1"])
    with pytest.raises(UserError, match="multiple of 32"):
        load_config("tiny", None, ["data.size=50"])
    with pytest.raises(UserError, match="must be an integer"):
        load_config("tiny", None, ["data.refs=2.5"])
    (tmp_path / "c.yaml").write_text("data: {batch_size: 3}\ntrain: {seed: 7}\n")
    c = load_config("tiny", tmp_path / "c.yaml")
    assert c.data.batch_size == 3 and c.train.seed == 7
    with pytest.raises(UserError, match="unknown preset"):
        load_config("huge")


def test_lr_schedule():
    f = LRLambda("cosine", warmup=10, total=110, min_ratio=0.1)
    assert f(0) == pytest.approx(0.1) and f(9) == pytest.approx(1.0)
    assert f(10) == pytest.approx(1.0) and f(60) == pytest.approx(0.55) and f(110) == pytest.approx(0.1)
    assert np.all(np.diff([f(s) for s in range(10, 111)]) <= 1e-12)
    assert LRLambda("constant", 0, 10, 0.1)(7) == 1.0
    assert LRLambda("linear", 0, 10, 0.0)(5) == pytest.approx(0.5)
