"""Training CoNR end to end: detector and renderer, one process or many (DDP via torchrun).

One step, per sample (m references, k backgrounds, see :mod:`conrmodel.data.stream`)::

    references pasted on k backgrounds --detector--> k predictions per reference
        L_udp, L_mask against the references' UDP;  L_cons = std over the k passes
    mean over the k passes --> predicted reference UDP (straight-through occupancy)
    renderer(target UDP, reference RGBA, predicted reference UDP) --> premultiplied RGBA
        L_photo, L_vgg against the premultiplied ground truth

Optimiser AdamW (weight decay from the config, 1e-4 in both presets), learning rate
warm-up then cosine/linear/constant, gradient clipping by global norm, autocast
bf16/fp16 on CUDA (GradScaler with fp16).

Distributed: under ``torchrun`` (``WORLD_SIZE`` > 1) the process group is
initialised with nccl on GPUs and gloo on CPU, the model is wrapped in
DistributedDataParallel and every rank streams its own share of the shards.
Rank 0 logs and writes checkpoints.

Checkpoints (``RUN_DIR/checkpoints/step-NNNNNNN.pt`` and ``latest.pt``) are
plain dicts loadable with ``torch.load(weights_only=True)``::

    {"format_version": 1, "step": int, "detector": state_dict, "renderer": state_dict,
     "detector_config": dict, "renderer_config": dict,   # build_detector(**c) / build_renderer(**c)
     "optimizer": ..., "scheduler": ..., "scaler": ...,
     "rng": [per-rank {"python", "numpy", "torch", "cuda"}],
     "data_position": [per-rank {"batches", "positions", "workers"}],
     "world_size": int, "config": the full training config (conrmodel.train.config)}

Exact resume: ``--resume`` restores all of the above and the data stream's
position (see :mod:`conrmodel.data.stream`), so on CPU the next steps equal those of an
uninterrupted run with the same seed, world size and worker count.
"""

from __future__ import annotations

import json
import math
import os
import random
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn

from conrdata.errors import UserError
from conrmodel.checkpoint import (
    CHECKPOINT_DIR,
    FORMAT_VERSION,
    find_checkpoint,  # noqa: F401 - re-exported: conrmodel.train.loop.find_checkpoint
    load_checkpoint,
    save,
)
from conrmodel.data.stream import DataPosition, TrainStream, expand_urls, make_loader
from conrmodel.evaluate import evaluate
from conrmodel.inference.preprocess import PREPROCESS_OURS
from conrmodel.train.config import Config, apply_overrides, config_from_dict, load_config, save_config
from conrmodel.train.losses import (
    consistency_loss,
    mask_loss,
    photo_loss,
    predicted_udp,
    udp_loss,
    weighted_mean,
)
from conrmodel.train.runlog import RunLogger, make_grid, sample_row

LOSS_NAMES = ("udp", "mask", "cons", "photo", "vgg")
_VGG_WARNED = False


# ---------------------------------------------------------------------------- model


class CoNRSystem(nn.Module):
    """Detector + renderer as one module (what DDP wraps)."""

    def __init__(self, detector: nn.Module, renderer: nn.Module):
        super().__init__()
        self.detector = detector
        self.renderer = renderer

    def detect(self, det_rgb: torch.Tensor) -> torch.Tensor:
        """[B, m, k, 3, H, W] in [0, 1] -> raw detector output [B, m, k, 4, H, W]."""
        shape = det_rgb.shape
        out = self.detector(det_rgb.reshape(-1, *shape[3:]))
        return out.reshape(*shape[:3], *out.shape[1:])

    def forward(self, det_rgb: torch.Tensor, ref_rgba: torch.Tensor, target_udp: torch.Tensor,
                teacher_udp: torch.Tensor | None = None):
        """-> (detector passes [B, m, k, 4, H, W], rendered premultiplied RGBA [B, 4, H, W]).

        ``teacher_udp`` [B, m, 4, H, W]: give the renderer these reference UDPs (the ground truth, teacher
        forcing) instead of the detector's prediction."""
        passes = self.detect(det_rgb)
        ref_udp = predicted_udp(passes.mean(dim=2)) if teacher_udp is None else teacher_udp
        return passes, self.renderer(target_udp, ref_rgba, ref_udp)


