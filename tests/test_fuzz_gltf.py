"""Fuzzing the glTF/GLB/VRM reader: truncations, byte flips and hostile JSON values of real files written
by the tests give only the project's clear errors (UserError and subclasses): never a hang, another
exception or a huge allocation."""

from __future__ import annotations

import json
import math
import tracemalloc

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conrdata.errors import UserError
from conrdata.formats import load_model
from conrdata.formats.gltf_writer import glb_bytes, rig_to_gltf
from conrdata.rig.apose import align_to_apose
from conrdata.rig.model import Material, Rig
from tests.stick_rig import STICK_BONES, bone_arrays

MAX_PEAK_BYTES = 64 << 20
FUZZ = settings(max_examples=60, deadline=5000, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def tiny_rig() -> Rig:
    """A T-posed stick humanoid: one textured triangle per bone; a MASK and a double-sided material."""
    names, parents, heads = bone_arrays([*STICK_BONES, ("hair_0_0", "head", (0, 1.5, -0.1))])
    v = np.concatenate([[h, h + [0.05, 0, 0], h + [0, 0.05, 0.02]] for h in heads]).astype(np.float32)
    V = len(v)
    j = np.zeros((V, 4), np.int32)
    j[:, 0] = np.repeat(np.arange(len(names)), 3)
    j[:, 1] = np.array([max(b - 1, 0) for b in j[:, 0]])
    w = np.zeros((V, 4), np.float32)
    w[:, 0], w[:, 1] = 0.75, 0.25
    tex = np.zeros((4, 4, 4), np.uint8)
    tex[..., 0], tex[..., 3] = 200, 255
    tex[0, 0, 3] = 0
    faces = np.arange(V, dtype=np.int32).reshape(-1, 3)
    return Rig(vertices=v, normals=np.tile(np.float32([0, 0, 1]), (V, 1)),
               uvs=np.tile(np.float32([[0, 0], [1, 0], [0, 1]]), (len(names), 1)), faces=faces,
               face_material=(np.arange(len(faces)) % 2).astype(np.int32), joints=j, weights=w,
               bone_names=names, bone_parents=parents, bone_heads=heads,
               humanoid={n: i for i, n in enumerate(names) if not n.startswith("hair")},
               materials=[Material("body", texture=tex),
                          Material("hair", texture=tex.copy(), alpha_mode="MASK", double_sided=True)],
               meta={"licence": {"name": "CC0", "author": "tests"}})


SEEDS = {
    "glb": dict(bone_axes="along_bone", weights_format="u8"),
    "vrm0": dict(vrm="0"),
    "vrm1": dict(vrm="1", bone_axes="along_bone", armature_scale=0.01),
}
DOCS = {k: rig_to_gltf(tiny_rig(), **kw) for k, kw in SEEDS.items()}
FILES = {k: glb_bytes(*v) for k, v in DOCS.items()}
KINDS = sorted(FILES)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


def read_guarded(path) -> None:
    """Read (and align, when the read succeeds); only UserError may escape; bounded memory."""
    tracemalloc.start()
    try:
        try:
            rig = load_model(path)
            align_to_apose(rig)
        except UserError as err:
            msg = str(err)
            assert msg and "\n" not in msg.strip()
            assert str(path) in msg or err.path is None
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < MAX_PEAK_BYTES, f"peak allocation {peak} bytes"


def test_seed_files_are_valid(workdir):
    for kind, data in FILES.items():
        path = workdir / f"seed.{ 'vrm' if kind.startswith('vrm') else 'glb'}"
        path.write_bytes(data)
        rig = align_to_apose(load_model(path))
        assert rig.num_bones == 16 and len(rig.faces) == 16


FLIP = st.tuples(st.floats(0, 1, exclude_max=True), st.integers(1, 255))  # (where, xor mask)


@FUZZ
@given(kind=st.sampled_from(KINDS), cut=st.floats(0, 1, exclude_max=True))
def test_truncations(workdir, kind, cut):
    data = FILES[kind]
    path = workdir / "trunc.glb"
    path.write_bytes(data[: int(cut * len(data))])
    read_guarded(path)


@FUZZ
@given(kind=st.sampled_from(KINDS), flips=st.lists(FLIP, min_size=1, max_size=8))
def test_byte_flips(workdir, kind, flips):
    data = bytearray(FILES[kind])
    for where, xor in flips:
        data[int(where * len(data))] ^= xor
    path = workdir / "flip.vrm"
    path.write_bytes(bytes(data))
    read_guarded(path)


@FUZZ
@given(kind=st.sampled_from(KINDS), flips=st.lists(FLIP, min_size=1, max_size=4))
def test_byte_flips_in_binary_chunk(workdir, kind, flips):
    """Flips aimed at the BIN chunk (indices, joints, weights, matrices, PNG bytes)."""
    data = bytearray(FILES[kind])
    json_len = int.from_bytes(data[12:16], "little")
    start = 20 + json_len + 8
    for where, xor in flips:
        data[start + int(where * (len(data) - start))] ^= xor
    path = workdir / "binflip.glb"
    path.write_bytes(bytes(data))
    read_guarded(path)


HOSTILE = st.sampled_from([-1, 0, 1, 2, 3, 7, 255, 65535, 2**31 - 1, 2**32 + 5, 2**53, 10**18, 10**30,
                           1e308, -1e308, math.inf, math.nan, 0.5, "x", None, [], {}, True, [1, 2]])


def numeric_paths(obj, path=()):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from numeric_paths(v, path + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from numeric_paths(v, path + (i,))
    elif isinstance(obj, (int, float)) and not isinstance(obj, bool):
        yield path


PATHS = {k: list(numeric_paths(doc)) for k, (doc, _) in DOCS.items()}


@FUZZ
@given(kind=st.sampled_from(KINDS), picks=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), HOSTILE),
                                                   min_size=1, max_size=3))
def test_hostile_json_values(workdir, kind, picks):
    """Counts, offsets, indices, strides, matrices... set to hostile values in a well-formed container."""
    doc, binary = DOCS[kind]
    doc = json.loads(json.dumps(doc))
    paths = PATHS[kind]
    for where, value in picks:
        *parent, last = paths[int(where * len(paths))]
        node = doc
        for k in parent:
            node = node[k]
        node[last] = value
    path = workdir / "hostile.glb"
    path.write_bytes(glb_bytes(doc, binary))
    read_guarded(path)


@FUZZ
@given(text=st.text(max_size=200))
def test_arbitrary_gltf_text(workdir, text):
    path = workdir / "text.gltf"
    path.write_text(text, encoding="utf-8")
    read_guarded(path)
