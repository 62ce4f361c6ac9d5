"""Synthesis: rigged characters to UDP + RGBA clips, in img2dataset's shape.

``convert`` (any VRM / glTF / PMX / PMD folder -> canonical A-pose character files), ``job`` (the synth job:
config, seeded tasks, one clip's render, the run with its report), ``pipeline`` (the encode stage run in
threads next to the GL renderer) and ``engines`` (where tasks run: inline, local processes or Ray).
"""

from conrdata.synth.convert import ConvertReport, convert_file, convert_folder, list_characters
from conrdata.synth.engines import ENGINES, InlineEngine, LocalEngine, RayEngine, make_engine
from conrdata.synth.job import (
    ClipOutcome,
    ClipTask,
    SynthConfig,
    SynthReport,
    make_tasks,
    render_clip,
    run_synth,
    synth_folder,
)

__all__ = [
    "ENGINES",
    "ClipOutcome",
    "ClipTask",
    "ConvertReport",
    "InlineEngine",
    "LocalEngine",
    "RayEngine",
    "SynthConfig",
    "SynthReport",
    "convert_file",
    "convert_folder",
    "list_characters",
    "make_engine",
    "make_tasks",
    "render_clip",
    "run_synth",
    "synth_folder",
]
