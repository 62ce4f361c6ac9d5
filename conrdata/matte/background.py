"""Background models estimated from the image border.

A drawing's background is assumed to be what its border shows: a flat colour,
a smooth gradient, noisy paper, or a few flat tones (two-tone: a wall and a
floor, a split backdrop). The model is a small set of *components*; each is a
colour polynomial of degree 0 (flat) up to 3 (gradient) in the normalised image
coordinates ``u = 2x/(W-1) - 1``, ``v = 2y/(H-1) - 1``. A pixel's distance to
the background is the Euclidean RGB distance (0-255 units) to the nearest
component's prediction at that pixel.

The fit is robust to a character that touches the border: iteratively
re-fitted least squares on the border pixels that the model explains.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

# Minimum distance (0-255 RGB units) below which a pixel always counts as background-like.
MIN_THRESHOLD = 18.0
MAX_THRESHOLD = 60.0
# A border colour cluster becomes its own flat component when it holds this share of the border.
MIN_CLUSTER_SHARE = 0.12
# Raw border noise (robust sigma, RGB units) above which distances are computed on a smoothed image.
NOISY_SIGMA = 2.5
# Highest polynomial degree of a gradient. Up to degree 3 the border values fix the polynomial inside
# the image (the lowest polynomial vanishing on the whole border, (1 - u^2)(1 - v^2), has degree 4).
MAX_DEGREE = 3


@dataclass
class Component:
    """One background explanation: ``coef`` (T, 3) float64 over the polynomial terms of ``degree``."""

    coef: np.ndarray
    degree: int
    share: float = 1.0


@dataclass
class BackgroundModel:
    """The background of one image, at the resolution it was fitted on.

    ``threshold``: distance (RGB units) below which a pixel is background-like.
    ``noise``: robust per-channel sigma of the raw border residual (0-255 units).
    ``blur``: Gaussian sigma (pixels) applied to the image before distances are taken.
    ``explained``: fraction of border pixels the model explains.
    ``kind``: "flat", "gradient", "multi" (several tones) or "user" (from --bg-color).
    """

    components: list[Component]
    threshold: float
    noise: float
    blur: float
    explained: float
    kind: str
    border_spread: float = 0.0  # robust sigma of the residual of the (smoothed) border, RGB units
    extras: dict = field(default_factory=dict)

    def predict(self, ys: np.ndarray, xs: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
        """Predicted background colours (K, N, 3) float32 of each component at pixel rows ys, columns xs."""
        h, w = shape
        out = []
        for comp in self.components:
            feats = _features(ys, xs, h, w, comp.degree)
            out.append((feats @ comp.coef).astype(np.float32))
        return np.stack(out)

    def distance_at(self, colors: np.ndarray, ys: np.ndarray, xs: np.ndarray, shape) -> np.ndarray:
        """Distance (N,) of colours (N, 3) at pixels (ys, xs) to the nearest component."""
        pred = self.predict(ys, xs, shape)
        return np.sqrt(((pred - colors[None].astype(np.float32)) ** 2).sum(-1)).min(0)

    def prediction_map(self, shape: tuple[int, int], index: int = 0) -> np.ndarray:
        """Component ``index``'s predicted background (H, W, 3) float32."""
        h, w = shape
        comp = self.components[index]
        if comp.degree == 0:
            return np.broadcast_to(comp.coef[0].astype(np.float32), (h, w, 3))
        u, v = _grid(h, w)
        terms = _terms(u, v, comp.degree)
        pred = np.zeros((h, w, 3), np.float32)
        for t, term in enumerate(terms):
            pred += term[..., None] * comp.coef[t].astype(np.float32)
        return pred

    def distance_map(self, image: np.ndarray) -> np.ndarray:
        """Distance (H, W) float32 of every pixel of ``image`` (H, W, 3) to the background."""
        img = image.astype(np.float32)
        best = None
        for k in range(len(self.components)):
            d = np.sqrt(((img - self.prediction_map(img.shape[:2], k)) ** 2).sum(-1))
            best = d if best is None else np.minimum(best, d)
        return best


def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    u = np.linspace(-1.0, 1.0, w, dtype=np.float32) if w > 1 else np.zeros(1, np.float32)
    v = np.linspace(-1.0, 1.0, h, dtype=np.float32) if h > 1 else np.zeros(1, np.float32)
    return np.broadcast_to(u[None, :], (h, w)), np.broadcast_to(v[:, None], (h, w))


