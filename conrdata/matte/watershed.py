"""Watershed matting of a character drawn on a simple background (numpy arrays in, alpha out).

Pipeline (on a working-resolution copy of at most ``max_side`` pixels):

1. Background model from the border (:mod:`conrdata.matte.background`) and each
   pixel's distance ``d`` to it; ``d < threshold`` is *background-like*.
2. Outside = background-like regions connected to the image border (or to a
   hint's background scribble). Gaps in the line art up to ``2 * close_gaps``
   pixels wide are bridged, so a sketchy outline does not let the outside leak in.
3. Enclosed background-like regions are *holes*. ``holes="fill"`` keeps them as
   foreground; ``holes="cut"`` makes every one larger than ``min_hole`` of the
   image transparent; ``holes="auto"`` (default) cuts one only when it is
   *evidently* background: the region tracks a gradient background's
   variation, shows the paper's noise texture, or repeats a *distinctive* flat
   background colour (one far from white and black) to within the noise. A
   region that merely has a white or black background's colour (a white shirt
   on white paper, the whites of the eyes) is ambiguous and stays foreground;
   such regions are counted in the report and lower the confidence. A hint
   (black scribble inside) or ``--holes cut`` opens them.
4. Markers: sure background = outside eroded by the unknown band; sure
   foreground = the interior of the coarse mask (distance transform larger than
   the band) plus line-art ridges (pixels near the local maximum of ``d``, so
   thin lines and strands that have no interior survive); hint pixels override.
5. ``cv2.watershed`` decides the unknown band, flooding the distance-to-background
   image ``d`` (not the colours), so the edge falls where ``d`` jumps most and
   an outline joins the fill it borders rather than a similar-coloured
   background; a watershed-line pixel is foreground when its ``d`` is at least
   half that of its foreground neighbours (alpha >= 0.5 for a blend).
6. Clean-up: only the character's component(s) are kept (components of at least
   ``min_component`` of the largest one, or touched by a foreground hint);
   enclosed gaps are filled again unless they hold a background marker.
7. Upsampling to full resolution with joint-bilateral refinement in the
   boundary band; optional Gaussian feather of ``feather`` pixels.

Images, coordinates: H x W, row 0 at the top, RGB uint8. A hint is H x W uint8:
>= 192 sure foreground, <= 63 sure background, anything else no hint.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from conrdata.matte.background import BackgroundModel, fit_background, high_pass, smooth
from conrdata.matte.score import ScoreInputs, confidence

HOLE_MODES = ("auto", "fill", "cut")
DISTINCT_FROM_WHITE = 60.0  # RGB distance from white and black beyond which a flat colour is distinctive
PAPER_HF = 2.5  # border texture (mean |pixel - blurred|, 0-255) above which the background counts as paper
_CROSS = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))
_SQUARE = np.ones((3, 3), np.uint8)


@dataclass
class MatteOptions:
    """Tuning of :func:`matte_array`.

    ``bg_colors``: user background colours (RGB 0-255), replacing the border estimate.
    ``max_side``: working resolution (longest side, pixels). ``holes``: see module doc.
    ``min_hole``: smallest hole that may be cut, as a fraction of the working image area.
    ``close_gaps``: line-art gaps up to twice this many working pixels are bridged.
    ``min_component``: components smaller than this fraction of the largest are dropped.
    ``feather``: Gaussian sigma (full-resolution pixels) of the alpha edge; 0 = hard edge.
    """

    bg_colors: tuple[tuple[int, int, int], ...] | None = None
    max_side: int = 1024
    holes: str = "auto"
    min_hole: float = 0.0005
    close_gaps: int = 1
    min_component: float = 0.01
    feather: float = 0.0

    def __post_init__(self):
        if self.holes not in HOLE_MODES:
            raise ValueError(f"holes must be one of {HOLE_MODES}, got {self.holes!r}")
        if self.max_side < 16:
            raise ValueError("max_side must be at least 16 pixels")


@dataclass
class MatteResult:
    """``alpha``: H x W uint8 at the input's resolution. ``mask``: working-resolution bool mask.
    ``confidence`` in [0, 1]; ``info``: the score's terms and what the algorithm saw."""

    alpha: np.ndarray
    mask: np.ndarray
    confidence: float
    info: dict = field(default_factory=dict)


def working_copy(rgb: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """Downscaled copy (area interpolation) whose longest side is at most ``max_side``, and the scale."""
    h, w = rgb.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    if scale >= 1.0:
        return rgb, 1.0
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA), scale


