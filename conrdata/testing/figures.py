"""Synthetic test material for matting: anime-like figures with known alpha, and backgrounds.

``draw_figure`` draws a flat-coloured figure with black line art (ellipses and
polygons, a ring-shaped hole between arm and body, thin hair strands) at 4x
and area-downsamples it, so the alpha is anti-aliased like a real drawing.
``make_background`` makes the four background kinds the benchmark measures:
"flat", "gradient", "paper" (noisy paper) and "twotone". All seeded.
"""

from __future__ import annotations

import cv2
import numpy as np

BACKGROUND_KINDS = ("flat", "gradient", "paper", "twotone")
_SS = 4  # supersampling factor


def _color(rng) -> tuple[int, int, int, int]:
    return tuple(int(c) for c in rng.integers(40, 235, 3)) + (255,)


def draw_figure(size: int = 128, seed: int = 0, hole: bool = True) -> np.ndarray:
    """An RGBA (size, size, 4) uint8 figure: head, hair, body, arms, legs, black outlines, anti-aliased."""
    rng = np.random.default_rng(seed)
    s = size * _SS
    img = np.zeros((s, s, 4), np.uint8)
    line = (20, 18, 25, 255)
    lw = max(2, int(round(s * 0.012)))
    cx = s // 2 + int(rng.integers(-s // 16, s // 16 + 1))
    skin = (250, 222, 205, 255)
    cloth, cloth2, hair = _color(rng), _color(rng), _color(rng)

    def poly(points, color):
        pts = np.round(np.asarray(points, np.float64)).astype(np.int32).reshape(-1, 1, 2)
        cv2.fillPoly(img, [pts], color, lineType=cv2.LINE_8)
        cv2.polylines(img, [pts], True, line, lw, lineType=cv2.LINE_8)

    def ellipse(center, axes, angle, color):
        c = tuple(int(round(v)) for v in center)
        a = tuple(int(round(v)) for v in axes)
        cv2.ellipse(img, c, a, angle, 0, 360, color, -1, lineType=cv2.LINE_8)
        cv2.ellipse(img, c, a, angle, 0, 360, line, lw, lineType=cv2.LINE_8)

    top = s * 0.12
    head_r = s * rng.uniform(0.09, 0.12)
    neck_y = top + 2 * head_r
    hip_y = s * rng.uniform(0.55, 0.62)
    foot_y = s * rng.uniform(0.86, 0.93)
    sh = s * rng.uniform(0.1, 0.14)  # half shoulder width
    # Legs.
    for side in (-1, 1):
        x0 = cx + side * sh * 0.45
        poly(
            [
                (x0 - s * 0.04, hip_y),
                (x0 + s * 0.04, hip_y),
                (x0 + side * s * 0.03 + s * 0.035, foot_y),
                (x0 + side * s * 0.03 - s * 0.035, foot_y),
            ],
            cloth2,
        )
    # Arms: the left one bends back to the hip, leaving a closed gap (a real hole).
    elbow_l = (cx - sh - s * 0.09, (neck_y + hip_y) / 2)
    if hole:
        poly(
            [
                (cx - sh, neck_y + s * 0.02),
                (cx - sh + s * 0.03, neck_y + s * 0.05),
                (elbow_l[0] + s * 0.04, elbow_l[1]),
                (elbow_l[0], elbow_l[1]),
            ],
            skin,
        )
        poly(
            [
                (elbow_l[0], elbow_l[1]),
                (elbow_l[0] + s * 0.04, elbow_l[1]),
                (cx - sh * 0.6, hip_y - s * 0.02),
                (cx - sh * 0.6 - s * 0.02, hip_y + s * 0.02),
            ],
            skin,
        )
    else:
        poly(
            [
                (cx - sh, neck_y + s * 0.02),
                (cx - sh + s * 0.03, neck_y + s * 0.05),
                (cx - sh - s * 0.12, hip_y),
                (cx - sh - s * 0.16, hip_y - s * 0.02),
            ],
            skin,
        )
    poly(
        [
            (cx + sh, neck_y + s * 0.02),
            (cx + sh - s * 0.03, neck_y + s * 0.05),
            (cx + sh + s * 0.12, hip_y),
            (cx + sh + s * 0.16, hip_y - s * 0.02),
        ],
        skin,
    )
    # Body and skirt.
    poly(
        [
            (cx - sh, neck_y + s * 0.01),
            (cx + sh, neck_y + s * 0.01),
            (cx + sh * 0.7, hip_y),
            (cx - sh * 0.7, hip_y),
        ],
        cloth,
    )
    poly(
        [
            (cx - sh * 0.7, hip_y - s * 0.01),
            (cx + sh * 0.7, hip_y - s * 0.01),
            (cx + sh * 1.3, hip_y + s * 0.12),
            (cx - sh * 1.3, hip_y + s * 0.12),
        ],
        cloth2,
    )
    # Hair behind and head.
    poly(
        [
            (cx - head_r * 1.2, top + head_r),
            (cx + head_r * 1.2, top + head_r),
            (cx + head_r * 1.4, neck_y + s * 0.08),
            (cx - head_r * 1.4, neck_y + s * 0.08),
        ],
        hair,
    )
    ellipse((cx, top + head_r), (head_r, head_r * 1.05), 0, skin)
    ellipse((cx, top + head_r * 0.7), (head_r * 1.1, head_r * 0.6), 0, hair)
    for side in (-1, 1):
        ellipse(
            (cx + side * head_r * 0.4, top + head_r * 1.25),
            (head_r * 0.16, head_r * 0.22),
            0,
            (255, 255, 255, 255),
        )
        cv2.circle(img, (int(cx + side * head_r * 0.4), int(top + head_r * 1.3)), int(head_r * 0.1), line, -1)
    # A thin strand of hair: line art only, no interior.
    x = cx + head_r * 1.1
    cv2.line(img, (int(x), int(top + head_r)), (int(x + s * 0.05), int(neck_y + s * 0.15)), line, lw * 2)
    return cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)


