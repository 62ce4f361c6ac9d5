"""Two-process DDP training on CPU (gloo) through torchrun, including exact resume."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from conrdata.testing.toydata import write_toy_dataset
from conrmodel.train.loop import load_checkpoint
from tests.train_helpers import train_cli_args

SETS = [
    "data.size=64",
    "data.batch_size=2",
    "data.refs=2",
    "data.backgrounds=2",
    "data.shuffle_buffer=4",
    "optim.warmup_steps=1",
    "train.log_every=1",
    "train.threads=1",
]


def _torchrun(shards, run_dir, steps, *extra):
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        "2",
        "-m",
        "conrmodel",
        *train_cli_args(shards, run_dir, steps, SETS, "--device", "cpu", *extra),
    ]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-4000:]
    return res


@pytest.mark.slow
def test_two_process_gloo_ddp_and_resume(tmp_path):
    shards = write_toy_dataset(tmp_path / "data", characters=2, clips=3, images=3, size=48, max_shard_clips=2)
    full, split = tmp_path / "full", tmp_path / "split"
    res = _torchrun(shards, full, 4)
    assert "trained to step 4 of 4" in res.stdout
    assert res.stdout.count("trained to step") == 1  # only rank 0 reports
    a = load_checkpoint(full / "checkpoints" / "latest.pt")
    assert a["world_size"] == 2 and len(a["rng"]) == 2 and len(a["data_position"]) == 2
    assert all(p["batches"] == 4 for p in a["data_position"])
    # each rank draws its own torch RNG stream (seeded by rank)
    assert not torch.equal(a["rng"][0]["torch"], a["rng"][1]["torch"])

    _torchrun(shards, split, 4, "--stop-at", "2")
    assert load_checkpoint(split / "checkpoints" / "latest.pt")["step"] == 2
    _torchrun(shards, split, 4, "--resume")
    b = load_checkpoint(split / "checkpoints" / "latest.pt")
    assert b["step"] == 4 and b["data_position"] == a["data_position"]
    for part in ("detector", "renderer"):
        for k in a[part]:
            assert torch.equal(a[part][k], b[part][k]), f"{part}.{k} differs after a DDP resume"
