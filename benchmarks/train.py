"""Training throughput on this machine: the loader alone, training steps, the loader's share of step time.

Writes toy shards (conrdata.testing.toydata) to a temp dir, then measures, in the same run:

* ``loader_samples_per_s``: TrainStream batches built in-process (workers=0), decoding,
  view choice, crops and k backgrounds included, no model;
* ``train_it_per_s``: optimiser steps per second of the ``tiny`` preset (64 px, batch 4,
  m = 4 references, k = 4 backgrounds) with the loader in-process and with one worker;
* ``loader_share``: the fraction of step time spent waiting for the next batch.

Prints one JSON object. ``--threads`` sets torch's intra-op threads (default 1: shared CI boxes).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
import warnings
from pathlib import Path

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=30, help="timed training steps per setting")
    ap.add_argument("--loader-batches", type=int, default=30)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--preset", default="tiny")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    torch.set_num_threads(args.threads)

    from conrdata.testing.toydata import write_toy_dataset
    from conrmodel.data.stream import TrainStream, expand_urls, make_loader
    from conrmodel.train.config import load_config
    from conrmodel.train.loop import train

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        shards = write_toy_dataset(tmp / "data", characters=6, clips=4, images=5, size=128, max_shard_clips=6)
        cfg = load_config(args.preset, None, [f"train.threads={args.threads}", "train.image_every=0"])

        stream = TrainStream(expand_urls(shards), cfg.data, seed=0)
        it = iter(make_loader(stream, 0))
        next(it)  # fill the shuffle buffer outside the timing
        t0 = time.perf_counter()
        for _ in range(args.loader_batches):
            next(it)
        loader_rate = args.loader_batches * cfg.data.batch_size / (time.perf_counter() - t0)

        results = {}
        for workers in (0, 1):
            run = tmp / f"run{workers}"
            sets = [
                f"data.workers={workers}",
                f"optim.steps={args.steps + 3}",
                "train.log_every=1000000",
                f"train.threads={args.threads}",
                "train.image_every=0",
                "train.ckpt_every=1000000",
            ]
            warm = load_config(args.preset, None, sets)
            train(warm, shards, run, stop_at=3, progress=False, tensorboard=False)  # warm-up + checkpoint
            from conrmodel.train.loop import resolve_config

            cfg2, ckpt = resolve_config(run, args.preset, None, sets, resume=True)
            summary = train(cfg2, shards, run, checkpoint=ckpt, progress=False, tensorboard=False)
            results[workers] = summary

    out = {
        "machine": {
            "cpu_count": os.cpu_count(),
            "torch_threads": args.threads,
            "python": platform.python_version(),
            "torch": torch.__version__,
        },
        "config": {
            "preset": args.preset,
            "size": cfg.data.size,
            "batch_size": cfg.data.batch_size,
            "refs": cfg.data.refs,
            "backgrounds": cfg.data.backgrounds,
        },
        "loader_samples_per_s": round(loader_rate, 2),
        "train_it_per_s": {f"workers_{w}": round(s["it_per_s"], 3) for w, s in results.items()},
        "train_samples_per_s": {
            f"workers_{w}": round(s["it_per_s"] * cfg.data.batch_size, 2) for w, s in results.items()
        },
        "loader_share": {f"workers_{w}": round(s["data_share"], 3) for w, s in results.items()},
        "loader_vs_training_samples_ratio": round(
            loader_rate / max(results[0]["it_per_s"] * cfg.data.batch_size, 1e-9), 2
        ),
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
