"""Read the project's shards as numpy clips: ``for clip in conrdata.shards.iter_clips("out/"): ...``.

A stable, short import path for users; the implementation lives in :mod:`conrdata.dataset`.
"""

from conrdata.dataset import ClipArrays, iter_clips
from conrdata.dataset.wds import decode_sample

__all__ = ["ClipArrays", "decode_sample", "iter_clips"]
