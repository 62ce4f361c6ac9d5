"""The headless OpenGL rasterizer: one geometry pass into UDP float32 + RGBA8 + eye depth.

One framebuffer object, no multisampling, three colour targets and a depth buffer:

- attachment 0, GL_RGBA8: colour (unlit base colour x texture, optional cel shading and outline);
- attachment 1, GL_RGBA32F: UDP (landmark xyz, occupancy), never blended;
- attachment 2, GL_R32F: eye depth in metres (0 on the background);
- depth buffer GL_DEPTH_COMPONENT32F, test GL_LESS.

The alpha, culling, blending and outline rules are those of :mod:`conrdata.render.scene`;
the numpy reference (:mod:`conrdata.render.reference`) implements the same rules.
Textures are sampled bilinearly with REPEAT wrapping and no mipmaps (the reference
does the same, so alpha-tested coverage agrees).

Static data (faces, landmarks, UVs, textures) is uploaded once per ``DrawMesh.key``
and kept in a small LRU cache; each render uploads only posed positions and normals.
"""

from __future__ import annotations

import ctypes
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
from OpenGL import GL  # the package __init__ has already chosen the headless platform

from conrdata.render import context as _context
from conrdata.render.camera import Camera
from conrdata.render.scene import DrawMesh, Shading, draw_list, light_in_world

_VERTEX_SHADER = """
#version 330 core
layout(location = 0) in vec3 a_pos;
layout(location = 1) in vec3 a_normal;
layout(location = 2) in vec3 a_landmark;
layout(location = 3) in vec2 a_uv;
uniform mat4 u_view;
uniform mat4 u_proj;
uniform float u_offset;
out vec3 v_landmark;
out vec2 v_uv;
out vec3 v_normal;
out float v_depth;
void main() {
    vec4 eye = u_view * vec4(a_pos + a_normal * u_offset, 1.0);
    v_depth = -eye.z;
    v_landmark = a_landmark;
    v_uv = a_uv;
    v_normal = a_normal;
    gl_Position = u_proj * eye;
}
"""

_FRAGMENT_SHADER = """
#version 330 core
in vec3 v_landmark;
in vec2 v_uv;
in vec3 v_normal;
in float v_depth;
uniform sampler2D u_tex;
uniform vec4 u_factor;
uniform int u_alpha_test;
uniform float u_cutoff;
uniform int u_blend;
uniform int u_outline;
uniform vec3 u_outline_color;
uniform int u_cel;
uniform vec3 u_light;
uniform float u_threshold;
uniform float u_shadow;
layout(location = 0) out vec4 o_color;
layout(location = 1) out vec4 o_udp;
layout(location = 2) out float o_depth;
void main() {
    vec4 c = u_factor * texture(u_tex, v_uv);
    if (u_alpha_test == 1 && c.a < u_cutoff) discard;
    vec3 rgb = c.rgb;
    if (u_outline == 1) {
        rgb = u_outline_color;
    } else if (u_cel == 1) {
        vec3 n = normalize(v_normal);
        if (!gl_FrontFacing) n = -n;
        if (dot(n, u_light) < u_threshold) rgb *= u_shadow;
    }
    o_color = vec4(rgb, u_blend == 1 ? c.a : 1.0);
    o_udp = vec4(v_landmark, 1.0);
    o_depth = v_depth;
}
"""


@dataclass
class RenderResult:
    """One rendered view. ``rgba`` (H, W, 4) uint8; ``udp`` (H, W, 4) float32 (landmark xyz,
    occupancy; background exactly 0); ``depth`` (H, W) float32 eye depth in metres, 0 on the
    background (None when not requested). Row 0 is the top of the image. ``ambiguous`` (H, W)
    bool marks the pixels whose answer depends on sub-pixel rounding - a visible triangle edge
    through the pixel centre (silhouette and depth edges), alpha at a material's cutoff, a depth
    tie; only the reference rasterizer fills it, for the cross-check."""

    rgba: np.ndarray
    udp: np.ndarray
    depth: np.ndarray | None
    ambiguous: np.ndarray | None = None

    @property
    def mask(self) -> np.ndarray:
        return self.udp[..., 3] > 0


