"""`conrdata convert` end to end: procedural GLBs and a VRM in, bad files skipped, canonical rigs out."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from conrdata.cli import main
from conrdata.errors import FormatError
from conrdata.formats.gltf_writer import glb_bytes, rig_to_glb, rig_to_gltf
from conrdata.rig.humanoid import REQUIRED_BONES
from conrdata.rig.io import FORMAT_VERSION, load_character, save_character
from conrdata.rig.procedural import build_character, tpose, write_character_glb
from conrdata.synth.convert import (
    MANIFEST,
    REPORT,
    character_id,
    convert_folder,
    file_sha256,
    list_characters,
)
from tests.apose_criteria import assert_apose
from tests.conftest import NOT_CHARACTERS, assets_or_skip

ID_RE = re.compile(r"^[a-z0-9-]+-[0-9a-f]{8}$")


def make_meshes(folder, bad: bool = True):
    folder.mkdir(parents=True, exist_ok=True)
    write_character_glb(folder / "Girl A.glb", seed=0)
    write_character_glb(folder / "girl_b.glb", seed=1)
    (folder / "sub").mkdir(exist_ok=True)
    rig_to_glb(tpose(build_character(2)), folder / "sub" / "vroid.vrm", vrm="0",
               node_name=lambda n: "J_Bip_" + n, licence={"author": "Tester", "name": "CC0"})
    (folder / "notes.txt").write_text("not a model")
    if not bad:
        return
    good = (folder / "girl_b.glb").read_bytes()
    (folder / "truncated.glb").write_bytes(good[: len(good) // 3])
    (folder / "corrupt.gltf").write_text('{"asset": {"version": "2.0"}, "nodes": [}')
    doc, binary = rig_to_gltf(build_character(3))
    del doc["skins"]
    del doc["nodes"][-1]["skin"]
    (folder / "static.glb").write_bytes(glb_bytes(doc, binary))
    # Scrambled names: the humanoid bones are found from the skeleton's shape.
    doc, binary = rig_to_gltf(build_character(4), node_name=lambda n: f"b{len(n)}_{n[::-1]}")
    (folder / "anon.glb").write_bytes(glb_bytes(doc, binary))
    # The same bones hung in one chain: no legs, no arms, not a humanoid.
    chain = build_character(6)
    chain = chain.replace(bone_parents=np.arange(chain.num_bones, dtype=np.int32) - 1)
    doc, binary = rig_to_gltf(chain, node_name=lambda n: f"b{len(n)}_{n[::-1]}")
    (folder / "chain.glb").write_bytes(glb_bytes(doc, binary))
    huge = build_character(5)
    huge = huge.replace(vertices=huge.vertices * 100, bone_heads=huge.bone_heads * 100)
    rig_to_glb(huge, folder / "centimetres.glb")


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    root = tmp_path_factory.mktemp("conv")
    meshes, chars = root / "meshes", root / "characters"
    make_meshes(meshes)
    report = convert_folder(meshes, chars, workers=1, progress=False)
    return meshes, chars, report


def test_report_converted_and_skipped(converted):
    meshes, chars, report = converted
    assert len(report.converted) == 4 and not report.reused
    reasons = {s["path"].split("/")[-1]: s["reason"] for s in report.skipped}
    assert set(reasons) == {"truncated.glb", "corrupt.gltf", "static.glb", "chain.glb", "centimetres.glb"}
    assert "truncated" in reasons["truncated.glb"]
    assert "corrupt glTF JSON" in reasons["corrupt.gltf"]
    assert "no skin" in reasons["static.glb"]
    assert "not a humanoid" in reasons["chain.glb"]
    assert "absurd size" in reasons["centimetres.glb"]
    for name, reason in reasons.items():
        assert name in reason  # every reason names its file
    saved = json.loads((chars / REPORT).read_text())
    assert len(saved["skipped"]) == 5 and len(saved["converted"]) == 4


def test_manifest_rows(converted):
    meshes, chars, report = converted
    rows = pq.read_table(chars / MANIFEST).to_pylist()
    assert [r["id"] for r in rows] == sorted(r["id"] for r in rows)
    by_src = {r["source_path"].split("/")[-1]: r for r in rows}
    assert set(by_src) == {"Girl A.glb", "girl_b.glb", "vroid.vrm", "anon.glb"}
    for name, r in by_src.items():
        src = next(meshes.rglob(name))
        assert r["sha256"] == file_sha256(src)
        assert ID_RE.match(r["id"]) and r["id"] == character_id(src, r["sha256"])
        assert r["path"] == f"{r['id']}.npz" and (chars / r["path"]).is_file()
        assert r["vertices"] > 1000 and 1000 < r["faces"] < 5000 and r["bones"] > 40
        assert "leftUpperArm" in r["humanoid_bones"] and r["humanoid_count"] == len(r["humanoid_bones"])
        assert 1.3 < r["height_m"] < 1.7
    assert by_src["Girl A.glb"]["id"].startswith("girl-a-")
    assert by_src["vroid.vrm"]["format"] == "vrm0"
    assert json.loads(by_src["vroid.vrm"]["licence"])["author"] == "Tester"
    assert json.loads(by_src["girl_b.glb"]["licence"])["copyright"].startswith("CC0")
    # how each humanoid bone was found
    assert set(json.loads(by_src["vroid.vrm"]["humanoid_sources"]).values()) == {"vrm"}
    assert set(json.loads(by_src["girl_b.glb"]["humanoid_sources"]).values()) == {"name"}
    anon = json.loads(by_src["anon.glb"]["humanoid_sources"])
    assert set(anon) >= set(REQUIRED_BONES) and set(anon.values()) == {"topology"}
    assert all(r["bone_map"] == "" and r["humanoid_notes"] == [] for r in rows)


def test_converted_characters_meet_apose_criteria(converted):
    _, chars, _ = converted
    listed = list_characters(chars)
    assert len(listed) == 4 and [i for i, _ in listed] == sorted(i for i, _ in listed)
    for cid, path in listed:
        rig = load_character(path)
        assert_apose(rig, what=cid, tol_bind=1e-5)
        assert rig.meta["character_id"] == cid and "apose_correction" in rig.meta
        if not cid.startswith("anon-"):
            arms = {rig.bone_names[rig.humanoid[n]] for n in ("leftUpperArm", "rightUpperArm")}
            assert set(rig.meta["apose_correction"]) >= arms  # the files were T-posed


def test_procedural_glb_round_trip_equals_build_character(converted):
    _, chars, _ = converted
    rig = load_character(next(p for i, p in list_characters(chars) if i.startswith("girl-b-")))
    ref = build_character(1)
    np.testing.assert_allclose(rig.bone_heads, ref.bone_heads, atol=1e-4)
    assert rig.bone_names == ref.bone_names and rig.humanoid == ref.humanoid


def test_rerun_skips_converted(converted, tmp_path):
    meshes, chars, _ = converted
    chars2 = tmp_path / "chars"
    shutil.copytree(chars, chars2)
    before = {p.name: p.stat().st_mtime_ns for p in chars2.glob("*.npz")}
    report = convert_folder(meshes, chars2, progress=False)
    assert not report.converted and len(report.reused) == 4 and len(report.skipped) == 5
    assert {p.name: p.stat().st_mtime_ns for p in chars2.glob("*.npz")} == before
    # a killed run: the manifest is gone but a character file and a temp file remain -> redone cleanly
    (chars2 / MANIFEST).unlink()
    (chars2 / "girl-a-00000000.npz.tmp").write_bytes(b"partial")
    report = convert_folder(meshes, chars2, progress=False)
    assert len(report.converted) == 4
    assert len(list_characters(chars2)) == 4


def test_duplicates_and_ids(tmp_path):
    meshes = tmp_path / "m"
    meshes.mkdir()
    write_character_glb(meshes / "a.glb", seed=0)
    shutil.copy(meshes / "a.glb", meshes / "b.glb")
    report = convert_folder(meshes, tmp_path / "c", progress=False)
    assert len(report.converted) == 1 and "identical to" in report.skipped[0]["reason"]
    sha = file_sha256(meshes / "a.glb")
    assert character_id(meshes / "a.glb", sha) == f"a-{sha[:8]}"
    assert character_id("x/My Model.v2.pmx", sha) == f"my-model-v2-{sha[:8]}"
    assert character_id("x/???.vrm", sha) == f"model-{sha[:8]}"


def test_parallel_matches_serial(converted, tmp_path):
    meshes, chars, _ = converted
    report = convert_folder(meshes, tmp_path / "par", workers=2, progress=False)
    assert sorted(r["id"] for r in report.converted) == [i for i, _ in list_characters(chars)]
    for cid, path in list_characters(chars):
        a, b = load_character(path), load_character(tmp_path / "par" / f"{cid}.npz")
        np.testing.assert_array_equal(a.vertices, b.vertices)


def test_cli_exit_codes(tmp_path, capsys):
    meshes = tmp_path / "m"
    make_meshes(meshes, bad=False)
    main(["convert", "--quiet", str(meshes), str(tmp_path / "c")])  # returns: exit 0
    out = capsys.readouterr()
    assert "converted 3" in out.out

    (meshes / "broken.glb").write_bytes(b"glTF\x02\0\0\0")
    with pytest.raises(SystemExit) as e:
        main(["convert", "--quiet", "--strict", str(meshes), str(tmp_path / "c")])
    assert e.value.code == 2
    assert "broken.glb" in capsys.readouterr().err

    only_bad = tmp_path / "bad"
    only_bad.mkdir()
    (only_bad / "x.glb").write_bytes(b"nonsense")
    with pytest.raises(SystemExit) as e:
        main(["convert", "--quiet", str(only_bad), str(tmp_path / "c2")])
    assert e.value.code == 2
    assert "no character could be converted" in capsys.readouterr().err

    with pytest.raises(SystemExit) as e:
        main(["convert", str(tmp_path / "nowhere"), str(tmp_path / "c3")])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.startswith("error: ") and "nowhere" in err and "Traceback" not in err
    main(["convert", "--help"])
    assert "Example" in capsys.readouterr().out


def test_character_file_errors(tmp_path):
    rig = build_character(0)
    good = save_character(rig, tmp_path / "c.npz")
    assert load_character(good).bone_names == rig.bone_names
    (tmp_path / "bad.npz").write_bytes(good.read_bytes()[:1000])
    with pytest.raises(FormatError, match="bad.npz"):
        load_character(tmp_path / "bad.npz")
    with np.load(good) as z:
        arrays = dict(z)
    arrays["format_version"] = np.asarray(FORMAT_VERSION + 1)
    np.savez(tmp_path / "future.npz", **arrays)
    with pytest.raises(FormatError, match="format_version"):
        load_character(tmp_path / "future.npz")
    np.savez(tmp_path / "other.npz", a=np.zeros(3))
    with pytest.raises(FormatError, match="not a character file"):
        load_character(tmp_path / "other.npz")


def test_character_file_round_trip_png_textures(tmp_path):
    rig = build_character(1)
    for png in (False, True):
        back = load_character(save_character(rig, tmp_path / f"r{png}.npz", png_textures=png))
        for name in ("vertices", "normals", "uvs", "faces", "face_material", "joints", "weights",
                     "bone_parents", "bone_heads"):
            np.testing.assert_array_equal(getattr(back, name), getattr(rig, name))
        assert back.humanoid == rig.humanoid and back.meta == rig.meta
        for a, b in zip(back.materials, rig.materials):
            np.testing.assert_array_equal(a.texture, b.texture)
            assert (a.alpha_mode, a.double_sided, a.name) == (b.alpha_mode, b.double_sided, b.name)


def test_real_assets_convert(tmp_path):
    """Every character under shared meshes/ converts and meets the A-pose criteria; the rest are skipped
    with a reason that says why; how each humanoid bone was found is recorded."""
    meshes = assets_or_skip("meshes")
    report = convert_folder(meshes, tmp_path / "chars", workers=2, progress=False)
    skipped = {Path(s["path"]).relative_to(meshes).as_posix(): s["reason"] for s in report.skipped}
    for rel, words in NOT_CHARACTERS.items():
        if (meshes / rel).exists():
            assert words in skipped.pop(rel, ""), (rel, words)
    assert not skipped, skipped
    rows = {Path(r["source_path"]).relative_to(meshes).as_posix(): r for r in report.converted}
    expected = {"gene/Gene_light.pmx", "gene/Gene_light.pmd", "mei/mei.pmd", "godot-vrm/Godette_vrm_v4.vrm",
                "quaternius/Witch.glb", "kenney/character-female-a.glb",
                "khronos-via-vrmmetalkit/RiggedFigure.glb"}
    assert expected <= set(rows)
    for rel, row in rows.items():
        rig = load_character(tmp_path / "chars" / row["path"])
        assert_apose(rig, what=rel)
        sources = json.loads(row["humanoid_sources"])
        assert set(sources) == set(rig.humanoid) >= set(REQUIRED_BONES), rel
    src = {rel: json.loads(r["humanoid_sources"]) for rel, r in rows.items()}
    assert set(src["gene/Gene_light.pmx"].values()) == {"pmx"} and set(src["mei/mei.pmd"].values()) == {"pmd"}
    assert set(src["godot-vrm/Godette_vrm_v4.vrm"].values()) == {"vrm"}
    assert set(src["khronos-via-vrmmetalkit/RiggedFigure.glb"].values()) == {"name"}
    kenney = src["kenney/character-female-a.glb"]
    assert kenney["hips"] == "stand-in" and kenney["leftLowerArm"] == kenney["rightFoot"] == "limb"
    assert kenney["leftUpperArm"] == "name"
    witch_notes = rows["quaternius/Witch.glb"]["humanoid_notes"]
    assert any(n.startswith("leftUpperLeg: re-attached from Root to hips") for n in witch_notes), witch_notes
