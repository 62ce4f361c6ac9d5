"""The demo pipeline at its smallest setting, end to end: every artefact it lists exists and is non-empty."""

import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.run import MARKER, SMALLEST, learning_verdict, load_config

REPO = Path(__file__).resolve().parents[1]


def test_smallest_config_only_shrinks_work():
    full = load_config(REPO / "pipelines" / "demo.yaml")
    small = load_config(REPO / "pipelines" / "demo.yaml", smallest=True)
    for section, values in SMALLEST.items():
        for key, value in values.items():
            assert small[section][key] == value
            assert value <= full[section][key]


@pytest.mark.slow
def test_demo_pipeline_smallest(tmp_path):
    out = tmp_path / "demo"
    done = subprocess.run(
        [sys.executable, "-m", "pipelines.demo", "--smallest", "--out", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=1200,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert (out / MARKER).exists()
    for name in ("preview.png", "preview.html", "poses.png", "animation.gif", "commands.sh", "validate.json"):
        assert (out / name).stat().st_size > 0, name
    assert list((out / "data" / "shards").glob("train-*.tar"))
    assert list((out / "data" / "shards").glob("val-*.tar"))
    assert (out / "run" / "checkpoints" / "latest.pt").stat().st_size > 0
    assert list((out / "eval").glob("metrics-*.json"))
    frames = sorted((out / "animation" / "frames").glob("*.png"))
    assert len(frames) == SMALLEST["animation"]["frames"]
    # Rerunning into the same folder starts afresh instead of failing.
    again = subprocess.run(
        [sys.executable, "-m", "pipelines.run", "pipelines/demo.yaml", "--smallest", "--out", str(out),
         "--until", "poses"],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )
    assert again.returncode == 0, again.stderr[-2000:]
    assert not (out / "data").exists()


def test_pipeline_refuses_foreign_folder(tmp_path):
    (tmp_path / "precious.txt").write_text("keep me")
    done = subprocess.run(
        [sys.executable, "-m", "pipelines.run", "pipelines/demo.yaml", "--out", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 2
    assert (tmp_path / "precious.txt").read_text() == "keep me"


def test_learning_verdict_compares_with_the_silhouette(tmp_path):
    import json

    def view(model, silhouette):
        return {"model": {"fg_l1": model}, "baselines": {"silhouette": {"fg_l1": silhouette}}}

    path = tmp_path / "metrics-0000010.json"
    path.write_text(json.dumps({"views": {"n1": view(0.3, 0.2), "n4": view(0.1, 0.2)}}))
    text = learning_verdict(path, "val")
    assert "validation" in text
    n1, n4 = text.splitlines()[1:]
    assert "0.3000 vs mean-colour silhouette 0.2000" in n1 and "does NOT beat" in n1
    assert "(+50%)" in n4 and "model beats" in n4
    assert learning_verdict(tmp_path / "missing.json", "val") is None
