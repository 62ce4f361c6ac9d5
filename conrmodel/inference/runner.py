"""Inference: load weights, encode a character sheet once, render batches of target poses.

Framing. The networks see square ``size x size`` crops. Each reference is cropped to a square around
its alpha bounding box (side = ``margin`` x the box's longer side, zero padded), each target UDP to a
square around its occupied pixels the same way; the rendered crop is resized back and pasted into a
transparent canvas of the target's own size and position ("cropped back to the input framing").
How the crops are resized and masks read is the ``preprocess`` mode, ``ours`` or ``official``
(:mod:`conrmodel.inference.preprocess`); the official weights get ``official``, our checkpoints what they
record.

Determinism: no randomness is used; on CUDA cuDNN is put in deterministic mode. CPU results are
bit-identical run to run; autocast (bf16/fp16, CUDA only by default) trades exactness for speed.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from conrdata.errors import FormatError, UserError
from conrdata.udp import to_official
from conrmodel.checkpoint import find_checkpoint, has_official_files, load_checkpoint, load_strict
from conrmodel.inference.preprocess import (
    DEFAULT_MARGIN,
    PREPROCESS_MODES,
    PREPROCESS_OFFICIAL,
    PREPROCESS_OURS,
    Box,
    crop_square,
    official_network_target,
    official_output,
    official_sheet_crop,
    official_target_crop,
    paste_square,
    premultiplied_from_straight,
    premultiply_float,
    resize_premultiplied,
    resize_udp,
    square_box,
    straight_from_premultiplied,
)
from conrmodel.inference.udp_io import PoseFrame
from conrmodel.models.detector import UDPDetector, udp_from_prediction
from conrmodel.models.factory import build_detector, build_renderer
from conrmodel.models.official import load_official
from conrmodel.models.renderer import CollaborativeRenderer, SheetCache, unpremultiply

# ---------------------------------------------------------------------------------------------- weights


@dataclass
class LoadedModels:
    detector: UDPDetector
    renderer: CollaborativeRenderer
    source: str  # "official" or "checkpoint"
    path: Path
    train_size: int | None = None  # the crop size the weights were trained at, when recorded
    info: dict[str, Any] = field(default_factory=dict)
    preprocess: str = PREPROCESS_OURS  # the framing/resizing the weights were trained with
    checkpoint: dict[str, Any] = field(default_factory=dict)  # our checkpoint's other entries (config, step)


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


def load_trained(path: str | os.PathLike) -> LoadedModels:
    """One of our training checkpoints (a file): ``{"detector": sd, "renderer": sd, "config": {...}}``.

    The networks are rebuilt from ``detector_config``/``renderer_config`` (full build dicts) when present,
    else from ``config["model"]["detector"/"renderer"]`` (preset names or dicts), else ``tiny``; the
    preprocessing is the checkpoint's ``preprocess`` entry (``ours`` when absent).
    """
    path = Path(path)
    ckpt = load_checkpoint(path)
    det_cfg, ren_cfg = _model_configs(ckpt)
    try:
        detector = build_detector(**det_cfg)
        renderer = build_renderer(**ren_cfg)
    except (TypeError, ValueError) as err:
        raise FormatError(f"cannot rebuild the networks from the checkpoint's config ({err})", path) from err
    load_strict(detector, ckpt["detector"], path)
    load_strict(renderer, ckpt["renderer"], path)
    config = ckpt.get("config") if isinstance(ckpt.get("config"), dict) else {}
    size = (config.get("data") or {}).get("size") if isinstance(config.get("data"), dict) else None
    info = {k: ckpt[k] for k in ("step", "epoch") if k in ckpt and isinstance(ckpt[k], int | float)}
    preprocess = ckpt.get("preprocess", PREPROCESS_OURS)
    if preprocess not in PREPROCESS_MODES:
        raise FormatError(f"unknown preprocess {preprocess!r} (known: {', '.join(PREPROCESS_MODES)})", path)
    rest = {k: v for k, v in ckpt.items() if k not in ("detector", "renderer", "optimizer", "scheduler")}
    return LoadedModels(detector.eval(), renderer.eval(), "checkpoint", path, size, info, preprocess, rest)


def load_models(weights: str | os.PathLike) -> LoadedModels:
    """The four official files in ``weights`` (a folder), or one of our checkpoints (file or run folder,
    found by :func:`conrmodel.checkpoint.find_checkpoint`)."""
    path = Path(weights)
    if not path.exists():
        raise UserError("weights not found", path)
    if has_official_files(path):
        detector, renderer = load_official(path)
        return LoadedModels(detector, renderer, "official", path, 256, preprocess=PREPROCESS_OFFICIAL)
    return load_trained(find_checkpoint(path))


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


# ---------------------------------------------------------------------------------------------- session


def _to_u8(x: np.ndarray) -> np.ndarray:
    return (np.clip(x, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


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
    draws it in each target UDP (H x W x 4 float32, our encoding) and returns RGBA uint8 frames of the
    same H x W, straight alpha unless ``premultiplied_png``. ``preprocess`` is ``"ours"`` or
    ``"official"`` (see :mod:`~conrmodel.inference.preprocess`); ``margin`` defaults to 1.1 for ours, 1.0 for
    official. ``cache_sheet=False`` re-encodes the sheet for every batch (for benchmarks).
    """

    def __init__(self, detector: UDPDetector, renderer: CollaborativeRenderer, size: int = 256,
                 device: str | torch.device = "auto", precision: str = "auto", batch: int = 4,
                 margin: float | None = None, cache_sheet: bool = True, preprocess: str = PREPROCESS_OURS,
                 premultiplied_png: bool = False):
        if size % 32 or size < 32:
            raise UserError(f"--size must be a positive multiple of 32, got {size}")
        if batch < 1:
            raise UserError(f"--batch must be at least 1, got {batch}")
        if preprocess not in PREPROCESS_MODES:
            raise UserError(f"preprocess must be one of {', '.join(PREPROCESS_MODES)}, got {preprocess!r}")
        margin = DEFAULT_MARGIN[preprocess] if margin is None else float(margin)
        if not margin > 0:
            raise UserError(f"--margin must be positive, got {margin}")
        self.device = device if isinstance(device, torch.device) else resolve_device(device)
        if self.device.type == "cuda":
            torch.backends.cudnn.deterministic = True
            torch.backends.cudnn.benchmark = False
        self.precision = precision
        autocast_for(self.device, precision)  # validates the name early
        self.detector = detector.to(self.device).eval()
        self.renderer = renderer.to(self.device).eval()
        self.size, self.batch, self.margin, self.cache_sheet = size, batch, margin, cache_sheet
        self.preprocess, self.premultiplied_png = preprocess, premultiplied_png
        self._sheet: tuple[torch.Tensor, torch.Tensor | None] | None = None
        self._cache: SheetCache | None = None

    @classmethod
    def from_weights(cls, weights: str | os.PathLike, size: int | None = None, **kwargs) -> CoNRInference:
        models = load_models(weights)
        kwargs.setdefault("preprocess", models.preprocess)
        return cls(models.detector, models.renderer, size or models.train_size or 256, **kwargs)

    # -- sheet

    def _sheet_crop(self, rgba: np.ndarray) -> torch.Tensor:
        """One sheet image -> straight RGBA [1,4,S,S] float32 in [0, 1]."""
        if self.preprocess == PREPROCESS_OFFICIAL:
            crop = official_sheet_crop(rgba, self.size, self.margin)
            assert crop is not None  # check_sheet_image saw opaque pixels
            # straight again for the renderer, which premultiplies: it then sees the official uint8 values
            premul = torch.from_numpy(crop.astype(np.float32) / 255.0).permute(2, 0, 1)[None]
            return unpremultiply(premul)
        box = square_box(rgba[..., 3] > 0, self.margin)
        assert box is not None
        crop = torch.from_numpy(crop_square(premultiply_float(rgba), box)).permute(2, 0, 1)[None]
        return unpremultiply(resize_premultiplied(crop, self.size))

    def prepare_sheet(self, images: Sequence[np.ndarray], names: Sequence[str] | None = None) -> torch.Tensor:
        """RGBA uint8 images -> straight RGBA [1,n,4,S,S] on the device, each cropped around its alpha."""
        if not images:
            raise UserError("the character sheet has no images")
        crops = []
        for i, rgba in enumerate(images):
            check_sheet_image(rgba, names[i] if names else None)
            crops.append(self._sheet_crop(rgba))
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
        crop = torch.from_numpy(crop_square(premultiply_float(rgba), box)).permute(2, 0, 1)[None]
        x = resize_premultiplied(crop, self.size).to(self.device)
        with autocast_for(self.device, self.precision):
            pred = self.detector(x[:, :3])
        udp = resize_udp(udp_from_prediction(pred.float()), side)[0].permute(1, 2, 0).cpu().numpy()
        return paste_square(np.zeros((h, w, 4), np.float32), udp, box)

    def _target_crop(self, udp: np.ndarray, raw: np.ndarray | None) -> tuple[Box, torch.Tensor] | None:
        """One target -> (box, network input [1,4,S,S]); None when it occupies no pixel."""
        if self.preprocess == PREPROCESS_OFFICIAL:
            framed = official_target_crop(to_official(udp) if raw is None else raw, self.size, self.margin)
            if framed is None:
                return None
            box, landmarks, mask = framed
            return box, torch.from_numpy(official_network_target(landmarks, mask)).permute(2, 0, 1)[None]
        box = square_box(udp[..., 3] > 0.5, self.margin)
        if box is None:
            return None
        crop = torch.from_numpy(crop_square(np.ascontiguousarray(udp, np.float32), box)).permute(2, 0, 1)
        return box, resize_udp(crop[None], self.size)

    def _frame(self, out: torch.Tensor, box: Box, shape: tuple[int, int]) -> np.ndarray:
        """The renderer's premultiplied RGBA [4,S,S] -> the frame in the target's framing (uint8)."""
        if self.preprocess == PREPROCESS_OFFICIAL:
            frame = official_output(out.permute(1, 2, 0).cpu().numpy(), box, shape)
            return frame if self.premultiplied_png else straight_from_premultiplied(frame)
        patch = unpremultiply(resize_premultiplied(out[None], box.side))[0]
        canvas = np.zeros((*shape, 4), np.float32)
        paste_square(canvas, patch.permute(1, 2, 0).cpu().numpy(), box)
        frame = _to_u8(canvas)
        return premultiplied_from_straight(frame) if self.premultiplied_png else frame

    @torch.no_grad()
    def render_udps(self, udps: Sequence[np.ndarray],
                    raw: Sequence[np.ndarray | None] | None = None) -> list[np.ndarray]:
        """Target UDPs (H x W x 4 float32 each, our encoding) -> RGBA uint8 frames (H x W x 4), one batch.

        ``raw`` optionally gives each target's official-form array as read (soft occupancy kept), which
        the official preprocessing uses instead of the binarised UDP.
        """
        if self._sheet is None:
            raise UserError("no character sheet set")
        raw = list(raw) if raw is not None else [None] * len(udps)
        outputs: list[np.ndarray | None] = [None] * len(udps)
        boxes, crops, index = [], [], []
        for i, udp in enumerate(udps):
            framed = self._target_crop(udp, raw[i])
            if framed is None:  # nothing to draw: a transparent frame keeps the sequence's timing
                outputs[i] = np.zeros((*udp.shape[:2], 4), np.uint8)
                continue
            boxes.append(framed[0])
            crops.append(framed[1])
            index.append(i)
        if crops:
            target = torch.cat(crops).to(self.device)
            cache = self._cache if self._cache is not None else self._encode()
            with autocast_for(self.device, self.precision):
                out = self.renderer.render(target, cache)
            out = out.float().clamp(0, 1)
            for j, (i, box) in enumerate(zip(index, boxes)):
                outputs[i] = self._frame(out[j], box, udps[i].shape[:2])
        return [o for o in outputs if o is not None]

    def render_frames(self, frames: Iterable[PoseFrame]) -> Iterator[tuple[PoseFrame, np.ndarray]]:
        """Render a stream of pose frames in batches of ``batch``; yields (frame, RGBA uint8)."""
        pending: list[tuple[PoseFrame, np.ndarray]] = []

        def flush():
            rendered = self.render_udps([u for _, u in pending], [f.official for f, _ in pending])
            return zip((f for f, _ in pending), rendered)

        for frame in frames:
            udp = frame.udp if frame.udp is not None else self.detect_udp(frame.image)
            pending.append((frame, udp))
            if len(pending) == self.batch:
                yield from flush()
                pending = []
        if pending:
            yield from flush()
