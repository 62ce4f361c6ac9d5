"""The VMD and BVH parsers survive truncation and corruption with the project's FormatError only."""

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conrdata.errors import FormatError, UserError
from conrdata.poses.bvh import bvh_text, parse_bvh
from conrdata.poses.mmd import vmd_to_library
from conrdata.poses.retarget import bvh_to_library
from conrdata.poses.vmd import VmdMotion, make_track, parse_vmd, vmd_bytes
from conrdata.rig.rotations import axis_rotation
from tests.poses_testdata import apose_frame, cmu_bvh


def seed_vmd() -> bytes:
    m = VmdMotion("model")
    m.tracks["左腕"] = make_track([0, 10], rotations=[[0, 0, 0, 1], axis_rotation("Z", 0.5)])
    m.tracks["センター"] = make_track([0, 5], positions=[[0, 0, 0], [0, 1, 0]])
    m.tracks["左足ＩＫ"] = make_track([0, 10], positions=[[0, 0, 0], [0, 2, -1]])
    m.ik_keys = [(0, {"左足ＩＫ": True})]
    return vmd_bytes(m)


SEED_VMD = seed_vmd()
SEED_BVH = bvh_text(cmu_bvh([{}, apose_frame()], units=100.0)).encode()
#: Examples per fuzz test; raise it (e.g. POSES_FUZZ_EXAMPLES=600) for a longer local run.
EXAMPLES = int(os.environ.get("POSES_FUZZ_EXAMPLES", "60"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def mutate(seed: bytes, cut: int, flips: list[tuple[int, int]]) -> bytes:
    data = bytearray(seed[: cut % (len(seed) + 1)])
    for pos, val in flips:
        if data:
            data[pos % len(data)] = val
    return bytes(data)


@FUZZ
@given(cut=st.integers(0, 10**6), flips=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)),
                                                 max_size=6))
def test_vmd_fuzz(cut, flips):
    data = mutate(SEED_VMD, cut, flips)
    try:
        motion = parse_vmd(data, "fuzz.vmd")
    except UserError as e:
        assert "fuzz.vmd" in str(e)
        return
    # Whatever parsed must also play (bounded frame numbers keep this quick).
    if motion.last_frame <= 40:
        lib = vmd_to_library(motion, None, fps=5)
        assert np.all(np.isfinite(lib.rotations))


@FUZZ
@given(cut=st.integers(0, 10**6), flips=st.lists(st.tuples(st.integers(0, 10**6), st.integers(32, 126)),
                                                 max_size=6))
def test_bvh_fuzz(cut, flips):
    text = mutate(SEED_BVH, cut, flips).decode("latin-1")
    try:
        motion = parse_bvh(text, "fuzz.bvh")
    except UserError as e:
        assert "fuzz.bvh" in str(e)
        return
    try:
        lib = bvh_to_library(motion)
    except UserError:
        return  # e.g. the hips were renamed: a clear RigError
    assert np.all(np.isfinite(lib.rotations))


@pytest.mark.parametrize("data", [b"", b"Vocaloid Motion Data 0002", SEED_VMD[:-1],
                                  SEED_VMD[:50] + b"\xff" * 4 + SEED_VMD[54:]])
def test_vmd_edge_cases(data):
    with pytest.raises(FormatError, match="x.vmd"):
        parse_vmd(data, "x.vmd")


@pytest.fixture(scope="module")
def seed_gltf(tmp_path_factory):
    from conrdata.rig.rotations import rotation_between
    from tests.poses_testdata import gltf_animated_skeleton

    rest = rotation_between(np.array([0, 1.0, 0]), np.array([1.0, 0, 0]))
    path = gltf_animated_skeleton(tmp_path_factory.mktemp("g") / "seed.gltf", [0.0, 0.5], [rest, rest],
                                  hips_translations=[[0, 0.78, 0], [0, 0.7, 0]])
    return path.read_bytes()


@settings(max_examples=max(1, EXAMPLES * 2 // 3), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(cut=st.integers(0, 10**6),
       flips=st.lists(st.tuples(st.integers(0, 10**6), st.sampled_from(b'0123456789-",{}[]:.e')), max_size=4))
def test_gltf_animation_fuzz(tmp_path_factory, seed_gltf, cut, flips):
    from conrdata.poses.gltf_anim import gltf_to_library

    data = mutate(seed_gltf, cut if cut % 3 else len(seed_gltf), flips)
    path = tmp_path_factory.mktemp("f") / "fuzz.gltf"
    path.write_bytes(data)
    try:
        lib = gltf_to_library(path, fps=4)
    except UserError as e:
        assert "fuzz.gltf" in str(e)
        return
    assert np.all(np.isfinite(lib.rotations))
