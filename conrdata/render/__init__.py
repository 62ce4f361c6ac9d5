"""Rendering: cameras, the headless GL rasterizer (UDP float32 + RGBA + depth in one pass) and its
numpy reference. Importing this package selects PyOpenGL's headless platform (EGL unless
``PYOPENGL_PLATFORM`` says otherwise); the GL module itself is imported only on first use.
"""

from __future__ import annotations

from conrdata.render import context as _context  # noqa: F401  (chooses the platform first)
from conrdata.render.camera import (
    Camera,
    frame_points,
    look_at,
    orbit_direction,
    random_camera,
    random_view,
)
from conrdata.render.scene import DrawMesh, Shading, bind_landmarks, draw_list, mesh_from_rig

__all__ = [
    "Camera", "frame_points", "look_at", "orbit_direction", "random_camera", "random_view",
    "DrawMesh", "Shading", "bind_landmarks", "draw_list", "mesh_from_rig",
    "GLRasterizer", "RenderResult", "reference_rasterize", "HeadlessContext",
]


def __getattr__(name):
    if name in ("GLRasterizer", "RenderResult"):
        from conrdata.render import gl_rasterizer

        return getattr(gl_rasterizer, name)
    if name == "reference_rasterize":
        from conrdata.render.reference import reference_rasterize

        return reference_rasterize
    if name == "HeadlessContext":
        return _context.HeadlessContext
    raise AttributeError(name)
