"""One home for generated test material (no third-party asset, no renderer unless named):

``clips`` (synthetic dataset clips of overlapping ellipsoids with exact UDP), ``figures`` (anime-like
figures with known alpha on generated backgrounds, and the matting scores IoU / boundary F), ``boxes``
(tiny box rigs for the rasterizers) and ``toydata`` (flat paper-doll characters with exact UDP, written
as a small dataset for smoke runs of the trainer). Tests, benchmarks and the demo use them.
"""

from conrdata.testing.boxes import box_arrays, boxes_rig, checker_texture, demo_scene_rig
from conrdata.testing.clips import synthetic_clip, synthetic_image
from conrdata.testing.figures import BACKGROUND_KINDS, boundary_f, draw_figure, iou, make_background
from conrdata.testing.toydata import render_toy, toy_clip, toy_pose, write_toy_dataset

__all__ = [
    "BACKGROUND_KINDS",
    "boundary_f",
    "box_arrays",
    "boxes_rig",
    "checker_texture",
    "demo_scene_rig",
    "draw_figure",
    "iou",
    "make_background",
    "render_toy",
    "synthetic_clip",
    "synthetic_image",
    "toy_clip",
    "toy_pose",
    "write_toy_dataset",
]