def build_system(cfg: Config) -> CoNRSystem:
    """Detector and renderer from their presets; with ``model.share_detector`` the detector is the
    renderer's own parser module (shared weights)."""
    from conrmodel.models.factory import build_detector, build_renderer

    detector = build_detector(cfg.model.detector)
    renderer = build_renderer(cfg.model.renderer, **({"udp_match": True} if cfg.model.udp_match else {}))
    if cfg.model.share_detector:
        parser = renderer.udpparsernet
        own = {k: tuple(v.shape) for k, v in detector.state_dict().items()}
        theirs = {k: tuple(v.shape) for k, v in parser.state_dict().items()}
        if not getattr(parser, "has_decoder", False) or own != theirs:
            raise UserError(
                f"model.share_detector: the {cfg.model.renderer!r} renderer's parser is not a UDP detector "
                f"of the {cfg.model.detector!r} architecture (use e.g. the official presets, or set it false)"
            )
        parser.config = dict(getattr(detector, "config", {}) or {})
        detector = parser
    return CoNRSystem(detector, renderer)


def unused_parameters(system: CoNRSystem, device: torch.device, size: int = 64) -> list[str]:
    """Names of parameters that get no gradient from a forward/backward on a dummy batch (e.g. the
    official target-pose encoder's decoder). DDP needs find_unused_parameters only if there are any."""
    det = torch.zeros(1, 1, 2, 3, size, size, device=device)
    ref = torch.zeros(1, 1, 4, size, size, device=device)
    udp = torch.zeros(1, 4, size, size, device=device)
    passes, pred = system(det, ref, udp)
    (passes.float().mean() + pred.float().mean()).backward()
    names = [n for n, p in system.named_parameters() if p.requires_grad and p.grad is None]
    system.zero_grad(set_to_none=True)
    return names


def premultiply(rgba: torch.Tensor) -> torch.Tensor:
    return torch.cat([rgba[:, :3] * rgba[:, 3:4], rgba[:, 3:4]], dim=1)


def batch_inputs(batch: dict, device: torch.device) -> dict[str, torch.Tensor]:
    """A loader batch -> float tensors on ``device`` (uint8 images scaled to [0, 1])."""
    f = lambda t: t.to(device, non_blocking=True).float().div_(255.0)  # noqa: E731
    return {
        "det_rgb": f(batch["det_rgb"]),
        "ref_rgba": f(batch["ref_rgba"]),
        "target_rgba": f(batch["target_rgba"]),
        "ref_udp": batch["ref_udp"].to(device, non_blocking=True).float(),
        "target_udp": batch["target_udp"].to(device, non_blocking=True).float(),
        "labeled": batch["labeled"].to(device).float(),
    }


def make_vgg_loss(cfg: Config, device: torch.device, warn: bool = True):
    """The L_vgg module, or None (with ONE warning, on rank 0) when no weights file is configured."""
    global _VGG_WARNED
    if cfg.loss.vgg <= 0:
        return None
    if not cfg.loss.vgg_weights:
        if warn and not _VGG_WARNED:
            warnings.warn(
                "L_vgg is off: no VGG-19 weights file given (--vgg-weights FILE, a torchvision "
                "vgg19 state dict); training continues without it",
                stacklevel=2,
            )
            _VGG_WARNED = True
        return None
    from conrmodel.models.vgg import VGGLoss, load_vgg

    taps = [int(t) for t in cfg.loss.vgg_layers]
    return VGGLoss(load_vgg(cfg.loss.vgg_weights, "vgg19", last=max(taps)), taps).to(device)


def compute_losses(
    passes: torch.Tensor, pred: torch.Tensor, inputs: dict, cfg: Config, vgg_loss: nn.Module | None = None
) -> dict[str, torch.Tensor]:
    """The weighted sum ``total`` and each term (scalars). Unlabeled samples only get L_cons."""
    b, m, k = passes.shape[:3]
    lab = inputs["labeled"]
    flat = passes.float().flatten(0, 2)
    gt = inputs["ref_udp"].unsqueeze(2).expand(-1, -1, k, -1, -1, -1).flatten(0, 2)
    out = {
        "udp": weighted_mean(udp_loss(flat, gt).view(b, m * k).mean(1), lab),
        "mask": weighted_mean(mask_loss(flat, gt).view(b, m * k).mean(1), lab),
        "cons": weighted_mean(
            consistency_loss(passes.flatten(0, 1)).view(b, m).mean(1),
            lab + (1 - lab) * cfg.data.unlabeled_weight,
        ),
    }
    gt_pm = premultiply(inputs["target_rgba"])
    out["photo"] = weighted_mean(photo_loss(pred, gt_pm), lab)
    if vgg_loss is not None:
        out["vgg"] = weighted_mean(vgg_loss(pred.float(), gt_pm), lab)
    total = sum(getattr(cfg.loss, name) * value for name, value in out.items())
    out["total"] = total
    return out


