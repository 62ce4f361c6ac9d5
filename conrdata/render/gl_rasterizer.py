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
and kept in a small LRU cache; each render uploads only posed positions and normals, or, for a
mesh that carries :class:`~conrdata.render.gpu_skin.SkinData` (``mesh_from_rig(...,
gpu_skinning=True)``), only its bone matrices: the bind-pose vertices, joints and weights are
static too and the vertex shader skins them (the numpy path stays the reference).

Read-back goes through pixel buffer objects: :meth:`GLRasterizer.submit` draws a view and
queues its read-back without waiting for the raster, and returns a :class:`PendingRender` whose
``result()`` maps the buffers; several views submitted back to back keep the rasterizer busy
while the caller poses the next one. :meth:`GLRasterizer.render` is ``submit(...).result()``.
"""

from __future__ import annotations

import ctypes
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
from OpenGL import GL  # the package __init__ has already chosen the headless platform
from OpenGL.raw.GL.VERSION.GL_1_0 import glReadPixels as _raw_read_pixels

from conrdata.render import context as _context
from conrdata.render.camera import Camera
from conrdata.render.gpu_skin import SkinData, bone_texels
from conrdata.render.scene import DrawMesh, Shading, draw_list, light_in_world

_VERTEX_SHADER = """
#version 330 core
layout(location = 0) in vec3 a_pos;
layout(location = 1) in vec3 a_normal;
layout(location = 2) in vec3 a_landmark;
layout(location = 3) in vec2 a_uv;
layout(location = 4) in ivec4 a_joints;
layout(location = 5) in vec4 a_weights;
uniform mat4 u_view;
uniform mat4 u_proj;
uniform float u_offset;
uniform int u_skin;
uniform sampler2D u_bones;  // 3 x B RGBA32F: texel (c, b) is row c of bone b's 3 x 4 map
out vec3 v_landmark;
out vec2 v_uv;
out vec3 v_normal;
out float v_depth;
void main() {
    vec3 pos = a_pos;
    vec3 normal = a_normal;
    if (u_skin == 1) {
        // a_pos / a_normal are the bind pose: blend the four bone maps, as the numpy path does.
        vec4 r0 = vec4(0.0), r1 = vec4(0.0), r2 = vec4(0.0);
        for (int k = 0; k < 4; ++k) {
            float w = a_weights[k];
            int b = a_joints[k];
            r0 += w * texelFetch(u_bones, ivec2(0, b), 0);
            r1 += w * texelFetch(u_bones, ivec2(1, b), 0);
            r2 += w * texelFetch(u_bones, ivec2(2, b), 0);
        }
        pos = vec3(dot(r0.xyz, a_pos), dot(r1.xyz, a_pos), dot(r2.xyz, a_pos)) + vec3(r0.w, r1.w, r2.w);
        normal = vec3(dot(r0.xyz, a_normal), dot(r1.xyz, a_normal), dot(r2.xyz, a_normal));
        normal /= max(length(normal), 1e-12);
    }
    vec4 eye = u_view * vec4(pos + normal * u_offset, 1.0);
    v_depth = -eye.z;
    v_landmark = a_landmark;
    v_uv = a_uv;
    v_normal = normal;
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
    """GL objects for one mesh key: VAO, static and dynamic VBOs, one EBO, textures; and, made on
    first use, a second VAO whose positions and normals are the bind pose plus joints and weights
    (skinning in the vertex shader)."""

    def __init__(self, mesh: DrawMesh, white_texture: int):
        self.vao = GL.glGenVertexArrays(1)
        self.dynamic_vbo, self.static_vbo, self.ebo = GL.glGenBuffers(3)
        self.skin_vao = None
        self.skin_vbos: list[int] = []
        GL.glBindVertexArray(self.vao)
        static = np.ascontiguousarray(np.concatenate([mesh.landmarks, mesh.uvs], axis=1), np.float32)
        GL.glBindBuffer(GL.GL_ARRAY_BUFFER, self.static_vbo)
        GL.glBufferData(GL.GL_ARRAY_BUFFER, static.nbytes, static, GL.GL_STATIC_DRAW)
        self._bind_static_attributes()
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

    def _bind_static_attributes(self) -> None:
        """Landmarks (location 2) and UVs (location 3) from the static VBO, into the bound VAO."""
        GL.glBindBuffer(GL.GL_ARRAY_BUFFER, self.static_vbo)
        GL.glEnableVertexAttribArray(2)
        GL.glVertexAttribPointer(2, 3, GL.GL_FLOAT, False, 20, ctypes.c_void_p(0))
        GL.glEnableVertexAttribArray(3)
        GL.glVertexAttribPointer(3, 2, GL.GL_FLOAT, False, 20, ctypes.c_void_p(12))

    def skinned_vao(self, skin: SkinData) -> int:
        """The VAO drawing the bind pose for the vertex shader to skin; uploads its data once."""
        if self.skin_vao is not None:
            return self.skin_vao
        n = self.num_vertices
        if skin.vertices.shape != (n, 3) or skin.joints.shape != (n, 4) or skin.weights.shape != (n, 4):
            raise ValueError(f"skin data does not match the mesh's {n} vertices")
        bind = np.ascontiguousarray(np.concatenate([skin.vertices, skin.normals, skin.weights], axis=1),
                                    np.float32)
        joints = np.ascontiguousarray(skin.joints, np.int32)
        self.skin_vao = GL.glGenVertexArrays(1)
        self.skin_vbos = list(GL.glGenBuffers(2))
        GL.glBindVertexArray(self.skin_vao)
        self._bind_static_attributes()
        GL.glBindBuffer(GL.GL_ARRAY_BUFFER, self.skin_vbos[0])
        GL.glBufferData(GL.GL_ARRAY_BUFFER, bind.nbytes, bind, GL.GL_STATIC_DRAW)
        for loc, size, offset in ((0, 3, 0), (1, 3, 12), (5, 4, 24)):
            GL.glEnableVertexAttribArray(loc)
            GL.glVertexAttribPointer(loc, size, GL.GL_FLOAT, False, 40, ctypes.c_void_p(offset))
        GL.glBindBuffer(GL.GL_ARRAY_BUFFER, self.skin_vbos[1])
        GL.glBufferData(GL.GL_ARRAY_BUFFER, joints.nbytes, joints, GL.GL_STATIC_DRAW)
        GL.glEnableVertexAttribArray(4)
        GL.glVertexAttribIPointer(4, 4, GL.GL_INT, 16, ctypes.c_void_p(0))
        GL.glBindBuffer(GL.GL_ELEMENT_ARRAY_BUFFER, self.ebo)
        GL.glBindVertexArray(0)
        return self.skin_vao

    def delete(self) -> None:
        GL.glDeleteVertexArrays(1, [self.vao])
        GL.glDeleteBuffers(3, [self.dynamic_vbo, self.static_vbo, self.ebo])
        if self.skin_vao is not None:
            GL.glDeleteVertexArrays(1, [self.skin_vao])
            GL.glDeleteBuffers(2, self.skin_vbos)
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
    ``camera.width == width`` and ``camera.height == height``; ``submit(...)`` draws and queues the
    read-back, returning a :class:`PendingRender` to collect later (on the same thread).
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
                         "u_shadow", "u_skin", "u_bones")
        }
        self._white = _upload_texture(np.full((1, 1, 4), 255, np.uint8))
        self._bones = GL.glGenTextures(1)
        self._bone_rows = 0
        self._max_texture_size = int(GL.glGetIntegerv(GL.GL_MAX_TEXTURE_SIZE))
        self._free_slots: list[_ReadSlot] = []
        self._outstanding: list[PendingRender] = []
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

        ``depth=False`` skips reading the eye-depth image back (``RenderResult.depth`` is then None).
        """
        return self.submit(mesh, camera, shading, depth=depth).result()

    # Read-back slots kept alive at most; submitting more than this without collecting resolves the oldest.
    max_pending = 8
    # False: read straight into client memory at submit (the path before pixel buffer objects;
    # benchmarks/synth.py's sequential baseline).
    read_with_pbo = True

    def submit(
        self, mesh: DrawMesh, camera: Camera, shading: Shading | None = None, *, depth: bool = True
    ) -> PendingRender:
        """Draw ``mesh`` and queue its read-back into pixel buffer objects, without waiting for the
        raster; ``.result()`` on the returned object gives the :class:`RenderResult`. Views submitted
        back to back are rasterized while the caller prepares the next one."""
        if (camera.width, camera.height) != (self.width, self.height):
            raise ValueError(
                f"camera is {camera.width} x {camera.height}, rasterizer is {self.width} x {self.height}"
            )
        shading = shading or Shading()
        self.context.make_current()
        static, temporary = self._static(mesh)
        try:
            any_blend = self._draw(mesh, static, camera, shading, depth)
        finally:
            if temporary:
                static.delete()
        if not self.read_with_pbo:
            pending = PendingRender(self, None, any_blend, depth)
            pending._result = self._read_now(any_blend, depth)
            return pending
        while len(self._outstanding) >= self.max_pending:
            self._outstanding[0].result()
        slot = self._free_slots.pop() if self._free_slots else _ReadSlot(self.width, self.height)
        slot.queue(depth)
        pending = PendingRender(self, slot, any_blend, depth)
        self._outstanding.append(pending)
        return pending

    def _read_now(self, any_blend: bool, want_depth: bool) -> RenderResult:
        """Synchronous read-back into client memory (waits for the raster)."""
        w, h = self.width, self.height
        GL.glPixelStorei(GL.GL_PACK_ALIGNMENT, 1)
        out = [np.empty((h, w, 4), np.uint8), np.empty((h, w, 4), np.float32)]
        if want_depth:
            out.append(np.empty((h, w), np.float32))
        for i, (arr, (fmt, typ, _bpp)) in enumerate(zip(out, _TARGETS)):
            GL.glReadBuffer(GL.GL_COLOR_ATTACHMENT0 + i)
            GL.glReadPixels(0, 0, w, h, fmt, typ, arr)
        if any_blend:
            _unpremultiply_over_background(out[0])
        return RenderResult(rgba=out[0], udp=out[1], depth=out[2] if want_depth else None)

    def _upload_bones(self, skin: SkinData) -> None:
        texels = bone_texels(skin.matrices)
        rows = len(texels)
        if rows > self._max_texture_size:
            raise ValueError(f"{rows} bones exceed this GL's texture size limit {self._max_texture_size}")
        GL.glActiveTexture(GL.GL_TEXTURE1)
        GL.glBindTexture(GL.GL_TEXTURE_2D, self._bones)
        GL.glPixelStorei(GL.GL_UNPACK_ALIGNMENT, 4)
        if rows != self._bone_rows:
            GL.glTexImage2D(GL.GL_TEXTURE_2D, 0, GL.GL_RGBA32F, 3, rows, 0, GL.GL_RGBA, GL.GL_FLOAT, texels)
            GL.glTexParameteri(GL.GL_TEXTURE_2D, GL.GL_TEXTURE_MIN_FILTER, GL.GL_NEAREST)
            GL.glTexParameteri(GL.GL_TEXTURE_2D, GL.GL_TEXTURE_MAG_FILTER, GL.GL_NEAREST)
            self._bone_rows = rows
        else:
            GL.glTexSubImage2D(GL.GL_TEXTURE_2D, 0, 0, 0, 3, rows, GL.GL_RGBA, GL.GL_FLOAT, texels)
        GL.glActiveTexture(GL.GL_TEXTURE0)

    def _draw(
        self, mesh: DrawMesh, static: _StaticMesh, camera: Camera, shading: Shading, want_depth: bool
    ) -> bool:
        """Issue the draw calls into the framebuffer; True when a BLEND material was drawn."""
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

        GL.glUniform1i(u["u_bones"], 1)
        GL.glUniform1i(u["u_skin"], int(mesh.skin is not None))
        if mesh.skin is not None:
            self._upload_bones(mesh.skin)
            GL.glBindVertexArray(static.skinned_vao(mesh.skin))
        else:
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
        return any_blend

    def close(self) -> None:
        """Free the GL objects (and the context, when this rasterizer created it); views submitted
        and not yet collected are read back first."""
        if self._program is None:
            return
        self.context.make_current()
        while self._outstanding:
            self._outstanding[0].result()
        for slot in self._free_slots:
            slot.delete()
        self._free_slots.clear()
        for entry in self._cache.values():
            entry.delete()
        self._cache.clear()
        GL.glDeleteTextures([self._white, self._bones])
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


# (format, type, bytes per pixel) of the three colour targets, in attachment order.
_TARGETS = ((GL.GL_RGBA, GL.GL_UNSIGNED_BYTE, 4), (GL.GL_RGBA, GL.GL_FLOAT, 16), (GL.GL_RED, GL.GL_FLOAT, 4))


class _ReadSlot:
    """Three pixel pack buffers (RGBA8, UDP, eye depth) one view is read back into."""

    def __init__(self, width: int, height: int):
        self.width, self.height = width, height
        self.pbos = list(GL.glGenBuffers(3))
        for pbo, (_fmt, _typ, bpp) in zip(self.pbos, _TARGETS):
            GL.glBindBuffer(GL.GL_PIXEL_PACK_BUFFER, pbo)
            GL.glBufferData(GL.GL_PIXEL_PACK_BUFFER, width * height * bpp, None, GL.GL_STREAM_READ)
        GL.glBindBuffer(GL.GL_PIXEL_PACK_BUFFER, 0)

    def queue(self, want_depth: bool) -> None:
        """Copy the bound framebuffer's targets into the buffers (asynchronous where the driver can)."""
        GL.glPixelStorei(GL.GL_PACK_ALIGNMENT, 1)
        for i, (pbo, (fmt, typ, _bpp)) in enumerate(zip(self.pbos, _TARGETS)):
            if i == 2 and not want_depth:
                break
            GL.glBindBuffer(GL.GL_PIXEL_PACK_BUFFER, pbo)
            GL.glReadBuffer(GL.GL_COLOR_ATTACHMENT0 + i)
            _raw_read_pixels(0, 0, self.width, self.height, fmt, typ, ctypes.c_void_p(0))
        GL.glBindBuffer(GL.GL_PIXEL_PACK_BUFFER, 0)

    def fetch(self, index: int, out: np.ndarray) -> None:
        """Map buffer ``index`` (waits for its copy) and copy it into ``out``."""
        GL.glBindBuffer(GL.GL_PIXEL_PACK_BUFFER, self.pbos[index])
        ptr = GL.glMapBufferRange(GL.GL_PIXEL_PACK_BUFFER, 0, out.nbytes, GL.GL_MAP_READ_BIT)
        if not ptr:
            GL.glBindBuffer(GL.GL_PIXEL_PACK_BUFFER, 0)
            raise RuntimeError("glMapBufferRange failed on a read-back buffer")
        try:
            ctypes.memmove(out.ctypes.data, ptr, out.nbytes)
        finally:
            GL.glUnmapBuffer(GL.GL_PIXEL_PACK_BUFFER)
            GL.glBindBuffer(GL.GL_PIXEL_PACK_BUFFER, 0)

    def delete(self) -> None:
        GL.glDeleteBuffers(3, self.pbos)


