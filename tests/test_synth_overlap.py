"""The overlapped synthesis worker writes the bytes of the sequential one, whatever the worker count."""

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conrdata.dataset import Clip, ClipImage
from conrdata.dataset.writer import encode_clip
from conrdata.rig.procedural import write_character_glb
from conrdata.synth.convert import convert_folder, list_characters
from conrdata.synth.engines import InlineEngine, LocalEngine
from conrdata.synth.job import SynthConfig, run_synth
from conrdata.synth.pipeline import ImageStage, OrderedWrites, encode_clip_from_parts
from tests.conftest import assets_or_skip

SMALL = dict(poses_per_character=3, views=2, resolution=64, images_per_clip=2, seed=11)


@pytest.fixture(scope="module")
def characters(tmp_path_factory):
    meshes = tmp_path_factory.mktemp("meshes")
    write_character_glb(meshes / "ann.glb", seed=3)
    write_character_glb(meshes / "ben.glb", seed=4)
    out = tmp_path_factory.mktemp("characters")
    convert_folder(meshes, out, progress=False)
    chars = list_characters(out)
    assert len(chars) == 2
    return chars


def digests(out: Path) -> dict[str, str]:
    files = sorted((out / "shards").glob("*.tar")) + sorted((out / "manifests").glob("*.parquet"))
    assert files
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def synth(chars, out, engine=None, **changes):
    cfg = SynthConfig(**{**SMALL, **changes})
    report = run_synth(chars, out, cfg, engine or InlineEngine(), progress=False)
    assert report.images_written > 0 and not report.skipped, report.summary()
    return report


def test_shards_are_byte_identical_with_and_without_overlap_and_across_workers(characters, tmp_path):
    # The reference is the path before the speed-ups: every image posed on its own, nothing overlapped.
    synth(characters, tmp_path / "sequential", overlap=False, reuse_poses=False)
    synth(characters, tmp_path / "overlap", overlap=True, encode_threads=3)
    engine = LocalEngine(2)
    try:
        synth(characters, tmp_path / "two", engine, overlap=True)
    finally:
        engine.close()
    reference = digests(tmp_path / "sequential")
    assert digests(tmp_path / "overlap") == reference
    assert digests(tmp_path / "two") == reference


def test_numpy_skinning_path_is_byte_identical_with_and_without_overlap(characters, tmp_path):
    synth(characters, tmp_path / "a", overlap=False, gpu_skinning=False)
    synth(characters, tmp_path / "b", overlap=True, gpu_skinning=False)
    assert digests(tmp_path / "a") == digests(tmp_path / "b")


def test_refused_images_are_the_same_with_and_without_overlap(tmp_path):
    """On a real character some images fail a tight torn-label gate: the overlapped worker must refuse
    the same ones and write the same clips around them."""
    source = assets_or_skip("meshes", "gene", "Gene_light.pmx")
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / source.name).symlink_to(source)
    convert_folder(tmp_path / "in", tmp_path / "chars", progress=False)
    chars = list_characters(tmp_path / "chars")
    cfg = dict(poses_per_character=4, views=1, images_per_clip=4, resolution=96, max_torn=0.0005)
    a = synth(chars, tmp_path / "sequential", overlap=False, **cfg)
    b = synth(chars, tmp_path / "overlap", overlap=True, **cfg)
    assert a.images_refused > 0 and a.images_written > 0, "the gate should refuse some but not all images"
    assert (a.images_refused, a.images_written) == (b.images_refused, b.images_written)
    assert digests(tmp_path / "sequential") == digests(tmp_path / "overlap")


def _clip(with_udp: bool) -> Clip:
    rng = np.random.default_rng(0)
    images = []
    for i in range(3):
        rgba = rng.integers(0, 256, (16, 16, 4), dtype=np.uint8)
        udp = rng.random((16, 16, 4), dtype=np.float32) if with_udp else None
        images.append(ClipImage(rgba=rgba, udp=udp, pose_id=f"p{i}", view={"yaw": 10.0 * i}, camera={},
                                source="test", labels={"torn_share": 0.0}))
    return Clip("char-a", "v00-p0000", images, meta={"seed": 1})


