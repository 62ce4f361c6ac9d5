"""Decoders for reading the shards with plain ``webdataset``, and :func:`decode_sample`.

webdataset groups a tar's members into samples by key and decodes each field
by its last extension; it knows PNG and JSON but not our UDP container, so
register :func:`udp_handler` (or use :func:`handlers` / :func:`open_webdataset`)::

    import webdataset as wds
    from conrdata.dataset import wds as cw

    ds = wds.WebDataset("out/shards/train-{000000..000009}.tar", shardshuffle=False)
    for sample in ds.decode(*cw.handlers()):          # fields decoded to numpy
        clip = cw.decode_sample(sample)               # -> ClipArrays
    for sample in wds.WebDataset(urls):               # or undecoded bytes: same call
        clip = cw.decode_sample(sample)

Field names of a sample (suffixes are lower-cased): ``json``, ``NN.rgba.png``, ``NN.udp.udpz``.
"""

from __future__ import annotations

import json

import numpy as np

from conrdata.dataset.codec import RGBA_EXT, UDP_EXT, decode_rgba, decode_udp
from conrdata.dataset.schema import ClipArrays
from conrdata.errors import FormatError


class SampleError(FormatError):
    """A sample that cannot be used; ``kind`` names the failure (e.g. "corrupt-png", "udp-shape")."""

    def __init__(self, kind: str, message: str, path=None, key: str | None = None):
        self.kind = kind
        self.key = key
        self.detail = message
        super().__init__(f"{key + ': ' if key else ''}{kind}: {message}", path)


def udp_handler(key: str, data: bytes):
    """webdataset handler: ``*.udpz`` -> float32 H x W x 4 array; None for other fields."""
    if key.lower().endswith("." + UDP_EXT):
        return decode_udp(data)
    return None


def rgba_handler(key: str, data: bytes):
    """webdataset handler: ``*.rgba.png`` -> uint8 H x W x 4 RGBA array; None for other fields."""
    if key.lower().endswith(".rgba." + RGBA_EXT):
        return decode_rgba(data)
    return None


def handlers() -> list:
    """The handlers to pass to ``WebDataset(...).decode(*handlers())``."""
    return [udp_handler, rgba_handler]


def open_webdataset(urls, **kwargs):
    """``webdataset.WebDataset(urls, **kwargs).decode(*handlers()).map(decode_sample)``: a stream of
    :class:`ClipArrays`. Pass ``handler=webdataset.warn_and_continue`` to skip bad samples."""
    import webdataset  # lazy: start-up cost (~1 s: it imports torch); the numpy reader does without

    kwargs.setdefault("shardshuffle", False)
    return webdataset.WebDataset(urls, **kwargs).decode(*handlers()).map(decode_sample)


def _field(sample: dict, name: str, key: str):
    if name not in sample:
        raise SampleError("missing-file", f"no member {key}.{name}", key=key)
    return sample[name]


def decode_sample(sample: dict, udp: bool = True) -> ClipArrays:
    """One webdataset sample (``{"__key__": ..., "json": ..., "00.rgba.png": ..., ...}``, raw bytes or
    already decoded) -> :class:`ClipArrays`.

    Checks structure only (every listed image present and decodable; UDP float32 H x W x 4 matching
    its RGBA). Raises :class:`SampleError` with a ``kind`` on failure. Value checks (range,
    background, occupancy, alpha agreement) live in :mod:`conrdata.dataset.validate`.
    ``udp=False`` leaves every UDP as None without decoding it (RGBA-only readers).
    """
    key = sample.get("__key__", "?")
    key = key.decode() if isinstance(key, bytes) else str(key)
    rec = _field(sample, "json", key)
    if isinstance(rec, bytes | bytearray | str):
        try:
            rec = json.loads(rec)
        except ValueError as err:
            raise SampleError("bad-json", f"KEY.json does not parse ({err})", key=key) from None
    if not isinstance(rec, dict) or not isinstance(rec.get("images"), list) or "character_id" not in rec:
        raise SampleError("bad-json", "KEY.json lacks character_id or images", key=key)
    rgbas: list[np.ndarray] = []
    udps: list[np.ndarray | None] = []
    for i, im in enumerate(rec["images"]):
        name = f"{i:02d}.rgba.{RGBA_EXT}"
        value = _field(sample, name, key)
        try:
            rgba = decode_rgba(value) if isinstance(value, bytes | bytearray) else np.asarray(value)
        except FormatError as err:
            raise SampleError("corrupt-png", f"{name}: {err.message}", key=key) from None
        if rgba.dtype != np.uint8 or rgba.ndim != 3 or rgba.shape[2] != 4:
            raise SampleError("corrupt-png", f"{name}: not 8-bit RGBA ({rgba.dtype} {rgba.shape})", key=key)
        arr = None
        uname = f"{i:02d}.udp.{UDP_EXT}"
        if udp and im.get("udp", uname in sample):
            value = _field(sample, uname, key)
            try:
                arr = decode_udp(value) if isinstance(value, bytes | bytearray) else np.asarray(value)
            except FormatError as err:
                raise SampleError("corrupt-udp", f"{uname}: {err.message}", key=key) from None
            if arr.dtype != np.float32:
                raise SampleError("udp-dtype", f"{uname}: dtype {arr.dtype}, expected float32", key=key)
            if arr.shape != (*rgba.shape[:2], 4):
                raise SampleError(
                    "udp-shape", f"{uname}: shape {arr.shape}, expected {(*rgba.shape[:2], 4)}", key=key
                )
        rgbas.append(rgba)
        udps.append(arr)
    if not rgbas:
        raise SampleError("bad-json", "clip has no images", key=key)
    return ClipArrays(
        key=key,
        character_id=str(rec["character_id"]),
        split=str(rec.get("split", "")),
        rgba=rgbas,
        udp=udps,
        meta=rec,
    )
