"""The synthesis job end to end on procedural characters written by the tests (no shared assets needed)."""

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conrdata.dataset import iter_clips
from conrdata.dataset.validate import validate
from conrdata.errors import UserError
from conrdata.rig.procedural import write_character_glb
from conrdata.synth.convert import convert_folder, list_characters
from conrdata.synth.engines import InlineEngine, LocalEngine
from conrdata.synth.job import SynthConfig, clip_plan, run_synth, synth_folder

REPO = Path(__file__).resolve().parents[1]
SMALL = dict(poses_per_character=3, views=2, resolution=64, images_per_clip=2, seed=7)


@pytest.fixture(scope="module")
def meshes(tmp_path_factory):
    """Two good procedural GLBs and one broken file."""
    d = tmp_path_factory.mktemp("meshes")
    write_character_glb(d / "alice.glb", seed=1)
    write_character_glb(d / "bob.glb", seed=2)
    (d / "broken.glb").write_bytes(b"glTF\x02\x00\x00\x00\xff\xff")
    return d


@pytest.fixture(scope="module")
def characters(meshes, tmp_path_factory):
    d = tmp_path_factory.mktemp("characters")
    convert_folder(meshes, d, progress=False)
    chars = list_characters(d)
    assert len(chars) == 2
    return d


def shard_digests(out: Path) -> dict[str, str]:
    shards = sorted((out / "shards").glob("*.tar"))
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in shards}


def clip_contents(out: Path) -> dict[str, tuple]:
    return {
        c.key: (tuple(r.tobytes() for r in c.rgba), tuple(u.tobytes() for u in c.udp),
                tuple(im["pose_id"] for im in c.meta["images"]))
        for c in iter_clips(out)
    }


def test_clip_plan_groups_distinct_poses():
    cfg = SynthConfig(poses_per_character=5, views=2, images_per_clip=2)
    plan = clip_plan(5, cfg)
    assert [c for c, _, _ in plan] == ["v00-p0000", "v00-p0002", "v00-p0004", "v01-p0000", "v01-p0002",
                                      "v01-p0004"]
    for _, poses, _ in plan:
        assert len(set(poses)) == len(poses) <= 2
    assert sorted(p for _, poses, v in plan if v == 0 for p in poses) == list(range(5))


def test_synth_skips_broken_mesh_and_writes_valid_shards(meshes, characters, tmp_path):
    out = tmp_path / "out"
    report = synth_folder(meshes, out, SynthConfig(**SMALL), characters_dir=characters, progress=False)
    assert report.characters == 2
    assert report.clips_written == 2 * 2 * 2  # characters x views x ceil(3 poses / 2 per clip)
    assert report.images_written == 2 * 2 * 3
    assert [s["item"].endswith("broken.glb") for s in report.skipped] == [True]
    assert "truncated" in report.skipped[0]["reason"] or "GLB" in report.skipped[0]["reason"]
    assert "broken.glb" in (out / "synth_report.json").read_text()
    assert "broken.glb" in report.summary()
    checked = validate(out)
    assert checked.ok, [str(p) for p in checked.problems]
    clips = list(iter_clips(out))
    assert len(clips) == 8
    for clip in clips:
        poses = [im["pose_id"] for im in clip.meta["images"]]
        assert len(set(poses)) == len(poses) <= 2
        for rgba, udp in zip(clip.rgba, clip.udp):
            assert rgba.shape == (64, 64, 4) and udp.shape == (64, 64, 4) and udp.dtype == np.float32
            np.testing.assert_array_equal(rgba[..., 3], (udp[..., 3] * 255).astype(np.uint8))
            assert udp[..., 3].sum() > 50  # the character is in the frame
            assert not udp[udp[..., 3] == 0].any()
        assert {"yaw", "pitch", "projection"} <= set(clip.meta["images"][0]["view"])
        assert clip.meta["images"][0]["camera"]["width"] == 64


def test_same_seed_gives_byte_identical_shards_and_resume_fills_gaps(characters, tmp_path):
    chars = list_characters(characters)
    cfg = SynthConfig(**SMALL)
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    run_synth(chars, a, cfg, InlineEngine(), progress=False)
    run_synth(chars, b, cfg, InlineEngine(), progress=False)
    assert shard_digests(a) and shard_digests(a) == shard_digests(b)
    # A run interrupted after the first character, then rerun: every clip exactly once, same content.
    run_synth(chars[:1], c, cfg, InlineEngine(), progress=False)
    again = run_synth(chars, c, cfg, InlineEngine(), progress=False)
    assert again.clips_already_done == 4 and again.clips_written == 4
    assert clip_contents(c) == clip_contents(a)
    nothing = run_synth(chars, c, cfg, InlineEngine(), progress=False)
    assert nothing.clips_written == 0 and nothing.clips_already_done == 8
    # Another seed gives other images, and is refused in the same folder.
    d = tmp_path / "d"
    run_synth(chars, d, SynthConfig(**{**SMALL, "seed": 8}), InlineEngine(), progress=False)
    assert clip_contents(d).keys() == clip_contents(a).keys() and clip_contents(d) != clip_contents(a)
    with pytest.raises(UserError):
        run_synth(chars, d, SynthConfig(**{**SMALL, "seed": 8, "views": 3}), InlineEngine(), progress=False)


