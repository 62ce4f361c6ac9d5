"""`conrdata poses` end to end on motions the tests write; real motions from the shared assets if present."""

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from conrdata.cli import group
from conrdata.poses import load_pose_library, pose_for_rig
from conrdata.poses.bvh import write_bvh
from conrdata.poses.vmd import VmdMotion, make_track, write_vmd
from conrdata.rig.model import forward_kinematics
from conrdata.rig.rotations import axis_rotation
from tests.conftest import assets_or_skip
from tests.poses_testdata import apose_frame, cmu_bvh


def run(args):
    from conrdata.cli.lazy import run_group

    try:
        run_group(group, [str(a) for a in args])
    except SystemExit as e:
        return e.code
    return 0


@pytest.fixture
def motions(tmp_path):
    d = tmp_path / "motions"
    (d / "sub").mkdir(parents=True)
    m = VmdMotion("m")
    m.tracks["右腕"] = make_track([0, 60], rotations=[[0, 0, 0, 1], axis_rotation("Z", -0.8)])
    m.tracks["左足ＩＫ"] = make_track([0, 60], positions=[[0, 0, 0], [0, 3, -2]])
    m.tracks["謎のボーン"] = make_track([0])
    write_vmd(d / "dance.vmd", m)
    write_bvh(d / "sub" / "walk.bvh", cmu_bvh([{}, apose_frame(), {"LeftLeg": np.array([40.0, 0, 0])}]))
    (d / "broken.bvh").write_text("HIERARCHY\nROOT Hips\n{\n")
    (d / "notes.txt").write_text("ignored")
    return d


def test_cli_motions_sample_and_preview(tmp_path, motions, capsys):
    out = tmp_path / "lib.npz"
    png = tmp_path / "strip.png"
    code = run(["poses", motions, out, "--fps", "10", "--sample", "4", "--seed", "3", "--preview", png, "-q"])
    assert code == 0
    lib = load_pose_library(out)
    # dance: 2 s at 10 fps = 21; walk: 3 frames at 30 fps (0.067 s) at 10 fps = 1; 4 samples
    assert len(lib) == 21 + 1 + 4
    assert sum(p.startswith("dance@") for p in lib.pose_ids) == 21
    assert lib.pose_ids.count("walk@f000000") == 1
    assert sum(p.startswith("sample-3-") for p in lib.pose_ids) == 4
    assert any("broken.bvh" in k for k in lib.meta["skipped"])
    captured = capsys.readouterr()
    assert "skipped" in captured.err and "broken.bvh" in captured.err
    assert "謎のボーン" in captured.out
    img = np.asarray(Image.open(png))
    assert img.ndim == 3 and img.shape[0] >= 2 * 160 and (img < 200).any()


def test_cli_max_poses_and_character(tmp_path, motions):
    pytest.importorskip("conrdata.rig.procedural")
    io = pytest.importorskip("conrdata.rig.io")
    from conrdata.rig.procedural import build_character

    rig = build_character(3)
    char = io.save_character(rig, tmp_path / "char.npz")
    out = tmp_path / "lib.npz"
    code = run(["poses", motions / "dance.vmd", out, "--max-poses", "5", "--character", char,
                "--preview", tmp_path / "p.png", "-q"])
    assert code == 0
    lib = load_pose_library(out)
    assert len(lib) == 5 and lib.pose_ids[-1] == "dance@f0060"
    q, t = pose_for_rig(rig, lib, 4)
    _, pos = forward_kinematics(rig, q, t)
    assert np.all(np.isfinite(pos))


def test_cli_errors(tmp_path, capsys):
    assert run(["poses", tmp_path / "out.npz"]) == 2  # neither motions nor --sample
    assert run(["poses", tmp_path / "nowhere", tmp_path / "out.npz"]) == 2
    assert "nowhere" in capsys.readouterr().err
    (tmp_path / "only").mkdir()
    (tmp_path / "only" / "bad.vmd").write_bytes(b"not a motion")
    assert run(["poses", tmp_path / "only", tmp_path / "out.npz"]) == 2
    err = capsys.readouterr().err
    assert "bad.vmd" in err and "error:" in err and "Traceback" not in err
    assert run(["poses", "--sample", "2", tmp_path / "out.png"]) == 2


def test_help_teaches():
    res = CliRunner().invoke(group, ["poses", "--help"])
    assert res.exit_code == 0 and "Example" in res.output and "--max-poses" in res.output


@pytest.mark.slow
def _first_humanoid(paths):
    """The first model among ``paths`` that loads with every required humanoid bone, and the reasons
    others were passed over."""
    from conrdata.errors import UserError
    from conrdata.formats import load_model
    from conrdata.rig.humanoid import REQUIRED_BONES

    passed_over = []
    for path in paths:
        try:
            rig = load_model(path)
        except UserError as exc:
            passed_over.append(f"{path.name}: {exc}")
            continue
        missing = [b for b in REQUIRED_BONES if b not in rig.humanoid]
        if not missing:
            return rig, passed_over
        passed_over.append(f"{path.name}: not a humanoid (no {', '.join(missing[:3])}...)")
    return None, passed_over


def test_real_motions_drive_vrm_and_pmx_characters(tmp_path):
    """Every real motion drives the first humanoid VRM and the first humanoid PMX (feature-test PMX
    files are passed over)."""
    motions = assets_or_skip("motions")
    meshes = assets_or_skip("meshes")
    from conrdata.poses.build import build_library
    from conrdata.poses.library import save_pose_library
    from conrdata.poses.preview import save_preview
    from conrdata.rig.apose import align_to_apose

    for suffix in ("*.vrm", "*.pmx"):
        rig, passed_over = _first_humanoid(sorted(meshes.rglob(suffix)))
        if rig is None:
            pytest.skip(f"no humanoid {suffix} under {meshes}: {passed_over}")
        rig = align_to_apose(rig)
        name = rig.meta.get("name") or suffix[2:]
        out = tmp_path / f"{suffix[2:]}.npz"
        lib, report = build_library(motions, rig, fps=5, max_poses=50)
        assert len(lib) > 0, report.skipped
        save_pose_library(lib, out)
        save_preview(tmp_path / f"{suffix[2:]}.png", lib, rig)
        for i in range(len(lib)):
            q, t = pose_for_rig(rig, lib, i)
            assert np.all(np.isfinite(forward_kinematics(rig, q, t)[1])), name


def test_cli_character_from_a_model_file(tmp_path, motions):
    proc = pytest.importorskip("conrdata.rig.procedural")
    pytest.importorskip("conrdata.formats")
    glb = proc.write_character_glb(tmp_path / "hero.glb", seed=4)
    out = tmp_path / "lib.npz"
    assert run(["poses", motions / "sub" / "walk.bvh", out, "--character", glb, "-q"]) == 0
    lib = load_pose_library(out)
    assert len(lib) == 3 and "hero.glb" in lib.meta["character"]