class PendingRender:
    """A submitted view (:meth:`GLRasterizer.submit`); ``result()`` waits for its read-back once and
    returns the same :class:`RenderResult` on every later call. Collect it on the thread that owns
    the rasterizer's GL context."""

    def __init__(self, raster: GLRasterizer, slot: _ReadSlot | None, any_blend: bool, want_depth: bool):
        self._raster, self._slot = raster, slot
        self._any_blend, self._want_depth = any_blend, want_depth
        self._result: RenderResult | None = None

    def result(self) -> RenderResult:
        if self._result is None:
            r, slot = self._raster, self._slot
            r.context.make_current()
            # Rows come back bottom-up; the flipped projection already put the image's top row there.
            h, w = slot.height, slot.width
            rgba = np.empty((h, w, 4), np.uint8)
            udp = np.empty((h, w, 4), np.float32)
            slot.fetch(0, rgba)
            slot.fetch(1, udp)
            depth = None
            if self._want_depth:
                depth = np.empty((h, w), np.float32)
                slot.fetch(2, depth)
            if self._any_blend:
                _unpremultiply_over_background(rgba)
            self._result = RenderResult(rgba=rgba, udp=udp, depth=depth)
            r._outstanding.remove(self)
            r._free_slots.append(slot)
            self._slot = None
        return self._result


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