def test_a_character_that_fails_to_load_is_skipped(characters, tmp_path):
    chars = list_characters(characters)
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not an npz")
    report = run_synth(chars[:1] + [("zz-bad", bad)], tmp_path / "out", SynthConfig(**SMALL), progress=False)
    assert report.clips_written == 4
    assert [s["item"] for s in report.skipped] == ["zz-bad (bad.npz)"]


def test_pose_library_option(characters, tmp_path):
    from conrdata.poses import sample_poses, save_pose_library

    lib_path = save_pose_library(sample_poses(5, 3), tmp_path / "lib.npz")
    chars = list_characters(characters)[:1]
    cfg = SynthConfig(**{**SMALL, "poses_per_character": 4, "views": 1}, poses_path=str(lib_path))
    report = run_synth(chars, tmp_path / "out", cfg, progress=False)
    assert report.images_written == 4
    from conrdata.poses import load_pose_library

    ids = set(load_pose_library(lib_path).pose_ids)
    used = [im["pose_id"] for c in iter_clips(tmp_path / "out") for im in c.meta["images"]]
    assert len(used) == 4 and len(set(used)) == 4 and set(used) <= ids


@pytest.mark.slow
def test_output_does_not_depend_on_worker_count(characters, tmp_path):
    chars = list_characters(characters)
    cfg = SynthConfig(**SMALL)
    run_synth(chars, tmp_path / "one", cfg, InlineEngine(), progress=False)
    engine = LocalEngine(2)
    try:
        run_synth(chars, tmp_path / "two", cfg, engine, progress=False)
    finally:
        engine.close()
    assert shard_digests(tmp_path / "one") == shard_digests(tmp_path / "two")


@pytest.mark.slow
def test_ray_engine_matches_local(characters, tmp_path):
    ray = pytest.importorskip("ray")
    from conrdata.synth.engines import RayEngine

    chars = list_characters(characters)
    cfg = SynthConfig(**SMALL)
    run_synth(chars, tmp_path / "local", cfg, InlineEngine(), progress=False)
    engine = RayEngine(workers=2)
    try:
        assert ray.is_initialized()
        report = run_synth(chars, tmp_path / "ray", cfg, engine, progress=False)
    finally:
        engine.close()
    assert report.engine == "ray"
    assert shard_digests(tmp_path / "local") == shard_digests(tmp_path / "ray")


def run_cli(*args, cwd=None):
    env = dict(os.environ, PYOPENGL_PLATFORM="egl")
    return subprocess.run([sys.executable, "-m", "conrdata", *map(str, args)], capture_output=True, text=True,
                          env=env, cwd=cwd or REPO, timeout=300)


def test_cli_end_to_end_and_errors(meshes, tmp_path):
    out = tmp_path / "out"
    args = ["synth", meshes, out, "-p", 2, "-v", 1, "-k", 2, "-r", 32, "--seed", 3, "-q"]
    done = run_cli(*args)
    assert done.returncode == 0, done.stderr
    assert "synthesized 4 images in 2 clips of 2 characters" in done.stdout
    assert "images/s" in done.stdout and "broken.glb" in done.stdout
    rerun = run_cli(*args)
    assert rerun.returncode == 0 and "2 clips were already in the output" in rerun.stdout
    missing = run_cli("synth", tmp_path / "nope", tmp_path / "o2")
    assert missing.returncode == 2
    assert missing.stderr.strip().startswith("error: ") and "Traceback" not in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1
    bad_range = run_cli("synth", meshes, tmp_path / "o3", "--yaw", "10")
    assert bad_range.returncode == 2 and "--yaw" in bad_range.stderr


def test_cli_takes_poses_from_a_motions_folder(meshes, tmp_path):
    from conrdata.poses.bvh import write_bvh
    from tests.poses_testdata import apose_frame, cmu_bvh

    motions = tmp_path / "motions"
    motions.mkdir()
    frames = []
    for k in range(4):
        f = apose_frame()
        f["LeftForeArm"] = f.get("LeftForeArm", np.zeros(3)) + np.array([0.0, 0.0, 15.0 * k])
        frames.append(f)
    write_bvh(motions / "wave.bvh", cmu_bvh(frames))
    (motions / "broken.bvh").write_text("HIERARCHY\nROOT Hips {\n")
    out = tmp_path / "out"
    done = run_cli("synth", meshes, out, "--motions", motions, "-p", 3, "-v", 1, "-k", 3, "-r", 32, "-q")
    assert done.returncode == 0, done.stderr
    assert "broken.bvh" in done.stdout and "synthesized 6 images in 2 clips" in done.stdout
    for clip in iter_clips(out):  # each character: 3 distinct frames of the 4 in the motion
        used = [im["pose_id"] for im in clip.meta["images"]]
        assert len(set(used)) == 3 and all(p.startswith("wave") for p in used), used


def _die(task):
    os._exit(3)


def test_a_dying_worker_fails_the_run_clearly_instead_of_hanging():
    engine = LocalEngine(1)
    try:
        with pytest.raises(UserError, match="worker process died"):
            list(engine.map(_die, [1, 2, 3]))
    finally:
        engine.close()