class LRLambda:
    """Multiplier of the base learning rate at a step: linear warm-up, then cosine/linear decay to
    ``min_ratio`` at ``total`` steps, or constant. A callable object so LambdaLR can save it."""

    def __init__(self, kind: str, warmup: int, total: int, min_ratio: float):
        self.kind, self.warmup, self.total, self.min_ratio = kind, int(warmup), int(total), float(min_ratio)

    def __call__(self, step: int) -> float:
        if self.warmup > 0 and step < self.warmup:
            return (step + 1) / self.warmup
        if self.kind == "constant":
            return 1.0
        t = min(max((step - self.warmup) / max(self.total - self.warmup, 1), 0.0), 1.0)
        if self.kind == "linear":
            return 1.0 - (1.0 - self.min_ratio) * t
        return self.min_ratio + (1.0 - self.min_ratio) * 0.5 * (1.0 + math.cos(math.pi * t))


def build_optimizer(system: nn.Module, cfg: Config):
    o = cfg.optim
    opt = torch.optim.AdamW(
        system.parameters(), lr=o.lr, betas=tuple(o.betas), eps=o.eps, weight_decay=o.weight_decay
    )
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, LRLambda(o.schedule, o.warmup_steps, o.steps, o.min_lr_ratio)
    )
    return opt, sched


# ---------------------------------------------------------------------------- RNG state


