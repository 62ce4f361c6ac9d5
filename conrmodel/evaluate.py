"""Evaluation as in the paper's Table 1 (n = 1 and n = 4 reference views), beside three baselines.

For every labelled clip of the evaluation shards, deterministically (no
randomness anywhere): the target is the clip's last image; the references
are the first n images whose pose differs from the target's, reused in order
when the clip has fewer (clips where every image shares one pose are counted
in ``same_pose_clips``); every image is cropped square around its character
(the mean training margin, no jitter) and resized to ``size``.

The detector sees each reference as a cut-out on black (premultiplied RGB, as
``conrmodel render`` does), the renderer gets the detector's UDP of the
references and the ground-truth UDP of the target.

The same references and target also give the baselines of :mod:`conrmodel.baselines`: ``empty``
(all transparent), ``silhouette`` (the ground-truth mask filled with the sheet's mean colour) and
``nearest`` (the reference whose ground-truth UDP is closest to the target's, as drawn). Each of
the model and the baselines gets every metric of :mod:`conrmodel.metrics` (``photo`` = L_photo, mean L1
over premultiplied RGBA; ``fg_l1``; ``chroma_l1``; ``psnr``, ``psnr_fg``; ``ssim``, ``ssim_fg``) and
``lpips``: LPIPS-VGG (conrmodel.models.lpips, locally supplied weights) between the image and the ground truth
composited on white, null without weights.

Output JSON: ``{"step", "clips", "skipped_unlabeled", "same_pose_clips", "size", "views": {"n1":
{"photo", "lpips", "clips", "model": {metric: mean}, "baselines": {"empty" | "silhouette" | "nearest":
{metric: mean}}}, "n4": {...}}}`` (``photo`` and ``lpips`` repeat the model's); a PNG grid with one row per
clip and n: references, target UDP, prediction, silhouette and nearest-reference baselines, ground truth.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from conrdata.errors import UserError
from conrmodel.baselines import BASELINES, all_baselines
from conrmodel.data.augment import crop_rgba, crop_udp, random_crop_box
from conrmodel.data.stream import clip_pose_ids, expand_urls
from conrmodel.inference.preprocess import PREPROCESS_OFFICIAL, PREPROCESS_OURS, official_eval_crop
from conrmodel.inference.runner import load_models as load_weights
from conrmodel.metrics import METRIC_NAMES, all_metrics
from conrmodel.models.detector import udp_from_prediction
from conrmodel.train.runlog import make_grid, sample_row, show_rgba

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


def _prepare(rgba: np.ndarray, udp: np.ndarray, size: int,
             preprocess: str = PREPROCESS_OURS) -> tuple[np.ndarray, np.ndarray]:
    if preprocess == PREPROCESS_OFFICIAL:  # the official weights' framing and resizing
        return official_eval_crop(rgba, udp, size)
    box = random_crop_box(None, rgba[..., 3], EVAL_MARGIN)
    return crop_rgba(rgba, box, size), crop_udp(udp, box, size)


def _chw(x: np.ndarray, scale: float = 1.0) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(np.moveaxis(x, -1, 0))).float() / scale


def load_models(weights: str | Path, device: str | torch.device = "cpu"):
    """(detector, renderer, checkpoint) from a run dir or checkpoint file written by conrmodel train, or
    from a folder with the official release's four files (loaded through :mod:`conrmodel.checkpoint`).

    ``checkpoint`` is our checkpoint's entries other than the weights (``step``, ``config``, ...); for
    the official files ``{"step": 0, "config": {"data": {"size": 256}}}``. Both carry ``preprocess``.
    """
    models = load_weights(weights)
    if models.source == "official":
        ckpt = {"step": 0, "config": {"data": {"size": models.train_size}}}
    else:
        ckpt = dict(models.checkpoint)
    ckpt["preprocess"] = models.preprocess
    return models.detector.to(device).eval(), models.renderer.to(device).eval(), ckpt


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
    preprocess: str = PREPROCESS_OURS,
    reference_udp: str = "detector",
) -> dict:
    """Metrics over the clips of ``source`` (shard pattern/paths/OUT dir) for each n in ``views``;
    ``preprocess`` frames the images as :mod:`conrmodel.inference.preprocess` says (``official`` for the
    official weights). ``reference_udp="truth"`` gives the renderer the references' ground-truth UDP
    instead of the detector's (a diagnostic: the renderer alone, as if the detector were perfect)."""
    if reference_udp not in ("detector", "truth"):
        raise ValueError(f"reference_udp must be 'detector' or 'truth', got {reference_udp!r}")
    from conrdata.dataset import iter_clips

    device = torch.device(device)
    urls = expand_urls(source, "val")
    entries = ("model", *BASELINES)
    sums = {n: {e: dict.fromkeys((*METRIC_NAMES, "lpips"), 0.0) for e in entries} for n in views}
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
            t_rgba, t_udp = _prepare(clip.rgba[target], clip.udp[target], size, preprocess)
            prepared = [_prepare(clip.rgba[i], clip.udp[i], size, preprocess) for i in refs]
            ref_rgba = torch.stack([_chw(r, 255.0) for r, _ in prepared])[None].to(device)  # [1, n, 4, S, S]
            cutout = ref_rgba[0, :, :3] * ref_rgba[0, :, 3:4]
            # the references' true UDP: the baselines' pose distance (and the renderer's, with "truth")
            true_ref_udp = torch.stack([_chw(u) for _, u in prepared])[None].to(device)
            if reference_udp == "truth":
                ref_udp = true_ref_udp
            else:
                ref_udp = udp_from_prediction(detector(cutout))[None]
            target_udp = _chw(t_udp)[None].to(device)
            pred = renderer(target_udp, ref_rgba, ref_udp).float()
            gt = _chw(t_rgba, 255.0)[None].to(device)
            gt_pm = torch.cat([gt[:, :3] * gt[:, 3:4], gt[:, 3:4]], 1)
            # the baselines see the references' ground-truth UDP (pose distance) and the target's mask
            images = {"model": pred, **all_baselines(ref_rgba, true_ref_udp, target_udp, gt[:, 3:4])}
            for name, image in images.items():
                for metric, value in all_metrics(image, gt_pm).items():
                    sums[n][name][metric] += float(value[0])
                if lpips is not None:
                    on_white = lambda x: x[:, :3] + (1 - x[:, 3:4])  # noqa: E731
                    sums[n][name]["lpips"] += float(lpips(on_white(image), on_white(gt_pm))[0])
            if grid_path is not None and len(rows) < grid_rows * len(views):
                row = sample_row(
                    ref_rgba[0].cpu().numpy(),
                    target_udp[0].cpu().numpy(),
                    pred[0].cpu().numpy(),
                    gt[0].cpu().numpy(),
                )
                extra = [show_rgba(images[b][0].cpu().numpy(), True) for b in ("silhouette", "nearest")]
                rows.append(row[:-1] + extra + row[-1:])
    if clips == 0:
        raise UserError(f"no labelled clips to evaluate ({skipped} unlabeled skipped)", urls[0])

    def means(values: dict[str, float]) -> dict[str, float | None]:
        out: dict[str, float | None] = {k: v / clips for k, v in values.items()}
        if lpips is None:
            out["lpips"] = None
        return out

    result = {
        "clips": clips,
        "skipped_unlabeled": skipped,
        "same_pose_clips": same_pose,
        "size": size,
        "views": {},
    }
    for n in views:
        model = means(sums[n]["model"])
        result["views"][f"n{n}"] = {
            "photo": model["photo"],
            "lpips": model["lpips"],
            "clips": clips,
            "model": model,
            "baselines": {b: means(sums[n][b]) for b in BASELINES},
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
    preprocess: str | None = None,
) -> dict:
    """The `conrmodel eval` job: metrics JSON (and grid PNG) into ``out_dir`` (default RUN_DIR/eval).
    ``preprocess`` defaults to the weights' own (``official`` for the official files)."""
    det, ren, ckpt = load_models(weights, device)
    preprocess = preprocess or ckpt["preprocess"]
    size = int(size or ckpt.get("config", {}).get("data", {}).get("size", 64))
    lp = None
    if lpips_weights is not None:
        from conrmodel.models.lpips import LPIPS

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
        preprocess=preprocess,
    )
    res = {"step": step, "preprocess": preprocess, **res}
    (out / f"metrics-{step:07d}.json").write_text(json.dumps(res, indent=2))
    res["json"] = str(out / f"metrics-{step:07d}.json")
    return res
