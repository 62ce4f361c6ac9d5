"""Quirks of real files that the readers tolerate, each with a warning in the report.

BVH frame counts that disagree with the data, CRLF line endings and trailing
whitespace; VMD names cut inside a Shift-JIS character; PMX/PMD texture paths
written as absolute Windows paths; model folders linked into a library by
symbolic links. The files are written by the test helpers and then edited
byte by byte; the real Boxing_Toes.bvh (one frame more than its header says)
is read when the shared assets are present.
"""

import os
import re

import numpy as np
import pytest

from conrdata.cli import group
from conrdata.cli.lazy import run_group
from conrdata.errors import FormatError
from conrdata.formats.pmd import read_pmd
from conrdata.formats.pmx import read_pmx
from conrdata.formats.textures import find_texture
from conrdata.poses import load_pose_library
from conrdata.poses.build import build_library
from conrdata.poses.bvh import bvh_text, parse_bvh, read_bvh
from conrdata.poses.mmd import evaluate_vmd, mmd_skeleton_for
from conrdata.poses.vmd import VmdMotion, field_text, make_track, parse_vmd, vmd_bytes
from conrdata.rig.rotations import axis_rotation, quat_angle
from conrdata.synth.convert import convert_folder, find_models
from tests.conftest import assets_or_skip
from tests.mmd_writer import BODY_RGB, pmd_bytes, pmx_bytes, tiny_humanoid, write_pmx, write_textures
from tests.poses_testdata import apose_frame, cmu_bvh

# --- BVH ---------------------------------------------------------------------------------------------


def _bvh(frames: int = 3) -> str:
    return bvh_text(cmu_bvh([apose_frame() if k % 2 else {} for k in range(frames)]))


def _set_frames(text: str, n: int) -> str:
    out, k = re.subn(r"Frames: \d+", f"Frames: {n}", text)
    assert k == 1
    return out


def test_bvh_more_frames_than_the_header_says_reads_them_all_with_a_warning():
    text = _bvh(4)
    good = parse_bvh(text)
    motion = parse_bvh(_set_frames(text, 3), "x.bvh")
    assert motion.num_frames == 4
    np.testing.assert_array_equal(motion.frames, good.frames)
    assert motion.warnings == ["header says 3 frames, the data holds 4: read 4"]
    assert good.warnings == []


def test_bvh_fewer_frames_or_a_partial_frame_reads_the_whole_ones_with_a_warning():
    text = _bvh(4)
    good = parse_bvh(text)
    motion = parse_bvh(_set_frames(text, 6))
    assert motion.num_frames == 4 and "header says 6 frames, the data holds 4" in motion.warnings[0]
    cut = text.rstrip().rsplit(" ", 5)[0] + "\n"  # the last frame loses its last five numbers
    motion = parse_bvh(cut)
    np.testing.assert_array_equal(motion.frames, good.frames[:3])
    assert len(motion.warnings) == 2 and "partial frame" in motion.warnings[1]
    # No whole frame at all is still a truncated file.
    header = text.split("Frame Time")[0] + "Frame Time: 0.033333\n1 2 3\n"
    with pytest.raises(FormatError, match="truncated"):
        parse_bvh(header, "t.bvh")


def test_bvh_crlf_tabs_trailing_whitespace_and_bom_change_nothing(tmp_path):
    text = _bvh(3)
    good = parse_bvh(text)
    messy = "\ufeff" + "".join(line.replace(" ", " \t", 1) + "  \t\r\n" for line in text.splitlines())
    path = tmp_path / "messy.bvh"
    path.write_bytes(messy.encode("utf-8"))
    motion = read_bvh(path)
    assert motion.names == good.names and motion.channels == good.channels
    np.testing.assert_array_equal(motion.offsets, good.offsets)
    np.testing.assert_array_equal(motion.frames, good.frames)
    assert motion.frame_time == pytest.approx(good.frame_time) and motion.warnings == []