def matte_array(
    rgb: np.ndarray, hint: np.ndarray | None = None, options: MatteOptions | None = None
) -> MatteResult:
    """Alpha matte of an (H, W, 3) uint8 RGB drawing; ``hint`` (H, W) uint8 as in the module doc."""
    opts = options or MatteOptions()
    rgb = np.ascontiguousarray(rgb[..., :3], dtype=np.uint8)
    h, w = rgb.shape[:2]
    if h < 8 or w < 8:
        raise ValueError(f"image of {w}x{h} pixels is too small to matte")
    work, scale = working_copy(rgb, opts.max_side)
    hint_w = None
    if hint is not None:
        if hint.shape[:2] != (h, w):
            raise ValueError(f"hint is {hint.shape[1]}x{hint.shape[0]}, image is {w}x{h}")
        hint_w = (
            hint if scale == 1.0 else cv2.resize(hint, work.shape[1::-1], interpolation=cv2.INTER_NEAREST)
        )
    model = fit_background(work, opts.bg_colors)
    seg = segment(work, model, hint_w, opts)
    mask = seg.pop("mask")
    if scale == 1.0:
        alpha = mask.astype(np.uint8) * 255
    else:
        alpha = upsample_mask(mask, work, rgb, model)
    if hint is not None:
        alpha[hint >= 192] = 255
        alpha[hint <= 63] = 0
    if opts.feather > 0:
        alpha = feather_alpha(alpha, opts.feather)
    terms = confidence(seg.pop("score_inputs"))
    info = {
        "scale": scale,
        "bg_kind": model.kind,
        "bg_threshold": model.threshold,
        "bg_noise": model.noise,
        "bg_explained": model.explained,
        **seg,
        **terms,
    }
    return MatteResult(alpha, mask, terms["confidence"], info)


def _geodesic_grow(seed: np.ndarray, within: np.ndarray, steps: int) -> np.ndarray:
    grown = seed.astype(np.uint8)
    allowed = within.astype(np.uint8)
    for _ in range(steps):
        grown = cv2.dilate(grown, _CROSS) & allowed
    return grown.astype(bool)


def _border_labels(labels: np.ndarray) -> np.ndarray:
    edge = np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])
    return np.unique(edge)


def _outside(bglike: np.ndarray, gap: int, extra_seeds: np.ndarray | None) -> np.ndarray:
    """Background-like pixels connected to the border (or to extra seeds), not leaking through gaps."""
    if gap > 0:
        barrier = cv2.dilate((~bglike).astype(np.uint8), _SQUARE, iterations=gap).astype(bool)
        seedable = bglike & ~barrier
    else:
        seedable = bglike
    n, labels = cv2.connectedComponents(seedable.astype(np.uint8), connectivity=4)
    keep = set(_border_labels(labels).tolist())
    if extra_seeds is not None and extra_seeds.any():
        keep |= set(np.unique(labels[extra_seeds & seedable]).tolist())
    keep.discard(0)
    lut = np.zeros(n, bool)
    lut[list(keep)] = True
    out = lut[labels]
    return _geodesic_grow(out, bglike, gap + 1) if gap > 0 else out


def _evident_hole(
    region: np.ndarray, work: np.ndarray, model: BackgroundModel, hf: np.ndarray | None
) -> bool:
    """True when an enclosed background-coloured region is evidently background, not flat paint."""
    ys, xs = np.nonzero(region)
    colors = work[ys, xs].astype(np.float32)
    pred = model.predict(ys, xs, work.shape[:2])
    k = int(np.argmin(np.sqrt(((pred - colors[None]) ** 2).sum(-1)).mean(1)))
    pk = pred[k]
    to_model = np.sqrt(((colors - pk) ** 2).sum(-1))
    to_mean = np.sqrt(((colors - colors.mean(0)) ** 2).sum(-1))
    # Gradient: the region's colours follow the predicted variation, which a flat fill cannot do.
    pred_range = float((pk.max(0) - pk.min(0)).max())
    if pred_range >= max(6.0, 4.0 * model.noise) and to_model.mean() < 0.5 * to_mean.mean():
        return True
    # A distinctive flat colour (not near white or black, the usual colours of paint highlights, eyes
    # and shirts) repeated to within the noise is the background showing through.
    # On noisy paper a tolerance wide enough for the noise also admits paint: the texture rule decides there.
    if pred_range < 6.0 and model.blur == 0:
        bg = pk.mean(0)
        if min(np.linalg.norm(bg - 255.0), np.linalg.norm(bg)) > DISTINCT_FROM_WHITE:
            match = float(np.linalg.norm(np.median(colors, 0) - bg))
            if match <= max(4.0, 2.0 * model.noise) and float(np.median(to_model)) <= max(
                5.0, 3.0 * model.noise
            ):
                return True
    # Paper: the region's interior (away from ringing at its outline) carries the border's noise texture;
    # paint, even after JPEG, is much smoother.
    # Too small a core cannot tell texture from ringing: such holes stay filled.
    border_hf = model.extras.get("border_hf", 0.0)
    if border_hf >= PAPER_HF and hf is not None:
        core = cv2.erode(region.astype(np.uint8), _SQUARE, iterations=2).astype(bool)
        if core.sum() >= 50:
            return bool(0.6 * border_hf <= np.median(hf[core]) <= 1.6 * border_hf)
    return False


