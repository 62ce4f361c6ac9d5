"""`conrmodel render`: draw a character sheet in a sequence of target poses (frames and a video)."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import click
import numpy as np
from PIL import Image
from tqdm import tqdm

from conrdata.errors import UserError
from conrdata.matte.io import is_image_file
from conrdata.udp import AXIS_ORDERS, natural_key
from conrmodel.inference.video import write_video


def _sheet_images(sheet: Path) -> tuple[list[np.ndarray], list[str]]:
    from conrmodel.inference.udp_io import read_image

    if sheet.is_file():
        files = [sheet]
    elif sheet.is_dir():
        files = sorted((p for p in sheet.iterdir() if is_image_file(p)), key=lambda p: natural_key(p.name))
    else:
        raise UserError("sheet not found", sheet)
    if not files:
        raise UserError("no images in the sheet folder (expected RGBA .png/.webp cut-outs)", sheet)
    return [read_image(p) for p in files], [str(p) for p in files]


def _check_video_target(video: Path | None) -> None:
    if video is None:
        return
    suffix = video.suffix.lower()
    if suffix == ".gif":
        return
    if suffix in (".mp4", ".webm", ".mkv", ".mov"):
        try:
            import imageio_ffmpeg  # noqa: F401

            return
        except ImportError:
            if shutil.which("ffmpeg"):
                return
        raise UserError(f"writing {suffix} needs ffmpeg (not found; install imageio-ffmpeg), "
                        "or ask for a .gif instead", video)
    raise UserError("video must end in .gif or .mp4", video)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--weights", required=True, type=click.Path(exists=True, path_type=Path),
              help="Folder with the four official .pth files, or a training run / checkpoint (.pt).")
@click.option("--sheet", required=True, type=click.Path(exists=True, path_type=Path),
              help="Folder of RGBA cut-outs of the character (the character sheet), or one image.")
@click.option("--poses", required=True, type=click.Path(exists=True, path_type=Path),
              help="Folder (or file) of target poses: .npz (key 'i'), .exr, .tar shards, or images.")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Output folder for RGBA frames.")
@click.option("--video", type=click.Path(path_type=Path), default=None,
              help="Also write a video: .gif (Pillow) or .mp4 (needs ffmpeg).")
@click.option("--size", type=int, default=None,
              help="Network input side in pixels, a multiple of 32 "
                   "[default: the weights' training size, else 256].")
@click.option("--batch", type=int, default=4, show_default=True,
              help="Target poses rendered per forward pass.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True,
              help="auto = CUDA when available, else CPU.")
@click.option("--precision", type=click.Choice(["auto", "fp32", "bf16", "fp16"]), default="auto",
              show_default=True, help="auto = bf16/fp16 autocast on CUDA, fp32 on CPU.")
@click.option("--axis-order", type=click.Choice(AXIS_ORDERS), default="XYZ", show_default=True,
              help="Channel order of xyz in .npz/.exr poses (community MMD tools offered several).")
@click.option("--preprocess", type=click.Choice(["official", "ours"]), default=None,
              help="How crops are framed and resized: 'official' as the official release's loader "
                   "(OpenCV resizing, uint8 premultiplication, soft occupancy), 'ours' as our training "
                   "[default: official for the official weights, else what the checkpoint records].")
@click.option("--margin", type=float, default=None,
              help="Crop side around the character, as a multiple of its bounding box "
                   "[default: 1.0 with --preprocess official, 1.1 with ours].")
@click.option("--premultiplied-png", is_flag=True,
              help="Write frames with premultiplied colour, as the official release does "
                   "(default: straight alpha).")
@click.option("--fps", type=float, default=24.0, show_default=True, help="Video frame rate.")
@click.option("--background", default="255,255,255", show_default=True,
              help="Video background colour R,G,B (frames keep their transparency).")
@click.option("--limit", type=int, default=None, help="Render at most this many poses.")
def command(weights: Path, sheet: Path, poses: Path, out: Path, video: Path | None, size: int | None,
            batch: int, device: str, precision: str, axis_order: str, preprocess: str | None,
            margin: float | None, premultiplied_png: bool, fps: float, background: str,
            limit: int | None) -> None:
    """Render the character of a sheet in every target pose.

    The sheet (RGBA images with a transparent background; use `conrdata matte` to cut drawings out)
    is encoded once and reused for all poses; poses are rendered in batches. Each frame is cropped
    around the pose for the network and pasted back into the pose's own framing, and saved as
    OUT/<pose name>.png with transparency. Works with the official CoNR weights (preprocessed as the
    official code does, see docs/official-weights.md) or our checkpoints.

    \b
    Official weights (udpparsernet.pth, target_pose_encoder.pth, shader.pth, rgbadecodernet.pth):
      conrmodel render --weights weights/ --sheet sheet/ --poses poses/ --out frames/ --video anim.gif
    A training run:
      conrmodel render --weights run/ --sheet sheet/ --poses out/shards/val-000000.tar --out frames/
    """
    from conrmodel.inference.runner import CoNRInference, load_models
    from conrmodel.inference.udp_io import iter_pose_frames

    try:
        bg = tuple(int(v) for v in background.split(","))
        if len(bg) != 3 or not all(0 <= v <= 255 for v in bg):
            raise ValueError
    except ValueError:
        raise UserError(f"--background must be R,G,B with values 0-255, got {background!r}") from None
    if fps <= 0:
        raise UserError("--fps must be positive")
    _check_video_target(video)
    images, names = _sheet_images(sheet)

    t0 = time.perf_counter()
    models = load_models(weights)
    engine = CoNRInference(models.detector, models.renderer, size or models.train_size or 256,
                           device=device, precision=precision, batch=batch, margin=margin,
                           preprocess=preprocess or models.preprocess, premultiplied_png=premultiplied_png)
    engine.set_sheet(images, names)
    load_s = time.perf_counter() - t0
    click.echo(f"weights: {models.source} ({models.path}); sheet: {engine.views} view(s); "
               f"size {engine.size}; preprocess {engine.preprocess} (margin {engine.margin}); "
               f"device {engine.device}", err=True)

    out.mkdir(parents=True, exist_ok=True)
    errors: list[tuple[str, str]] = []
    written: list[Path] = []
    empty = 0
    used: set[str] = set()
    frames = iter_pose_frames(poses, axis_order=axis_order, errors=errors)
    if limit is not None:
        frames = (f for i, f in zip(range(limit), frames))
    t1 = time.perf_counter()
    with tqdm(desc="render", unit="frame", disable=None) as bar:
        for frame, rgba in engine.render_frames(frames):
            name, k = frame.name, 1
            while name in used:  # e.g. walk.npz and walk.png in one folder
                name, k = f"{frame.name}_{k}", k + 1
            used.add(name)
            path = out / f"{name}.png"
            Image.fromarray(rgba, "RGBA").save(path)
            written.append(path)
            empty += int(not rgba[..., 3].any())
            bar.update(1)
    render_s = time.perf_counter() - t1
    if not written:
        first = f" ({errors[0][0]}: {errors[0][1]})" if errors else ""
        raise UserError("no pose could be rendered" + first, poses)
    if video is not None:
        write_video(video, written, fps, bg, premultiplied=premultiplied_png)

    report = {
        "weights": str(models.path), "weights_source": models.source, "sheet": names, "size": engine.size,
        "device": str(engine.device), "precision": precision, "preprocess": engine.preprocess,
        "margin": engine.margin, "premultiplied_png": premultiplied_png,
        "frames": len(written), "empty_poses": empty,
        "skipped": [{"path": p, "reason": r} for p, r in errors], "load_seconds": round(load_s, 3),
        "render_seconds": round(render_s, 3), "ms_per_frame": round(1000 * render_s / len(written), 2),
        "video": str(video) if video else None,
    }
    (out / "render_report.json").write_text(json.dumps(report, indent=2))
    click.echo(f"rendered {len(written)} frame(s) to {out} in {render_s:.1f}s "
               f"({report['ms_per_frame']:.0f} ms/frame)" + (f"; video {video}" if video else ""))
    if empty:
        click.echo(f"{empty} pose(s) had no occupied pixel and gave transparent frames", err=True)
    for path, reason in errors:
        click.echo(f"skipped {path}: {reason}", err=True)
