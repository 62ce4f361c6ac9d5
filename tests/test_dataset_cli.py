"""The dataset commands of `conrdata`: inspect, validate, preview, split (in-process, real files)."""

from __future__ import annotations

import json

import cv2
import pytest

from conrdata.cli import main
from conrdata.dataset import split_of
from conrdata.dataset.manifests import read_manifest
from tests.dataset_helpers import make_clips, write_dataset


def run(capsys, *argv) -> tuple[int, str, str]:
    code = 0
    try:
        main(list(argv))
    except SystemExit as exit_:
        code = exit_.code or 0
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def dataset(tmp_path):
    clips = make_clips(n_characters=4, clips_per_character=2)
    return write_dataset(tmp_path / "out", clips), clips


def test_inspect_reports_counts(capsys, dataset):
    out, clips = dataset
    code, text, _ = run(capsys, "inspect", str(out), "--json")
    assert code == 0
    s = json.loads(text)
    assert s["characters"] == 4 and s["clips"] == len(clips)
    assert s["images"] == sum(len(c.images) for c in clips)
    assert s["labelled_images"] == sum(im.udp is not None for c in clips for im in c.images)
    assert s["one_shot_clips"] == 1 and s["bytes"] > 0
    assert s["splits"]["train"]["clips"] + s["splits"]["val"]["clips"] == len(clips)
    code, text, _ = run(capsys, "inspect", str(out))
    assert code == 0 and "split ratio" in text and "labelled" in text


def test_validate_ok_then_failing(capsys, dataset, tmp_path):
    out, _ = dataset
    code, text, _ = run(capsys, "validate", str(out))
    assert code == 0 and text.strip().endswith("OK")
    shard = sorted((out / "shards").glob("*.tar"))[0]
    data = shard.read_bytes()
    shard.write_bytes(data[: len(data) - 3000])
    report = tmp_path / "report.json"
    code, text, _ = run(capsys, "validate", str(out), "--report", str(report))
    assert code == 1
    assert f"{shard.name}: truncated-tar:" in text and "checksum" in text
    assert json.loads(report.read_text())["ok"] is False


def test_preview_writes_sheet_and_html(capsys, dataset, tmp_path):
    out, _ = dataset
    sheet, page = tmp_path / "sheet.png", tmp_path / "sheet.html"
    code, text, _ = run(
        capsys, "preview", str(out), "--out", str(sheet), "--html", str(page), "--clips", "3", "--tile", "32"
    )
    assert code == 0, text
    img = cv2.imread(str(sheet), cv2.IMREAD_UNCHANGED)
    assert img is not None and img.shape[1] == 2 * (3 * 32 + 2) + 2 and img.shape[0] > 3 * 32
    html = page.read_text()
    assert html.count("<tr>") == 6 and "data:image/png;base64," in html
    code, _, _ = run(capsys, "preview", str(out), "--out", str(sheet), "--clips", "2", "--seed", "1")
    assert code == 0


def test_split_cli_moves_a_pinned_character(capsys, dataset, tmp_path):
    out, clips = dataset
    cid = clips[0].character_id
    new = "val" if split_of(cid) == "train" else "train"
    pins = tmp_path / "pins.csv"
    pins.write_text(f"character_id,split\n{cid},{new}\nnobody,val\n")
    code, text, err = run(capsys, "split", str(out), "--pin", str(pins), "--dry-run")
    assert code == 0 and f"{cid}: " in text and "nobody" in err
    assert {r["split"] for r in read_manifest(out, "clips") if r["character"] == cid} != {new}
    code, text, _ = run(capsys, "split", str(out), "--pin", str(pins))
    assert code == 0 and "done" in text
    assert {r["split"] for r in read_manifest(out, "clips") if r["character"] == cid} == {new}
    assert run(capsys, "validate", str(out))[0] == 0


def test_user_errors_are_one_line_exit_2(capsys, tmp_path):
    code, _, err = run(capsys, "inspect", str(tmp_path))
    assert (
        code == 2
        and err.startswith("error: ")
        and str(tmp_path) in err
        and len(err.strip().splitlines()) == 1
    )
    pins = tmp_path / "pins.csv"
    pins.write_text("character_id,split\na,val\na,train\n")
    code, _, err = run(capsys, "split", str(tmp_path), "--pin", str(pins))
    assert code == 2 and "pins.csv" in err and "both" in err
