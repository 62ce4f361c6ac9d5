"""A numpy z-buffer rasterizer: the ground truth the GL rasterizer is checked against.

Same inputs (:class:`~conrdata.render.scene.DrawMesh`, :class:`~conrdata.render.camera.Camera`,
:class:`~conrdata.render.scene.Shading`), same draw list and rules as the GL path:

- vertices go through the camera's view and projection matrices (float64 here);
  window coordinates follow OpenGL (y up, pixel centres at +0.5, depth in [0, 1]);
- a pixel is covered when its centre lies inside the triangle; centres exactly on
  an edge follow the top-left rule (in y-up window coordinates, after orienting the
  triangle counter-clockwise);
- back faces (clockwise in the window) are dropped unless the item is double-sided;
- window depth is interpolated linearly in screen space, every other attribute
  with perspective-correct barycentrics (b_i / w_i, renormalised);
- the alpha test samples the base-colour texture bilinearly with REPEAT wrapping;
- visibility: the smallest depth wins (GL_LESS), ties go to the earlier draw.

It also reports which pixels are *ambiguous* (``RenderResult.ambiguous``): a pixel
whose centre lies within ``EDGE_EPS`` of the edge of a triangle that is, or could
have been, the visible one (silhouettes, depth edges, alpha-test edges), whose
sampled alpha is within ``ALPHA_EPS`` of the cutoff, or whose two nearest surfaces
tie in depth. There a real GPU, which snaps vertices to a sub-pixel grid and filters
in fixed point, may legitimately decide the other way; everywhere else both
rasterizers must agree to float precision.

Limits: triangles with a vertex outside the near/far planes are dropped rather
than clipped (our cameras frame the character well inside them), and the colour
of BLEND surfaces is their own colour, not blended (UDP, occupancy and depth -
what the cross-check compares - do not depend on blending).

Speed: triangles are grouped by bounding-box size and rasterized in vectorised
batches, so a few thousand triangles at 128 px take well under a second.
"""

from __future__ import annotations

import numpy as np

from conrdata.render.camera import Camera
from conrdata.render.gl_rasterizer import RenderResult
from conrdata.render.scene import DrawMesh, Shading, alpha_kept, draw_list, light_in_world, outline_positions

_BATCH_FRAGMENTS = 1 << 21
#: Pixels whose centre is closer than this to a triangle edge (in pixels) are "marginal": GPUs snap
#: vertices to a sub-pixel grid (llvmpipe: 1/256 px), so either answer is right there.
EDGE_EPS = 1.0 / 128
#: Sampled alpha this close to a material's cutoff is marginal too (GPUs filter in 8-bit steps).
ALPHA_EPS = 2.0 / 255
#: Window depths closer than this are a tie either rasterizer may break either way.
DEPTH_EPS = 1e-6


def sample_bilinear(texture: np.ndarray | None, uv: np.ndarray) -> np.ndarray:
    """Bilinear REPEAT sampling of an H x W x 4 uint8 texture at glTF UVs (N, 2) -> (N, 4) in [0, 1]."""
    if texture is None:
        return np.ones((len(uv), 4))
    tex = texture.astype(np.float64) / 255.0
    h, w = tex.shape[:2]
    x = uv[:, 0] * w - 0.5
    y = uv[:, 1] * h - 0.5
    x0, y0 = np.floor(x), np.floor(y)
    fx, fy = (x - x0)[:, None], (y - y0)[:, None]
    x0 = x0.astype(np.int64)
    y0 = y0.astype(np.int64)
    x1, y1 = (x0 + 1) % w, (y0 + 1) % h
    x0, y0 = x0 % w, y0 % h
    top = tex[y0, x0] * (1 - fx) + tex[y0, x1] * fx
    bottom = tex[y1, x0] * (1 - fx) + tex[y1, x1] * fx
    return top * (1 - fy) + bottom * fy


def _window(camera: Camera, positions: np.ndarray):
    clip = camera.world_to_clip(positions)
    w = clip[:, 3]
    safe_w = np.where(np.abs(w) < 1e-12, 1e-12, w)
    ndc = clip[:, :3] / safe_w[:, None]
    wx = (ndc[:, 0] + 1) * 0.5 * camera.width
    wy = (ndc[:, 1] + 1) * 0.5 * camera.height
    wz = (ndc[:, 2] + 1) * 0.5
    inside_depth = (w > 0) & (ndc[:, 2] >= -1) & (ndc[:, 2] <= 1)
    return np.stack([wx, wy], axis=1), wz, w, inside_depth


def _edge(ax, ay, bx, by, px, py):
    return (bx - ax) * (py - ay) - (by - ay) * (px - ax)