def rng_state() -> dict:
    """This process's RNG states as tensors / primitive containers (weights_only-loadable)."""
    version, state, gauss = random.getstate()
    key, arr, pos, has_gauss, cached = np.random.get_state()
    out = {
        "python": [int(version), [int(x) for x in state], gauss],
        "numpy": {
            "key": str(key),
            "state": torch.from_numpy(np.asarray(arr, np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached": float(cached),
        },
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    return out


def set_rng_state(state: dict) -> None:
    version, values, gauss = state["python"]
    random.setstate((int(version), tuple(int(v) for v in values), gauss))
    n = state["numpy"]
    np.random.set_state(
        (n["key"], n["state"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"])
    )
    torch.set_rng_state(state["torch"].cpu())
    if torch.cuda.is_available() and state.get("cuda"):
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]][: torch.cuda.device_count()])


# ---------------------------------------------------------------------------- distributed


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    initialised_here: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device: str = "auto") -> DistInfo:
    """Read torchrun's environment; init the process group (nccl on CUDA, gloo on CPU) when WORLD_SIZE > 1."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UserError(f"--device {device} requested but CUDA is not available")
        dev = torch.device("cuda", local) if device == "cuda" else torch.device(device)
        torch.cuda.set_device(dev)
    elif device == "cpu":
        dev = torch.device("cpu")
    else:
        raise UserError(f"unknown device {device!r} (auto, cpu, cuda, cuda:N)")
    here = False
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
        here = True
    return DistInfo(rank, world, local, dev, here)


def _gather(obj, info: DistInfo) -> list:
    if info.world_size == 1:
        return [obj]
    out = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


# ---------------------------------------------------------------------------- checkpoints


def checkpoint_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / CHECKPOINT_DIR


# find_checkpoint and load_checkpoint live in conrmodel.checkpoint (the one loading path); they are
# imported above so that ``conrmodel.train.loop.find_checkpoint`` keeps working.


def save_checkpoint(
    run_dir: Path,
    step: int,
    system: CoNRSystem,
    opt,
    sched,
    scaler,
    cfg: Config,
    position: DataPosition,
    info: DistInfo,
) -> Path | None:
    """Collective (every rank calls it); rank 0 writes step-NNNNNNN.pt and latest.pt."""
    gathered = _gather({"rng": rng_state(), "position": position.state()}, info)
    if not info.is_main:
        return None
    ckpt = {
        "format_version": FORMAT_VERSION,
        "step": int(step),
        "detector": system.detector.state_dict(),
        "renderer": system.renderer.state_dict(),
        "detector_config": dict(getattr(system.detector, "config", {}) or {}),
        "renderer_config": dict(getattr(system.renderer, "config", {}) or {}),
        "optimizer": opt.state_dict(),
        "scheduler": sched.state_dict(),
        "scaler": scaler.state_dict() if scaler is not None else {},
        "rng": [g["rng"] for g in gathered],
        "data_position": [g["position"] for g in gathered],
        "world_size": info.world_size,
        "config": cfg.to_dict(),
        "preprocess": PREPROCESS_OURS,
    }
    folder = checkpoint_dir(run_dir)
    path = save(ckpt, folder / f"step-{step:07d}.pt", aliases=(folder / "latest.pt",))
    keep = cfg.train.keep_checkpoints
    if keep > 0:
        for old in sorted(folder.glob("step-*.pt"))[:-keep]:
            old.unlink(missing_ok=True)
    return path


# ---------------------------------------------------------------------------- config resolution


def resolve_config(
    run_dir: str | Path,
    preset: str = "tiny",
    config_file: str | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    resume: bool = False,
) -> tuple[Config, dict | None]:
    """The run's config and, with ``resume``, the checkpoint to continue from.

    A resumed run takes its config from the checkpoint; ``overrides`` still apply (e.g.
    ``optim.steps`` to train longer); ``preset`` and ``config_file`` are then ignored.
    """
    if resume:
        latest = checkpoint_dir(run_dir) / "latest.pt"
        if latest.is_file():
            ckpt = load_checkpoint(latest)
            cfg = config_from_dict(ckpt["config"])
            apply_overrides(cfg, overrides)
            return cfg, ckpt
        warnings.warn(
            f"--resume: no checkpoint in {checkpoint_dir(run_dir)}; starting a new run", stacklevel=2
        )
    return load_config(preset, config_file, overrides), None


# ---------------------------------------------------------------------------- the loop


def _amp(cfg: Config, device: torch.device):
    mode = cfg.train.amp
    if mode == "auto":
        mode = ("bf16" if torch.cuda.is_bf16_supported() else "fp16") if device.type == "cuda" else "none"
    if mode == "none":
        return None, None
    dtype = torch.bfloat16 if mode == "bf16" else torch.float16
    if device.type != "cuda" and dtype == torch.float16:
        raise UserError("fp16 autocast needs CUDA; use train.amp=bf16 or none on CPU")
    scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 else None
    return dtype, scaler


@dataclass
class _Run:
    """What one training run holds between steps (built by :func:`_setup`)."""

    cfg: Config
    info: DistInfo
    system: CoNRSystem
    model: nn.Module  # ``system``, or its DistributedDataParallel wrapper
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler | None
    amp_dtype: torch.dtype | None
    step: int
    position: DataPosition
    stream_seed: int


def _restore(run: _Run, checkpoint: dict) -> None:
    """Continue from ``checkpoint``: weights, optimiser, schedule, scaler, step, RNG and data position.

    The data position is restored only when the world size and worker count match the checkpoint's;
    otherwise the stream restarts with a fresh shuffle seeded from the step (not bit-exact).
    """
    cfg, info = run.cfg, run.info
    run.system.detector.load_state_dict(checkpoint["detector"], strict=True)
    run.system.renderer.load_state_dict(checkpoint["renderer"], strict=True)
    run.opt.load_state_dict(checkpoint["optimizer"])
    run.sched.load_state_dict(checkpoint["scheduler"])
    run.sched.lr_lambdas[0] = LRLambda(
        cfg.optim.schedule, cfg.optim.warmup_steps, cfg.optim.steps, cfg.optim.min_lr_ratio
    )
    if run.scaler is not None and checkpoint.get("scaler"):
        run.scaler.load_state_dict(checkpoint["scaler"])
    run.step = int(checkpoint["step"])
    rngs, positions = checkpoint.get("rng") or [], checkpoint.get("data_position") or []
    same_layout = (
        int(checkpoint.get("world_size", 1)) == info.world_size
        and len(positions) > info.rank
        and int(positions[info.rank]["workers"]) == run.position.workers
    )
    if len(rngs) > info.rank:
        set_rng_state(rngs[info.rank])
    if same_layout:
        p = positions[info.rank]
        run.position = DataPosition(p["workers"], p["batches"], p["positions"])
        return
    run.stream_seed = cfg.train.seed + 7919 * run.step
    if info.is_main:
        warnings.warn(
            "world size or data.workers changed since the checkpoint: the data stream "
            "restarts with a fresh shuffle (training continues, but not bit-exactly)",
            stacklevel=4,
        )


def _setup(cfg: Config, info: DistInfo, checkpoint: dict | None) -> _Run:
    """Seeded model, optimiser, schedule and scaler, continued from ``checkpoint`` when given."""
    seed = cfg.train.seed
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # identical initial weights on every rank
    system = build_system(cfg).to(info.device)
    opt, sched = build_optimizer(system, cfg)
    amp_dtype, scaler = _amp(cfg, info.device)
    position = DataPosition(cfg.data.workers)
    run = _Run(cfg, info, system, system, opt, sched, scaler, amp_dtype, 0, position, seed)
    if checkpoint is not None:
        _restore(run, checkpoint)
    else:
        torch.manual_seed(seed + info.rank)
    return run


def _wrap_ddp(run: _Run) -> None:
    """Wrap the system in DistributedDataParallel when there are several ranks."""
    info = run.info
    if info.world_size > 1:
        run.model = nn.parallel.DistributedDataParallel(
            run.system,
            device_ids=[info.device.index] if info.device.type == "cuda" else None,
            find_unused_parameters=bool(unused_parameters(run.system, info.device)),
        )


def _optimizer_step(run: _Run, inputs: dict, vgg_loss) -> tuple[dict, torch.Tensor, torch.Tensor]:
    """One step at ``run.step``: forward under autocast, losses, (scaled) backward, clipping, optimiser
    and schedule step. Returns (losses, global gradient norm, predicted premultiplied RGBA)."""
    cfg, opt, scaler = run.cfg, run.opt, run.scaler
    with torch.autocast(run.info.device.type, dtype=run.amp_dtype, enabled=run.amp_dtype is not None):
        forced = run.step < cfg.train.teacher_forcing * cfg.optim.steps
        teacher = inputs["ref_udp"] if forced else None
        passes, pred = run.model(inputs["det_rgb"], inputs["ref_rgba"], inputs["target_udp"], teacher)
    losses = compute_losses(passes, pred.float(), inputs, cfg, vgg_loss)
    opt.zero_grad(set_to_none=True)
    if scaler is not None:
        scaler.scale(losses["total"]).backward()
        scaler.unscale_(opt)
    else:
        losses["total"].backward()
    gnorm = (
        nn.utils.clip_grad_norm_(run.system.parameters(), cfg.optim.grad_clip)
        if cfg.optim.grad_clip > 0
        else torch.tensor(0.0)
    )
    if scaler is not None:
        scaler.step(opt)
        scaler.update()
    else:
        opt.step()
    run.sched.step()
    return losses, gnorm, pred


def _log_image(logger: RunLogger, step: int, inputs: dict, pred: torch.Tensor) -> None:
    """The first sample's reference, target UDP, prediction and truth as one image row."""
    row = sample_row(
        inputs["ref_rgba"][0].cpu().numpy(),
        inputs["target_udp"][0].cpu().numpy(),
        pred[0].detach().float().cpu().numpy(),
        inputs["target_rgba"][0].cpu().numpy(),
    )
    logger.image(step, "train", make_grid([row]))


def _loop(run: _Run, loader, end: int, run_dir: Path, val_urls, logger: RunLogger, vgg_loss) -> dict:
    """Steps from ``run.step`` to ``end`` with logging, checkpoints and validation; the run's figures."""
    cfg, info = run.cfg, run.info
    it = iter(loader)
    t_start, data_time, seen, last = time.perf_counter(), 0.0, 0, {}
    try:
        while run.step < end:
            t0 = time.perf_counter()
            batch = next(it)
            data_time += time.perf_counter() - t0
            inputs = batch_inputs(batch, info.device)
            losses, gnorm, pred = _optimizer_step(run, inputs, vgg_loss)
            run.position.update(batch)
            run.step += 1
            step = run.step
            seen += 1
            last = {k: float(v.detach()) for k, v in losses.items()}
            if info.is_main and (step % max(cfg.train.log_every, 1) == 0 or step == end):
                elapsed = time.perf_counter() - t_start
                logger.scalars(
                    step,
                    {
                        **last,
                        "lr": run.sched.get_last_lr()[0],
                        "grad_norm": float(gnorm),
                        "it_per_s": seen / max(elapsed, 1e-9),
                        "data_share": data_time / max(elapsed, 1e-9),
                        "skipped_clips": float(batch.get("skipped", 0)),
                    },
                )
            logger.progress(1, loss=last["total"], photo=last["photo"])
            if info.is_main and cfg.train.image_every > 0 and step % cfg.train.image_every == 0:
                _log_image(logger, step, inputs, pred)
            if step % max(cfg.train.ckpt_every, 1) == 0 or step == end:
                save_checkpoint(
                    run_dir, step, run.system, run.opt, run.sched, run.scaler, cfg, run.position, info
                )
            if val_urls and cfg.train.val_every > 0 and step % cfg.train.val_every == 0 and step != end:
                _validate(run.system, val_urls, cfg, info, logger, step)
        if val_urls and run.step == cfg.optim.steps:
            _validate(run.system, val_urls, cfg, info, logger, run.step)
    finally:
        logger.close()
        del it
    elapsed = time.perf_counter() - t_start
    return {
        "steps_this_run": seen,
        "it_per_s": seen / max(elapsed, 1e-9),
        "data_share": data_time / max(elapsed, 1e-9),
        "last": last,
    }


def train(
    cfg: Config,
    shards,
    run_dir: str | Path,
    val_shards=None,
    checkpoint: dict | None = None,
    stop_at: int | None = None,
    progress: bool = True,
    tensorboard: bool = True,
) -> dict:
    """Train (or continue ``checkpoint``) to ``cfg.optim.steps``; returns a summary dict.

    ``stop_at`` ends the run early at that step, with a checkpoint, without changing the
    schedule (a job time limit; ``--resume`` continues). Also writes RUN_DIR/config.yaml
    and RUN_DIR/summary.json.
    """
    run_dir = Path(run_dir)
    info = init_distributed(cfg.train.device)
    if cfg.train.threads > 0:
        torch.set_num_threads(cfg.train.threads)
    try:
        urls = expand_urls(shards)  # check the inputs before building anything
        val_urls = expand_urls(val_shards, "val") if val_shards else None
        run = _setup(cfg, info, checkpoint)
        if run.step >= cfg.optim.steps:
            if info.is_main:
                print(f"already at step {run.step} of {cfg.optim.steps}; nothing to do "
                      "(raise --steps to continue)")
            return {"step": run.step, "steps": cfg.optim.steps}
        stream = TrainStream(
            urls,
            cfg.data,
            run.stream_seed,
            info.rank,
            info.world_size,
            run.position.batches,
            run.position.positions,
            cfg.data.background_dir,
        )
        loader = make_loader(stream, cfg.data.workers, cfg.data.prefetch)
        _wrap_ddp(run)
        vgg_loss = make_vgg_loss(cfg, info.device, warn=info.is_main)
        if info.is_main:
            run_dir.mkdir(parents=True, exist_ok=True)
            save_config(cfg, run_dir / "config.yaml")
        logger = RunLogger(run_dir, cfg.optim.steps, run.step, enabled=info.is_main,
                           tensorboard=tensorboard, progress=progress)
        end = cfg.optim.steps if stop_at is None else min(int(stop_at), cfg.optim.steps)
        run.system.train()
        figures = _loop(run, loader, end, run_dir, val_urls, logger, vgg_loss)
        summary = {
            "step": run.step,
            "steps": cfg.optim.steps,
            **figures,
            "world_size": info.world_size,
            "checkpoint": str(checkpoint_dir(run_dir) / "latest.pt"),
        }
        if info.is_main:
            (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
        return summary
    finally:
        if info.initialised_here and dist.is_initialized():
            dist.destroy_process_group()


def _validate(system: CoNRSystem, val_urls, cfg: Config, info: DistInfo, logger, step: int) -> None:
    """Validation L_photo on rank 0 (the others wait)."""
    if info.is_main:
        was = system.training
        system.eval()
        res = evaluate(
            system.detector,
            system.renderer,
            val_urls,
            views=(cfg.data.refs,),
            size=cfg.data.size,
            max_clips=cfg.train.val_clips,
            device=info.device,
        )
        system.train(was)
        key = f"n{cfg.data.refs}"
        if key in res["views"]:
            logger.scalars(step, {"photo": res["views"][key]["photo"]}, split="val")
            logger.write(f"step {step}: val L_photo (n={cfg.data.refs}) = {res['views'][key]['photo']:.4f}")
    if info.world_size > 1:
        dist.barrier()