@pytest.mark.parametrize("with_udp", [True, False])
def test_pre_encoded_clip_equals_encode_clip(with_udp):
    clip = _clip(with_udp)
    stage = ImageStage(overlap=True, udp_codec="zlib", threads=2)
    for im in clip.images:
        stage.submit(lambda im: (im, None), im)
    images, refused = stage.collect()
    assert [im.pose_id for im in images] == ["p0", "p1", "p2"] and refused == []
    assert stage.encode_clip(clip, "train") == encode_clip(clip, "train", "zlib")
    with pytest.raises(ValueError, match="encoded images"):
        encode_clip_from_parts(clip, "train", [])


def test_an_error_in_the_pool_fails_only_that_clip():
    stage = ImageStage(overlap=True, threads=2)

    def finish(i):
        if i == 1:
            raise RuntimeError("bad image")
        return None, {"pose_index": i}

    for i in range(3):
        stage.submit(finish, i)
    with pytest.raises(RuntimeError, match="bad image"):
        stage.collect()
    stage.cancel()
    # The pool is still usable for the next clip.
    stage = ImageStage(overlap=True, threads=2)
    stage.submit(finish, 0)
    assert stage.collect() == ([], [{"pose_index": 0}])


def test_report_records_how_the_worker_ran(characters, tmp_path):
    synth(characters, tmp_path / "out", overlap=False, gpu_skinning=False)
    saved = json.loads((tmp_path / "out" / "synth_report.json").read_text())["config"]
    assert saved["overlap"] is False and saved["gpu_skinning"] is False
    # How a worker runs is not part of what a clip contains: a rerun with the fast path resumes.
    report = run_synth(characters, tmp_path / "out", SynthConfig(**SMALL), progress=False)
    assert report.images_written == 0 and report.clips_already_done > 0


def test_cli_switches(tmp_path):
    meshes = tmp_path / "meshes"
    meshes.mkdir()
    write_character_glb(meshes / "cid.glb", seed=5)
    env = dict(os.environ, PYOPENGL_PLATFORM="egl")
    base = ["-p", "2", "-v", "1", "-k", "2", "-r", "32", "-q", "--characters", str(tmp_path / "chars")]
    for name, extra in (("fast", []), ("sequential", ["--no-overlap"]), ("numpy", ["--skinning", "numpy"])):
        done = subprocess.run([sys.executable, "-m", "conrdata", "synth", str(meshes), str(tmp_path / name),
                               *base, *extra], capture_output=True, text=True, env=env, timeout=300)
        assert done.returncode == 0, done.stderr
    assert digests(tmp_path / "fast") == digests(tmp_path / "sequential")
    config = json.loads((tmp_path / "numpy" / "synth_report.json").read_text())["config"]
    assert config["gpu_skinning"] is False and config["overlap"] is True


def test_posing_once_per_pose_writes_the_bytes_of_posing_per_image(characters, tmp_path):
    synth(characters, tmp_path / "per-image", reuse_poses=False, views=3)
    synth(characters, tmp_path / "per-pose", reuse_poses=True, views=3)
    assert digests(tmp_path / "per-image") == digests(tmp_path / "per-pose")


class _Handle:
    def __init__(self, log, task):
        self.log, self.task = log, task
        log.append(("start", task))

    def outcome(self):
        self.log.append(("outcome", self.task))
        return self.task * 10

    def cancel(self):
        self.log.append(("cancel", self.task))


def test_inline_engine_starts_the_next_task_before_finishing_one():
    log = []

    def fn(task):
        return _Handle(log, task).outcome()

    fn.start = lambda task: _Handle(log, task)
    assert list(InlineEngine().map(fn, [1, 2, 3])) == [10, 20, 30]
    assert log == [("start", 1), ("start", 2), ("outcome", 1), ("start", 3), ("outcome", 2), ("outcome", 3)]
    # A consumer that stops early leaves no task running.
    log.clear()
    results = InlineEngine().map(fn, [1, 2, 3])
    assert next(results) == 10
    results.close()
    assert log[-1] == ("cancel", 2)


def test_ordered_writes_keep_order_and_raise_the_first_error():
    done = []
    with OrderedWrites(depth=2) as writes:
        for i in range(20):
            writes.submit(done.append, i)
    assert done == list(range(20))

    def fail(i):
        if i == 3:
            raise OSError("disk full")
        done.append(i)

    done.clear()
    with pytest.raises(OSError, match="disk full"):
        with OrderedWrites(depth=2) as writes:
            for i in range(6):
                writes.submit(fail, i)
    assert done[:3] == [0, 1, 2]
    inline = []
    with OrderedWrites(inline=True) as writes:
        writes.submit(inline.append, 1)
        assert inline == [1]  # the sequential path writes at once
