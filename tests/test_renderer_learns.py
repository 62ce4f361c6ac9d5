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

from conrmodel.models import build_renderer
from conrmodel.renderer import premultiply
from conrmodel.toydata import render_toy, toy_pose

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
