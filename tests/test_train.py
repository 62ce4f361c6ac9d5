"""Training: exact resume, checkpoint format, CLI, losses going down."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from click.testing import CliRunner

from conrdata.testing.toydata import write_toy_dataset
from conrmodel.cli import group
from conrmodel.train.loop import find_checkpoint, load_checkpoint, resolve_config, train
from tests.train_helpers import train_cli_args

pytestmark = pytest.mark.usefixtures("one_thread")

SMALL = [
    "data.size=64",
    "data.batch_size=2",
    "data.refs=2",
    "data.backgrounds=2",
    "data.shuffle_buffer=4",
    "optim.warmup_steps=2",
    "train.log_every=1",
    "train.image_every=3",
]


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    out = tmp_path_factory.mktemp("toyshards")
    write_toy_dataset(
        out,
        characters=4,
        clips=2,
        images=3,
        size=48,
        val_characters=1,
        unlabeled_characters=1,
        max_shard_clips=3,
    )
    return out


def _run(run_dir, shards, steps, stop=None, resume=False, extra=()):
    cfg, ckpt = resolve_config(run_dir, "tiny", None, [*SMALL, f"optim.steps={steps}", *extra], resume=resume)
    return train(cfg, shards, run_dir, checkpoint=ckpt, stop_at=stop, progress=False, tensorboard=False)


def _assert_same_state(a, b):
    for part in ("detector", "renderer"):
        assert a[part].keys() == b[part].keys()
        for k in a[part]:
            assert torch.equal(a[part][k], b[part][k]), f"{part}.{k} differs"
    sa, sb = a["optimizer"]["state"], b["optimizer"]["state"]
    for i in sa:
        for k in sa[i]:
            assert torch.equal(sa[i][k], sb[i][k])
    assert a["scheduler"]["last_epoch"] == b["scheduler"]["last_epoch"]
    assert a["data_position"] == b["data_position"]


@pytest.mark.parametrize("workers", [0, pytest.param(2, marks=pytest.mark.slow)])
def test_resume_equals_uninterrupted_run(tmp_path, shards, workers):
    extra = [f"data.workers={workers}"]
    full, split = tmp_path / "full", tmp_path / "split"
    _run(full, shards, 6, extra=extra)
    first = _run(split, shards, 6, stop=3, extra=extra)
    assert first["step"] == 3
    second = _run(split, shards, 6, resume=True, extra=extra)
    assert second["step"] == 6 and second["steps_this_run"] == 3
    a = load_checkpoint(full / "checkpoints" / "latest.pt")
    b = load_checkpoint(split / "checkpoints" / "latest.pt")
    _assert_same_state(a, b)
    # the logged losses of steps 4-6 are identical too
    la = [json.loads(x) for x in (full / "log.jsonl").read_text().splitlines()]
    lb = [json.loads(x) for x in (split / "log.jsonl").read_text().splitlines()]
    pick = lambda log: [(r["step"], r["total"]) for r in log if r["split"] == "train" and r["step"] > 3]  # noqa: E731
    assert pick(la) == pick(lb) and len(pick(la)) == 3


def test_checkpoint_format(tmp_path, shards):
    run = tmp_path / "run"
    _run(run, shards, 2, extra=["train.ckpt_every=1", "train.keep_checkpoints=1"])
    ckpts = sorted((run / "checkpoints").glob("step-*.pt"))
    assert [p.name for p in ckpts] == ["step-0000002.pt"]  # older ones pruned
    ckpt = torch.load(find_checkpoint(run), map_location="cpu", weights_only=True)
    for key in (
        "detector",
        "renderer",
        "optimizer",
        "scheduler",
        "step",
        "rng",
        "data_position",
        "config",
        "format_version",
        "detector_config",
        "renderer_config",
    ):
        assert key in ckpt
    assert ckpt["step"] == 2 and ckpt["config"]["data"]["size"] == 64
    assert isinstance(ckpt["rng"][0]["torch"], torch.Tensor) and len(ckpt["rng"]) == 1
    assert (run / "config.yaml").is_file()
    assert not (run / "images").exists()  # image_every=3: no sample grid before step 3
    from conrmodel.models.factory import build_detector, build_renderer

    build_detector(**ckpt["detector_config"]).load_state_dict(ckpt["detector"], strict=True)
    build_renderer(**ckpt["renderer_config"]).load_state_dict(ckpt["renderer"], strict=True)
    # nothing to do when already at the last step
    assert _run(run, shards, 2, resume=True)["step"] == 2


def test_cli_train_then_eval(tmp_path, shards):
    run = tmp_path / "run"
    runner = CliRunner()
    args = train_cli_args(shards, run, 3, SMALL, "--val-shards", str(shards))
    res = runner.invoke(group, args, catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert "trained to step 3 of 3" in res.output
    log = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines()]
    assert {r["split"] for r in log} == {"train", "val"}
    assert all(k in log[0] for k in ("udp", "mask", "cons", "photo", "lr", "it_per_s"))
    assert list((run / "images").glob("train-*.png")) and list((run / "tensorboard").iterdir())
    res = runner.invoke(
        group,
        [
            "eval",
            "--weights",
            str(run),
            "--shards",
            str(shards),
            "--views",
            "1,2",
            "--out",
            str(tmp_path / "ev"),
        ],
        catch_exceptions=False,
    )
    assert res.exit_code == 0, res.output
    metrics = json.loads(next((tmp_path / "ev").glob("metrics-*.json")).read_text())
    assert set(metrics["views"]) == {"n1", "n2"} and metrics["views"]["n1"]["lpips"] is None
    assert next((tmp_path / "ev").glob("grid-*.png")).stat().st_size > 0


def test_cli_errors(tmp_path):
    from conrmodel.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["train", "--shards", str(tmp_path / "none-{000000..000001}.tar"), "--out", str(tmp_path / "r")])
    assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:
        main(["train", "--shards", str(tmp_path), "--out", str(tmp_path / "r"), "--set", "optim.nope=1"])
    assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:
        main(["eval", "--weights", str(tmp_path), "--shards", str(tmp_path)])
    assert exc.value.code == 2


def test_losses_decrease_quickly(tmp_path, shards):
    """A short sanity run: the total loss of the last steps is below the first steps'."""
    run = tmp_path / "run"
    _run(run, shards, 12, extra=["optim.lr=3e-3"])
    log = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines() if '"train"' in x]
    first = sum(r["total"] for r in log[:3]) / 3
    last = sum(r["total"] for r in log[-3:]) / 3
    assert last < first
    shutil.rmtree(run)


