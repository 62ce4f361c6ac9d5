"""The in-memory form of a clip, and its ``KEY.json`` record.

One WebDataset sample is one *clip*: up to K (pose, view) images of one
character. Arrays at the boundary:

- ``rgba``: uint8 H x W x 4, RGB order, row 0 at the top.
- ``udp``: float32 H x W x 4 (docs/design.md encoding: xyz in [0, 1], occupancy in
  channel 3, background exactly 0), or None for unlabeled (hand-drawn) images.

``KEY.json`` (UTF-8, sorted keys) holds::

    {"schema": "conr-clip/1", "key": ..., "character_id": ..., "clip_id": ..., "split": "train"|"val",
     "n_images": N, "labelled": bool (every image has a UDP),
     "images": [{"index": i, "pose_id": str, "view": {...}, "camera": {...}, "source": str,
                 "height": H, "width": W, "udp": bool, **labels}, ...],
     "meta": {...}}

Rendered images add their skeleton labels (:func:`conrdata.render.labels.image_labels`):
``joints`` {humanoid bone: [x, y, z]} (posed bone heads, world metres, the camera record's
frame), ``keypoints`` {humanoid bone: [u, v, visible]} (pixels, the camera's image frame, row 0
at the top; visible 1/0 from the depth test), ``coco17`` {COCO name: [u, v, visible]} and
``torn_share`` (share of foreground UDP pixels that disagree with the skeleton). Drawn images
have none of them; shards written before labels existed lack them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

SCHEMA = "conr-clip/1"


@dataclass
class ClipImage:
    """One rendered or drawn image of a clip.

    ``view`` and ``camera`` are JSON-able dicts (numpy values are converted when written);
    ``source`` says where the image came from (e.g. "synth:<mesh file>", "drawn:<file>").
    ``labels``: JSON-able fields merged into the image's record (``joints``, ``keypoints``,
    ``coco17``, ``torn_share`` for rendered images; see the module docstring).
    """

    rgba: np.ndarray
    udp: np.ndarray | None = None
    pose_id: str = ""
    view: dict = field(default_factory=dict)
    camera: dict = field(default_factory=dict)
    source: str = ""
    labels: dict = field(default_factory=dict)


@dataclass
class Clip:
    """Images of one character; ``clip_id`` is unique within the character."""

    character_id: str
    clip_id: str
    images: list[ClipImage]
    meta: dict = field(default_factory=dict)


@dataclass
class ClipArrays:
    """A clip as read back: arrays plus the parsed ``KEY.json`` (``meta``).

    ``udp[i]`` is None for an unlabeled image. Per-image pose ids, views and cameras are
    in ``meta["images"]``; the caller's clip meta is ``meta["meta"]``.
    """

    key: str
    character_id: str
    split: str
    rgba: list[np.ndarray]
    udp: list[np.ndarray | None]
    meta: dict

    @property
    def labelled(self) -> bool:
        return bool(self.udp) and all(u is not None for u in self.udp)

    def __len__(self) -> int:
        return len(self.rgba)


def to_jsonable(value: Any) -> Any:
    """Numpy arrays/scalars, tuples and paths -> plain JSON types (recursively)."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


def clip_record(clip: Clip, key: str, split: str) -> dict:
    images = []
    for i, im in enumerate(clip.images):
        h, w = np.asarray(im.rgba).shape[:2]
        images.append(
            to_jsonable(im.labels or {}) | {
                "index": i,
                "pose_id": str(im.pose_id),
                "view": to_jsonable(im.view or {}),
                "camera": to_jsonable(im.camera or {}),
                "source": str(im.source),
                "height": int(h),
                "width": int(w),
                "udp": im.udp is not None,
            }
        )
    return {
        "schema": SCHEMA,
        "key": key,
        "character_id": clip.character_id,
        "clip_id": clip.clip_id,
        "split": split,
        "n_images": len(images),
        "labelled": bool(images) and all(im["udp"] for im in images),
        "images": images,
        "meta": to_jsonable(clip.meta or {}),
    }


def dump_record(record: dict) -> bytes:
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
