"""Skinning in the vertex shader against the numpy reference path, through the same GL rasterizer.

Both meshes come from :func:`mesh_from_rig` with the same pose and are drawn with the same camera;
only where the posed positions and normals are computed differs. Off the edges (a pixel whose
3 x 3 neighbourhood is all foreground or all background in both images) the UDP must agree
within 1e-5 and the alpha exactly; on the edges a float32 rounding may flip a pixel centre.
The second shading of each character draws cel shading and the outline hull, which both use the
skinned normals.
"""

import numpy as np
import pytest
from scipy import ndimage

from conrdata.poses import poses_for_rig, sample_poses
from conrdata.render.camera import frame_points
from conrdata.render.gl_rasterizer import GLRasterizer
from conrdata.render.reference import reference_rasterize
from conrdata.render.scene import Shading, bind_landmarks, mesh_from_rig
from conrdata.synth.convert import prepare_model
from tests.conftest import assets_or_skip

SHADINGS = [Shading(), Shading(cel=True, outline=True, outline_width=0.006)]


def interior(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pixels off every silhouette/coverage edge: the 3 x 3 neighbourhood agrees in both images."""
    out = np.ones(a.shape, bool)
    for m in (a, b):
        out &= ndimage.binary_erosion(m, np.ones((3, 3)), border_value=1) | ~ndimage.binary_dilation(
            m, np.ones((3, 3)))
    return out


def compare(raster, rig, poses, size, key, min_foreground):
    local, trans = poses
    landmarks = bind_landmarks(rig)
    checked = 0
    for i in range(len(local)):
        ref = mesh_from_rig(rig, local[i], trans[i], landmarks=landmarks, key=key)
        gpu = mesh_from_rig(rig, local[i], trans[i], landmarks=landmarks, key=key, gpu_skinning=True)
        assert gpu.skin is not None and gpu.normals is None
        np.testing.assert_array_equal(gpu.positions, ref.positions)  # framing sees the same points
        cam = frame_points(ref.positions, 40.0 + 95.0 * i, 10.0, width=size, height=size,
                           projection="orthographic" if i % 2 else "perspective")
        shading = SHADINGS[i % len(SHADINGS)]
        a = raster.render(ref, cam, shading)
        b = raster.render(gpu, cam, shading)
        occ_a, occ_b = a.udp[..., 3] > 0, b.udp[..., 3] > 0
        assert occ_a.sum() >= min_foreground, "the character should fill a good part of the image"
        np.testing.assert_array_equal(occ_a, a.rgba[..., 3] > 0)
        np.testing.assert_array_equal(occ_b, b.rgba[..., 3] > 0)
        off = interior(occ_a, occ_b)
        assert off[occ_a].mean() > 0.3
        np.testing.assert_array_equal(a.rgba[..., 3][off], b.rgba[..., 3][off])
        diff = np.abs(a.udp - b.udp).max(axis=-1)
        assert diff[off].max() <= 1e-5, f"pose {i}: UDP differs by {diff[off].max():.2e} off the edges"
        # Whole image: only a few edge pixels (a float32 rounding flips a pixel centre) may differ at all.
        assert (occ_a != occ_b).mean() < 0.002
        assert (diff > 1e-5).sum() <= 0.005 * occ_a.sum()
        np.testing.assert_allclose(a.depth[off], b.depth[off], atol=1e-4)
        # Colour (cel shading uses the skinned normals) agrees off the edges up to a rounding step,
        # except where n.l sits on the shading threshold.
        rgb = np.abs(a.rgba[..., :3].astype(int) - b.rgba[..., :3].astype(int)).max(axis=-1)
        assert (rgb[off] > 1).mean() < 0.002
        checked += 1
    assert checked == len(local)


def test_gpu_skinning_matches_numpy_on_the_procedural_character():
    from conrdata.rig.procedural import build_character

    rig = build_character(4)
    lib = sample_poses(4, 3, rig)
    with GLRasterizer(128, 128) as raster:
        compare(raster, rig, poses_for_rig(rig, lib), 128, "proc", 1500)


def test_gpu_skinning_matches_numpy_on_gene():
    path = assets_or_skip("meshes", "gene", "Gene_light.pmx")
    rig = prepare_model(path)
    assert rig.num_bones > 200 and len(rig.faces) > 40000
    lib = sample_poses(2, 7, rig)
    with GLRasterizer(128, 128) as raster:
        compare(raster, rig, poses_for_rig(rig, lib), 128, "gene", 1500)


def test_submitted_views_come_back_in_their_own_buffers():
    """Several views submitted before any read-back: each result is that view's, as rendered alone."""
    from conrdata.rig.procedural import build_character

    rig = build_character(2)
    lib = sample_poses(3, 1, rig)
    local, trans = poses_for_rig(rig, lib)
    with GLRasterizer(96, 96) as raster:
        meshes = [mesh_from_rig(rig, local[i], trans[i], key="c", gpu_skinning=True) for i in range(3)]
        cams = [frame_points(m.positions, 120.0 * i, 5.0, width=96, height=96) for i, m in enumerate(meshes)]
        alone = [raster.render(m, c, depth=False) for m, c in zip(meshes, cams)]
        raster.max_pending = 2  # the third submission has to collect the first on its own
        pending = [raster.submit(m, c, depth=False) for m, c in zip(meshes, cams)]
        results = [p.result() for p in reversed(pending)][::-1]
        raster.read_with_pbo = False  # the synchronous read-back gives the same images
        direct = [raster.render(m, c, depth=False) for m, c in zip(meshes, cams)]
    for one, batch, sync in zip(alone, results, direct):
        np.testing.assert_array_equal(one.udp, sync.udp)
        np.testing.assert_array_equal(one.rgba, sync.rgba)
        np.testing.assert_array_equal(one.udp, batch.udp)
        np.testing.assert_array_equal(one.rgba, batch.rgba)
        assert batch.depth is None
    assert not np.array_equal(results[0].udp, results[1].udp)


def test_skin_data_of_another_mesh_is_refused():
    from conrdata.rig.procedural import build_character

    rig = build_character(0)
    mesh = mesh_from_rig(rig, key="x", gpu_skinning=True)
    mesh.skin.joints = mesh.skin.joints[:-1]
    cam = frame_points(mesh.positions, 0.0, 0.0, width=32, height=32)
    with GLRasterizer(32, 32) as raster, pytest.raises(ValueError, match="skin data"):
        raster.render(mesh, cam)
    with pytest.raises(ValueError, match="gpu_skinning=False"):
        reference_rasterize(mesh_from_rig(rig, gpu_skinning=True), cam)
