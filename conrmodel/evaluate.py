"""Evaluation as in the paper's Table 1: L_photo and LPIPS with n = 1 and n = 4 reference views.

For every labelled clip of the evaluation shards, deterministically (no
randomness anywhere): the target is the clip's last image; the references
are the first n images whose pose differs from the target's, reused in order
when the clip has fewer (clips where every image shares one pose are counted
in ``same_pose_clips``); every image is cropped square around its character
(the mean training margin, no jitter) and resized to ``size``.

The detector sees each reference as a cut-out on black (premultiplied RGB, as
``conrmodel render`` does), the renderer gets the detector's UDP of the
references and the ground-truth UDP of the target.

* ``photo``: mean L1 over premultiplied RGBA in [0, 1] (the training L_photo).
* ``lpips``: LPIPS-VGG (conrmodel.lpips, locally supplied weights) between the
  prediction and the ground truth composited on white; null without weights.

Output JSON: ``{"step", "clips", "skipped_unlabeled", "same_pose_clips", "size",
"views": {"n1": {"photo", "lpips", "clips"}, "n4": {...}}}``; a PNG grid with
one row per clip and n: references, target UDP, prediction, ground truth.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from conrdata.errors import UserError
from conrmodel.augment import crop_rgba, crop_udp, random_crop_box
from conrmodel.data import clip_pose_ids, expand_urls
from conrmodel.detector import udp_from_prediction
from conrmodel.logging import make_grid, sample_row
from conrmodel.losses import photo_loss

EVAL_MARGIN = (1.05, 1.35)


def eval_views(pose_ids: list[str], n: int) -> tuple[int, list[int], bool]:
    """(target, refs, distinct): target = last image; refs = the first n images in other poses,
    reused in order."""
    target = len(pose_ids) - 1
    others = [i for i in range(len(pose_ids)) if pose_ids[i] != pose_ids[target]]
    distinct = bool(others)
    if not others:
        others = [i for i in range(len(pose_ids)) if i != target] or [target]
    return target, [others[j % len(others)] for j in range(n)], distinct


def _prepare(rgba: np.ndarray, udp: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    box = random_crop_box(None, rgba[..., 3], EVAL_MARGIN)
    return crop_rgba(rgba, box, size), crop_udp(udp, box, size)


def _chw(x: np.ndarray, scale: float = 1.0) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(np.moveaxis(x, -1, 0))).float() / scale


def load_models(weights: str | Path, device: str | torch.device = "cpu"):
    """(detector, renderer, checkpoint) from a run dir or checkpoint file written by conrmodel train."""
    from conrmodel.models import build_detector, build_renderer
    from conrmodel.train import find_checkpoint, load_checkpoint

    path = find_checkpoint(weights)
    ckpt = load_checkpoint(path)
    try:
        det = (
            build_detector(**ckpt["detector_config"])
            if ckpt.get("detector_config")
            else build_detector(ckpt["config"]["model"]["detector"])
        )
        ren = (
            build_renderer(**ckpt["renderer_config"])
            if ckpt.get("renderer_config")
            else build_renderer(ckpt["config"]["model"]["renderer"])
        )
        det.load_state_dict(ckpt["detector"], strict=True)
        ren.load_state_dict(ckpt["renderer"], strict=True)
    except (RuntimeError, ValueError, KeyError, TypeError) as err:
        raise UserError(
            f"checkpoint does not match its model config: {str(err).splitlines()[0]}", path
        ) from err
    return det.to(device).eval(), ren.to(device).eval(), ckpt


@torch.no_grad()
def evaluate(
    detector,
    renderer,
    source,
    views=(1, 4),
    size: int = 64,
    lpips=None,
    max_clips: int | None = None,
    device: str | torch.device = "cpu",
    grid_path: str | Path | None = None,
    grid_rows: int = 4,
    progress: bool = False,
) -> dict:
    """Metrics over the clips of ``source`` (shard pattern/paths/OUT dir) for each n in ``views``."""
    from conrdata.dataset import iter_clips

    device = torch.device(device)
    urls = expand_urls(source, "val")
    sums = {n: {"photo": 0.0, "lpips": 0.0} for n in views}
    clips = skipped = same_pose = 0
    rows: list[list[np.ndarray]] = []
    it = iter_clips(urls)
    if progress:
        from tqdm import tqdm

        it = tqdm(it, desc="eval", unit="clip", total=max_clips)
    for clip in it:
        if max_clips is not None and clips >= max_clips:
            break
        if not clip.rgba or any(u is None for u in clip.udp):
            skipped += 1
            continue
        pose_ids = clip_pose_ids(clip)
        clips += 1
        for n in views:
            target, refs, distinct = eval_views(pose_ids, n)
            if n == views[0] and not distinct:
                same_pose += 1
            t_rgba, t_udp = _prepare(clip.rgba[target], clip.udp[target], size)
            prepared = [_prepare(clip.rgba[i], clip.udp[i], size) for i in refs]
            ref_rgba = torch.stack([_chw(r, 255.0) for r, _ in prepared])[None].to(device)  # [1, n, 4, S, S]
            cutout = ref_rgba[0, :, :3] * ref_rgba[0, :, 3:4]
            ref_udp = udp_from_prediction(detector(cutout))[None]
            target_udp = _chw(t_udp)[None].to(device)
            pred = renderer(target_udp, ref_rgba, ref_udp).float()
            gt = _chw(t_rgba, 255.0)[None].to(device)
            gt_pm = torch.cat([gt[:, :3] * gt[:, 3:4], gt[:, 3:4]], 1)
            sums[n]["photo"] += float(photo_loss(pred, gt_pm)[0])
            if lpips is not None:
                on_white = lambda x: x[:, :3] + (1 - x[:, 3:4])  # noqa: E731
                sums[n]["lpips"] += float(lpips(on_white(pred), on_white(gt_pm))[0])
            if grid_path is not None and len(rows) < grid_rows * len(views):
                rows.append(
                    sample_row(
                        ref_rgba[0].cpu().numpy(),
                        target_udp[0].cpu().numpy(),
                        pred[0].cpu().numpy(),
                        gt[0].cpu().numpy(),
                    )
                )
    if clips == 0:
        raise UserError(f"no labelled clips to evaluate ({skipped} unlabeled skipped)", urls[0])
    result = {
        "clips": clips,
        "skipped_unlabeled": skipped,
        "same_pose_clips": same_pose,
        "size": size,
        "views": {
            f"n{n}": {
                "photo": sums[n]["photo"] / clips,
                "lpips": (sums[n]["lpips"] / clips) if lpips is not None else None,
                "clips": clips,
            }
            for n in views
        },
    }
    if grid_path is not None and rows:
        from PIL import Image

        Image.fromarray(make_grid(rows)).save(grid_path)
        result["grid"] = str(grid_path)
    return result


def run_eval(
    weights,
    shards,
    out_dir=None,
    lpips_weights: tuple[str, str] | None = None,
    views=(1, 4),
    size: int | None = None,
    max_clips: int | None = None,
    device: str = "cpu",
    progress: bool = True,
) -> dict:
    """The `conrmodel eval` job: metrics JSON (and grid PNG) into ``out_dir`` (default RUN_DIR/eval)."""
    det, ren, ckpt = load_models(weights, device)
    size = int(size or ckpt.get("config", {}).get("data", {}).get("size", 64))
    lp = None
    if lpips_weights is not None:
        from conrmodel.lpips import LPIPS

        lp = LPIPS(*lpips_weights).to(device)
    wpath = Path(weights)
    out = Path(out_dir) if out_dir else (wpath / "eval" if wpath.is_dir() else wpath.parent / "eval")
    out.mkdir(parents=True, exist_ok=True)
    step = int(ckpt.get("step", 0))
    res = evaluate(
        det,
        ren,
        shards,
        views=tuple(views),
        size=size,
        lpips=lp,
        max_clips=max_clips,
        device=device,
        grid_path=out / f"grid-{step:07d}.png",
        progress=progress,
    )
    res = {"step": step, **res}
    (out / f"metrics-{step:07d}.json").write_text(json.dumps(res, indent=2))
    res["json"] = str(out / f"metrics-{step:07d}.json")
    return res