class _StaticMesh:
    """GL objects for one mesh key: VAO, static and dynamic VBOs, one EBO, textures."""

    def __init__(self, mesh: DrawMesh, white_texture: int):
        self.vao = GL.glGenVertexArrays(1)
        self.dynamic_vbo, self.static_vbo, self.ebo = GL.glGenBuffers(3)
        GL.glBindVertexArray(self.vao)
        static = np.ascontiguousarray(np.concatenate([mesh.landmarks, mesh.uvs], axis=1), np.float32)
        GL.glBindBuffer(GL.GL_ARRAY_BUFFER, self.static_vbo)
        GL.glBufferData(GL.GL_ARRAY_BUFFER, static.nbytes, static, GL.GL_STATIC_DRAW)
        GL.glEnableVertexAttribArray(2)
        GL.glVertexAttribPointer(2, 3, GL.GL_FLOAT, False, 20, ctypes.c_void_p(0))
        GL.glEnableVertexAttribArray(3)
        GL.glVertexAttribPointer(3, 2, GL.GL_FLOAT, False, 20, ctypes.c_void_p(12))
        GL.glBindBuffer(GL.GL_ARRAY_BUFFER, self.dynamic_vbo)
        self.num_vertices = len(mesh.positions)
        GL.glBufferData(GL.GL_ARRAY_BUFFER, self.num_vertices * 24, None, GL.GL_DYNAMIC_DRAW)
        GL.glEnableVertexAttribArray(0)
        GL.glVertexAttribPointer(0, 3, GL.GL_FLOAT, False, 24, ctypes.c_void_p(0))
        GL.glEnableVertexAttribArray(1)
        GL.glVertexAttribPointer(1, 3, GL.GL_FLOAT, False, 24, ctypes.c_void_p(12))
        self.items = {}
        for outline in (False, True):
            items = draw_list(mesh, Shading(outline=outline))
            self.items[outline] = items
        # One index buffer: every draw item's faces, back to back; ranges by item identity.
        chunks, self.ranges, offset = [], {}, 0
        for outline, items in self.items.items():
            for i, item in enumerate(items):
                chunks.append(item.faces.reshape(-1))
                self.ranges[(outline, i)] = (offset, item.faces.size)
                offset += item.faces.size
        indices = np.ascontiguousarray(np.concatenate(chunks) if chunks else np.zeros(0), np.uint32)
        GL.glBindBuffer(GL.GL_ELEMENT_ARRAY_BUFFER, self.ebo)
        GL.glBufferData(GL.GL_ELEMENT_ARRAY_BUFFER, max(indices.nbytes, 4), indices if len(indices) else None,
                        GL.GL_STATIC_DRAW)
        GL.glBindVertexArray(0)
        self.textures = []
        self.owned_textures = []
        for mat in mesh.materials:
            if mat.texture is None:
                self.textures.append(white_texture)
            else:
                tex = _upload_texture(mat.texture)
                self.textures.append(tex)
                self.owned_textures.append(tex)

    def delete(self) -> None:
        GL.glDeleteVertexArrays(1, [self.vao])
        GL.glDeleteBuffers(3, [self.dynamic_vbo, self.static_vbo, self.ebo])
        if self.owned_textures:
            GL.glDeleteTextures(self.owned_textures)


def _upload_texture(image: np.ndarray) -> int:
    img = np.ascontiguousarray(image, np.uint8)
    if img.ndim != 3 or img.shape[2] != 4:
        raise ValueError(f"textures must be H x W x 4 uint8, got {img.shape}")
    tex = GL.glGenTextures(1)
    GL.glBindTexture(GL.GL_TEXTURE_2D, tex)
    GL.glPixelStorei(GL.GL_UNPACK_ALIGNMENT, 1)
    # Row 0 (top of the image) goes to t = 0, so glTF UVs (v down from the top) sample it directly.
    GL.glTexImage2D(GL.GL_TEXTURE_2D, 0, GL.GL_RGBA8, img.shape[1], img.shape[0], 0, GL.GL_RGBA,
                    GL.GL_UNSIGNED_BYTE, img)
    GL.glTexParameteri(GL.GL_TEXTURE_2D, GL.GL_TEXTURE_MIN_FILTER, GL.GL_LINEAR)
    GL.glTexParameteri(GL.GL_TEXTURE_2D, GL.GL_TEXTURE_MAG_FILTER, GL.GL_LINEAR)
    GL.glTexParameteri(GL.GL_TEXTURE_2D, GL.GL_TEXTURE_WRAP_S, GL.GL_REPEAT)
    GL.glTexParameteri(GL.GL_TEXTURE_2D, GL.GL_TEXTURE_WRAP_T, GL.GL_REPEAT)
    return tex


