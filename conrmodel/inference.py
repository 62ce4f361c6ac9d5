"""Inference: load weights, encode a character sheet once, render batches of target poses.

Framing. The networks see square ``size x size`` crops. Each reference is cropped to a square around
its alpha bounding box (side = ``margin`` x the box's longer side, zero padded), each target UDP to a
square around its occupied pixels the same way; the rendered crop is resized back and pasted into a
transparent canvas of the target's own size and position ("cropped back to the input framing").
UDPs are only ever resized with nearest-neighbour sampling; colours are resized premultiplied.

Determinism: no randomness is used; on CUDA cuDNN is put in deterministic mode. CPU results are
bit-identical run to run; autocast (bf16/fp16, CUDA only by default) trades exactness for speed.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from conrdata.errors import FormatError, UserError
from conrmodel.detector import UDPDetector, udp_from_prediction
from conrmodel.models import build_detector, build_renderer
from conrmodel.official import has_official_files, load_official, load_strict
from conrmodel.renderer import CollaborativeRenderer, SheetCache, unpremultiply
from conrmodel.udp_io import PoseFrame

# ---------------------------------------------------------------------------------------------- weights


@dataclass
class LoadedModels:
    detector: UDPDetector
    renderer: CollaborativeRenderer
    source: str  # "official" or "checkpoint"
    path: Path
    train_size: int | None = None  # the crop size the weights were trained at, when recorded
    info: dict[str, Any] = field(default_factory=dict)


CHECKPOINT_NAMES = ("latest.pt", "last.pt", "final.pt")


def find_checkpoint(path: Path) -> Path:
    """A checkpoint file: ``path`` itself, or ``latest.pt``/``last.pt``/``final.pt`` or else the newest
    ``*.pt`` in ``path`` or ``path/checkpoints``."""
    if path.is_file():
        return path
    for folder in (path / "checkpoints", path):
        if not folder.is_dir():
            continue
        for name in CHECKPOINT_NAMES:
            if (folder / name).is_file():
                return folder / name
        found = sorted(folder.glob("*.pt"), key=lambda p: (p.stat().st_mtime, p.name))
        if found:
            return found[-1]
    raise UserError(
        "no weights found: expected the four official .pth files (udpparsernet.pth, target_pose_encoder.pth, "
        "shader.pth, rgbadecodernet.pth) or a training checkpoint (checkpoints/*.pt)",
        path,
    )


def _model_configs(ckpt: dict) -> tuple[dict, dict]:
    """Detector and renderer build kwargs recorded in one of our checkpoints."""
    det = ckpt.get("detector_config")
    ren = ckpt.get("renderer_config")
    model = (ckpt.get("config") or {}).get("model") if isinstance(ckpt.get("config"), dict) else None
    if model:
        det = det or model.get("detector")
        ren = ren or model.get("renderer")
    det = {"preset": det} if isinstance(det, str) else dict(det or {"preset": "tiny"})
    ren = {"preset": ren} if isinstance(ren, str) else dict(ren or {"preset": "tiny"})
    return det, ren


def load_checkpoint(path: Path) -> LoadedModels:
    """One of our training checkpoints: ``{"detector": sd, "renderer": sd, "config": {...}, ...}``.

    The networks are rebuilt from ``detector_config``/``renderer_config`` (full build dicts) when present,
    else from ``config["model"]["detector"/"renderer"]`` (preset names or dicts), else ``tiny``.
    """
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise FormatError(f"not a readable checkpoint ({first[:160]})", path) from err
    if not isinstance(ckpt, dict) or "renderer" not in ckpt or "detector" not in ckpt:
        keys = ", ".join(sorted(map(str, ckpt))[:8]) if isinstance(ckpt, dict) else type(ckpt).__name__
        raise FormatError(f"not a CoNR checkpoint: no 'detector' and 'renderer' entries (has {keys})", path)
    det_cfg, ren_cfg = _model_configs(ckpt)
    try:
        detector = build_detector(**det_cfg)
        renderer = build_renderer(**ren_cfg)
    except (TypeError, ValueError) as err:
        raise FormatError(f"cannot rebuild the networks from the checkpoint's config ({err})", path) from err
    load_strict(detector, _strip_module(ckpt["detector"]), path)
    load_strict(renderer, _strip_module(ckpt["renderer"]), path)
    config = ckpt.get("config") if isinstance(ckpt.get("config"), dict) else {}
    size = (config.get("data") or {}).get("size") if isinstance(config.get("data"), dict) else None
    info = {k: ckpt[k] for k in ("step", "epoch") if k in ckpt and isinstance(ckpt[k], int | float)}
    return LoadedModels(detector.eval(), renderer.eval(), "checkpoint", path, size, info)


def _strip_module(state: dict) -> dict:
    return {(k[7:] if k.startswith("module.") else k): v for k, v in state.items()}


def load_models(weights: str | os.PathLike) -> LoadedModels:
    """The four official files in ``weights`` (a folder), or one of our checkpoints (file or run folder)."""
    path = Path(weights)
    if not path.exists():
        raise UserError("weights not found", path)
    if has_official_files(path):
        detector, renderer = load_official(path)
        return LoadedModels(detector, renderer, "official", path, 256)
    return load_checkpoint(find_checkpoint(path))


# ---------------------------------------------------------------------------------------------- devices


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` -> CUDA when available else CPU; asking for CUDA without one is a user error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device {device!r} requested but CUDA is not available (use --device cpu)")
    return dev


def autocast_for(device: torch.device, precision: str = "auto"):
    """Autocast context: ``auto`` = bf16 (or fp16 without bf16 support) on CUDA, fp32 on CPU."""
    if precision not in ("auto", "fp32", "bf16", "fp16"):
        raise UserError(f"precision must be auto, fp32, bf16 or fp16, got {precision!r}")
    if precision == "fp32" or (precision == "auto" and device.type != "cuda"):
        return contextlib.nullcontext()
    if precision == "auto":
        precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


# ---------------------------------------------------------------------------------------------- framing


@dataclass(frozen=True)
class Box:
    """A square crop: top-left corner (may be negative) and side, in pixels of the source image."""

    top: int
    left: int
    side: int


def square_box(mask: np.ndarray, margin: float = 1.1) -> Box | None:
    """Square around the True pixels of ``mask`` (H x W), ``margin`` x its longer side; None if empty."""
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        return None
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    side = max(2, int(math.ceil(max(y1 - y0, x1 - x0) * margin)))
    top = int(round((y0 + y1) / 2 - side / 2))
    left = int(round((x0 + x1) / 2 - side / 2))
    return Box(top, left, side)


def crop_square(arr: np.ndarray, box: Box) -> np.ndarray:
    """``arr`` (H x W x C) cut to ``box``, zero outside the image."""
    h, w = arr.shape[:2]
    out = np.zeros((box.side, box.side, arr.shape[2]), arr.dtype)
    y0, x0 = max(box.top, 0), max(box.left, 0)
    y1, x1 = min(box.top + box.side, h), min(box.left + box.side, w)
    if y1 > y0 and x1 > x0:
        out[y0 - box.top : y1 - box.top, x0 - box.left : x1 - box.left] = arr[y0:y1, x0:x1]
    return out


def paste_square(canvas: np.ndarray, patch: np.ndarray, box: Box) -> np.ndarray:
    """Write ``patch`` (side x side x C) into ``canvas`` at ``box`` (clipped to the canvas); in place."""
    h, w = canvas.shape[:2]
    y0, x0 = max(box.top, 0), max(box.left, 0)
    y1, x1 = min(box.top + box.side, h), min(box.left + box.side, w)
    if y1 > y0 and x1 > x0:
        canvas[y0:y1, x0:x1] = patch[y0 - box.top : y1 - box.top, x0 - box.left : x1 - box.left]
    return canvas


def resize_premultiplied(rgba: torch.Tensor, size: int) -> torch.Tensor:
    """[B,4,h,w] premultiplied -> [B,4,size,size], antialiased bilinear (no colour fringes)."""
    if rgba.shape[-1] == size and rgba.shape[-2] == size:
        return rgba
    out = F.interpolate(rgba, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return out.clamp(0, 1)


def resize_udp(udp: torch.Tensor, size: int) -> torch.Tensor:
    """[B,4,h,w] UDP -> [B,4,size,size], nearest neighbour only (a blended landmark is not on the body)."""
    if udp.shape[-1] == size and udp.shape[-2] == size:
        return udp
    return F.interpolate(udp, size=(size, size), mode="nearest-exact")


def _premultiply_np(rgba_u8: np.ndarray) -> np.ndarray:
    x = rgba_u8.astype(np.float32) / 255.0
    x[..., :3] *= x[..., 3:4]
    return x


def _to_u8(x: np.ndarray) -> np.ndarray:
    return (np.clip(x, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


# ---------------------------------------------------------------------------------------------- session


def check_sheet_image(rgba: np.ndarray, path: str | os.PathLike | None = None) -> None:
    """A sheet image must be RGBA with real transparency (a cut-out character)."""
    hint = "cut the character out first, e.g. `conrdata matte IN_DIR OUT_DIR`"
    if rgba.ndim != 3 or rgba.shape[2] != 4:
        raise UserError(f"has no alpha channel; the sheet must be RGBA cut-outs: {hint}", path)
    alpha = rgba[..., 3]
    if alpha.mean() >= 0.95 * 255:
        raise UserError(f"has no transparent background; {hint}", path)
    if not (alpha > 0).any():
        raise UserError("is fully transparent", path)


class CoNRInference:
    """Render one character sheet in many poses.

    ``set_sheet(images)`` encodes the sheet once (RGBA uint8 H x W x 4 each); ``render_udps(udps)``
    draws it in each target UDP (H x W x 4 float32, our encoding) and returns straight RGBA uint8 frames
    of the same H x W. ``cache_sheet=False`` re-encodes the sheet for every batch (for benchmarks).
    """

    def __init__(self, detector: UDPDetector, renderer: CollaborativeRenderer, size: int = 256,
                 device: str | torch.device = "auto", precision: str = "auto", batch: int = 4,
                 margin: float = 1.1, cache_sheet: bool = True):
        if size % 32 or size < 32:
            raise UserError(f"--size must be a positive multiple of 32, got {size}")
        if batch < 1:
            raise UserError(f"--batch must be at least 1, got {batch}")
        self.device = device if isinstance(device, torch.device) else resolve_device(device)
        if self.device.type == "cuda":
            torch.backends.cudnn.deterministic = True
            torch.backends.cudnn.benchmark = False
        self.precision = precision
        autocast_for(self.device, precision)  # validates the name early
        self.detector = detector.to(self.device).eval()
        self.renderer = renderer.to(self.device).eval()
        self.size, self.batch, self.margin, self.cache_sheet = size, batch, margin, cache_sheet
        self._sheet: tuple[torch.Tensor, torch.Tensor | None] | None = None
        self._cache: SheetCache | None = None

    @classmethod
    def from_weights(cls, weights: str | os.PathLike, size: int | None = None, **kwargs) -> CoNRInference:
        models = load_models(weights)
        return cls(models.detector, models.renderer, size or models.train_size or 256, **kwargs)

    # -- sheet

    def prepare_sheet(self, images: Sequence[np.ndarray], names: Sequence[str] | None = None) -> torch.Tensor:
        """RGBA uint8 images -> straight RGBA [1,n,4,S,S] on the device, each cropped around its alpha."""
        if not images:
            raise UserError("the character sheet has no images")
        crops = []
        for i, rgba in enumerate(images):
            check_sheet_image(rgba, names[i] if names else None)
            box = square_box(rgba[..., 3] > 0, self.margin)
            assert box is not None
            crop = torch.from_numpy(crop_square(_premultiply_np(rgba), box)).permute(2, 0, 1)[None]
            crops.append(unpremultiply(resize_premultiplied(crop, self.size)))
        return torch.cat(crops).unsqueeze(0).to(self.device)

    @torch.no_grad()
    def set_sheet(self, images: Sequence[np.ndarray], names: Sequence[str] | None = None) -> None:
        ref_rgba = self.prepare_sheet(images, names)
        ref_udp = None
        if self.renderer.reference_udp and not getattr(self.renderer.udpparsernet, "has_decoder", False):
            flat = ref_rgba[0]
            with autocast_for(self.device, self.precision):
                pred = self.detector(flat[:, :3] * flat[:, 3:4])
            ref_udp = udp_from_prediction(pred.float()).unsqueeze(0)
        self._sheet = (ref_rgba, ref_udp)
        self._cache = self._encode() if self.cache_sheet else None

    def _encode(self) -> SheetCache:
        assert self._sheet is not None
        with autocast_for(self.device, self.precision):
            return self.renderer.encode_sheet(*self._sheet)

    @property
    def views(self) -> int:
        return 0 if self._sheet is None else int(self._sheet[0].shape[1])

    # -- poses

    @torch.no_grad()
    def detect_udp(self, image: np.ndarray) -> np.ndarray:
        """A plain image (RGB or RGBA uint8) -> UDP H x W x 4 float32 in the image's framing."""
        h, w = image.shape[:2]
        rgba = image if image.shape[2] == 4 else np.concatenate([image, np.full((h, w, 1), 255, np.uint8)], 2)
        side = max(h, w)
        box = Box((h - side) // 2, (w - side) // 2, side)
        crop = torch.from_numpy(crop_square(_premultiply_np(rgba), box)).permute(2, 0, 1)[None]
        x = resize_premultiplied(crop, self.size).to(self.device)
        with autocast_for(self.device, self.precision):
            pred = self.detector(x[:, :3])
        udp = resize_udp(udp_from_prediction(pred.float()), side)[0].permute(1, 2, 0).cpu().numpy()
        return paste_square(np.zeros((h, w, 4), np.float32), udp, box)

    @torch.no_grad()
    def render_udps(self, udps: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Target UDPs (H x W x 4 float32 each) -> straight RGBA uint8 frames (H x W x 4), one batch."""
        if self._sheet is None:
            raise UserError("no character sheet set")
        outputs: list[np.ndarray | None] = [None] * len(udps)
        boxes, crops, index = [], [], []
        for i, udp in enumerate(udps):
            box = square_box(udp[..., 3] > 0.5, self.margin)
            if box is None:  # nothing to draw: a transparent frame keeps the sequence's timing
                outputs[i] = np.zeros((*udp.shape[:2], 4), np.uint8)
                continue
            crop = torch.from_numpy(crop_square(np.ascontiguousarray(udp, np.float32), box)).permute(2, 0, 1)
            boxes.append(box)
            crops.append(resize_udp(crop[None], self.size))
            index.append(i)
        if crops:
            target = torch.cat(crops).to(self.device)
            cache = self._cache if self._cache is not None else self._encode()
            with autocast_for(self.device, self.precision):
                out = self.renderer.render(target, cache)
            out = out.float().clamp(0, 1)
            for j, (i, box) in enumerate(zip(index, boxes)):
                patch = unpremultiply(resize_premultiplied(out[j : j + 1], box.side))[0]
                canvas = np.zeros((*udps[i].shape[:2], 4), np.float32)
                paste_square(canvas, patch.permute(1, 2, 0).cpu().numpy(), box)
                outputs[i] = _to_u8(canvas)
        return [o for o in outputs if o is not None]

    def render_frames(self, frames: Iterable[PoseFrame]) -> Iterator[tuple[PoseFrame, np.ndarray]]:
        """Render a stream of pose frames in batches of ``batch``; yields (frame, RGBA uint8)."""
        pending: list[tuple[PoseFrame, np.ndarray]] = []
        for frame in frames:
            udp = frame.udp if frame.udp is not None else self.detect_udp(frame.image)
            pending.append((frame, udp))
            if len(pending) == self.batch:
                yield from zip((f for f, _ in pending), self.render_udps([u for _, u in pending]))
                pending = []
        if pending:
            yield from zip((f for f, _ in pending), self.render_udps([u for _, u in pending]))
