"""Training data: the streaming loader over shards (``stream``: shard lists, view choice, collation,
resumable positions) and its augmentation (``augment``: crops, backgrounds, compositing).
"""

from conrmodel.data.augment import Backgrounds, composite, crop_rgba, crop_udp, random_crop_box
from conrmodel.data.stream import DataPosition, TrainStream, collate, make_loader

__all__ = [
    "Backgrounds",
    "DataPosition",
    "TrainStream",
    "collate",
    "composite",
    "crop_rgba",
    "crop_udp",
    "make_loader",
    "random_crop_box",
]
