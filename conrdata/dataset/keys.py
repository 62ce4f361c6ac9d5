"""WebDataset keys and member names of a clip.

webdataset takes a sample's key as the member path up to the first dot of the
basename, so a key never holds a dot (nor a slash). A key is built from the
character id and the clip id; it is stable (a pure function of the two ids) and
unique (distinct id pairs give distinct keys).
"""

from __future__ import annotations

import hashlib
import re

from conrdata.dataset.codec import RGBA_EXT, UDP_EXT

_SAFE = re.compile(r"[^A-Za-z0-9_-]+")
SEPARATOR = "__"
MAX_KEY_CHARS = 80


def _clean(text: str) -> str:
    return _SAFE.sub("-", text).strip("-") or "x"


def clip_key(character_id: str, clip_id: str) -> str:
    """The sample key of clip ``clip_id`` of character ``character_id``: ``<character>__<clip>``.

    Characters outside ``[A-Za-z0-9_-]`` become ``-``. When that changes an id, when the
    character id itself holds ``__``, or when the key would exceed 80 characters (so member
    names fit a 100-byte ustar name), 8 hex characters of sha256 over both ids are appended,
    so the key stays unique.
    """
    character_id, clip_id = str(character_id), str(clip_id)
    if not character_id or not clip_id:
        raise ValueError("character id and clip id must be non-empty")
    c, k = _clean(character_id), _clean(clip_id)
    key = f"{c}{SEPARATOR}{k}"
    if c != character_id or k != clip_id or SEPARATOR in character_id or len(key) > MAX_KEY_CHARS:
        digest = hashlib.sha256(f"{character_id}\0{clip_id}".encode()).hexdigest()[:8]
        key = f"{key[: MAX_KEY_CHARS - 9]}-{digest}"
    return key


def is_valid_key(key: str) -> bool:
    return bool(key) and _SAFE.search(key) is None


def image_member(key: str, index: int, kind: str) -> str:
    """Tar member name of image ``index`` of a clip: ``KEY.NN.rgba.png`` or ``KEY.NN.udp.udpz``."""
    ext = {"rgba": RGBA_EXT, "udp": UDP_EXT}[kind]
    return f"{key}.{index:02d}.{kind}.{ext}"


def json_member(key: str) -> str:
    return f"{key}.json"


def split_member(name: str) -> tuple[str, str]:
    """``KEY.rest`` -> (KEY, rest) following webdataset's rule (first dot of the basename)."""
    base, _, rest = name.partition(".")
    return base, rest.lower()
