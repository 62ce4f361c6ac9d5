"""The training data pipeline: WebDataset shards -> clips -> (references, target) batches.

Stream (per rank r of R, per DataLoader worker w of W; ``gid = r * W + w`` of ``T = R * W``)::

    shard URLs --(epoch e: order shuffled by seed and e)--> this worker's share
      (shard-level split when there are at least T shards, else every T-th clip)
    --> raw samples (bytes, not decoded) --> shuffle buffer (``data.shuffle_buffer`` clips,
      bounded memory, RNG seeded by (seed, gid)) --> skip-ahead on resume
    --> decode (conrdata.dataset.wds.decode_sample) --> choose views --> crop, backgrounds
    --> batches of ``data.batch_size`` built inside the worker

The stream is infinite (epochs follow each other inside the worker) so every
rank always has data and DDP never waits for a rank that ran out.

Exact resume. Everything random in a sample is drawn from a generator seeded
by (seed, gid, index of the raw sample in this worker's stream), so a sample
is a pure function of its position. Each batch carries its worker's position
after it; the trainer records, per worker, the last position seen, plus the
number of batches consumed. On resume each worker replays its raw stream
(reading, not decoding) up to its position, and DataLoader workers are rotated
so that the worker that would have produced the next batch produces it (the
DataLoader hands batches out round-robin, starting at worker 0). The next
batches are therefore identical to an uninterrupted run's, provided the world
size and worker count are unchanged (otherwise the trainer warns and restarts
the stream with a fresh shuffle).

Sample selection (:func:`choose_views`): one target and m references in poses
other than the target's; when a clip has fewer distinct other poses than m,
references are reused (as the paper does for one-shot characters). Unlabeled
clips (images without UDP, e.g. hand-drawn) give only the detector's
consistency term; they are flagged ``labeled = False``.
"""

from __future__ import annotations

import os
import random
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from conrdata.dataset.shardlist import expand_shards
from conrdata.errors import UserError
from conrmodel.data.augment import Backgrounds, composite, crop_rgba, crop_udp, random_crop_box
from conrmodel.train.config import DataConfig


def expand_urls(spec: str | os.PathLike | list, split: str = "train") -> list[str]:
    """Shard files and URLs of ``spec`` for the ``split`` stream, by the one rule of
    :mod:`conrdata.dataset.shardlist` (brace patterns, globs, ``::`` lists, lists, OUT dirs, folders;
    remote URLs passed to webdataset as they are); UserError when it names no shard."""
    urls = expand_shards(spec, split)
    if not urls:
        raise UserError(f"no {split} shards in {spec if isinstance(spec, str | os.PathLike) else list(spec)}")
    return urls


# ---------------------------------------------------------------- sample selection


@dataclass
class ViewChoice:
    """Indices into a clip: ``target`` and ``refs`` (len m, may repeat); ``distinct`` is True when
    no reference shares the target's pose."""

    target: int
    refs: list[int]
    distinct: bool


def choose_views(pose_ids: list[str], m: int, rng: np.random.Generator) -> ViewChoice:
    """Pick one target and m references in poses other than the target's.

    Candidates are the images whose pose id differs from the target's; m of them are
    drawn without replacement when there are enough, otherwise all are used and the rest
    of the m slots reuse them (drawn with replacement). A clip where every image shows
    the target's pose (e.g. one image) falls back to references from that pose
    (``distinct=False``).
    """
    n = len(pose_ids)
    if n == 0:
        raise ValueError("empty clip")
    target = int(rng.integers(n))
    others = [i for i in range(n) if pose_ids[i] != pose_ids[target]]
    distinct = bool(others)
    if not others:
        others = [i for i in range(n) if i != target] or [target]
    if len(others) >= m:
        refs = [others[i] for i in rng.permutation(len(others))[:m]]
    else:
        refs = list(others) + [others[i] for i in rng.integers(len(others), size=m - len(others))]
        refs = [refs[i] for i in rng.permutation(m)]
    return ViewChoice(target, [int(r) for r in refs], distinct)


