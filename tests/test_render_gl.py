"""The GL rasterizer against the numpy reference and against geometry we can compute by hand."""

import numpy as np
import pytest

from conrdata.render.camera import frame_points
from conrdata.render.gl_rasterizer import GLRasterizer
from conrdata.render.reference import reference_rasterize
from conrdata.render.scene import Shading, mesh_from_rig
from conrdata.rig.model import Material, identity_rotations
from conrdata.testing.boxes import boxes_rig, checker_texture, demo_scene_rig
from conrdata.udp import encode_landmarks

SIZE = 128


@pytest.fixture(scope="module")
def gl():
    r = GLRasterizer(SIZE, SIZE)
    yield r
    r.close()


def procedural_or_none():
    try:
        from conrdata.rig.procedural import build_character
    except ImportError:
        return None
    return build_character(3)


def posed(rig, seed):
    """A mild random pose, every bone turned up to ~25 degrees (independent of the pose sampler)."""
    rng = np.random.default_rng(seed)
    q = identity_rotations(rig)
    axis = rng.normal(size=(rig.num_bones, 3))
    axis /= np.linalg.norm(axis, axis=1, keepdims=True)
    angle = rng.uniform(-0.45, 0.45, size=rig.num_bones)
    q[:, :3] = axis * np.sin(angle / 2)[:, None]
    q[:, 3] = np.cos(angle / 2)
    return q


def subjects():
    out = [("scene", demo_scene_rig())]
    char = procedural_or_none()
    if char is not None:
        out.append(("procedural", char))
    return out


CASES = [
    (0.0, 5.0, "perspective", Shading(), False),
    (140.0, 25.0, "orthographic", Shading(cel=True), True),
    (250.0, -8.0, "perspective", Shading(cel=True, outline=True, outline_width=0.006), True),
]


@pytest.fixture(scope="module")
def gl256():
    r = GLRasterizer(256, 256)
    yield r
    r.close()


@pytest.mark.parametrize("name,rig", subjects(), ids=lambda v: v if isinstance(v, str) else "")
def test_cross_check_against_reference(gl256, name, rig):
    for i, (yaw, pitch, projection, shading, use_pose) in enumerate(CASES):
        q = posed(rig, i) if use_pose and rig.humanoid else None
        mesh = mesh_from_rig(rig, q, key=name)
        cam = frame_points(mesh.positions, yaw, pitch, width=256, height=256, projection=projection)
        a = gl256.render(mesh, cam, shading)
        b = reference_rasterize(mesh, cam, shading)
        fg = (a.udp[..., 3] > 0) | (b.udp[..., 3] > 0)
        assert fg.sum() > 5000, "the subject should fill a good part of the image"
        close = (np.abs(a.udp - b.udp) <= 1e-4).all(axis=-1)
        frac = close[fg].mean()
        assert frac >= 0.995, f"{name} case {i}: only {frac:.4f} of foreground pixels agree"
        # Differing pixels, occupancy included, lie where a visible edge crosses the pixel centre.
        edges = b.ambiguous
        assert (fg & edges).sum() < 0.05 * fg.sum()  # the allowance is a thin set of edge pixels
        stray = fg & ~close & ~edges
        assert not stray.any(), f"{name} case {i}: {stray.sum()} differing pixels off the edges"
        assert not ((a.udp[..., 3] != b.udp[..., 3]) & ~edges).any()
        both = (a.udp[..., 3] > 0) & (b.udp[..., 3] > 0) & close
        np.testing.assert_allclose(a.depth[both], b.depth[both], rtol=1e-4)


def front_back_rig(reverse=False):
    boxes = [((0, 0.5, 0.3), 0.4, 0), ((0, 0.5, -0.3), (0.8, 0.8, 0.2), 0)]
    return boxes_rig(boxes[::-1] if reverse else boxes)


