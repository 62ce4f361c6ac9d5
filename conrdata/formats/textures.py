"""Texture images: decode to H x W x 4 uint8 RGBA, find files case-insensitively, grey fallback.

Shared by every mesh reader (glTF/VRM here, PMX/PMD in their own modules).
Supported encodings: PNG, JPEG, BMP, TGA (and whatever else Pillow reads from
bytes embedded in a glTF). Anything unreadable is a FormatError from
:func:`decode_texture`; :func:`load_texture` turns a missing or unsupported file
into a grey texture plus a warning, because a model with one bad texture is
still worth converting. Texture paths written on the author's machine
(``C:\\Users\\...\\tex\\face.png``) are looked up by their last components next to
the model (:func:`find_texture`), with a warning.
"""

from __future__ import annotations

import io
import os
import re
from pathlib import Path

import numpy as np
from PIL import Image

from conrdata.errors import FormatError

#: File extensions the readers decode (lower case).
SUPPORTED_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tga")
#: Largest texture accepted (pixels); bigger ones are refused before decoding.
MAX_PIXELS = 8192 * 8192
GREY = np.array([128, 128, 128, 255], np.uint8)
#: A path that is absolute on Windows or POSIX: ``C:\\...``, ``C:/...``, ``\\\\server\\...``, ``/...``.
_ABSOLUTE = re.compile(r"^(?:[A-Za-z]:)?[\\/]")


def grey_texture(size: int = 4) -> np.ndarray:
    """A size x size x 4 uint8 mid-grey opaque texture (the fallback for missing images)."""
    return np.tile(GREY, (size, size, 1))


def decode_texture(src: str | os.PathLike | bytes, name: str | os.PathLike | None = None) -> np.ndarray:
    """Decode an image file or encoded bytes to H x W x 4 uint8 RGBA (row 0 at the top).

    ``name`` labels ``bytes`` input in errors. Raises FormatError when the data
    is not a readable image or is absurdly large.
    """
    label = name if name is not None else ("<embedded image>" if isinstance(src, bytes) else src)
    try:
        stream = io.BytesIO(src) if isinstance(src, bytes) else open(src, "rb")
    except OSError as err:
        raise FormatError(f"cannot read texture ({err.strerror or err})", label) from None
    try:
        with stream, Image.open(stream) as im:
            w, h = im.size
            if w <= 0 or h <= 0 or w * h > MAX_PIXELS:
                raise FormatError(f"texture size {w}x{h} is out of range", label)
            rgba = np.asarray(im.convert("RGBA"), dtype=np.uint8)
    except FormatError:
        raise
    except Exception as err:  # Pillow raises OSError, SyntaxError, ValueError, ...
        raise FormatError(f"cannot decode texture ({type(err).__name__}: {err})", label) from None
    return np.ascontiguousarray(rgba)


def find_case_insensitive(path: str | os.PathLike) -> Path | None:
    """``path`` if it exists, else the file whose path matches it ignoring case
    (component by component, accepting ``\\`` separators as MMD writes them); None if absent."""
    p = Path(str(path).replace("\\", "/"))
    if p.is_file():
        return p
    parts = p.parts
    if not parts:
        return None
    cur = Path(parts[0]) if p.is_absolute() else Path(".")
    rest = parts[1:] if p.is_absolute() else parts
    for i, part in enumerate(rest):
        cand = cur / part
        if cand.exists():
            cur = cand
            continue
        if part in (".", ".."):
            cur = cand
            continue
        try:
            entries = list(cur.iterdir()) if cur.is_dir() else []
        except OSError:
            return None
        lower = part.lower()
        match = [e for e in entries if e.name.lower() == lower]
        if not match:
            return None
        cur = sorted(match)[0]
        if i < len(rest) - 1 and not cur.is_dir():
            return None
    return cur if cur.is_file() else None


def load_texture(relative: str, base_dir: str | os.PathLike, warnings: list[str] | None = None) -> np.ndarray:
    """Find ``relative`` under ``base_dir`` (case-insensitive, ``\\`` or ``/``) and decode it.

    A missing file, an unsupported extension or an undecodable image gives the
    grey texture and appends a one-line reason to ``warnings``.
    """
    rel = str(relative).replace("\\", "/")
    ext = os.path.splitext(rel)[1].lower()
    if ext not in SUPPORTED_EXTENSIONS:
        _warn(warnings, f"texture {relative}: unsupported format '{ext or '(none)'}', using grey")
        return grey_texture()
    found = find_texture(relative, base_dir, warnings)
    if found is None:
        _warn(warnings, f"texture {relative}: file not found, using grey")
        return grey_texture()
    try:
        return decode_texture(found)
    except FormatError as err:
        _warn(warnings, f"texture {relative}: {err.message}, using grey")
        return grey_texture()


def find_texture(path: str, base_dir: str | os.PathLike, warnings: list[str] | None = None) -> Path | None:
    """The file a model's texture ``path`` names, from ``base_dir`` (the model's folder); None if absent.

    A relative path is tried as given (case-insensitively, ``\\`` or ``/``). When that fails, or the
    path is absolute (a location on the author's machine, ``C:\\Users\\me\\model\\tex\\face.png``),
    its trailing components are tried next to the model, longest first (``tex/face.png``, then
    ``face.png``); a file found that way is used with a line in ``warnings``. An absolute path is
    never opened as such: only files under ``base_dir`` are.
    """
    text = str(path)
    absolute = bool(_ABSOLUTE.match(text))
    parts = [p for p in text.replace("\\", "/").split("/") if p not in ("", ".")]
    if not absolute:
        found = find_case_insensitive(Path(base_dir).joinpath(*parts)) if parts else None
        if found is not None:
            return found
    if absolute and parts and re.fullmatch(r"[A-Za-z]:", parts[0]):
        parts = parts[1:]
    for k in range(len(parts) - (0 if absolute else 1), 0, -1):
        tail = parts[len(parts) - k:]
        if ".." in tail:
            continue
        found = find_case_insensitive(Path(base_dir).joinpath(*tail))
        if found is not None:
            why = "absolute path on another machine" if absolute else "not at that path"
            _warn(warnings, f"texture {text}: {why}; using {'/'.join(tail)} next to the model")
            return found
    return None


def _warn(warnings: list[str] | None, message: str) -> None:
    if warnings is not None:
        warnings.append(message)