def _fragments(xy, tri, ccw_only: bool, width: int, height: int):
    """Covered and nearly covered pixels of triangles ``tri`` (T, 3) vertex indices with window
    coords ``xy``.

    Returns (triangle index, pixel x, pixel y, barycentrics (N, 3), front-facing flag, covered,
    marginal): ``covered`` by the fill rule; ``marginal`` when the pixel centre lies within
    ``EDGE_EPS`` pixels of one of the triangle's edges (inside or out), where a GPU's
    sub-pixel vertex snapping may decide the other way."""
    p = xy[tri]  # (T, 3, 2)
    area = _edge(p[:, 0, 0], p[:, 0, 1], p[:, 1, 0], p[:, 1, 1], p[:, 2, 0], p[:, 2, 1])
    front = area > 0
    keep = (area != 0) & (front | ~ccw_only)
    idx = np.nonzero(keep)[0]
    if len(idx) == 0:
        return None
    p = p[idx]
    front = front[idx]
    # Orient every triangle counter-clockwise (swap vertices 1 and 2 of clockwise ones).
    order = np.where(front[:, None], [0, 1, 2], [0, 2, 1])
    p = np.take_along_axis(p, order[:, :, None], axis=1)
    x0 = np.clip(np.ceil(p[:, :, 0].min(1) - 0.5), 0, width).astype(np.int64)
    x1 = np.clip(np.floor(p[:, :, 0].max(1) - 0.5), -1, width - 1).astype(np.int64)
    y0 = np.clip(np.ceil(p[:, :, 1].min(1) - 0.5), 0, height).astype(np.int64)
    y1 = np.clip(np.floor(p[:, :, 1].max(1) - 0.5), -1, height - 1).astype(np.int64)
    span = np.maximum(x1 - x0 + 1, y1 - y0 + 1)
    out = []
    size = 1
    remaining = (x1 >= x0) & (y1 >= y0)
    while remaining.any():
        sel = np.nonzero(remaining & (span <= size))[0]
        remaining &= span > size
        if len(sel):
            step = max(1, _BATCH_FRAGMENTS // (size * size))
            for s in range(0, len(sel), step):
                batch = sel[s : s + step]
                out.append(_grid_fragments(p, idx, order, front, x0, y0, batch, size, width, height))
        size *= 2
    out = [o for o in out if o is not None]
    if not out:
        return None
    return tuple(np.concatenate([o[k] for o in out]) for k in range(7))


def _grid_fragments(p, idx, order, front, x0, y0, sel, size, width, height):
    dy, dx = np.mgrid[0:size, 0:size]
    px = x0[sel, None] + dx.reshape(1, -1)
    py = y0[sel, None] + dy.reshape(1, -1)
    cx, cy = px + 0.5, py + 0.5
    q = p[sel]
    es = []
    in_image = (px < width) & (py < height)
    inside = in_image.copy()
    loose = in_image.copy()
    near = np.zeros_like(in_image)
    for a, b in ((1, 2), (2, 0), (0, 1)):
        ax, ay = q[:, a, 0, None], q[:, a, 1, None]
        bx, by = q[:, b, 0, None], q[:, b, 1, None]
        e = _edge(ax, ay, bx, by, cx, cy)
        ddx, ddy = bx - ax, by - ay
        top_left = (ddy < 0) | ((ddy == 0) & (ddx < 0))
        inside &= (e > 0) | ((e == 0) & top_left)
        dist = e / np.maximum(np.hypot(ddx, ddy), 1e-12)  # signed distance in pixels, > 0 inside
        loose &= dist > -EDGE_EPS
        near |= np.abs(dist) < EDGE_EPS
        es.append(e)
    t, k = np.nonzero(loose)
    if len(t) == 0:
        return None
    e = np.stack([es[0][t, k], es[1][t, k], es[2][t, k]], axis=1)
    bary_ccw = e / e.sum(axis=1, keepdims=True)
    # Back to the triangle's own vertex order.
    bary = np.empty_like(bary_ccw)
    np.put_along_axis(bary, order[sel][t], bary_ccw, axis=1)
    return idx[sel][t], px[t, k], py[t, k], bary, front[sel][t], inside[t, k], near[t, k]


def reference_rasterize(mesh: DrawMesh, camera: Camera, shading: Shading | None = None) -> RenderResult:
    """Rasterize ``mesh`` seen by ``camera`` in numpy; same outputs and conventions as
    :meth:`conrdata.render.gl_rasterizer.GLRasterizer.render` (row 0 at the top)."""
    if mesh.normals is None:
        raise ValueError("this mesh is left to the GL vertex shader to skin (gpu_skinning=True); "
                         "pose it with gpu_skinning=False for the numpy reference")
    shading = shading or Shading()
    W, H = camera.width, camera.height
    view = camera.view_matrix()
    light = light_in_world(camera.cam_to_world, shading.light_dir).astype(np.float64)
    items = draw_list(mesh, shading)
    frags = {k: [] for k in ("pix", "z", "order", "landmark", "depth", "color", "marginal", "maybe_pix",
                             "maybe_z")}
    for order, item in enumerate(items):
        mat = mesh.materials[item.material_index]
        pos = outline_positions(mesh, shading) if item.outline else mesh.positions
        xy, wz, w, ok = _window(camera, pos)
        tri = item.faces[ok[item.faces].all(axis=1)]
        if len(tri) == 0:
            continue
        got = _fragments(xy, tri, item.cull, W, H)
        if got is None:
            continue
        t, px, py, bary, front, covered, near = got
        vi = tri[t]  # (N, 3) vertex indices
        z = np.einsum("nk,nk->n", bary, wz[vi])
        persp = bary / w[vi]
        persp /= persp.sum(axis=1, keepdims=True)

        def interp(attr, persp=persp, vi=vi):
            return np.einsum("nk,nkc->nc", persp, attr.astype(np.float64)[vi])

        uv = interp(mesh.uvs)
        color = sample_bilinear(mat.texture, uv) * np.asarray(mat.base_color, np.float64).reshape(1, 4)
        kept = alpha_kept(color[:, 3], mat)
        alpha_near = np.zeros(len(kept), bool)
        if mat.alpha_mode != "OPAQUE":
            alpha_near = np.abs(color[:, 3] - mat.alpha_cutoff) < ALPHA_EPS
        if item.outline:
            color[:, :3] = shading.outline_color
        elif shading.cel:
            n = interp(mesh.normals)
            n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
            n[~front] *= -1
            color[:, :3] *= np.where((n @ light < shading.threshold)[:, None], shading.shadow, 1.0)
        eye_z = pos.astype(np.float64) @ view[2, :3] + view[2, 3]
        depth = -np.einsum("nk,nk->n", persp, eye_z[vi])
        in_depth = (z >= 0) & (z <= 1)
        # Fragments that surely exist compete for the pixel; marginal ones (near an edge, or alpha
        # near the cutoff) only mark the pixel ambiguous if they could have won it.
        keep = covered & kept & in_depth
        maybe = in_depth & (near | alpha_near) & (covered | near) & (kept | alpha_near)
        frags["pix"].append((py * W + px)[keep])
        frags["z"].append(z[keep])
        frags["order"].append(np.full(int(keep.sum()), order))
        frags["landmark"].append(interp(mesh.landmarks)[keep])
        frags["depth"].append(depth[keep])
        frags["color"].append(color[keep, :3])
        frags["marginal"].append(maybe[keep])
        frags["maybe_pix"].append((py * W + px)[maybe & ~keep])
        frags["maybe_z"].append(z[maybe & ~keep])

    rgba = np.zeros((H * W, 4), np.uint8)
    udp = np.zeros((H * W, 4), np.float32)
    depth_img = np.zeros(H * W, np.float32)
    ambiguous = np.zeros(H * W, bool)
    win_z = np.full(H * W, np.inf)
    if frags["pix"]:
        pix = np.concatenate(frags["pix"])
        if len(pix):
            # Winner per pixel: smallest window depth (float32, like the depth buffer), then draw order.
            z = np.concatenate(frags["z"]).astype(np.float32)
            order = np.concatenate(frags["order"])
            sort = np.lexsort((order, z, pix))
            first = np.ones(len(sort), bool)
            first[1:] = pix[sort][1:] != pix[sort][:-1]
            win = sort[first]
            wp = pix[win]
            landmarks = np.concatenate(frags["landmark"])
            udp[wp, :3] = landmarks[win]
            udp[wp, 3] = 1.0
            depth_img[wp] = np.concatenate(frags["depth"])[win]
            color = np.concatenate(frags["color"])[win]
            rgba[wp, :3] = np.clip(np.rint(color * 255), 0, 255).astype(np.uint8)
            rgba[wp, 3] = 255
            win_z[wp] = z[win]
            ambiguous[wp] = np.concatenate(frags["marginal"])[win]
            # A runner-up within DEPTH_EPS of the winner, showing another landmark, is a tie.
            second = np.zeros(len(sort), bool)
            second[1:] = ~first[1:]
            runner = sort[second]
            tie = (z[runner] - win_z[pix[runner]] < DEPTH_EPS) & (
                np.abs(landmarks[runner] - udp[pix[runner], :3]).max(axis=1) > 1e-4)
            ambiguous[pix[runner][tie]] = True
        maybe_pix = np.concatenate(frags["maybe_pix"])
        if len(maybe_pix):
            maybe_z = np.concatenate(frags["maybe_z"]).astype(np.float32)
            ambiguous[maybe_pix[maybe_z <= win_z[maybe_pix] + DEPTH_EPS]] = True
    # Window rows run bottom-up; images run top-down.
    return RenderResult(
        rgba=rgba.reshape(H, W, 4)[::-1].copy(),
        udp=udp.reshape(H, W, 4)[::-1].copy(),
        depth=depth_img.reshape(H, W)[::-1].copy(),
        ambiguous=ambiguous.reshape(H, W)[::-1].copy(),
    )