@pytest.mark.parametrize("reverse", [False, True])
def test_nearer_surface_wins(gl, reverse):
    rig = front_back_rig(reverse)
    H = rig.height()
    mesh = mesh_from_rig(rig)
    for yaw, expect_z in ((0.0, 0.5), (180.0, -0.4)):
        # From the front the small box's front face (z = 0.5) shows in the middle; from behind, the big
        # box's back face (z = -0.4) hides the small box.
        cam = frame_points(mesh.positions, yaw, 0.0, width=SIZE, height=SIZE)
        res = gl.render(mesh, cam)
        centre = res.udp[SIZE // 2 - 2 : SIZE // 2 + 2, SIZE // 2 - 2 : SIZE // 2 + 2].reshape(-1, 4)
        expected = encode_landmarks(np.array([[0, 0, expect_z]]), H)[0, 2]
        np.testing.assert_allclose(centre[:, 2], expected, atol=1e-5)
        np.testing.assert_array_equal(centre[:, 3], 1)


@pytest.mark.parametrize("projection", ["perspective", "orthographic"])
def test_bind_pose_depth_unprojects_to_the_landmark(gl, projection):
    rig = procedural_or_none() or demo_scene_rig()
    mesh = mesh_from_rig(rig, identity_rotations(rig))
    cam = frame_points(mesh.positions, 35.0, 15.0, width=SIZE, height=SIZE, projection=projection)
    res = gl.render(mesh, cam)
    fg = res.udp[..., 3] > 0
    rows, cols = np.nonzero(fg)
    uv = np.stack([cols + 0.5, rows + 0.5], axis=1)
    world = cam.unproject(uv, res.depth[rows, cols])
    # In the bind pose the landmark IS the encoded world position of the surface point.
    np.testing.assert_allclose(encode_landmarks(world, rig.height()), res.udp[rows, cols, :3], atol=2e-4)


def test_alpha_equals_occupancy_and_background_is_zero(gl):
    mesh = mesh_from_rig(demo_scene_rig(), key="alpha")
    for yaw in (20.0, 160.0, 290.0):
        cam = frame_points(mesh.positions, yaw, 10.0, width=SIZE, height=SIZE)
        res = gl.render(mesh, cam, Shading(cel=True, outline=True, outline_width=0.01))
        occ = res.udp[..., 3]
        assert set(np.unique(occ)) <= {0.0, 1.0}
        np.testing.assert_array_equal(res.rgba[..., 3], (occ * 255).astype(np.uint8))
        assert not res.udp[occ == 0].any()
        assert not res.depth[occ == 0].any()
        assert (res.depth[occ == 1] > 0).all()


def test_mask_material_cuts_holes_in_colour_and_udp_alike(gl):
    holey = Material("holes", texture=checker_texture(transparent=True), alpha_mode="MASK")
    solid = Material("solid", texture=checker_texture(transparent=True), alpha_mode="OPAQUE")
    for mat, expect_holes in ((holey, True), (solid, False)):
        rig = boxes_rig([((0, 0.5, 0), (1.0, 1.0, 0.01), 0)], [mat])
        mesh = mesh_from_rig(rig)
        cam = frame_points(mesh.positions, 0.0, 0.0, width=SIZE, height=SIZE, projection="orthographic")
        res = gl.render(mesh, cam)
        inner = res.udp[20:-20, 20:-20, 3]
        assert (inner == 0).any() == expect_holes
        np.testing.assert_array_equal(res.rgba[..., 3] == 255, res.udp[..., 3] == 1)


def test_back_faces_culled_unless_double_sided(gl):
    quad = boxes_rig([((0, 0.5, 0), 1.0, 0)])
    keep = np.nonzero(quad.face_material == 0)[0][10:12]  # the +Z face of the box
    for double_sided in (False, True):
        mat = Material("m", double_sided=double_sided)
        rig = quad.replace(faces=quad.faces[keep], face_material=quad.face_material[keep], materials=[mat])
        mesh = mesh_from_rig(rig)
        seen = {}
        for yaw in (0.0, 180.0):
            cam = frame_points(mesh.positions, yaw, 0.0, width=SIZE, height=SIZE)
            seen[yaw] = gl.render(mesh, cam).udp[..., 3].sum()
        assert seen[0.0] > 1000
        assert (seen[180.0] > 1000) == double_sided


def test_blend_material_colour_over_background_and_over_opaque(gl):
    glass = Material("glass", base_color=np.array([0.0, 1.0, 0.0, 0.5], np.float32), alpha_mode="BLEND",
                     alpha_cutoff=0.25)
    red = Material("red", base_color=np.array([1.0, 0.0, 0.0, 1.0], np.float32))
    boxes = [((0, 0.5, 0.3), (1.0, 1.0, 0.1), 0), ((0.3, 0.5, -0.3), (0.6, 0.4, 0.1), 1)]
    rig = boxes_rig(boxes, [glass, red])
    mesh = mesh_from_rig(rig)
    camera = frame_points(mesh.positions, 0.0, 0.0, width=SIZE, height=SIZE, projection="orthographic")
    res = gl.render(mesh, camera)
    # Glass alone at x = -0.3; glass in front of red at x = 0.3 (both at mid height).
    probe = np.array([[-0.3, 0.5, 0.35], [0.3, 0.5, 0.35]])
    (c_bg, r_bg), (c_red, r_red) = np.floor(camera.project(probe)[0])
    over_bg = res.rgba[int(r_bg), int(c_bg)]
    over_red = res.rgba[int(r_red), int(c_red)]
    np.testing.assert_allclose(over_bg, [0, 255, 0, 255], atol=2)  # the glass's own colour, full coverage
    np.testing.assert_allclose(over_red, [128, 128, 0, 255], atol=3)  # mixed half and half
    # UDP is never blended: the glass's own landmark (front face z = 0.35).
    expected = encode_landmarks(np.array([[0, 0, 0.35]]), rig.height())[0, 2]
    np.testing.assert_allclose(res.udp[int(r_red), int(c_red), 2], expected, atol=1e-5)


def test_rejects_a_camera_of_another_size(gl):
    mesh = mesh_from_rig(demo_scene_rig())
    cam = frame_points(mesh.positions, 0, 0, width=SIZE * 2, height=SIZE)
    with pytest.raises(ValueError):
        gl.render(mesh, cam)


def test_posed_mesh_matches_the_rig_skinning():
    from conrdata.rig.model import pose_vertices

    rig = procedural_or_none() or demo_scene_rig()
    q = posed(rig, 11)
    mesh = mesh_from_rig(rig, q, np.array([0.1, 0.0, -0.2]))
    np.testing.assert_allclose(mesh.positions, pose_vertices(rig, q, np.array([0.1, 0.0, -0.2])), atol=2e-6)
    np.testing.assert_allclose(np.linalg.norm(mesh.normals, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(mesh.landmarks, encode_landmarks(rig.vertices, rig.height()))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_layered_triangles_match_the_reference(gl, seed):
    """Overlapping triangles at distinct depths, random windings, some double-sided."""
    from conrdata.render.scene import DrawMesh

    rng = np.random.default_rng(seed)
    n = 40
    centres = rng.uniform([-0.5, 0.2, -0.5], [0.5, 1.2, 0.5], size=(n, 1, 3))
    centres[:, 0, 2] = np.linspace(-0.5, 0.5, n)[rng.permutation(n)]  # one depth layer per triangle
    offsets = rng.uniform(-0.35, 0.35, size=(n, 3, 3)) * [1, 1, 0.02]  # nearly parallel to the image
    verts = (centres + offsets).reshape(-1, 3).astype(np.float32)
    faces = np.arange(3 * n, dtype=np.int32).reshape(n, 3)
    mats = [Material("one"), Material("two", double_sided=True)]
    mesh = DrawMesh(
        positions=verts, normals=np.tile(np.float32([0, 0, 1]), (3 * n, 1)),
        landmarks=((verts - verts.min(0)) / np.ptp(verts, axis=0)).astype(np.float32),
        uvs=np.zeros((3 * n, 2), np.float32), faces=faces,
        face_material=rng.integers(0, 2, size=n).astype(np.int32), materials=mats, height=1.0,
    )
    for projection in ("perspective", "orthographic"):
        cam = frame_points(verts, 0.0, 0.0, width=SIZE, height=SIZE, projection=projection)
        a, b = gl.render(mesh, cam), reference_rasterize(mesh, cam)
        fg = (a.udp[..., 3] > 0) | (b.udp[..., 3] > 0)
        close = (np.abs(a.udp - b.udp) <= 1e-4).all(axis=-1)
        assert close[fg].mean() >= 0.995
        assert not (fg & ~close & ~b.ambiguous).any()
        assert (fg & b.ambiguous).sum() < 0.05 * fg.sum()
