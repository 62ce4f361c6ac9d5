"""A headless OpenGL context: EGL by default, OSMesa as the fallback.

PyOpenGL chooses its platform when ``OpenGL`` is first imported, from the
``PYOPENGL_PLATFORM`` environment variable. Unless the caller already chose,
this module sets it to ``egl`` when libEGL is installed and to ``osmesa`` when
only libOSMesa is (the fallback), so import it before anything else imports
``OpenGL`` (importing :mod:`conrdata.render` does).

EGL path: enumerate EGL devices (``EGL_EXT_device_enumeration``) and open a
surfaceless core-profile 3.3+ context on the first one that works, falling back
to the default display. No window or pbuffer is needed: everything we draw goes
into our own framebuffer objects.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os


def _default_platform() -> str:
    """EGL when libEGL is installed, else OSMesa when libOSMesa is, else EGL (which then fails clearly)."""
    if ctypes.util.find_library("EGL"):
        return "egl"
    if ctypes.util.find_library("OSMesa"):
        return "osmesa"
    return "egl"


if "PYOPENGL_PLATFORM" not in os.environ:
    os.environ["PYOPENGL_PLATFORM"] = _default_platform()

EGL_PLATFORM_DEVICE_EXT = 0x313F


class GLContextError(RuntimeError):
    """No headless OpenGL context could be created on this machine."""


def platform_name() -> str:
    return os.environ.get("PYOPENGL_PLATFORM", "egl").lower()


class HeadlessContext:
    """One headless GL context, made current on creation.

    Use one per process (or per thread that renders); ``close()`` releases it.
    """

    def __init__(self) -> None:
        self.platform = platform_name()
        self._impl = None
        if self.platform == "osmesa":
            self._impl = _OSMesaContext()
        elif self.platform == "egl":
            self._impl = _EGLContext()
        else:
            raise GLContextError(
                f"PYOPENGL_PLATFORM={self.platform!r} is not headless; use 'egl' (default) or 'osmesa'"
            )
        self.make_current()

    def make_current(self) -> None:
        self._impl.make_current()

    def close(self) -> None:
        if self._impl is not None:
            self._impl.close()
            self._impl = None

    def info(self) -> dict:
        from OpenGL import GL  # lazy, as every OpenGL import here: loaded once a context is made

        def s(name):
            v = GL.glGetString(name)
            return v.decode("ascii", "replace") if v else ""

        return {"platform": self.platform, "vendor": s(GL.GL_VENDOR), "renderer": s(GL.GL_RENDERER),
                "version": s(GL.GL_VERSION)}


class _EGLContext:
    def __init__(self) -> None:
        try:
            from OpenGL import EGL
        except Exception as err:  # pragma: no cover - depends on the machine
            raise GLContextError(f"EGL is not available: {err}") from err
        self.EGL = EGL
        errors = []
        for display in self._displays():
            try:
                self._open(display)
                return
            except Exception as err:  # try the next display
                errors.append(str(err))
        raise GLContextError("could not create an EGL context: " + "; ".join(errors or ["no EGL display"]))

    def _displays(self):
        EGL = self.EGL
        query = _egl_proc("eglQueryDevicesEXT", EGL.EGLBoolean, ctypes.c_int, ctypes.c_void_p,
                          ctypes.POINTER(ctypes.c_int))
        get_display = _egl_proc("eglGetPlatformDisplayEXT", EGL.EGLDisplay, ctypes.c_int, ctypes.c_void_p,
                                ctypes.c_void_p)
        if query is not None and get_display is not None:
            count = ctypes.c_int(0)
            if query(0, None, ctypes.byref(count)) and count.value > 0:
                devices = (ctypes.c_void_p * count.value)()
                if query(count.value, devices, ctypes.byref(count)):
                    for i in range(count.value):
                        dpy = get_display(EGL_PLATFORM_DEVICE_EXT, devices[i], None)
                        if dpy:
                            yield dpy
        yield EGL.eglGetDisplay(EGL.EGL_DEFAULT_DISPLAY)

    def _open(self, display) -> None:
        EGL = self.EGL
        major, minor = EGL.EGLint(), EGL.EGLint()
        if not EGL.eglInitialize(display, ctypes.pointer(major), ctypes.pointer(minor)):
            raise GLContextError("eglInitialize failed")
        attribs = (EGL.EGLint * 7)(EGL.EGL_SURFACE_TYPE, EGL.EGL_PBUFFER_BIT, EGL.EGL_RENDERABLE_TYPE,
                                   EGL.EGL_OPENGL_BIT, EGL.EGL_NONE, 0, 0)
        config = EGL.EGLConfig()
        n = EGL.EGLint()
        chosen = EGL.eglChooseConfig(display, attribs, ctypes.pointer(config), 1, ctypes.pointer(n))
        if not chosen or n.value < 1:
            raise GLContextError("no EGL config with OpenGL support")
        if not EGL.eglBindAPI(EGL.EGL_OPENGL_API):
            raise GLContextError("eglBindAPI(OpenGL) failed")
        ctx_attribs = (EGL.EGLint * 7)(EGL.EGL_CONTEXT_MAJOR_VERSION, 3, EGL.EGL_CONTEXT_MINOR_VERSION, 3,
                                       EGL.EGL_CONTEXT_OPENGL_PROFILE_MASK,
                                       EGL.EGL_CONTEXT_OPENGL_CORE_PROFILE_BIT, EGL.EGL_NONE)
        context = EGL.eglCreateContext(display, config, EGL.EGL_NO_CONTEXT, ctx_attribs)
        if not context:
            raise GLContextError("eglCreateContext failed (need OpenGL 3.3 core)")
        self.display, self.context = display, context

    def make_current(self) -> None:
        EGL = self.EGL
        if not EGL.eglMakeCurrent(self.display, EGL.EGL_NO_SURFACE, EGL.EGL_NO_SURFACE, self.context):
            raise GLContextError("eglMakeCurrent failed (surfaceless contexts unsupported?)")

    def close(self) -> None:
        EGL = self.EGL
        EGL.eglMakeCurrent(self.display, EGL.EGL_NO_SURFACE, EGL.EGL_NO_SURFACE, EGL.EGL_NO_CONTEXT)
        EGL.eglDestroyContext(self.display, self.context)


def _egl_proc(name: str, restype, *argtypes):
    from OpenGL import EGL  # lazy: loaded once a context is made

    address = EGL.eglGetProcAddress(name)
    if not address:
        return None
    return ctypes.CFUNCTYPE(restype, *argtypes)(ctypes.cast(address, ctypes.c_void_p).value)


class _OSMesaContext:
    def __init__(self) -> None:
        try:
            from OpenGL import GL, osmesa
        except Exception as err:  # pragma: no cover - depends on the machine
            raise GLContextError(f"OSMesa is not available: {err}") from err
        self.osmesa, self.GL = osmesa, GL
        attrs = (ctypes.c_int * 11)(osmesa.OSMESA_FORMAT, GL.GL_RGBA, osmesa.OSMESA_DEPTH_BITS, 24,
                                    osmesa.OSMESA_PROFILE, osmesa.OSMESA_CORE_PROFILE,
                                    osmesa.OSMESA_CONTEXT_MAJOR_VERSION, 3,
                                    osmesa.OSMESA_CONTEXT_MINOR_VERSION, 3, 0)
        self.context = osmesa.OSMesaCreateContextAttribs(attrs, None)
        if not self.context:
            raise GLContextError("OSMesaCreateContextAttribs failed (need OpenGL 3.3 core)")
        # OSMesa needs a colour buffer to bind even though we only draw into FBOs.
        self.buffer = (ctypes.c_ubyte * (4 * 4 * 4))()

    def make_current(self) -> None:
        if not self.osmesa.OSMesaMakeCurrent(self.context, self.buffer, self.GL.GL_UNSIGNED_BYTE, 4, 4):
            raise GLContextError("OSMesaMakeCurrent failed")

    def close(self) -> None:
        self.osmesa.OSMesaDestroyContext(self.context)