def test_bvh_header_mismatch_reaches_the_library_meta_and_the_report(tmp_path):
    (tmp_path / "walk.bvh").write_text(_set_frames(_bvh(4), 2))
    lib, report = build_library(tmp_path, fps=30.0)
    key = str(tmp_path / "walk.bvh")
    assert len(lib) == 4 and report.sources == {key: 4}
    assert report.warnings == {key: ["header says 2 frames, the data holds 4: read 4"]}
    assert lib.meta["warnings"] == report.warnings


def test_real_boxing_toes_loads_with_its_extra_frame(tmp_path):
    path = assets_or_skip("motions", "bvh", "Boxing_Toes.bvh")
    motion = read_bvh(path)
    assert motion.num_frames == 3070  # the header says 3069
    assert motion.warnings == ["header says 3069 frames, the data holds 3070: read 3070"]
    out = tmp_path / "box.npz"
    run_group(group, ["poses", str(path), str(out), "--fps", "100", "--max-poses", "8", "-q"])  # every frame
    lib = load_pose_library(out)
    assert len(lib) == 8 and lib.pose_ids[-1] == "Boxing_Toes@f003069"
    assert lib.meta["warnings"] == {str(path): motion.warnings}


# --- VMD ---------------------------------------------------------------------------------------------

LONG_BONE = "左腕捩じりボーン追加分"  # 22 bytes in Shift-JIS: a 15-byte VMD field cuts "ン" in two


def test_vmd_name_cut_inside_a_character_still_drives_its_bone(tmp_path):
    model = tiny_humanoid()
    twist = [b.name for b in model.bones].index("左腕捩")
    model.bones[twist].name = LONG_BONE
    write_textures(tmp_path)
    rig = read_pmx(write_pmx(tmp_path / "m.pmx", model))
    motion = VmdMotion("model")
    motion.tracks["X" * 15] = make_track([0, 30], rotations=[axis_rotation("X", 0.8)] * 2)
    raw = LONG_BONE.encode("cp932")[:15]
    assert raw[-1] == LONG_BONE.encode("cp932")[14]  # the lead byte of a two-byte character
    data = vmd_bytes(motion).replace(b"X" * 15, raw)
    cut = parse_vmd(data, "cut.vmd")
    assert list(cut.tracks) == ["左腕捩じりボー"] == [field_text(LONG_BONE)]
    assert len(cut.warnings) == 1 and "cut inside a Shift-JIS character" in cut.warnings[0]
    skel = mmd_skeleton_for(rig)
    b = skel.find("左腕捩じりボー")
    assert b is not None and skel.names[b] == LONG_BONE
    world_q, _, missing = evaluate_vmd(cut, skel, np.array([0.0, 15.0]))
    assert missing == []
    assert quat_angle(world_q[:, b]) == pytest.approx([0.8, 0.8], abs=1e-5)
    # An uncut file says nothing.
    assert parse_vmd(vmd_bytes(VmdMotion("model", {"右腕": make_track([0])}))).warnings == []


def test_vmd_cut_model_name_is_warned_and_reaches_the_report(tmp_path):
    motion = VmdMotion("M" * 20, {"右腕": make_track([0, 30], rotations=[axis_rotation("Z", -0.5)] * 2)})
    raw = "A初音ミクのモデルです".encode("cp932")[:20]  # 'A', nine characters and half of "す"
    (tmp_path / "m.vmd").write_bytes(vmd_bytes(motion).replace(b"M" * 20, raw))
    lib, report = build_library(tmp_path, fps=10.0)
    assert len(lib) == 11 and lib.meta["warnings"] == report.warnings
    (lines,) = report.warnings.values()
    assert lines == ["model name cut inside a Shift-JIS character at 20 bytes: read as 'A初音ミクのモデルで'"]


# --- PMX / PMD textures --------------------------------------------------------------------------------