def _compile(source: str, kind) -> int:
    shader = GL.glCreateShader(kind)
    GL.glShaderSource(shader, source)
    GL.glCompileShader(shader)
    if not GL.glGetShaderiv(shader, GL.GL_COMPILE_STATUS):
        raise RuntimeError("shader compile failed: " + GL.glGetShaderInfoLog(shader).decode(errors="replace"))
    return shader


class GLRasterizer:
    """Renders :class:`DrawMesh` views into (RGBA8, UDP float32, eye depth) with one geometry pass.

    ``GLRasterizer(width, height)`` creates (or reuses ``context``) a headless GL context;
    use one instance per process. ``render(mesh, camera, shading)`` requires
    ``camera.width == width`` and ``camera.height == height``.
    """

    def __init__(self, width: int = 512, height: int = 512, context=None, cache_size: int = 8):
        self.width, self.height = int(width), int(height)
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"image size must be positive, got {width} x {height}")
        self._own_context = context is None
        self.context = _context.HeadlessContext() if context is None else context
        self.context.make_current()
        self._cache: OrderedDict[str, _StaticMesh] = OrderedDict()
        self.cache_size = cache_size
        self._program = GL.glCreateProgram()
        vs = _compile(_VERTEX_SHADER, GL.GL_VERTEX_SHADER)
        fs = _compile(_FRAGMENT_SHADER, GL.GL_FRAGMENT_SHADER)
        GL.glAttachShader(self._program, vs)
        GL.glAttachShader(self._program, fs)
        GL.glLinkProgram(self._program)
        if not GL.glGetProgramiv(self._program, GL.GL_LINK_STATUS):
            log = GL.glGetProgramInfoLog(self._program).decode(errors="replace")
            raise RuntimeError("shader link failed: " + log)
        GL.glDeleteShader(vs)
        GL.glDeleteShader(fs)
        self._uniforms = {
            name: GL.glGetUniformLocation(self._program, name)
            for name in ("u_view", "u_proj", "u_offset", "u_tex", "u_factor", "u_alpha_test", "u_cutoff",
                         "u_blend", "u_outline", "u_outline_color", "u_cel", "u_light", "u_threshold",
                         "u_shadow")
        }
        self._white = _upload_texture(np.full((1, 1, 4), 255, np.uint8))
        self._make_framebuffer()

    def _make_framebuffer(self) -> None:
        w, h = self.width, self.height
        self._fbo = GL.glGenFramebuffers(1)
        GL.glBindFramebuffer(GL.GL_FRAMEBUFFER, self._fbo)
        self._targets = GL.glGenRenderbuffers(4)
        formats = (GL.GL_RGBA8, GL.GL_RGBA32F, GL.GL_R32F, GL.GL_DEPTH_COMPONENT32F)
        attachments = (GL.GL_COLOR_ATTACHMENT0, GL.GL_COLOR_ATTACHMENT1, GL.GL_COLOR_ATTACHMENT2,
                       GL.GL_DEPTH_ATTACHMENT)
        for rb, fmt, att in zip(self._targets, formats, attachments):
            GL.glBindRenderbuffer(GL.GL_RENDERBUFFER, rb)
            GL.glRenderbufferStorage(GL.GL_RENDERBUFFER, fmt, w, h)
            GL.glFramebufferRenderbuffer(GL.GL_FRAMEBUFFER, att, GL.GL_RENDERBUFFER, rb)
        status = GL.glCheckFramebufferStatus(GL.GL_FRAMEBUFFER)
        if status != GL.GL_FRAMEBUFFER_COMPLETE:
            raise RuntimeError(f"framebuffer incomplete: 0x{int(status):x}")
        GL.glDrawBuffers(3, [GL.GL_COLOR_ATTACHMENT0, GL.GL_COLOR_ATTACHMENT1, GL.GL_COLOR_ATTACHMENT2])

    def _static(self, mesh: DrawMesh) -> tuple[_StaticMesh, bool]:
        if mesh.key is None:
            return _StaticMesh(mesh, self._white), True
        entry = self._cache.get(mesh.key)
        if entry is not None and entry.num_vertices == len(mesh.positions):
            self._cache.move_to_end(mesh.key)
            return entry, False
        if entry is not None:
            entry.delete()
        entry = _StaticMesh(mesh, self._white)
        self._cache[mesh.key] = entry
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)[1].delete()
        return entry, False

    def render(
        self, mesh: DrawMesh, camera: Camera, shading: Shading | None = None, *, depth: bool = True
    ) -> RenderResult:
        """Draw ``mesh`` seen by ``camera``; returns the images (row 0 at the top).

        ``depth=False`` skips reading the eye-depth image back (``RenderResult.depth`` is then None);
        synthesis does not need it and saves a read-back.
        """
        if (camera.width, camera.height) != (self.width, self.height):
            raise ValueError(
                f"camera is {camera.width} x {camera.height}, rasterizer is {self.width} x {self.height}"
            )
        shading = shading or Shading()
        self.context.make_current()
        static, temporary = self._static(mesh)
        try:
            return self._draw(mesh, static, camera, shading, depth)
        finally:
            if temporary:
                static.delete()

    def _draw(
        self, mesh: DrawMesh, static: _StaticMesh, camera: Camera, shading: Shading, want_depth: bool
    ) -> RenderResult:
        u = self._uniforms
        GL.glBindFramebuffer(GL.GL_FRAMEBUFFER, self._fbo)
        GL.glViewport(0, 0, self.width, self.height)
        GL.glDisable(GL.GL_DITHER)
        GL.glEnable(GL.GL_DEPTH_TEST)
        GL.glDepthFunc(GL.GL_LESS)
        GL.glDepthMask(GL.GL_TRUE)
        # The projection is flipped vertically (see _read), which mirrors the winding too.
        GL.glFrontFace(GL.GL_CW)
        GL.glCullFace(GL.GL_BACK)
        for i in range(3):
            GL.glDisablei(GL.GL_BLEND, i)
        GL.glBlendFuncSeparate(GL.GL_SRC_ALPHA, GL.GL_ONE_MINUS_SRC_ALPHA,
                               GL.GL_ONE, GL.GL_ONE_MINUS_SRC_ALPHA)
        # Without a depth read-back the eye-depth target is neither cleared nor written.
        buffers = [GL.GL_COLOR_ATTACHMENT0, GL.GL_COLOR_ATTACHMENT1,
                   GL.GL_COLOR_ATTACHMENT2 if want_depth else GL.GL_NONE]
        GL.glDrawBuffers(3, buffers)
        GL.glClearColor(0.0, 0.0, 0.0, 0.0)
        GL.glClearDepth(1.0)
        GL.glClear(GL.GL_COLOR_BUFFER_BIT | GL.GL_DEPTH_BUFFER_BIT)

        GL.glUseProgram(self._program)
        GL.glUniformMatrix4fv(u["u_view"], 1, GL.GL_TRUE, camera.view_matrix().astype(np.float32))
        proj = camera.projection_matrix()
        proj[1] *= -1.0  # render upside down, so GL's bottom-up rows read back as top-down image rows
        GL.glUniformMatrix4fv(u["u_proj"], 1, GL.GL_TRUE, proj.astype(np.float32))
        GL.glUniform1i(u["u_tex"], 0)
        GL.glUniform1i(u["u_cel"], int(shading.cel))
        GL.glUniform3f(u["u_light"], *light_in_world(camera.cam_to_world, shading.light_dir))
        GL.glUniform1f(u["u_threshold"], shading.threshold)
        GL.glUniform1f(u["u_shadow"], shading.shadow)
        GL.glUniform3f(u["u_outline_color"], *shading.outline_color)

        dynamic = np.ascontiguousarray(np.concatenate([mesh.positions, mesh.normals], axis=1), np.float32)
        GL.glBindVertexArray(static.vao)
        GL.glBindBuffer(GL.GL_ARRAY_BUFFER, static.dynamic_vbo)
        GL.glBufferSubData(GL.GL_ARRAY_BUFFER, 0, dynamic.nbytes, dynamic)
        GL.glActiveTexture(GL.GL_TEXTURE0)

        any_blend = False
        for i, item in enumerate(static.items[shading.outline]):
            mat = mesh.materials[item.material_index]
            offset, count = static.ranges[(shading.outline, i)]
            if item.cull:
                GL.glEnable(GL.GL_CULL_FACE)
            else:
                GL.glDisable(GL.GL_CULL_FACE)
            if item.blend:
                GL.glEnablei(GL.GL_BLEND, 0)
                any_blend = True
            else:
                GL.glDisablei(GL.GL_BLEND, 0)
            GL.glBindTexture(GL.GL_TEXTURE_2D, static.textures[item.material_index])
            GL.glUniform4f(u["u_factor"], *np.asarray(mat.base_color, np.float32).reshape(4))
            GL.glUniform1i(u["u_alpha_test"], int(mat.alpha_mode != "OPAQUE"))
            GL.glUniform1f(u["u_cutoff"], float(mat.alpha_cutoff))
            GL.glUniform1i(u["u_blend"], int(item.blend))
            GL.glUniform1i(u["u_outline"], int(item.outline))
            GL.glUniform1f(u["u_offset"], float(shading.outline_width * mesh.height) if item.outline else 0.0)
            GL.glDrawElements(GL.GL_TRIANGLES, count, GL.GL_UNSIGNED_INT, ctypes.c_void_p(offset * 4))
        GL.glDisablei(GL.GL_BLEND, 0)
        GL.glBindVertexArray(0)
        return self._read(any_blend, want_depth)

    def _read(self, any_blend: bool, want_depth: bool) -> RenderResult:
        # Rows come back bottom-up; the flipped projection already put the image's top row there.
        w, h = self.width, self.height
        GL.glPixelStorei(GL.GL_PACK_ALIGNMENT, 1)
        rgba = np.empty((h, w, 4), np.uint8)
        udp = np.empty((h, w, 4), np.float32)
        GL.glReadBuffer(GL.GL_COLOR_ATTACHMENT0)
        GL.glReadPixels(0, 0, w, h, GL.GL_RGBA, GL.GL_UNSIGNED_BYTE, rgba)
        GL.glReadBuffer(GL.GL_COLOR_ATTACHMENT1)
        GL.glReadPixels(0, 0, w, h, GL.GL_RGBA, GL.GL_FLOAT, udp)
        depth = None
        if want_depth:
            depth = np.empty((h, w), np.float32)
            GL.glReadBuffer(GL.GL_COLOR_ATTACHMENT2)
            GL.glReadPixels(0, 0, w, h, GL.GL_RED, GL.GL_FLOAT, depth)
        if any_blend:
            _unpremultiply_over_background(rgba)
        return RenderResult(rgba=rgba, udp=udp, depth=depth)

    def close(self) -> None:
        """Free the GL objects (and the context, when this rasterizer created it)."""
        if self._program is None:
            return
        self.context.make_current()
        for entry in self._cache.values():
            entry.delete()
        self._cache.clear()
        GL.glDeleteTextures([self._white])
        GL.glDeleteRenderbuffers(4, self._targets)
        GL.glDeleteFramebuffers(1, [self._fbo])
        GL.glDeleteProgram(self._program)
        self._program = None
        if self._own_context:
            self.context.close()

    def __enter__(self) -> GLRasterizer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _unpremultiply_over_background(rgba: np.ndarray) -> None:
    """In place: where a BLEND surface lies over the background the target holds
    (c * a, a); restore (c, 1) so alpha stays the binary coverage (see scene.py)."""
    a = rgba[..., 3]
    partial = (a > 0) & (a < 255)
    if partial.any():
        scale = 255.0 / a[partial].astype(np.float32)
        rgb = rgba[..., :3][partial].astype(np.float32) * scale[:, None]
        rgba[..., :3][partial] = np.clip(np.rint(rgb), 0, 255).astype(np.uint8)
        rgba[..., 3][partial] = 255