def test_trains_on_synthesized_shards(tmp_path):
    """End to end with helper D's renders: make-character + synth, then train and evaluate."""
    import os
    import subprocess
    import sys

    env = dict(os.environ, PYOPENGL_PLATFORM=os.environ.get("PYOPENGL_PLATFORM", "egl"))
    make = [sys.executable, "-m", "conrdata", "make-character", "--count", "1", str(tmp_path / "meshes")]
    synth = [
        sys.executable,
        "-m",
        "conrdata",
        "synth",
        str(tmp_path / "meshes"),
        str(tmp_path / "out"),
        "-p",
        "3",
        "-v",
        "2",
        "-r",
        "64",
        "--seed",
        "0",
    ]
    for cmd in (make, synth):
        res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
        if res.returncode != 0 and ("EGL" in res.stderr or "OpenGL" in res.stderr):
            pytest.skip(f"no headless OpenGL here: {res.stderr.strip().splitlines()[-1]}")
        assert res.returncode == 0, res.stderr[-2000:]
    out = tmp_path / "out"
    summary = _run(tmp_path / "run", out, 2)
    assert summary["step"] == 2 and summary["last"]["udp"] > 0
    from conrmodel.evaluate import run_eval

    res = run_eval(
        tmp_path / "run", sorted((out / "shards").glob("*.tar")), tmp_path / "ev", views=(1,), progress=False
    )
    assert res["clips"] >= 1 and 0 < res["views"]["n1"]["photo"] < 1


def test_unlabeled_samples_only_train_consistency():
    from conrmodel.train.config import load_config
    from conrmodel.train.loop import build_system, compute_losses

    cfg = load_config("tiny", None, ["data.refs=2", "data.backgrounds=2"])
    torch.manual_seed(0)
    system = build_system(cfg)
    g = torch.Generator().manual_seed(0)
    inputs = {
        "det_rgb": torch.rand(2, 2, 2, 3, 64, 64, generator=g),
        "ref_rgba": torch.rand(2, 2, 4, 64, 64, generator=g),
        "target_rgba": torch.rand(2, 4, 64, 64, generator=g),
        "ref_udp": torch.zeros(2, 2, 4, 64, 64),
        "target_udp": torch.zeros(2, 4, 64, 64),
        "labeled": torch.zeros(2),
    }
    passes, pred = system(inputs["det_rgb"], inputs["ref_rgba"], inputs["target_udp"])
    losses = compute_losses(passes, pred, inputs, cfg)
    assert float(losses["udp"]) == float(losses["mask"]) == float(losses["photo"]) == 0.0
    assert float(losses["cons"]) > 0
    losses["total"].backward()
    assert all(p.grad is None or not p.grad.any() for p in system.renderer.parameters())
    assert any(p.grad is not None and p.grad.any() for p in system.detector.parameters())


def test_paper_preset_shares_the_parser_as_detector():
    from conrdata.errors import UserError
    from conrmodel.train.config import load_config
    from conrmodel.train.loop import build_system

    system = build_system(load_config("paper"))
    assert system.detector is system.renderer.udpparsernet
    n = sum(p.numel() for p in system.parameters())
    assert 180.0e6 < n < 180.8e6  # the official four files: 57.2M + 27.0M + 96.1M + 0.08M
    del system
    with pytest.raises(UserError, match="share_detector"):
        build_system(load_config("tiny", None, ["model.share_detector=true"]))
