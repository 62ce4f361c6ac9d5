"""conrdata.rig.mesh: the one vertex-normal and skin-weight clean-up every mesh source uses."""

import numpy as np

from conrdata.rig.mesh import normalize_skin_weights, vertex_normals


def _octahedron():
    v = np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]], np.float64)
    f = []
    for a in (0, 1):
        for b in (2, 3):
            for c in (4, 5):
                tri = [a, b, c]
                n = np.cross(v[b] - v[a], v[c] - v[a])
                f.append(tri if n @ (v[a] + v[b] + v[c]) > 0 else tri[::-1])  # counter-clockwise outside
    return v, np.array(f)


def test_vertex_normals_point_outward_and_fall_back_to_up():
    v, f = _octahedron()
    v = np.vstack([v, [[5.0, 5.0, 5.0]]])  # a vertex on no triangle
    n = vertex_normals(v, f)
    np.testing.assert_allclose(n[:6], v[:6], atol=1e-12)  # unit, along the position for a centred solid
    np.testing.assert_allclose(n[6], [0, 1, 0])


def test_welding_shares_a_normal_across_a_seam():
    v, f = _octahedron()
    # Split vertex 0 into a seam copy (index 6) used by half of its triangles.
    v2 = np.vstack([v, v[:1]])
    f2 = f.copy()
    uses = np.flatnonzero((f == 0).any(axis=1))[:2]
    f2[uses] = np.where(f2[uses] == 0, 6, f2[uses])
    apart = vertex_normals(v2, f2)
    welded = vertex_normals(v2, f2, weld_decimals=6)
    assert not np.allclose(apart[0], apart[6])
    np.testing.assert_allclose(welded[0], welded[6])
    np.testing.assert_allclose(welded[0], [1, 0, 0], atol=1e-12)


def test_skin_weights_top4_normalised_and_cleaned():
    joints = np.array([[0, 1, 2, 3, 4, 5], [5, 4, 3, 2, 1, 0]])
    weights = np.array([[0.1, 0.5, np.nan, 0.2, -1.0, 0.2], [0, 0, 0, 0, 0, 0]], np.float64)
    j, w, empty = normalize_skin_weights(joints, weights)
    assert j.shape == w.shape == (2, 4) and empty == 1
    np.testing.assert_array_equal(j[0], [1, 3, 5, 0])  # largest first, ties in column order
    np.testing.assert_allclose(w[0], [0.5 / 1.0, 0.2, 0.2, 0.1])
    np.testing.assert_array_equal(j[1], [0, 0, 0, 0])  # nothing left: bound to joint 0
    np.testing.assert_array_equal(w[1], [1, 0, 0, 0])


def test_skin_weights_keep_the_order_of_four_or_fewer():
    j, w, empty = normalize_skin_weights(np.array([[7, 3], [2, 9]]), np.array([[0.25, 0.75], [np.inf, 2.0]]))
    assert empty == 0
    np.testing.assert_array_equal(j, [[7, 3, 0, 0], [0, 9, 0, 0]])  # weight-0 slots point at joint 0
    np.testing.assert_allclose(w, [[0.25, 0.75, 0, 0], [0, 1, 0, 0]])
