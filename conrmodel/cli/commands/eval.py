"""`conrmodel eval`: a trained run against baselines on held-out shards (L_photo, fg/chroma L1, PSNR, SSIM,
LPIPS), for n = 1 and n = 4 views."""

from __future__ import annotations

import json

import click

from conrdata.errors import UserError


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--weights",
    required=True,
    type=click.Path(exists=True),
    help="Run directory (checkpoints/latest.pt, last.pt, final.pt or the newest *.pt), a checkpoint "
    ".pt file, or a folder with the official release's four .pth files.",
)
@click.option("--shards", required=True, metavar="PATTERN", help="Evaluation shards (e.g. the val split).")
@click.option(
    "--out", "out_dir", type=click.Path(file_okay=False), help="Output folder (default RUN_DIR/eval)."
)
@click.option(
    "--lpips-weights",
    nargs=2,
    type=click.Path(exists=True, dir_okay=False),
    metavar="VGG16.pth LIN.pth",
    help="LPIPS weights: a torchvision VGG-16 state dict and the LPIPS linear layers (lpips' "
    "weights/v0.1/vgg.pth). Without them LPIPS is null.",
)
@click.option("--views", default="1,4", show_default=True, help="Comma-separated numbers of reference views.")
@click.option("--size", type=int, help="Evaluation resolution (default: the training size).")
@click.option("--max-clips", type=int, help="Evaluate at most this many clips.")
@click.option("--device", default="cpu", show_default=True, help="cpu | cuda | cuda:N")
@click.option(
    "--preprocess",
    type=click.Choice(["official", "ours"]),
    default=None,
    help="Framing and resizing of the images (see docs/official-weights.md) [default: official for the "
    "official weights, else what the checkpoint records].",
)
def command(weights, shards, out_dir, lpips_weights, views, size, max_clips, device, preprocess):
    """Evaluate a trained run, or the official weights, as in the paper's Table 1.

    For each labelled clip the last image is the target and the first n images
    in other poses are the references; prints and writes metrics-STEP.json
    and grid-STEP.png (rows: references, target UDP, prediction, mean-colour
    silhouette, nearest reference, ground truth). Per n, the model and three
    baselines on the same clips (empty image; the true mask filled with the
    sheet's mean colour; the reference nearest in pose, as drawn) get L_photo,
    foreground L1, chroma L1, PSNR and SSIM (whole image and foreground), and
    LPIPS with --lpips-weights.

    \b
    Example:
      conrmodel eval --weights run/ --shards 'out/shards/val-{000000..000001}.tar' \\
          --lpips-weights vgg16.pth lpips_vgg.pth
    """
    from conrmodel.evaluate import run_eval

    try:
        counts = tuple(int(v) for v in views.split(",") if v.strip())
    except ValueError:
        raise UserError(f"--views must be comma-separated integers, got {views!r}") from None
    if not counts or min(counts) < 1:
        raise UserError(f"--views must list numbers >= 1, got {views!r}")
    res = run_eval(
        weights,
        shards,
        out_dir,
        lpips_weights=tuple(lpips_weights) if lpips_weights else None,
        views=counts,
        size=size,
        max_clips=max_clips,
        device=device,
        preprocess=preprocess,
    )
    click.echo(json.dumps({k: v for k, v in res.items() if k != "grid"}, indent=2))
    click.echo(f"grid: {res.get('grid')}")