@pytest.mark.parametrize("kind,body,tail", [
    ("pmx", "C:\\Users\\名無し\\Desktop\\model\\tex\\BODY.png", "tex/BODY.png"),
    ("pmd", "C:\\m\\TEX\\body.png", "TEX/body.png"),  # PMD's texture field holds 20 bytes
])
def test_absolute_windows_texture_paths_resolve_next_to_the_model(tmp_path, kind, body, tail):
    write_textures(tmp_path)
    hair = "D:/a/HAIR.tga"
    model = tiny_humanoid(textures=(body, hair))
    path = tmp_path / f"m.{kind}"
    path.write_bytes(pmx_bytes(model) if kind == "pmx" else pmd_bytes(model))
    rig = read_pmx(path) if kind == "pmx" else read_pmd(path)
    body_m, hair_m = rig.materials
    assert tuple(body_m.texture[0, 0]) == (*BODY_RGB, 255)
    assert hair_m.texture.shape == (4, 4, 4) and hair_m.texture[0, 0, 2] == 255
    notes = [w for w in rig.warnings if "absolute path" in w]
    assert len(notes) == 2
    assert any(body in w and f"using {tail} next to the model" in w for w in notes)
    assert any(hair in w and "using HAIR.tga next to the model" in w for w in notes)


def test_texture_finder_never_opens_an_absolute_path_and_tries_longest_tails_first(tmp_path):
    write_textures(tmp_path)
    (tmp_path / "sub").mkdir()
    outside = tmp_path / "sub" / "elsewhere.png"
    outside.write_bytes((tmp_path / "tex" / "body.png").read_bytes())
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    assert find_texture(str(outside), model_dir) is None  # exists, but is not under the model folder
    (model_dir / "tex").mkdir()
    (model_dir / "body.png").write_bytes(b"x")
    (model_dir / "tex" / "Body.png").write_bytes(b"y")
    notes: list[str] = []
    assert find_texture("E:\\work\\tex\\body.PNG", model_dir, notes) == model_dir / "tex" / "Body.png"
    assert find_texture("\\\\server\\share\\body.png", model_dir, notes) == model_dir / "body.png"
    assert find_texture("old\\body.png", model_dir, notes) == model_dir / "body.png"
    assert find_texture("tex/BODY.png", model_dir, notes) == model_dir / "tex" / "Body.png"
    assert len(notes) == 3 and "not at that path" in notes[2]
    assert find_texture("C:\\x\\missing.png", model_dir) is None


# --- convert: symbolic links ------------------------------------------------------------------------


@pytest.mark.skipif(not hasattr(os, "symlink") or os.name == "nt", reason="needs POSIX symbolic links")
def test_convert_follows_linked_model_folders_and_files_without_looping(tmp_path):
    store = tmp_path / "store"
    for name in ("alice", "bob"):
        (store / name).mkdir(parents=True)
        write_textures(store / name)
    write_pmx(store / "alice" / "alice.pmx", tiny_humanoid())
    other = tiny_humanoid()
    other.name = "ボブ"
    write_pmx(store / "bob" / "bob.pmx", other)
    library = tmp_path / "library"
    library.mkdir()
    os.symlink(store / "alice", library / "alice")  # a linked model folder
    os.symlink(store / "bob" / "bob.pmx", library / "bob.pmx")  # a linked model file
    os.symlink(library, library / "alice" / "loop")  # a cycle back to the library
    os.symlink(store / "alice", library / "alice-again")  # the same folder twice
    with pytest.warns(UserWarning, match="symbolic link to a folder above it"):
        found = find_models(library)
    assert found == [library / "alice" / "alice.pmx", library / "bob.pmx"]
    with pytest.warns(UserWarning):
        report = convert_folder(library, tmp_path / "chars", progress=False)
    assert len(report.converted) == 2 and not report.skipped
    assert sorted(r["source_path"].rsplit("/", 1)[-1] for r in report.converted) == ["alice.pmx", "bob.pmx"]
