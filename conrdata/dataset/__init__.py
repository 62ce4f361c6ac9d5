"""The dataset format: WebDataset shards of character clips, parquet manifests, the split, readers.

Public API (see docs/data-format.md and manifests/README.md)::

    from conrdata.dataset import Clip, ClipImage, DatasetWriter, iter_clips, clip_key, split_of

    with DatasetWriter("out", max_shard_bytes=1 << 30, max_shard_clips=1000, seed=0) as w:
        w.add_character(cid, {"licence": "CC0", "source": "procedural"})
        key = clip_key(cid, "c0000")
        if not w.has_clip(key):
            image = ClipImage(rgba, udp, pose_id="p0", view={}, camera={}, source="synth")
            w.write(Clip(cid, "c0000", [image]))

    for clip in iter_clips("out", split="train"):   # ClipArrays: key, character_id, split, rgba, udp, meta
        ...

webdataset users: ``conrdata.dataset.wds.handlers()`` and ``conrdata.dataset.wds.decode_sample``.
"""

from conrdata.dataset.codec import decode_rgba, decode_udp, encode_rgba, encode_udp
from conrdata.dataset.export import official_npz_bytes, write_official_udp
from conrdata.dataset.keys import clip_key
from conrdata.dataset.reader import BadSampleWarning, ReadStats, iter_clips, shard_paths
from conrdata.dataset.schema import Clip, ClipArrays, ClipImage
from conrdata.dataset.shardlist import expand_shards
from conrdata.dataset.split import hashed_split, read_pins, split_of
from conrdata.dataset.wds import SampleError, decode_sample
from conrdata.dataset.writer import DatasetWriter

__all__ = [
    "BadSampleWarning",
    "Clip",
    "ClipArrays",
    "ClipImage",
    "DatasetWriter",
    "ReadStats",
    "SampleError",
    "clip_key",
    "decode_rgba",
    "decode_sample",
    "decode_udp",
    "encode_rgba",
    "encode_udp",
    "expand_shards",
    "hashed_split",
    "iter_clips",
    "official_npz_bytes",
    "read_pins",
    "shard_paths",
    "split_of",
    "write_official_udp",
]
