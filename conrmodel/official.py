"""The official CoNR release (megvii-research/CoNR): its four weight files, loaded into our modules.

The release ships ``udpparsernet.pth`` (UDP detector, also the reference encoder),
``target_pose_encoder.pth``, ``shader.pth`` and ``rgbadecodernet.pth``; each is a plain state dict.
They are read with ``torch.load(weights_only=True)`` (no pickle code runs) and loaded with
``strict=True`` into the ``official`` preset, whose names and shapes match them exactly. Any problem is a
:class:`~conrdata.errors.FormatError` naming the file.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from conrdata.errors import FormatError, UserError
from conrmodel.detector import UDPDetector
from conrmodel.models import build_detector, build_renderer
from conrmodel.renderer import CollaborativeRenderer

# file stem -> attribute of CollaborativeRenderer it loads into
OFFICIAL_PARTS = ("udpparsernet", "target_pose_encoder", "shader", "rgbadecodernet")
OFFICIAL_FILES = tuple(f"{part}.pth" for part in OFFICIAL_PARTS)

# parameter counts described in the paper / read off the official networks (millions)
PAPER_PARAMS_M = {"udpparsernet": 57.2, "target_pose_encoder": 27.0, "shader": 96.1, "rgbadecodernet": 0.08}


def has_official_files(folder: str | os.PathLike) -> bool:
    """True if ``folder`` holds at least one of the four official file names."""
    folder = Path(folder)
    return folder.is_dir() and any((folder / name).is_file() for name in OFFICIAL_FILES)


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A tensor state dict from a ``.pth`` file, safely (weights only).

    Accepts a bare state dict or one wrapped as ``{"state_dict": ...}``/``{"model": ...}``, and strips a
    ``module.`` prefix left by DistributedDataParallel.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError("file not found", path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for corrupt or non-torch files
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise FormatError(f"not a readable PyTorch weights file ({first[:160]})", path) from err
    for key in ("state_dict", "model"):
        if isinstance(obj, Mapping) and isinstance(obj.get(key), Mapping):
            obj = obj[key]
    if not isinstance(obj, Mapping) or not obj:
        raise FormatError("does not hold a state dict (a mapping of parameter names to tensors)", path)
    out: dict[str, torch.Tensor] = {}
    for name, value in obj.items():
        if not isinstance(value, torch.Tensor):
            raise FormatError(f"entry {name!r} is not a tensor", path)
        out[name[7:] if name.startswith("module.") else name] = value
    return out


def load_strict(module: nn.Module, state: Mapping[str, torch.Tensor], path: str | os.PathLike) -> None:
    """``module.load_state_dict(state, strict=True)`` with a one-line error naming ``path``."""
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [k for k in own if k in state and tuple(own[k].shape) != tuple(state[k].shape)]
    if missing or unexpected or shapes:
        bits = []
        if missing:
            bits.append(f"{len(missing)} missing (e.g. {missing[0]})")
        if unexpected:
            bits.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
        if shapes:
            k = shapes[0]
            bits.append(f"{len(shapes)} with other shapes (e.g. {k}: file {tuple(state[k].shape)}, "
                        f"network {tuple(own[k].shape)})")
        raise FormatError("does not match the network: " + "; ".join(bits), path)
    module.load_state_dict(state, strict=True)


def load_official(folder: str | os.PathLike, preset: str = "official",
                  **overrides) -> tuple[UDPDetector, CollaborativeRenderer]:
    """Build the ``preset`` renderer and load the four official files from ``folder`` into it.

    Returns ``(detector, renderer)``; the detector IS ``renderer.udpparsernet`` (one network, as in the
    release) when the preset's parser has a decoder, else a separately built detector loading the same
    file. ``overrides`` go to :func:`~conrmodel.models.build_renderer` (e.g. the ablation switches).
    """
    folder = Path(folder)
    absent = [name for name in OFFICIAL_FILES if not (folder / name).is_file()]
    if absent:
        raise UserError(
            f"missing {', '.join(absent)} (the official release has {', '.join(OFFICIAL_FILES)})", folder
        )
    renderer = build_renderer(preset, **overrides)
    states = {}
    for part in OFFICIAL_PARTS:
        path = folder / f"{part}.pth"
        states[part] = read_state_dict(path)
        load_strict(getattr(renderer, part), states[part], path)
    parser = renderer.udpparsernet
    if isinstance(parser, UDPDetector):
        detector = parser
    else:
        detector = build_detector(preset)
        load_strict(detector, states["udpparsernet"], folder / "udpparsernet.pth")
    return detector.eval(), renderer.eval()


def save_official(renderer: CollaborativeRenderer, folder: str | os.PathLike) -> list[Path]:
    """Write a renderer as the four official files (for the official code, or for tests)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for part in OFFICIAL_PARTS:
        path = folder / f"{part}.pth"
        torch.save(getattr(renderer, part).state_dict(), path)
        paths.append(path)
    return paths
