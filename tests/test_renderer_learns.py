"""The tiny collaborative renderer, trained alone on one fixed batch, learns to draw the character.

Regression test for the alpha collapse: without normalisation in the collaborative decoder blocks,
the features entering the RGBA decoder blew up within ~20 Adam steps, the alpha sigmoid saturated at 0
and the renderer settled on the all-transparent prediction, whose gradient is zero. Here the exact
reference UDPs are given, so the only thing learnt is the renderer.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conrdata.testing.toydata import render_toy, toy_pose
from conrmodel.baselines import mean_colour_silhouette
from conrmodel.metrics import chroma_l1, fg_l1
from conrmodel.models.factory import build_renderer
from conrmodel.models.renderer import premultiply, udp_nearest_colours

pytestmark = pytest.mark.usefixtures("one_thread")

SIZE = 64
REFS = 3
STEPS = 120


def _batch(characters=(0, 1), seed=0):
    """Per character: REFS reference views and one target view, all in different poses, exact UDPs."""
    rng = np.random.default_rng(seed)
    ref_rgba, ref_udp, tgt_rgba, tgt_udp = [], [], [], []
    for c in characters:
        views = [render_toy(c, toy_pose(rng), SIZE) for _ in range(REFS + 1)]
        ref_rgba.append(np.stack([v[0] for v in views[:REFS]]))
        ref_udp.append(np.stack([v[1] for v in views[:REFS]]))
        tgt_rgba.append(views[REFS][0])
        tgt_udp.append(views[REFS][1])

    def t(x, channels_at):
        return torch.from_numpy(np.stack(x)).float().movedim(-1, channels_at)

    return (
        t(tgt_udp, 1),
        t(ref_rgba, 2) / 255.0,
        t(ref_udp, 2),
        premultiply(t(tgt_rgba, 1) / 255.0),
    )


def _iou(pred_alpha: torch.Tensor, gt_alpha: torch.Tensor) -> float:
    p, g = pred_alpha > 0.5, gt_alpha > 0.5
    return float((p & g).sum()) / max(float((p | g).sum()), 1.0)


def test_tiny_renderer_overfits_one_batch():
    torch.manual_seed(0)
    ren = build_renderer("tiny").train()
    target_udp, ref_rgba, ref_udp, gt = _batch()
    features: list[torch.Tensor] = []
    ren.rgbadecodernet.register_forward_hook(lambda m, args, out: features.append(args[0].detach()))
    opt = torch.optim.Adam(ren.parameters(), lr=1e-3)
    losses = []
    for _ in range(STEPS):
        loss = (ren(target_udp, ref_rgba, ref_udp) - gt).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss))
    ren.eval()
    with torch.no_grad():
        pred = ren(target_udp, ref_rgba, ref_udp)
    final = float((pred - gt).abs().mean())
    transparent = float(gt.abs().mean())  # L1 of the all-transparent prediction
    iou = _iou(pred[:, 3], gt[:, 3])
    assert final < 0.5 * transparent, (final, transparent, losses[::10])
    assert final < 0.2 * losses[0], (final, losses[0])
    assert iou > 0.8, iou
    # the decoder's input stays in a range where the RGBA sigmoids still pass gradients
    assert float(features[-1].abs().max()) < 100.0


def test_udp_nearest_colours_finds_the_reference_pixel():
    """A reference that is the target shifted by 5 pixels: every target pixel gets its own colour back."""
    g = torch.Generator().manual_seed(0)
    udp = torch.zeros(1, 4, 16, 16)
    udp[0, :3, 2:12, 3:11] = torch.rand(3, 10, 8, generator=g)
    udp[0, 3, 2:12, 3:11] = 1.0
    colour = torch.rand(1, 4, 16, 16, generator=g) * udp[:, 3:4]
    ref_udp = torch.roll(udp, shifts=5, dims=-1)[:, None]
    ref_colour = torch.roll(colour, shifts=5, dims=-1)[:, None]
    out = udp_nearest_colours(udp, ref_colour, ref_udp, chunk=7)  # chunks that do not divide the count
    assert out.shape == (1, 1, 5, 16, 16)
    body = udp[0, 3] > 0.5
    torch.testing.assert_close(out[0, 0, :4][:, body], colour[0][:, body])
    torch.testing.assert_close(out[0, 0, 4][body], torch.ones(int(body.sum())))
    assert out[0, 0][:, ~body].abs().max() == 0  # nothing off the target's body
    # a view without body contributes nothing
    empty = udp_nearest_colours(udp, ref_colour, torch.zeros_like(ref_udp))
    assert empty.abs().max() == 0


def test_udp_matching_brings_the_sheets_colours_to_the_target():
    """On toy characters, the matched colours alone beat the mean-colour silhouette on colour."""
    target_udp, ref_rgba, ref_udp, gt = _batch(characters=(0, 1, 2), seed=3)
    premul = torch.cat([ref_rgba[:, :, :3] * ref_rgba[:, :, 3:4], ref_rgba[:, :, 3:4]], 2)
    matched = udp_nearest_colours(target_udp, premul, ref_udp)
    best = matched[:, :, 4:5].argmax(dim=1, keepdim=True)  # the closest view per pixel
    rgb = torch.gather(matched[:, :, :3], 1, best.expand(-1, -1, 3, -1, -1))[:, 0]
    pred = torch.cat([rgb, gt[:, 3:4]], 1)
    silhouette = mean_colour_silhouette(ref_rgba, gt[:, 3:4])
    assert float(fg_l1(pred, gt).mean()) < 0.6 * float(fg_l1(silhouette, gt).mean())
    assert float(chroma_l1(pred, gt).mean()) < 0.6 * float(chroma_l1(silhouette, gt).mean())



def test_udp_match_renderer_is_order_free_and_optional():
    torch.manual_seed(0)
    ren = build_renderer("tiny", udp_match=True).eval()
    target_udp, ref_rgba, ref_udp, _ = _batch()
    with torch.no_grad():
        a = ren(target_udp, ref_rgba, ref_udp)
        b = ren(target_udp, ref_rgba.flip(1), ref_udp.flip(1))
    assert a.shape == (2, 4, SIZE, SIZE)
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
    # off by default: the plain preset keeps its parameter layout
    plain = {k: v.shape for k, v in build_renderer("tiny").state_dict().items()}
    matched = {k: v.shape for k, v in ren.state_dict().items()}
    assert set(plain) == set(matched) and plain != matched
    with pytest.raises(ValueError, match="reference_udp"):
        build_renderer("tiny", udp_match=True, reference_udp=False)


def test_teacher_forcing_feeds_the_ground_truth_udp():
    from conrmodel.train.config import load_config
    from conrmodel.train.loop import build_system

    torch.manual_seed(0)
    system = build_system(load_config("tiny", None, ["model.udp_match=true"])).eval()
    target_udp, ref_rgba, ref_udp, _ = _batch()
    det_rgb = (ref_rgba[:, :, None, :3] * ref_rgba[:, :, None, 3:4]).expand(-1, -1, 2, -1, -1, -1)
    with torch.no_grad():
        _, forced = system(det_rgb, ref_rgba, target_udp, ref_udp)
        _, free = system(det_rgb, ref_rgba, target_udp)
        direct = system.renderer(target_udp, ref_rgba, ref_udp)
    torch.testing.assert_close(forced, direct)
    assert (forced - free).abs().max() > 1e-4  # the untrained detector's UDP is not the truth