def _terms(u, v, degree: int) -> list:
    one = np.ones_like(u)
    if degree == 0:
        return [one]
    if degree == 1:
        return [one, u, v]
    quad = [one, u, v, u * u, u * v, v * v]
    if degree == 2:
        return quad
    return quad + [u * u * u, u * u * v, u * v * v, v * v * v]


def _features(ys, xs, h: int, w: int, degree: int) -> np.ndarray:
    u = (2.0 * np.asarray(xs, np.float64) / max(w - 1, 1)) - 1.0
    v = (2.0 * np.asarray(ys, np.float64) / max(h - 1, 1)) - 1.0
    return np.stack(_terms(u, v, degree), axis=-1)


def border_samples(image: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows, columns and colours (N, 3) float64 of the pixels within ``width`` of the image border."""
    h, w = image.shape[:2]
    width = max(1, min(width, h // 2, w // 2)) if min(h, w) > 1 else 1
    ring = np.zeros((h, w), bool)
    ring[:width] = ring[-width:] = True
    ring[:, :width] = ring[:, -width:] = True
    ys, xs = np.nonzero(ring)
    return ys, xs, image[ys, xs].astype(np.float64)


def _robust_fit(feats: np.ndarray, colors: np.ndarray, inliers: np.ndarray, iters: int = 6):
    """Least squares on the inliers, re-selecting inliers by residual; returns (coef, residual, inliers)."""
    coef = None
    resid = None
    for _ in range(iters):
        if inliers.sum() < feats.shape[1] * 3:
            inliers = np.ones(len(colors), bool)
        a = feats[inliers]
        # Normal equations (a few terms, well conditioned on [-1, 1]); a tiny ridge keeps them solvable.
        coef = np.linalg.solve(a.T @ a + 1e-6 * np.eye(a.shape[1]), a.T @ colors[inliers])
        resid = np.sqrt(((feats @ coef - colors) ** 2).sum(-1))
        sigma = 1.4826 * np.median(resid[inliers]) + 0.5
        new = resid < max(4.0 * sigma, 6.0)
        if np.array_equal(new, inliers):
            break
        inliers = new
    return coef, resid, inliers


def _mode_start(colors: np.ndarray, radius: float = 10.0) -> np.ndarray:
    """Border pixels near the most common border colour (the start of the robust fit)."""
    q = np.floor(colors / 8.0).astype(np.int64)
    codes = (q[:, 0] << 10) | (q[:, 1] << 5) | q[:, 2]
    values, inverse, counts = np.unique(codes, return_inverse=True, return_counts=True)
    mode = colors[inverse.ravel() == int(np.argmax(counts))].mean(0)
    return np.sqrt(((colors - mode) ** 2).sum(-1)) < radius


def _fit_components(ys, xs, colors, shape, seed: int = 0) -> tuple[list[Component], np.ndarray, np.ndarray]:
    """Fit the component set to border samples; returns (components, residual (N,), explained mask (N,))."""
    h, w = shape
    start = _mode_start(colors)
    # Polynomials of rising degree, each started from the previous one's inliers; the lowest degree
    # that explains (almost) as much of the border, as tightly, as the best one wins.
    fits = []
    inl = start
    for degree in range(MAX_DEGREE + 1):
        coef, res, inl = _robust_fit(_features(ys, xs, h, w, degree), colors, inl)
        sigma = 1.4826 * float(np.median(res[inl])) if inl.any() else float("inf")
        fits.append((degree, coef, res, inl, sigma))
    best_e = max(f[3].mean() for f in fits)
    cands = [f for f in fits if f[3].mean() >= best_e - 0.02]
    best_s = min(f[4] for f in cands)
    degree, coef, resid, explained, _ = next(f for f in cands if f[4] <= 1.25 * best_s + 0.5)
    comps = [Component(coef, degree)]
    f0 = _features(ys, xs, h, w, 0)
    if explained.mean() >= 0.9 or len(colors) < 50:
        return comps, resid, explained
    # Several tones: flat components for large, tight clusters of the unexplained border colours.
    best = (comps, resid, explained)
    cv2.setRNGSeed(seed)
    for k in (2, 3):
        data = colors.astype(np.float32)
        crit = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 30, 0.5)
        _, labels, centers = cv2.kmeans(data, k, None, crit, 3, cv2.KMEANS_PP_CENTERS)
        labels = labels.ravel()
        cand = list(comps)
        for j in range(k):
            sel = labels == j
            if sel.mean() < MIN_CLUSTER_SHARE:
                continue
            cj, rj, ij = _robust_fit(f0[sel], colors[sel], np.ones(sel.sum(), bool))
            if ij.mean() < 0.6:  # not a flat tone: colours of the character touching the border
                continue
            if any(
                np.sqrt(((_features(ys[sel], xs[sel], h, w, c.degree) @ c.coef - cj[0]) ** 2).sum(-1)).min()
                < 6.0
                for c in cand
            ):
                continue  # already explained by a component
            cand.append(Component(cj, 0, float(sel.mean())))
        if len(cand) == len(comps):
            continue
        res = np.min(
            [np.sqrt(((_features(ys, xs, h, w, c.degree) @ c.coef - colors) ** 2).sum(-1)) for c in cand],
            axis=0,
        )
        sigma = 1.4826 * np.median(res) + 0.5
        expl = res < max(4.0 * sigma, 6.0)
        if expl.mean() > best[2].mean() + 0.05:
            best = (cand, res, expl)
    return best


def smooth(image: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian-smoothed copy of an (H, W, 3) uint8 image (the image itself when sigma is 0)."""
    if sigma <= 0:
        return image
    return cv2.GaussianBlur(image, (0, 0), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REFLECT)


def high_pass(image: np.ndarray) -> np.ndarray:
    """Per-pixel texture (H, W) float32: mean absolute difference to a 1.5-pixel Gaussian blur."""
    img = image.astype(np.float32)
    return np.abs(img - cv2.GaussianBlur(img, (0, 0), 1.5)).mean(-1)


def _threshold(resid: np.ndarray, explained: np.ndarray) -> tuple[float, float]:
    r = resid[explained] if explained.any() else resid
    sigma = float(1.4826 * np.median(r))
    t = max(MIN_THRESHOLD, 3.0 * sigma, 1.25 * float(np.percentile(r, 99)))
    return float(min(t, MAX_THRESHOLD)), sigma


def fit_background(image: np.ndarray, bg_colors=None, border: int | None = None) -> BackgroundModel:
    """Fit the background model of an (H, W, 3) uint8 RGB image from its border.

    ``bg_colors``: optional list of user RGB colours (0-255); they replace the
    estimated components (``kind="user"``), while noise and threshold are still
    measured on the border. ``border``: strip width in pixels (default 1% of
    the shorter side, at least 2).
    """
    h, w = image.shape[:2]
    width = border or max(2, round(0.01 * min(h, w)))
    ys, xs, raw = border_samples(image, width)
    if bg_colors:
        comps = [Component(np.asarray([c], np.float64), 0) for c in bg_colors]
        kind = "user"
    else:
        comps, _, _ = _fit_components(ys, xs, raw, (h, w))
        kind = "multi" if len(comps) > 1 else ("gradient" if comps[0].degree > 0 else "flat")
        if kind == "gradient":
            feats = _features(ys, xs, h, w, comps[0].degree)
            if float(np.abs(feats[:, 1:] @ comps[0].coef[1:]).max()) < 3.0:
                kind = "flat"
    model = BackgroundModel(comps, MIN_THRESHOLD, 0.0, 0.0, 0.0, kind)
    raw_res = model.distance_at(raw, ys, xs, (h, w))
    # The residual of pure per-channel Gaussian noise is sigma * chi(3), whose median is ~1.54 sigma.
    model.noise = float(np.median(raw_res) / 1.54)
    model.blur = 1.5 if model.noise > NOISY_SIGMA else 0.0
    sm = smooth(image, model.blur)
    sm_res = model.distance_at(sm[ys, xs].astype(np.float64), ys, xs, (h, w))
    expl = sm_res < max(4.0 * (1.4826 * np.median(sm_res) + 0.5), 6.0, MIN_THRESHOLD)
    model.threshold, model.border_spread = _threshold(sm_res, expl)
    model.explained = float((sm_res < model.threshold).mean())
    model.extras["border_hf"] = float(np.median(high_pass(image)[ys, xs]))
    return model


def parse_color(text: str) -> tuple[int, int, int]:
    """'#rrggbb', 'rrggbb' or 'r,g,b' (0-255) -> an RGB tuple; raises ValueError."""
    s = text.strip()
    if "," in s:
        parts = [int(p) for p in s.split(",")]
        if len(parts) != 3 or not all(0 <= p <= 255 for p in parts):
            raise ValueError(f"colour {text!r} is not r,g,b with values 0-255")
        return tuple(parts)
    s = s.lstrip("#")
    if len(s) != 6:
        raise ValueError(f"colour {text!r} is not #rrggbb")
    return tuple(int(s[i : i + 2], 16) for i in (0, 2, 4))