def make_background(kind: str, size: int, seed: int = 0) -> np.ndarray:
    """An RGB (size, size, 3) uint8 background of one of :data:`BACKGROUND_KINDS`."""
    rng = np.random.default_rng(seed + 7919)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / max(size - 1, 1)
    if kind == "flat":
        base = rng.integers(200, 256, 3) if rng.random() < 0.7 else rng.integers(60, 256, 3)
        bg = np.broadcast_to(base.astype(np.float32), (size, size, 3)).copy()
    elif kind == "gradient":
        c0, c1 = rng.integers(120, 256, 3).astype(np.float32), rng.integers(60, 256, 3).astype(np.float32)
        ang = rng.uniform(0, 2 * np.pi)
        t = (np.cos(ang) * (xx - 0.5) + np.sin(ang) * (yy - 0.5)) / 1.0 + 0.5
        t = np.clip(t, 0, 1)[..., None]
        bg = c0 * (1 - t) + c1 * t
    elif kind == "paper":
        base = np.array([rng.integers(225, 250), rng.integers(215, 240), rng.integers(190, 225)], np.float32)
        low = cv2.GaussianBlur(rng.normal(0, 1, (size, size)).astype(np.float32), (0, 0), size / 12)
        low = low / (np.abs(low).max() + 1e-6) * 6.0
        bg = base + low[..., None] + rng.normal(0, 6.0, (size, size, 3)).astype(np.float32)
    elif kind == "twotone":
        c0, c1 = rng.integers(90, 256, 3).astype(np.float32), rng.integers(90, 256, 3).astype(np.float32)
        while np.linalg.norm(c0 - c1) < 60:
            c1 = rng.integers(90, 256, 3).astype(np.float32)
        split = rng.uniform(0.55, 0.8)
        bg = np.where((yy < split)[..., None], c0, c1)
    else:
        raise ValueError(f"unknown background kind {kind!r}; expected one of {BACKGROUND_KINDS}")
    return np.clip(np.round(bg), 0, 255).astype(np.uint8)


def composite(rgba: np.ndarray, background: np.ndarray) -> np.ndarray:
    """RGBA over an RGB background -> RGB uint8 (straight alpha)."""
    a = rgba[..., 3:4].astype(np.float32) / 255.0
    out = rgba[..., :3].astype(np.float32) * a + background.astype(np.float32) * (1 - a)
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def iou(pred: np.ndarray, truth: np.ndarray) -> float:
    """Intersection over union of two boolean masks (1.0 when both are empty)."""
    union = np.logical_or(pred, truth).sum()
    return 1.0 if union == 0 else float(np.logical_and(pred, truth).sum() / union)


def boundary_f(pred: np.ndarray, truth: np.ndarray, tolerance: int = 2) -> float:
    """Boundary F-score: boundary pixels of each mask within ``tolerance`` pixels of the other's boundary."""

    def edge(m):
        m = m.astype(np.uint8)
        return (m - cv2.erode(m, np.ones((3, 3), np.uint8), borderType=cv2.BORDER_CONSTANT)).astype(bool)

    ep, et = edge(pred), edge(truth)
    if not ep.any() and not et.any():
        return 1.0
    if not ep.any() or not et.any():
        return 0.0
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * tolerance + 1, 2 * tolerance + 1))
    near_t = cv2.dilate(et.astype(np.uint8), k).astype(bool)
    near_p = cv2.dilate(ep.astype(np.uint8), k).astype(bool)
    precision = float((ep & near_t).sum() / ep.sum())
    recall = float((et & near_p).sum() / et.sum())
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
