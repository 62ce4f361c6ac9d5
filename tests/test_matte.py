"""Watershed matting on arrays: exact results on crisp drawings, holes, hints, backgrounds, upsampling."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from conrdata.matte import MatteOptions, fit_background, matte_array, parse_color
from conrdata.testing.figures import (
    BACKGROUND_KINDS,
    boundary_f,
    composite,
    draw_figure,
    iou,
    make_background,
)

INK = (20, 20, 20)


def crisp_drawing(size=96, bg=(255, 255, 255), fill=(200, 80, 60), ring=False):
    """A filled shape with a black outline on a flat background, no anti-aliasing; returns (rgb, truth)."""
    img = np.empty((size, size, 3), np.uint8)
    img[:] = bg
    c = size // 2
    if ring:
        cv2.circle(img, (c, c), size // 3, fill, -1, lineType=cv2.LINE_8)
        cv2.circle(img, (c, c), size // 3, INK, 2, lineType=cv2.LINE_8)
        cv2.circle(img, (c, c), size // 7, bg, -1, lineType=cv2.LINE_8)
        cv2.circle(img, (c, c), size // 7, INK, 2, lineType=cv2.LINE_8)
    else:
        pts = np.array([[c, 12], [size - 15, c + 10], [c + 5, size - 10], [14, c]], np.int32)
        cv2.fillPoly(img, [pts], fill, lineType=cv2.LINE_8)
        cv2.polylines(img, [pts], True, INK, 2, lineType=cv2.LINE_8)
    truth = np.any(img != np.array(bg, np.uint8), axis=-1)
    return img, truth


def test_shape_with_outline_on_white_is_exact():
    rgb, truth = crisp_drawing()
    res = matte_array(rgb)
    assert res.alpha.dtype == np.uint8 and res.alpha.shape == truth.shape
    assert set(np.unique(res.alpha)) <= {0, 255}
    np.testing.assert_array_equal(res.alpha == 255, truth)
    assert res.info["bg_kind"] == "flat"
    assert res.confidence > 0.9


@pytest.mark.parametrize("bg", [(255, 255, 255), (30, 60, 140), (240, 230, 200)])
def test_exact_on_other_flat_colours_and_user_colour(bg):
    rgb, truth = crisp_drawing(bg=bg, fill=(90, 200, 90))
    np.testing.assert_array_equal(matte_array(rgb).alpha == 255, truth)
    opts = MatteOptions(bg_colors=(bg,))
    res = matte_array(rgb, options=opts)
    assert res.info["bg_kind"] == "user"
    np.testing.assert_array_equal(res.alpha == 255, truth)


def test_ring_hole_modes_on_flat_white():
    rgb, truth = crisp_drawing(ring=True)
    filled = matte_array(rgb, options=MatteOptions(holes="fill"))
    cut = matte_array(rgb, options=MatteOptions(holes="cut"))
    auto = matte_array(rgb)
    np.testing.assert_array_equal(cut.alpha == 255, truth)
    hole = ~truth & (cv2.floodFill(truth.astype(np.uint8), None, (0, 0), 1)[1] == 0)
    assert hole.sum() > 100
    np.testing.assert_array_equal(filled.alpha == 255, truth | hole)
    # On a flat white background a white region is ambiguous: auto keeps it and reports it.
    np.testing.assert_array_equal(auto.alpha == 255, truth | hole)
    assert auto.info["holes_ambiguous"] >= 1 and auto.info["holes_cut"] == 0


def test_auto_cuts_a_hole_that_follows_a_gradient_background():
    size = 128
    yy, xx = np.mgrid[0:size, 0:size]
    bg = np.stack([60 + xx * 1.5, 100 + yy * 0.8, 230 - xx * 0.9], -1).clip(0, 255).astype(np.uint8)
    shape_rgb, truth = crisp_drawing(size, bg=(255, 255, 255), fill=(250, 240, 20), ring=True)
    rgb = np.where(truth[..., None], shape_rgb, bg)
    res = matte_array(rgb)
    assert res.info["bg_kind"] == "gradient"
    assert res.info["holes_cut"] == 1
    np.testing.assert_array_equal(res.alpha == 255, truth)


def test_hint_background_scribble_opens_a_hole_and_foreground_hint_is_kept():
    rgb, truth = crisp_drawing(ring=True)
    c = rgb.shape[0] // 2
    hint = np.full(truth.shape, 128, np.uint8)
    hint[c - 2 : c + 3, c - 2 : c + 3] = 0  # a black dot inside the hole
    res = matte_array(rgb, hint)
    np.testing.assert_array_equal(res.alpha == 255, truth)  # the whole hole opens, not just the dot
    # A white hint on plain background forces those pixels into the matte.
    hint2 = np.full(truth.shape, 128, np.uint8)
    hint2[2:10, 2:10] = 255
    res2 = matte_array(rgb, hint2)
    assert (res2.alpha[2:10, 2:10] == 255).all()
    assert (res2.alpha[truth] == 255).all()


def test_stray_specks_are_dropped_but_big_parts_are_kept():
    rgb, truth = crisp_drawing(128)
    rgb[3:5, 120:122] = INK  # a 2x2 dirt speck near the border
    cv2.circle(rgb, (20, 110), 9, (90, 90, 200), -1, lineType=cv2.LINE_8)  # a separate prop, ~5% of the body
    prop = np.zeros_like(truth)
    cv2.circle(prop.view(np.uint8), (20, 110), 9, 1, -1, lineType=cv2.LINE_8)
    res = matte_array(rgb)
    assert (res.alpha[3:5, 120:122] == 0).all()
    np.testing.assert_array_equal(res.alpha == 255, truth | prop)


def test_thin_line_art_strand_survives():
    rgb = np.full((96, 96, 3), 255, np.uint8)
    cv2.rectangle(rgb, (30, 30), (60, 80), (120, 40, 160), -1)
    cv2.line(rgb, (60, 30), (85, 8), INK, 1, lineType=cv2.LINE_8)  # one-pixel strand, no interior
    truth = np.any(rgb != 255, axis=-1)
    np.testing.assert_array_equal(matte_array(rgb).alpha == 255, truth)


@pytest.mark.parametrize("kind", BACKGROUND_KINDS)
def test_composites_of_antialiased_figures(kind):
    ious = []
    for seed in range(3):
        fig = draw_figure(128, seed)
        res = matte_array(composite(fig, make_background(kind, 128, seed)))
        truth = fig[..., 3] >= 128
        ious.append(iou(res.alpha >= 128, truth))
        assert boundary_f(res.alpha >= 128, truth) > 0.85
    assert np.mean(ious) >= (0.97 if kind in ("flat", "gradient") else 0.95), ious


def test_background_kinds_are_recognised():
    size = 64
    assert fit_background(make_background("flat", size, 1)).kind == "flat"
    assert fit_background(make_background("gradient", size, 2)).kind == "gradient"
    two = fit_background(make_background("twotone", size, 3))
    assert two.kind == "multi" and two.explained > 0.95
    paper = fit_background(make_background("paper", size, 4))
    assert paper.blur > 0 and paper.noise > 3


def test_working_resolution_upsampling_follows_full_resolution_edges():
    fig = draw_figure(384, 5)
    rgb = composite(fig, make_background("flat", 384, 5))
    truth = fig[..., 3] >= 128
    small = matte_array(rgb, options=MatteOptions(max_side=96))
    assert small.mask.shape == (96, 96) and small.alpha.shape == (384, 384)
    assert small.info["scale"] == pytest.approx(0.25)
    plain = cv2.resize(small.mask.astype(np.uint8), (384, 384), interpolation=cv2.INTER_LINEAR) > 0
    assert iou(small.alpha >= 128, truth) >= 0.95
    assert boundary_f(small.alpha >= 128, truth, 1) > boundary_f(plain, truth, 1)


def test_feather_softens_only_the_edge():
    rgb, truth = crisp_drawing()
    res = matte_array(rgb, options=MatteOptions(feather=1.0))
    soft = (res.alpha > 0) & (res.alpha < 255)
    assert soft.any()
    interior = cv2.erode(truth.astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool)
    assert (res.alpha[interior] == 255).all()


def test_busy_image_gets_low_confidence():
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (96, 96, 3), dtype=np.uint8)
    res = matte_array(noise)
    assert res.confidence < 0.5 and res.info["review_reason"]
    good = matte_array(crisp_drawing()[0])
    assert good.confidence > 0.9


def test_bad_arguments():
    with pytest.raises(ValueError):
        MatteOptions(holes="sometimes")
    with pytest.raises(ValueError):
        matte_array(np.zeros((4, 4, 3), np.uint8))
    rgb, _ = crisp_drawing()
    with pytest.raises(ValueError, match="hint"):
        matte_array(rgb, np.zeros((10, 10), np.uint8))
    assert parse_color("#ff8000") == (255, 128, 0)
    assert parse_color("1,2,3") == (1, 2, 3)
    with pytest.raises(ValueError):
        parse_color("red")
