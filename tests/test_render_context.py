"""Headless GL contexts: creation, several rasterizers per process, non-square images."""

import numpy as np
import pytest

from conrdata.render.camera import frame_points
from conrdata.render.context import GLContextError, HeadlessContext
from conrdata.render.gl_rasterizer import GLRasterizer
from conrdata.render.reference import reference_rasterize
from conrdata.render.scene import Shading, mesh_from_rig
from conrdata.testing.boxes import demo_scene_rig


def test_two_rasterizers_in_one_process_agree_and_close_independently():
    mesh = mesh_from_rig(demo_scene_rig(), key="scene")
    a = GLRasterizer(96, 64)
    b = GLRasterizer(96, 64)
    info = a.context.info()
    assert info["renderer"] and info["version"].split()[0] >= "3.3"
    cam = frame_points(mesh.positions, 60.0, 10.0, width=96, height=64)
    ra = a.render(mesh, cam, Shading(outline=True))
    rb = b.render(mesh, cam, Shading(outline=True))
    a.close()
    rb2 = b.render(mesh, cam, Shading(outline=True))
    b.close()
    for r in (rb, rb2):
        np.testing.assert_array_equal(ra.udp, r.udp)
        np.testing.assert_array_equal(ra.rgba, r.rgba)
    # Non-square: the reference agrees on the image shape and the silhouette.
    ref = reference_rasterize(mesh, cam, Shading(outline=True))
    assert ra.udp.shape == ref.udp.shape == (64, 96, 4)
    assert (ra.udp[..., 3] != ref.udp[..., 3]).mean() < 0.01


def test_depth_can_be_skipped():
    mesh = mesh_from_rig(demo_scene_rig())
    with GLRasterizer(32, 32) as r:
        cam = frame_points(mesh.positions, 0.0, 0.0, width=32, height=32)
        with_depth = r.render(mesh, cam)
        without = r.render(mesh, cam, depth=False)
    assert without.depth is None and with_depth.depth is not None
    np.testing.assert_array_equal(with_depth.udp, without.udp)


def test_a_non_headless_platform_is_refused(monkeypatch):
    monkeypatch.setenv("PYOPENGL_PLATFORM", "glx")
    with pytest.raises(GLContextError):
        HeadlessContext()
