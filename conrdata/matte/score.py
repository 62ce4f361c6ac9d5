"""Confidence of a matte: how likely it is right without a person looking at it.

The score is a product of terms in [0, 1], each of which falls when one known
failure mode shows up:

- ``s_background``: the border is explained by a simple background model
  (a photo or a busy scene is not);
- ``s_border``: the foreground touches the image border (cut-off character,
  or a background that was not recognised);
- ``s_area``: the foreground covers a sane share of the image;
- ``s_contrast``: the final boundary runs along pixels that clearly differ from
  the background (not through a region of background colour);
- ``s_agreement``: in the unknown band, watershed and a plain half-contrast
  threshold agree;
- ``s_holes``: large enclosed regions of background colour were kept as
  foreground (ambiguous: a white shirt or a gap between arm and body).

The weakest term names the reason an image is listed for review.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass
class ScoreInputs:
    """``mask`` (H, W) bool working-resolution result; ``distance`` (H, W) float32 distance to the
    background (RGB units); ``threshold`` the background-like threshold; ``bg_explained`` fraction of
    the border the model explains; ``agreement`` fraction of unknown-band pixels where watershed and the
    threshold rule agree; ``ambiguous_holes`` count (and ``ambiguous_area`` pixels) of large enclosed
    background-coloured regions kept as foreground."""

    mask: np.ndarray
    distance: np.ndarray
    threshold: float
    bg_explained: float
    agreement: float
    ambiguous_holes: int
    ambiguous_area: int = 0
    outside_found: bool = True


REASONS = {
    "s_background": "background not explained by a flat, gradient or two-tone model",
    "s_border": "foreground touches the image border",
    "s_area": "foreground area implausible",
    "s_contrast": "boundary runs through background-coloured pixels",
    "s_agreement": "watershed and colour threshold disagree at the edge",
    "s_holes": "large background-coloured regions kept as foreground",
}


def _ramp(x: float, lo: float, hi: float) -> float:
    """0 at lo, 1 at hi, linear in between (lo may be above hi for a falling ramp)."""
    if hi == lo:
        return float(x >= hi)
    return float(np.clip((x - lo) / (hi - lo), 0.0, 1.0))


def confidence(inp: ScoreInputs) -> dict:
    """Score terms, the product ``confidence`` and the ``review_reason`` of the weakest term."""
    mask = inp.mask
    h, w = mask.shape
    area = float(mask.mean())
    edge = np.concatenate([mask[0], mask[-1], mask[:, 0], mask[:, -1]])
    border_fg = float(edge.mean())
    inner = cv2.erode(mask.astype(np.uint8), np.ones((3, 3), np.uint8), borderType=cv2.BORDER_REPLICATE)
    edge_px = mask & ~inner.astype(bool)
    # Ignore the stretch of boundary that lies on the image frame itself.
    edge_px[[0, -1], :] = False
    edge_px[:, [0, -1]] = False
    if edge_px.any():
        contrast = float((inp.distance[edge_px] >= 2.0 * inp.threshold).mean())
    else:
        contrast = 0.0
    terms = {
        "s_background": _ramp(inp.bg_explained, 0.5, 0.85) if inp.outside_found else 0.0,
        "s_border": 1.0 - 0.6 * _ramp(border_fg, 0.0, 0.3),
        "s_area": min(_ramp(area, 0.003, 0.02), _ramp(area, 0.95, 0.8)),
        "s_contrast": _ramp(contrast, 0.5, 0.9),
        "s_agreement": _ramp(inp.agreement, 0.6, 0.9),
        "s_holes": 1.0 - 0.4 * _ramp(inp.ambiguous_area / max(1, mask.sum()), 0.02, 0.15),
    }
    conf = float(np.prod(list(terms.values())))
    weakest = min(terms, key=terms.get)
    return {
        **{k: round(v, 4) for k, v in terms.items()},
        "fg_fraction": round(area, 5),
        "border_fg": round(border_fg, 5),
        "edge_contrast": round(contrast, 4),
        "confidence": round(conf, 4),
        "review_reason": REASONS[weakest] if terms[weakest] < 1.0 else "",
    }