def segment(work: np.ndarray, model: BackgroundModel, hint: np.ndarray | None, opts: MatteOptions) -> dict:
    """The watershed segmentation at working resolution; returns a dict with ``mask`` and diagnostics."""
    h, w = work.shape[:2]
    sm = smooth(work, model.blur)
    d = model.distance_map(sm)
    t = model.threshold
    hint_fg = hint >= 192 if hint is not None else np.zeros((h, w), bool)
    hint_bg = hint <= 63 if hint is not None else np.zeros((h, w), bool)

    bglike = (d < t) & ~hint_fg | hint_bg
    outside = _outside(bglike, opts.close_gaps, hint_bg)

    # Holes: enclosed background-like regions.
    enclosed = (bglike & ~outside).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(enclosed, connectivity=4)
    min_px = max(16, opts.min_hole * h * w)
    cut = np.zeros((h, w), bool)
    hf = high_pass(work) if opts.holes == "auto" and model.extras.get("border_hf", 0.0) >= PAPER_HF else None
    holes_cut = holes_ambiguous = ambiguous_area = 0
    for j in np.nonzero(stats[1:, cv2.CC_STAT_AREA] >= min_px)[0] + 1:
        region = labels == j
        if opts.holes == "cut" or (opts.holes == "auto" and _evident_hole(region, work, model, hf)):
            cut |= region
            holes_cut += 1
        else:
            holes_ambiguous += 1
            ambiguous_area += int(stats[j, cv2.CC_STAT_AREA])
    outside |= cut
    coarse = ~outside

    # Markers.
    band = 2 + math.ceil(2 * model.blur)
    sure_bg = cv2.erode(outside.astype(np.uint8), _SQUARE, iterations=band, borderType=cv2.BORDER_REPLICATE)
    sure_bg = sure_bg.astype(bool) | cv2.erode(cut.astype(np.uint8), _SQUARE).astype(bool) | hint_bg
    dist = cv2.distanceTransform(coarse.astype(np.uint8), cv2.DIST_L2, 3)
    local_max = cv2.dilate(d, np.ones((5, 5), np.uint8))
    # Ridges of strong contrast (line art, thin strands); weak ones are compression ringing or noise.
    strong = max(2 * t, 0.25 * float(np.percentile(d[coarse], 90))) if coarse.any() else 2 * t
    ridge = coarse & (d >= strong) & (d >= 0.75 * local_max)
    sure_fg = ((dist > band) | ridge | hint_fg) & ~hint_bg
    sure_bg &= ~sure_fg
    markers = np.zeros((h, w), np.int32)
    markers[sure_bg] = 1
    markers[sure_fg] = 2
    # Flood the distance-to-background image rather than the colours: an outline between a fill and a
    # background of similar colour then joins the side it differs least from in *distance*, the fill.
    dq = np.clip(d, 0, 255).astype(np.uint8)
    cv2.watershed(cv2.merge([dq, dq, dq]), markers)

    raw_d = model.distance_map(work) if model.blur > 0 else d
    raw_max = cv2.dilate(raw_d, np.ones((5, 5), np.uint8))
    half_rule = (raw_d >= t) & (raw_d >= 0.5 * raw_max)
    mask = markers == 2
    boundary = markers == -1
    # A watershed line pixel joins the foreground when it is at least half as far from the background
    # as its foreground neighbours (alpha >= 0.5 for a blend of the two).
    fg_d = cv2.dilate(np.where(mask, raw_d, 0).astype(np.float32), _SQUARE)
    mask[boundary] = ((raw_d >= t) & (raw_d >= 0.5 * fg_d))[boundary]
    mask = _keep_character(mask, hint_fg, opts.min_component)
    mask = _fill_enclosed(mask, sure_bg)

    unknown = ~(sure_bg | sure_fg)
    inputs = ScoreInputs(
        mask=mask,
        distance=raw_d,
        threshold=t,
        bg_explained=model.explained,
        agreement=float((mask[unknown] == (half_rule[unknown] & coarse[unknown])).mean())
        if unknown.any()
        else 1.0,
        ambiguous_holes=holes_ambiguous,
        ambiguous_area=ambiguous_area,
        outside_found=bool(outside.any()),
    )
    return {"mask": mask, "holes_cut": holes_cut, "holes_ambiguous": holes_ambiguous, "score_inputs": inputs}


