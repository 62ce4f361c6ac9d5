"""Inference: loading trained or official weights and running them (``runner``), the framing of sheets
and targets (``preprocess``), reading pose inputs (``udp_io``: UDP files, images, shards) and writing
frames as video (``video``).
"""

from conrmodel.inference.preprocess import PREPROCESS_MODES, crop_square, paste_square, square_box
from conrmodel.inference.runner import CoNRInference, LoadedModels, load_models, load_trained
from conrmodel.inference.udp_io import PoseFrame, iter_pose_frames, read_image
from conrmodel.inference.video import write_video

__all__ = [
    "PREPROCESS_MODES",
    "CoNRInference",
    "LoadedModels",
    "PoseFrame",
    "crop_square",
    "iter_pose_frames",
    "load_models",
    "load_trained",
    "paste_square",
    "read_image",
    "square_box",
    "write_video",
]
