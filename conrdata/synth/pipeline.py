"""Overlap inside a synthesis worker: each image's labels and encoding run while the next is rendered.

The GL thread (the one owning the worker's context) poses and rasterizes; what follows a read-back
(skeleton labels, the torn-label gate, PNG and UDP encoding) is CPU work on numpy arrays, zlib and
OpenCV, which release the GIL. :class:`ImageStage` hands that work to a small thread pool shared by
the worker process (bounded: one clip's images at most are in flight), then returns the results in
pose order, so the clip and its bytes are exactly those of the sequential path:
:meth:`ImageStage.encode_clip` assembles the tar members the way
:func:`conrdata.dataset.writer.encode_clip` does, from bytes encoded by the same functions.

``ImageStage(overlap=False)`` is the old sequential path (everything inline, then ``encode_clip``),
kept as the reference and as the benchmark's switch.

:class:`OrderedWrites` takes the writer's appends (tar members, hashes, file writes, which release
the GIL) off the thread that renders, in the order they were handed over.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait

import numpy as np

from conrdata.dataset import Clip
from conrdata.dataset.codec import encode_rgba, encode_udp
from conrdata.dataset.keys import clip_key, image_member, json_member
from conrdata.dataset.schema import clip_record, dump_record
from conrdata.dataset.writer import MAX_IMAGES_PER_CLIP, encode_clip

_POOL: dict = {"executor": None, "threads": 0}


def default_threads() -> int:
    """Encoder threads per worker: ``$CONR_SYNTH_THREADS`` if set, else min(4, CPUs)."""
    env = os.environ.get("CONR_SYNTH_THREADS")
    if env:
        return max(1, int(env))
    return max(1, min(4, os.cpu_count() or 1))


def _executor(threads: int) -> ThreadPoolExecutor:
    if _POOL["executor"] is None or _POOL["threads"] != threads:
        if _POOL["executor"] is not None:
            _POOL["executor"].shutdown(wait=True)
        _POOL["executor"] = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="conr-encode")
        _POOL["threads"] = threads
    return _POOL["executor"]


class ImageStage:
    """Collects one clip's images. ``submit(finish, *args)`` runs ``finish(*args)``, which returns
    ``(ClipImage, None)`` for an image to write or ``(None, refusal dict)`` for a refused one, and
    (when overlapping) encodes the written image's PNG and UDP with ``udp_codec``, on the pool.
    ``threads`` 0 means :func:`default_threads`."""

    def __init__(self, overlap: bool = True, udp_codec: str = "zlib", threads: int = 0):
        self.overlap = overlap
        self.udp_codec = udp_codec
        self.threads = threads or default_threads()
        self._jobs: list[Future | tuple] = []

    def submit(self, finish: Callable, *args) -> None:
        if self.overlap:
            self._jobs.append(_executor(self.threads).submit(self._finish_and_encode, finish, args))
        else:
            image, refusal = finish(*args)
            self._jobs.append((image, refusal, None))

    def _finish_and_encode(self, finish: Callable, args: tuple) -> tuple:
        image, refusal = finish(*args)
        if image is None:
            return None, refusal, None
        return image, refusal, _encode_image(image, self.udp_codec)

    def collect(self) -> tuple[list, list[dict]]:
        """(images to write, refusals), both in submission (pose) order; waits for the pool."""
        done = [job.result() if isinstance(job, Future) else job for job in self._jobs]
        self._encoded = [enc for image, _r, enc in done if image is not None]
        images = [image for image, _r, _e in done if image is not None]
        refused = [r for image, r, _e in done if image is None]
        return images, refused

    def cancel(self) -> None:
        """Wait for whatever is still running (a failed clip must not leave work behind)."""
        running = [job for job in self._jobs if isinstance(job, Future) and not job.cancel()]
        wait(running)  # their errors, if any, are dropped: the clip's first error is the one reported
        self._jobs = []

    def encode_clip(self, clip: Clip, split: str) -> tuple[str, list[tuple[str, bytes]], dict]:
        """The clip's (key, tar members, record): exactly :func:`conrdata.dataset.writer.encode_clip`."""
        if not self.overlap:
            return encode_clip(clip, split, self.udp_codec)
        return encode_clip_from_parts(clip, split, self._encoded)


def _encode_image(image, udp_codec: str) -> tuple[bytes, bytes | None]:
    rgba = np.asarray(image.rgba)
    udp = None
    if image.udp is not None:
        arr = np.asarray(image.udp)
        if arr.dtype != np.float32 or arr.shape != (*rgba.shape[:2], 4):
            raise ValueError(f"UDP must be float32 {(*rgba.shape[:2], 4)}, got {arr.dtype} {arr.shape}")
        udp = encode_udp(arr, udp_codec)
    return encode_rgba(rgba), udp


def encode_clip_from_parts(
    clip: Clip, split: str, parts: list[tuple[bytes, bytes | None]]
) -> tuple[str, list[tuple[str, bytes]], dict]:
    """:func:`conrdata.dataset.writer.encode_clip` for a clip whose images are already encoded
    (``parts[i]`` = (PNG bytes, UDP bytes or None) of image i): same key, members and order."""
    if not clip.images:
        raise ValueError(f"clip {clip.character_id}/{clip.clip_id} has no images")
    if len(clip.images) > MAX_IMAGES_PER_CLIP:
        raise ValueError(f"clip {clip.clip_id} has {len(clip.images)} images (max {MAX_IMAGES_PER_CLIP})")
    if len(parts) != len(clip.images):
        raise ValueError(f"clip {clip.clip_id}: {len(parts)} encoded images for {len(clip.images)}")
    key = clip_key(clip.character_id, clip.clip_id)
    record = clip_record(clip, key, split)
    members = [(json_member(key), dump_record(record))]
    for i, (png, udp) in enumerate(parts):
        members.append((image_member(key, i, "rgba"), png))
        if udp is not None:
            members.append((image_member(key, i, "udp"), udp))
    return key, members, record


class OrderedWrites:
    """Runs ``submit(fn, *args)`` calls one at a time on one background thread, in submission order,
    with at most ``depth`` waiting (``submit`` blocks beyond that). ``inline=True`` runs each call at
    once on the caller's thread (the sequential path). A call's exception is raised by a later
    ``submit`` or by leaving the ``with`` block, which waits for every call."""

    def __init__(self, inline: bool = False, depth: int = 2):
        self.inline, self.depth = inline, depth
        self._executor = None if inline else ThreadPoolExecutor(max_workers=1,
                                                                thread_name_prefix="conr-write")
        self._pending: deque[Future] = deque()

    def submit(self, fn: Callable, *args) -> None:
        if self.inline:
            fn(*args)
            return
        while len(self._pending) >= self.depth:
            self._pending.popleft().result()
        self._pending.append(self._executor.submit(fn, *args))

    def drain(self) -> None:
        """Wait for every call; raise the first error."""
        while self._pending:
            self._pending.popleft().result()

    def __enter__(self) -> OrderedWrites:
        return self

    def __exit__(self, exc_type, *exc) -> None:
        try:
            if exc_type is None:
                self.drain()
            else:  # already failing: let the queued writes end, keep the first error
                wait(self._pending)
        finally:
            if self._executor is not None:
                self._executor.shutdown(wait=True)