def clip_pose_ids(clip) -> list[str]:
    """Per-image pose ids from a ClipArrays' ``KEY.json`` (image index when absent)."""
    images = (clip.meta or {}).get("images") or []
    ids = []
    for i in range(len(clip.rgba)):
        pid = images[i].get("pose_id") if i < len(images) and isinstance(images[i], dict) else None
        ids.append(str(pid) if pid not in (None, "") else f"#{i}")
    return ids


def make_example(clip, cfg: DataConfig, rng: np.random.Generator, backgrounds: Backgrounds) -> dict:
    """One training example from a ClipArrays (numpy; S = cfg.size, m refs, k backgrounds).

    Returns ``det_rgb`` uint8 [m, k, 3, S, S] (references pasted on k backgrounds),
    ``ref_rgba`` uint8 [m, 4, S, S], ``ref_udp`` float32 [m, 4, S, S] (zeros if unlabeled),
    ``target_rgba`` uint8 [4, S, S], ``target_udp`` float32 [4, S, S], ``labeled``, ``distinct``.
    """
    s, m, k = cfg.size, cfg.refs, cfg.backgrounds
    labeled = bool(clip.rgba) and all(u is not None for u in clip.udp)
    choice = choose_views(clip_pose_ids(clip), m, rng)
    margin = (float(cfg.crop_margin[0]), float(cfg.crop_margin[1]))

    def view(i: int):
        rgba = clip.rgba[i]
        box = random_crop_box(rng, rgba[..., 3], margin, cfg.crop_jitter)
        c_rgba = crop_rgba(rgba, box, s)
        c_udp = crop_udp(clip.udp[i], box, s) if labeled else np.zeros((s, s, 4), np.float32)
        return c_rgba, c_udp

    ref_rgba, ref_udp, det = [], [], []
    for i in choice.refs:
        c_rgba, c_udp = view(i)
        ref_rgba.append(c_rgba)
        ref_udp.append(c_udp)
        det.append([composite(c_rgba, backgrounds.sample(rng, s)) for _ in range(k)])
    t_rgba, t_udp = view(choice.target)
    chw = lambda a: np.ascontiguousarray(np.moveaxis(a, -1, -3))  # noqa: E731
    return {
        "det_rgb": chw(np.stack([np.stack(d) for d in det])),
        "ref_rgba": chw(np.stack(ref_rgba)),
        "ref_udp": chw(np.stack(ref_udp)),
        "target_rgba": chw(t_rgba),
        "target_udp": chw(t_udp),
        "labeled": labeled,
        "distinct": choice.distinct,
    }


def collate(examples: list[dict]) -> dict:
    """Stack examples into torch tensors (batch first); flags become bool tensors."""
    out = {}
    for name in ("det_rgb", "ref_rgba", "ref_udp", "target_rgba", "target_udp"):
        out[name] = torch.from_numpy(np.stack([e[name] for e in examples]))
    out["labeled"] = torch.tensor([e["labeled"] for e in examples], dtype=torch.bool)
    out["distinct"] = torch.tensor([e["distinct"] for e in examples], dtype=torch.bool)
    out["keys"] = [e.get("key", "") for e in examples]
    return out


# ---------------------------------------------------------------- raw stream


def _raw_samples(urls: list[str], handler) -> Iterator[dict]:
    from webdataset.tariterators import tarfile_samples

    yield from tarfile_samples([{"url": u} for u in urls], handler=handler)


def _warn_and_continue(exn: Exception) -> bool:
    warnings.warn(f"skipping unreadable shard data: {type(exn).__name__}: {exn}", stacklevel=2)
    return True


def worker_stream(urls: list[str], seed: int, gid: int, total: int) -> Iterator[dict]:
    """This worker's infinite stream of raw samples (dicts of bytes), epoch after epoch."""
    epoch = 0
    while True:
        order = list(urls)
        random.Random(f"conr-shards:{seed}:{epoch}").shuffle(order)
        by_shard = len(order) >= total
        mine = order[gid::total] if by_shard else order
        count = 0
        for i, sample in enumerate(_raw_samples(mine, _warn_and_continue)):
            if by_shard or i % total == gid:
                count += 1
                yield sample
        if count == 0:
            raise UserError(f"no samples for data worker {gid} of {total} in {len(urls)} shard(s)", urls[0])
        epoch += 1


