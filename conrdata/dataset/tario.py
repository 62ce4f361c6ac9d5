"""Deterministic tar writing and tolerant streaming tar reading.

Members are written with fixed metadata (mtime 0, uid/gid 0, empty owner
names, mode 0644, GNU format), in the order given, so the same members give
byte-identical archives.
"""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
from collections.abc import Iterator
from pathlib import Path

BLOCK = tarfile.BLOCKSIZE
RECORD = tarfile.RECORDSIZE


def member_bytes(name: str, size: int) -> int:
    """Bytes one regular member takes in a GNU tar (header, long-name block, padded data)."""
    nb = len(name.encode())
    long_name = 0 if nb < tarfile.LENGTH_NAME else BLOCK + -(-(nb + 1) // BLOCK) * BLOCK
    return long_name + BLOCK + -(-size // BLOCK) * BLOCK


class _HashingFile(io.RawIOBase):
    """A write-only file that also feeds a sha256 and counts bytes (tarfile writes sequentially)."""

    def __init__(self, path: Path):
        self._f = open(path, "wb")  # noqa: SIM115 - closed in close()
        self.sha256 = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        n = self._f.write(data)
        self.sha256.update(data)
        self.size += n
        return n

    def tell(self) -> int:
        return self.size

    def flush(self) -> None:
        self._f.flush()

    def sync_and_close(self) -> None:
        self._f.flush()
        os.fsync(self._f.fileno())
        self._f.close()

    def close(self) -> None:
        if not self._f.closed:
            self._f.close()
        super().close()


class DeterministicTarWriter:
    """Append members to a tar at ``path``; :meth:`finish` returns (bytes, sha256 hex)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._file = _HashingFile(self.path)
        self._tar = tarfile.open(fileobj=self._file, mode="w", format=tarfile.GNU_FORMAT)

    def tell(self) -> int:
        return self._file.size

    def add(self, name: str, data: bytes) -> None:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        info.mtime = 0
        info.mode = 0o644
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        self._tar.addfile(info, io.BytesIO(data))

    def flush(self) -> None:
        self._file.flush()

    def finish(self) -> tuple[int, str]:
        self._tar.close()  # writes the end-of-archive blocks and record padding
        self._file.sync_and_close()
        return self._file.size, self._file.sha256.hexdigest()

    def abort(self) -> None:
        try:
            self._file.close()
        finally:
            self.path.unlink(missing_ok=True)


def write_tar(path: str | os.PathLike, members: list[tuple[str, bytes]]) -> tuple[int, str]:
    """Write ``members`` (name, bytes) to a deterministic tar; returns (bytes, sha256 hex)."""
    w = DeterministicTarWriter(path)
    for name, data in members:
        w.add(name, data)
    return w.finish()


class TarTruncated(Exception):
    """The archive ended (or broke) before its end-of-archive marker."""


def iter_members(path: str | os.PathLike) -> Iterator[tuple[str, bytes, int]]:
    """Stream (name, data, header offset) of the regular members of a tar.

    Raises :class:`TarTruncated` (after yielding every complete member) when the
    archive is cut short or a header is damaged. A cut exactly between members is
    caught by the missing end-of-archive marker (two zero blocks at the end).
    """
    with open(path, "rb") as f:
        size = f.seek(0, os.SEEK_END)
        f.seek(max(size - 2 * BLOCK, 0))
        tail = f.read(2 * BLOCK)
        f.seek(0)
        complete = size >= 2 * BLOCK and size % BLOCK == 0 and not any(tail)
        try:
            with tarfile.open(fileobj=f, mode="r|") as tar:
                for info in tar:
                    if not info.isreg():
                        continue
                    member = tar.extractfile(info)
                    data = member.read() if member is not None else b""
                    if len(data) != info.size:
                        raise TarTruncated(f"member {info.name} is cut short")
                    yield info.name, data, info.offset
        except (tarfile.ReadError, EOFError, tarfile.HeaderError) as err:
            raise TarTruncated(str(err) or type(err).__name__) from None
        except tarfile.StreamError as err:
            raise TarTruncated(str(err)) from None
    if not complete:
        raise TarTruncated("no end-of-archive marker (file cut short)")
