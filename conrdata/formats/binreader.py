"""A bounds-checked little-endian reader for binary model formats (PMX, PMD, ...).

Every read checks that the bytes are there and raises :class:`~conrdata.errors.FormatError`
naming the file otherwise; every element count read from the file is checked
against the bytes that remain (times the smallest possible element size) and an
absolute cap *before* anything is allocated, so a corrupt count can neither
allocate gigabytes nor loop for hours.
"""

from __future__ import annotations

import os
import struct

import numpy as np

from conrdata.errors import FormatError

_U8 = struct.Struct("<B")
_I8 = struct.Struct("<b")
_U16 = struct.Struct("<H")
_I16 = struct.Struct("<h")
_U32 = struct.Struct("<I")
_I32 = struct.Struct("<i")
_F32 = struct.Struct("<f")

#: No element count in a model file may exceed this (50 million), whatever the file size.
MAX_COUNT = 50_000_000


class BinReader:
    """Sequential reader over ``data`` (bytes); ``path`` is only used in error messages.

    ``pos`` is the current byte offset. All multi-byte values are little-endian.
    """

    def __init__(self, data: bytes, path: str | os.PathLike | None = None, what: str = "file"):
        self.data = bytes(data)
        self.path = None if path is None else os.fspath(path)
        self.what = what
        self.pos = 0

    # --- errors and bounds ---------------------------------------------------------------------------

    def error(self, message: str) -> FormatError:
        """A FormatError for this file, mentioning the byte offset."""
        return FormatError(f"{message} (at byte {self.pos})", self.path)

    @property
    def remaining(self) -> int:
        return len(self.data) - self.pos

    def at_end(self) -> bool:
        return self.pos >= len(self.data)

    def need(self, n: int, what: str = "data") -> None:
        """Raise FormatError unless ``n`` more bytes are available."""
        if n < 0 or self.pos + n > len(self.data):
            raise self.error(f"truncated {self.what}: {what} needs {n} bytes, {self.remaining} left")

    def _unpack(self, st: struct.Struct, what: str):
        self.need(st.size, what)
        v = st.unpack_from(self.data, self.pos)[0]
        self.pos += st.size
        return v

    # --- scalars -------------------------------------------------------------------------------------

    def u8(self, what: str = "byte") -> int:
        return self._unpack(_U8, what)

    def i8(self, what: str = "byte") -> int:
        return self._unpack(_I8, what)

    def u16(self, what: str = "uint16") -> int:
        return self._unpack(_U16, what)

    def i16(self, what: str = "int16") -> int:
        return self._unpack(_I16, what)

    def u32(self, what: str = "uint32") -> int:
        return self._unpack(_U32, what)

    def i32(self, what: str = "int32") -> int:
        return self._unpack(_I32, what)

    def f32(self, what: str = "float") -> float:
        return self._unpack(_F32, what)

    def int_of_size(self, size: int, signed: bool, what: str = "index") -> int:
        """An integer of 1, 2 or 4 bytes."""
        fmt = {(1, True): _I8, (1, False): _U8, (2, True): _I16, (2, False): _U16, (4, True): _I32,
               (4, False): _U32}.get((size, signed))
        if fmt is None:
            raise self.error(f"unsupported integer size {size}")
        return self._unpack(fmt, what)

    def floats(self, n: int, what: str = "floats") -> tuple[float, ...]:
        """``n`` float32 values as a tuple."""
        self.need(4 * n, what)
        v = struct.unpack_from(f"<{n}f", self.data, self.pos)
        self.pos += 4 * n
        return v

    def bytes(self, n: int, what: str = "bytes") -> bytes:
        self.need(n, what)
        v = self.data[self.pos : self.pos + n]
        self.pos += n
        return v

    def skip(self, n: int, what: str = "data") -> None:
        self.need(n, what)
        self.pos += n

    # --- counts and arrays ---------------------------------------------------------------------------

    def check_count(self, count: int, min_item_bytes: int, what: str, limit: int = MAX_COUNT) -> int:
        """Validate an element count read from the file before anything is allocated for it."""
        if count < 0:
            raise self.error(f"negative {what} count {count}")
        if count > limit:
            raise self.error(f"absurd {what} count {count} (limit {limit})")
        if count * max(min_item_bytes, 0) > self.remaining:
            raise self.error(
                f"truncated {self.what}: {count} {what} need at least {count * min_item_bytes} bytes, "
                f"{self.remaining} left"
            )
        return count

    def count(self, min_item_bytes: int, what: str, size: int = 4, signed: bool = True,
              limit: int = MAX_COUNT) -> int:
        """Read an element count (int32 by default) and validate it with :meth:`check_count`."""
        n = self.int_of_size(size, signed, f"{what} count")
        return self.check_count(n, min_item_bytes, what, limit)

    def array(self, dtype, count: int, what: str = "array") -> np.ndarray:
        """``count`` elements of little-endian ``dtype`` as a new (writable) numpy array."""
        dt = np.dtype(dtype).newbyteorder("<")
        self.check_count(count, dt.itemsize, what)
        self.need(count * dt.itemsize, what)
        out = np.frombuffer(self.data, dtype=dt, count=count, offset=self.pos).astype(dt.newbyteorder("="))
        self.pos += count * dt.itemsize
        return out

    # --- text ----------------------------------------------------------------------------------------

    def fixed_text(self, n: int, encoding: str = "cp932", what: str = "text") -> str:
        """A NUL-terminated string in a fixed ``n``-byte field (PMD style); undecodable bytes replaced."""
        raw = self.bytes(n, what)
        cut = raw.find(b"\0")
        if cut >= 0:
            raw = raw[:cut]
        return raw.decode(encoding, errors="replace")

    def sized_text(self, encoding: str, what: str = "text", limit: int = 1 << 24) -> str:
        """An int32 byte length followed by that many bytes of text (PMX style)."""
        n = self.i32(f"{what} length")
        if n < 0 or n > limit:
            raise self.error(f"bad {what} length {n}")
        raw = self.bytes(n, what)
        return raw.decode(encoding, errors="replace")