def shuffled(stream: Iterator, size: int, rng: random.Random) -> Iterator:
    """A bounded shuffle buffer: holds at most ``size`` items; drains at the end of a finite stream."""
    buf: list = []
    for item in stream:
        if len(buf) < size:
            buf.append(item)
            continue
        j = rng.randrange(size)
        out, buf[j] = buf[j], item
        yield out
    rng.shuffle(buf)
    yield from buf


class TrainStream(IterableDataset):
    """Infinite iterable of training batches for one rank (use with ``DataLoader(batch_size=None)``).

    ``positions[w]`` is the number of raw samples logical worker w had consumed and
    ``start_batch`` the number of batches consumed (both from a checkpoint's data position).
    Each yielded batch is :func:`collate`'s dict plus ``worker`` (logical id) and ``position``
    (that worker's raw position after this batch) and ``skipped`` (undecodable clips so far).
    """

    def __init__(
        self,
        urls: list[str],
        cfg: DataConfig,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        start_batch: int = 0,
        positions: list[int] | None = None,
        background_dir: str | None = None,
    ):
        super().__init__()
        self.urls, self.cfg, self.seed = list(urls), cfg, int(seed)
        self.rank, self.world_size = int(rank), int(world_size)
        self.start_batch = int(start_batch)
        self.positions = list(positions or [])
        self.background_dir = background_dir

    def __iter__(self) -> Iterator[dict]:
        from conrdata.dataset.wds import decode_sample

        info = get_worker_info()
        n_workers = info.num_workers if info else 1
        logical = ((info.id if info else 0) + self.start_batch) % n_workers
        gid, total = self.rank * n_workers + logical, self.world_size * n_workers
        if info is not None:
            import cv2

            cv2.setNumThreads(1)
        position = self.positions[logical] if logical < len(self.positions) else 0
        backgrounds = Backgrounds(self.background_dir)
        raw = shuffled(
            worker_stream(self.urls, self.seed, gid, total),
            self.cfg.shuffle_buffer,
            random.Random(f"conr-buffer:{self.seed}:{gid}"),
        )
        for _ in range(position):
            next(raw)
        skipped = 0
        batch: list[dict] = []
        for sample in raw:
            rng = np.random.default_rng([self.seed, gid, position])
            position += 1
            try:
                clip = decode_sample(sample)
                if len(clip.rgba) == 0:
                    raise ValueError("clip has no images")
                example = make_example(clip, self.cfg, rng, backgrounds)
            except Exception as err:  # noqa: BLE001 - a bad sample is skipped, counted, reported
                skipped += 1
                warnings.warn(
                    f"skipping clip {sample.get('__key__')!r} in {sample.get('__url__')}: "
                    f"{type(err).__name__}: {err}",
                    stacklevel=2,
                )
                continue
            example["key"] = str(sample.get("__key__", ""))
            batch.append(example)
            if len(batch) == self.cfg.batch_size:
                out = collate(batch)
                out.update(worker=logical, position=position, skipped=skipped)
                yield out
                batch = []


def make_loader(stream: TrainStream, workers: int, prefetch: int = 2) -> DataLoader:
    """The DataLoader around a :class:`TrainStream` (batches are built in the workers)."""
    kwargs = {"num_workers": workers, "batch_size": None}
    if workers > 0:
        kwargs.update(prefetch_factor=prefetch, persistent_workers=False)
    return DataLoader(stream, **kwargs)


class DataPosition:
    """What the trainer records about the stream: batches consumed and per-worker raw positions."""

    def __init__(self, workers: int, batches: int = 0, positions: list[int] | None = None):
        self.workers = max(int(workers), 1)
        self.batches = int(batches)
        self.positions = list(positions or [0] * self.workers)

    def update(self, batch: dict) -> None:
        self.batches += 1
        self.positions[int(batch["worker"])] = int(batch["position"])

    def state(self) -> dict:
        return {"batches": self.batches, "positions": list(self.positions), "workers": self.workers}
