"""Cameras: projection conventions, framing, seeded randomness."""

import math

import numpy as np
import pytest

from conrdata.render.camera import Camera, frame_points, look_at, orbit_direction, random_camera


def cloud(seed=0, n=200):
    rng = np.random.default_rng(seed)
    return rng.uniform([-0.4, 0.0, -0.2], [0.4, 1.6, 0.2], size=(n, 3))


@pytest.mark.parametrize("projection", ["perspective", "orthographic"])
def test_project_unproject_round_trip(projection):
    pts = cloud()
    cam = frame_points(pts, 37.0, 12.0, width=96, height=64, projection=projection)
    uv, depth = cam.project(pts)
    assert np.all(depth > cam.znear) and np.all(depth < cam.zfar)
    np.testing.assert_allclose(cam.unproject(uv, depth), pts, atol=1e-9)


def test_image_rows_run_top_down_and_yaw_zero_sees_the_front():
    cam = frame_points(np.array([[0, 0, 0], [0, 1.5, 0.0]]), 0.0, 0.0, width=64, height=64)
    uv, _ = cam.project(np.array([[0, 1.4, 0.0], [0, 0.1, 0.0], [0.3, 0.75, 0.0]]))
    assert uv[0, 1] < uv[1, 1]  # the high point is nearer row 0
    assert uv[2, 0] > 32  # +X (the character's left) is on the image's right seen from the front
    assert cam.position[2] > 1.0  # the camera stands on the +Z side the character faces


@pytest.mark.parametrize("projection", ["perspective", "orthographic"])
@pytest.mark.parametrize("yaw,pitch", [(0, 0), (90, 20), (215, -10), (300, 45)])
def test_framing_keeps_every_point_inside_with_margin(projection, yaw, pitch):
    pts = cloud(1)
    margin = 0.1
    cam = frame_points(pts, yaw, pitch, width=128, height=96, projection=projection, margin=margin)
    uv, _ = cam.project(pts)
    ndc = np.stack([uv[:, 0] / 128 * 2 - 1, uv[:, 1] / 96 * 2 - 1], axis=1)
    assert np.abs(ndc).max() <= 1 - margin + 1e-6
    assert np.abs(ndc).max() > 1 - margin - 0.05  # tight: some point reaches the margin
    # Centred: the extents on opposite sides are balanced on the axis that limits the fit.
    lo, hi = ndc.min(0), ndc.max(0)
    np.testing.assert_allclose(lo + hi, 0, atol=0.2)


def test_random_camera_is_seeded_and_spans_yaw():
    pts = cloud(2)
    a = random_camera(np.random.default_rng(5), pts, width=64, height=64)
    b = random_camera(np.random.default_rng(5), pts, width=64, height=64)
    np.testing.assert_array_equal(a.cam_to_world, b.cam_to_world)
    rng = np.random.default_rng(0)
    yaws = []
    for _ in range(64):
        cam = random_camera(rng, pts, width=64, height=64, pitch_range=(0, 0))
        d = cam.position - (pts.min(0) + pts.max(0)) / 2
        yaws.append(math.degrees(math.atan2(d[0], d[2])) % 360)
    counts = np.histogram(yaws, bins=4, range=(0, 360))[0]
    assert counts.min() >= 5  # every quadrant of the circle is visited


def test_look_at_and_orbit_direction():
    m = look_at([0, 0, 5], [0, 0, 0])
    np.testing.assert_allclose(m[:3, :3], np.eye(3), atol=1e-12)
    np.testing.assert_allclose(orbit_direction(90, 0), [1, 0, 0], atol=1e-12)
    np.testing.assert_allclose(orbit_direction(0, 90), [0, 1, 0], atol=1e-12)
    straight_down = look_at([0, 3, 0], [0, 0, 0])
    assert np.isfinite(straight_down).all()


def test_camera_dict_round_trip():
    cam = frame_points(cloud(), 10, 5, width=32, height=48, projection="orthographic")
    back = Camera.from_dict(cam.to_dict())
    np.testing.assert_allclose(back.projection_matrix(), cam.projection_matrix())
    np.testing.assert_allclose(back.cam_to_world, cam.cam_to_world, atol=1e-8)
    with pytest.raises(ValueError):
        Camera(projection="fisheye")