def _keep_character(mask: np.ndarray, hint_fg: np.ndarray, min_component: float) -> np.ndarray:
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if n <= 2:
        return mask
    areas = stats[1:, cv2.CC_STAT_AREA]
    keep = np.zeros(n, bool)
    keep[1:] = areas >= max(4, min_component * areas.max())
    if hint_fg.any():
        keep[np.unique(labels[hint_fg & mask])] = True
    keep[0] = False
    return keep[labels]


def _fill_enclosed(mask: np.ndarray, bg_markers: np.ndarray) -> np.ndarray:
    """Fill background pockets that neither touch the border nor hold a background marker."""
    n, labels = cv2.connectedComponents((~mask).astype(np.uint8), connectivity=4)
    keep_bg = np.zeros(n, bool)
    keep_bg[_border_labels(labels)] = True
    keep_bg[np.unique(labels[bg_markers & ~mask])] = True
    keep_bg[0] = False  # label 0 is the mask itself
    return ~keep_bg[labels]


def upsample_mask(mask: np.ndarray, work: np.ndarray, full: np.ndarray, model: BackgroundModel) -> np.ndarray:
    """Full-resolution alpha (H, W) uint8 from a working-resolution mask, edge-aware in the boundary band.

    Away from the boundary the bilinearly upsampled mask is certain. In the band,
    each full-resolution pixel takes a joint-bilateral vote of the 4x4 nearest
    working pixels, weighted by distance and by colour similarity to the
    full-resolution pixel, so the edge follows the full-resolution colours.
    """
    hf, wf = full.shape[:2]
    hw, ww = mask.shape
    up = cv2.resize(mask.astype(np.float32), (wf, hf), interpolation=cv2.INTER_LINEAR)
    alpha = (up >= 0.5).astype(np.uint8) * 255
    ys, xs = np.nonzero((up > 0.001) & (up < 0.999))
    if len(ys) == 0:
        return alpha
    sy, sx = hw / hf, ww / wf
    cy = (ys + 0.5) * sy - 0.5  # working-resolution coordinates of the pixel centres
    cx = (xs + 0.5) * sx - 0.5
    sigma_r = max(20.0, 2.0 * model.threshold)
    acc = np.zeros(len(ys), np.float64)
    wsum = np.zeros(len(ys), np.float64)
    colors = full[ys, xs].astype(np.float32)
    work_f = work.astype(np.float32)
    m = mask.astype(np.float32)
    for oy in (-1, 0, 1, 2):
        qy = np.clip(np.floor(cy).astype(np.int64) + oy, 0, hw - 1)
        for ox in (-1, 0, 1, 2):
            qx = np.clip(np.floor(cx).astype(np.int64) + ox, 0, ww - 1)
            ds = (qy - cy) ** 2 + (qx - cx) ** 2
            dc = ((work_f[qy, qx] - colors) ** 2).sum(-1)
            wt = np.exp(-ds / 2.0 - dc / (2.0 * sigma_r**2)) + 1e-12
            acc += wt * m[qy, qx]
            wsum += wt
    alpha[ys, xs] = np.where(acc / wsum >= 0.5, 255, 0).astype(np.uint8)
    return alpha


def feather_alpha(alpha: np.ndarray, sigma: float) -> np.ndarray:
    """A thin feather: the hard alpha blurred with a Gaussian of ``sigma`` pixels (0.5 stays at the edge)."""
    return cv2.GaussianBlur(alpha, (0, 0), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REPLICATE)


__all__ = [
    "MatteOptions",
    "MatteResult",
    "matte_array",
    "segment",
    "upsample_mask",
    "working_copy",
    "fit_background",
]
