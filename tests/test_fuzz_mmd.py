"""Fuzzing the PMX/PMD readers: truncations and byte flips of files the tests write.

A damaged file must give the project's clear error (FormatError / UserError) or a
consistent Rig; never another exception, a hang (pytest-timeout stops the run) or a
huge allocation (peak traced memory is bounded). No real MMD sample is available,
so the seeds are tests/mmd_writer.py's tiny humanoid in three encodings.
"""

import tracemalloc

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conrdata.errors import FormatError, UserError
from conrdata.formats.pmd import read_pmd
from conrdata.formats.pmx import read_pmx
from tests.mmd_writer import pmd_bytes, pmx_bytes, tiny_humanoid, write_textures

PEAK_LIMIT = 64 * 2**20  # bytes; the seed files are a few kB and parse in well under 1 MB

_MODEL = tiny_humanoid()
SEEDS = {
    "pmx20": (".pmx", pmx_bytes(_MODEL)),
    "pmx21": (".pmx", pmx_bytes(_MODEL, version=2.1, encoding="utf-8", index_sizes=(1, 1, 1, 1, 1, 1),
                                additional_uvs=1, soft_bodies=True)),
    "pmd": (".pmd", pmd_bytes(_MODEL)),
}
READERS = {".pmx": read_pmx, ".pmd": read_pmd}
pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")  # no silent NaN/overflow arithmetic

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("mmd_fuzz")
    write_textures(d)
    return d


def read_damaged(folder, kind: str, data: bytes):
    """Read damaged bytes; returns the Rig or None (clear error). Asserts the memory bound."""
    ext, _ = SEEDS[kind]
    path = folder / f"damaged{ext}"
    path.write_bytes(data)
    tracemalloc.start()
    try:
        rig = READERS[ext](path)
    except (FormatError, UserError) as err:
        assert str(path) in str(err)
        rig = None
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peak < PEAK_LIMIT, f"peak traced memory {peak} bytes"
    if rig is not None:
        rig.check()
        for arr in (rig.vertices, rig.normals, rig.uvs, rig.weights, rig.bone_heads):
            assert np.all(np.isfinite(arr))
        np.testing.assert_allclose(rig.weights.sum(axis=1), 1.0, atol=1e-4)
        np.testing.assert_allclose(np.linalg.norm(rig.normals, axis=1), 1.0, atol=1e-4)
    return rig


def test_seeds_read_cleanly(fuzz_dir):
    for kind in SEEDS:
        assert read_damaged(fuzz_dir, kind, SEEDS[kind][1]) is not None


@pytest.mark.parametrize("kind", list(SEEDS))
@FUZZ
@given(data=st.data())
def test_truncation(fuzz_dir, kind, data):
    seed = SEEDS[kind][1]
    cut = data.draw(st.integers(0, len(seed) - 1), label="cut")
    rig = read_damaged(fuzz_dir, kind, seed[:cut])
    if kind == "pmx20":
        assert rig is None  # every byte of a PMX 2.0 file up to the joints is required


@pytest.mark.parametrize("kind", list(SEEDS))
@FUZZ
@given(data=st.data())
def test_byte_flips(fuzz_dir, kind, data):
    original = SEEDS[kind][1]
    seed = bytearray(original)
    # Distinct positions, each XORed with a non-zero mask: every drawn flip changes its byte.
    flips = data.draw(
        st.lists(st.tuples(st.integers(0, len(seed) - 1), st.integers(1, 255)), min_size=1, max_size=8,
                 unique_by=lambda f: f[0]),
        label="flips",
    )
    for pos, mask in flips:
        seed[pos] ^= mask
    assert all(seed[pos] != original[pos] for pos, _ in flips)
    read_damaged(fuzz_dir, kind, bytes(seed))


def test_every_count_field_set_to_huge_is_refused_cheaply(fuzz_dir):
    # Overwrite each aligned 4-byte window with 0x7fffffff: whatever field it hits, no big allocation.
    for kind, (_, seed) in SEEDS.items():
        for off in range(0, min(len(seed) - 4, 2400), 59):
            data = bytearray(seed)
            data[off:off + 4] = (2**31 - 1).to_bytes(4, "little")
            read_damaged(fuzz_dir, kind, bytes(data))
