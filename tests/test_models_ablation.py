"""Grouped warping, confidence averaging and the ablation switches of the collaborative shader."""

from __future__ import annotations

import pytest
import torch

from conrmodel.models.factory import build_renderer
from conrmodel.models.renderer import backward_warp, grouped_warp, rescale_flow


def test_backward_warp_moves_by_whole_pixels():
    x = torch.arange(2 * 6 * 7, dtype=torch.float32).reshape(1, 2, 6, 7)
    flow = torch.zeros(1, 2, 6, 7)
    assert torch.allclose(backward_warp(x, flow), x, atol=1e-5)
    flow[:, 0] = 2.0  # sample two pixels to the right
    flow[:, 1] = -1.0  # and one up
    out = backward_warp(x, flow)
    assert torch.allclose(out[:, :, 1:, :-2], x[:, :, :-1, 2:], atol=1e-4)


def test_grouped_warp_uses_one_flow_per_group():
    x = torch.rand(2, 6, 8, 8)
    flow = torch.zeros(2, 6, 8, 8)  # three groups of two channels
    flow[:, 2] = 1.0  # group 1 shifts by one pixel in x; groups 0 and 2 stay
    out = grouped_warp(x, flow)
    assert torch.allclose(out[:, 0:2], x[:, 0:2], atol=1e-5)
    assert torch.allclose(out[:, 4:6], x[:, 4:6], atol=1e-5)
    assert torch.allclose(out[:, 2:4, :, :-1], x[:, 2:4, :, 1:], atol=1e-5)
    with pytest.raises(ValueError):
        grouped_warp(torch.rand(1, 5, 4, 4), torch.zeros(1, 4, 4, 4))


def test_rescale_flow_scales_vectors_with_the_map():
    flow = torch.ones(1, 4, 4, 4)
    flow[:, 1::2] = -0.5
    up = rescale_flow(flow, (8, 16))
    assert up.shape == (1, 4, 8, 16)
    assert torch.allclose(up[:, 0::2], torch.full_like(up[:, 0::2], 4.0))
    assert torch.allclose(up[:, 1::2], torch.full_like(up[:, 1::2], -1.0))


def _pair(**overrides):
    """The tiny renderer with and without ``overrides``, sharing the same weights."""
    torch.manual_seed(7)
    base = build_renderer("tiny").eval()
    other = build_renderer("tiny", **overrides).eval()
    other.load_state_dict(base.state_dict())
    return base, other


def _data(n=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    occ = (torch.rand(1, 1, 64, 64, generator=g) > 0.3).float()
    target = torch.cat([torch.rand(1, 3, 64, 64, generator=g) * occ, occ], 1)
    return target, torch.rand(1, n, 4, 64, 64, generator=g), torch.rand(1, n, 4, 64, 64, generator=g)


@pytest.mark.parametrize("overrides", [{"warping": False}, {"averaging": "mean"}, {"message_passes": 0},
                                       {"message_passes": 2}])
def test_each_switch_changes_the_output(overrides):
    base, other = _pair(**overrides)
    target, ref_rgba, ref_udp = _data()
    with torch.no_grad():
        t_feats = base.encode_target(target)
        sheet = base.encode_sheet(ref_rgba, ref_udp)
        a = base.shader(t_feats, sheet.x_ref, sheet.feats)
        b = other.shader(t_feats, sheet.x_ref, sheet.feats)
        again = base.shader(t_feats, sheet.x_ref, sheet.feats)
    assert torch.equal(a, again)  # deterministic, so any difference below is the switch's
    # random weights damp what early blocks contribute, hence a small (but far above rounding) threshold
    assert (a - b).abs().max() > 1e-7 * max(1.0, float(a.abs().max()))


def test_warping_off_ignores_predicted_message_flows():
    """With warping off, a flow that only feeds grid sampling changes nothing."""
    torch.manual_seed(3)
    ren = build_renderer("tiny", warping=False).eval()
    target, ref_rgba, ref_udp = _data()
    with torch.no_grad():
        before = ren(target, ref_rgba, ref_udp)
        last = ren.shader.decoder_blocks[-1].conv_last[-1]
        start = sum(ren.shader.decoder_blocks[-1].split[:2])  # first message-flow output channel
        width = ren.shader.decoder_blocks[-1].split[2]
        last.bias[start : start + width] += 5.0  # last block's message flows feed only the warp
        after = ren(target, ref_rgba, ref_udp)
    assert torch.allclose(before, after, atol=1e-6)
    ren.shader.warping = True
    with torch.no_grad():
        warped = ren(target, ref_rgba, ref_udp)
    assert (warped - after).abs().max() > 1e-5


def test_confidence_weights_are_softmax_over_views_times_mask():
    ren = build_renderer("tiny")
    mask = torch.rand(2 * 3, 4, 5, 5)
    w = ren.shader._weights(mask, 2, 3)
    m = mask.reshape(2, 3, 4, 5, 5)
    assert torch.allclose(w, m * torch.softmax(m, dim=1))
    assert bool((w.sum(1) <= 1.0 + 1e-6).all())
    ren_mean = build_renderer("tiny", averaging="mean")
    assert torch.allclose(ren_mean.shader._weights(mask, 2, 3), torch.full_like(w, 1 / 3))


def test_no_message_passing_means_views_never_meet_before_the_end():
    """With 0 passes and plain averaging the output feature is the mean of single-view runs."""
    torch.manual_seed(11)
    ren = build_renderer("tiny", message_passes=0, averaging="mean").eval()
    target, ref_rgba, ref_udp = _data(n=2, seed=4)
    with torch.no_grad():
        t_feats = ren.encode_target(target)
        both = ren.encode_sheet(ref_rgba, ref_udp)
        a = ren.encode_sheet(ref_rgba[:, :1], ref_udp[:, :1])
        b = ren.encode_sheet(ref_rgba[:, 1:], ref_udp[:, 1:])
        joint = ren.shader(t_feats, both.x_ref, both.feats)
        separate = 0.5 * (ren.shader(t_feats, a.x_ref, a.feats) + ren.shader(t_feats, b.x_ref, b.feats))
    assert torch.allclose(joint, separate, atol=1e-5)
    ren.shader.message_passes = 5  # full exchange: the views now influence each other
    with torch.no_grad():
        joint = ren.shader(t_feats, both.x_ref, both.feats)
        separate = 0.5 * (ren.shader(t_feats, a.x_ref, a.feats) + ren.shader(t_feats, b.x_ref, b.feats))
    assert (joint - separate).abs().max() > 1e-5


def test_message_passes_out_of_range():
    with pytest.raises(ValueError, match="message_passes"):
        build_renderer("tiny", message_passes=6)
