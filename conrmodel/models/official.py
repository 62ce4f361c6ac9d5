"""The official CoNR release (megvii-research/CoNR): its four weight files, loaded into our modules.

The release ships ``udpparsernet.pth`` (UDP detector, also the reference encoder),
``target_pose_encoder.pth``, ``shader.pth`` and ``rgbadecodernet.pth``; each is a plain state dict.
They are read through :mod:`conrmodel.checkpoint` (``torch.load(weights_only=True)``) and loaded with
``strict=True`` into the ``official`` preset, whose names and shapes match them exactly. Any problem is a
:class:`~conrdata.errors.FormatError` naming the file.
"""

from __future__ import annotations

import os
from pathlib import Path

from conrdata.errors import UserError
from conrmodel.checkpoint import (
    OFFICIAL_FILES,
    OFFICIAL_PARTS,
    load_strict,
    official_filter,
    read_state_dict,
    save,
)
from conrmodel.models.detector import UDPDetector
from conrmodel.models.factory import build_detector, build_renderer
from conrmodel.models.renderer import CollaborativeRenderer

# parameter counts described in the paper / read off the official networks (millions)
PAPER_PARAMS_M = {"udpparsernet": 57.2, "target_pose_encoder": 27.0, "shader": 96.1, "rgbadecodernet": 0.08}


def load_official(folder: str | os.PathLike, preset: str = "official",
                  **overrides) -> tuple[UDPDetector, CollaborativeRenderer]:
    """Build the ``preset`` renderer and load the four official files from ``folder`` into it.

    Returns ``(detector, renderer)``; the detector IS ``renderer.udpparsernet`` (one network, as in the
    release) when the preset's parser has a decoder, else a separately built detector loading the same
    file. ``overrides`` go to :func:`~conrmodel.models.factory.build_renderer` (e.g. the ablation switches).
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
        states[part] = read_state_dict(path, official_filter, "official weights file")
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
        paths.append(save(getattr(renderer, part).state_dict(), path))
    return paths
