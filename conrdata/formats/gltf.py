"""glTF 2.0 (.gltf / .glb) documents: bytes -> JSON + typed accessor arrays, with bounds checks.

:class:`GltfDocument` is the low-level layer: it parses the container (GLB
chunks or a .gltf JSON with external / data-URI buffers), and turns accessors
into numpy arrays (bufferViews, byteStride, normalised integers, sparse
accessors). Every malformation becomes a :class:`~conrdata.errors.FormatError`
naming the file; sizes are checked before anything is allocated.

:func:`read_gltf` (in :mod:`conrdata.formats.gltf_rig`) builds a
:class:`~conrdata.rig.model.Rig` from a document; VRM extensions are handled there too.
"""

from __future__ import annotations

import base64
import json
import struct
import urllib.parse
import warnings
from pathlib import Path

import numpy as np

from conrdata.errors import FormatError
from conrdata.formats.textures import find_case_insensitive
from conrdata.rig.rotations import quat_to_matrix

GLB_MAGIC = b"glTF"
CHUNK_JSON = 0x4E4F534A
CHUNK_BIN = 0x004E4942

#: componentType -> numpy dtype (little-endian)
COMPONENT_DTYPES = {
    5120: np.dtype("<i1"),
    5121: np.dtype("<u1"),
    5122: np.dtype("<i2"),
    5123: np.dtype("<u2"),
    5125: np.dtype("<u4"),
    5126: np.dtype("<f4"),
}
TYPE_SIZES = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT2": 4, "MAT3": 9, "MAT4": 16}

#: Refuse files (and single buffers) larger than this: a guard against absurd allocations.
MAX_FILE_BYTES = 2 << 30


class GltfDocument:
    """One parsed glTF document.

    Attributes: ``path`` (Path), ``json`` (the raw JSON dict), ``buffers``
    (list of bytes), and lazily ``gltf`` (a :class:`pygltflib.GLTF2` view of
    the same JSON, for code that prefers pygltflib's objects).
    """

    def __init__(self, path: Path, doc: dict, buffers: list[bytes]):
        self.path = Path(path)
        self.json = doc
        self.buffers = buffers
        self._gltf = None
        self._cache: dict[int, np.ndarray] = {}

    # ------------------------------------------------------------------ loading

    @classmethod
    def open(cls, path) -> GltfDocument:
        """Parse a .glb or .gltf file; FormatError on anything malformed, UserError if missing."""
        path = Path(path)
        try:
            size = path.stat().st_size
        except OSError as err:
            raise FormatError(f"cannot read file ({err.strerror or err})", path) from None
        if size > MAX_FILE_BYTES:
            raise FormatError(f"file is {size} bytes, larger than the {MAX_FILE_BYTES} byte limit", path)
        data = path.read_bytes()
        return cls.from_bytes(data, path)

    @classmethod
    def from_bytes(cls, data: bytes, path) -> GltfDocument:
        """Parse glTF content held in memory; ``path`` names it in errors and anchors external URIs."""
        path = Path(path)
        if data[:4] == GLB_MAGIC:
            doc, bin_chunk = _parse_glb(data, path)
        else:
            doc, bin_chunk = _parse_json(data, path), None
        if not isinstance(doc, dict):
            raise FormatError("glTF JSON is not an object", path)
        asset = doc.get("asset")
        if not isinstance(asset, dict) or not str(asset.get("version", "")).startswith("2"):
            raise FormatError("not a glTF 2.0 file (asset.version missing or not 2.x)", path)
        buffers = _load_buffers(doc, bin_chunk, path)
        return cls(path, doc, buffers)

    @property
    def gltf(self):
        """A pygltflib.GLTF2 object for the same JSON (built on first use)."""
        if self._gltf is None:
            import pygltflib  # lazy: start-up cost (~0.1 s), and the numpy readers never need it

            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # pygltflib warns about every optional field left out
                    self._gltf = pygltflib.GLTF2.from_dict(self.json)
            except Exception as err:  # pygltflib raises many kinds on bad JSON
                raise FormatError(f"glTF JSON does not follow the schema ({err})", self.path) from None
        return self._gltf

    # ------------------------------------------------------------------ JSON access

    def list(self, key: str) -> list:
        """A top-level array (``nodes``, ``meshes``, ...), [] if absent; FormatError if not a list."""
        value = self.json.get(key, [])
        if not isinstance(value, list):
            raise FormatError(f"'{key}' is not an array", self.path)
        return value

    def item(self, key: str, index) -> dict:
        """``json[key][index]`` as a dict, with a FormatError for a bad index or a non-object."""
        items = self.list(key)
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(items):
            raise FormatError(f"{key}[{index!r}] does not exist ({len(items)} present)", self.path)
        value = items[index]
        if not isinstance(value, dict):
            raise FormatError(f"{key}[{index}] is not an object", self.path)
        return value

    @property
    def node_names(self) -> list[str]:
        """Name of every node, ``node<i>`` where a node has none."""
        return [
            str(n.get("name")) if isinstance(n, dict) and n.get("name") is not None else f"node{i}"
            for i, n in enumerate(self.list("nodes"))
        ]

    @property
    def extensions(self) -> dict:
        ext = self.json.get("extensions") or {}
        return ext if isinstance(ext, dict) else {}

    # ------------------------------------------------------------------ binary data

    def buffer_view_bytes(self, index: int) -> bytes:
        """The bytes of one bufferView (for images), bounds-checked."""
        view = self.item("bufferViews", index)
        buf = self._buffer(view.get("buffer"))
        offset = _nonneg_int(view.get("byteOffset", 0), "bufferView.byteOffset", self.path)
        length = _nonneg_int(view.get("byteLength"), "bufferView.byteLength", self.path)
        if offset + length > len(buf):
            raise FormatError(f"bufferViews[{index}] runs past the end of its buffer", self.path)
        return buf[offset:offset + length]

    def _buffer(self, index) -> bytes:
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(self.buffers):
            raise FormatError(f"buffers[{index!r}] does not exist", self.path)
        return self.buffers[index]

    def accessor(self, index: int) -> np.ndarray:
        """The accessor's data as a new numpy array.

        Shapes: SCALAR -> (count,), VECn -> (count, n), MATn -> (count, n, n) in
        row-major order (glTF stores matrices column-major; this transposes).
        Normalised integer accessors come back as float32 in [0, 1] / [-1, 1];
        other integers keep their dtype; floats are float32.
        """
        acc = self.item("accessors", index)  # validates the index first
        if index in self._cache:
            return self._cache[index].copy()
        where = f"accessors[{index}]"
        ctype = acc.get("componentType")
        if not isinstance(ctype, int) or ctype not in COMPONENT_DTYPES:
            raise FormatError(f"{where} has unknown componentType {ctype!r}", self.path)
        dtype = COMPONENT_DTYPES[ctype]
        atype = acc.get("type")
        if not isinstance(atype, str) or atype not in TYPE_SIZES:
            raise FormatError(f"{where} has unknown type {atype!r}", self.path)
        ncomp = TYPE_SIZES[atype]
        count = _nonneg_int(acc.get("count"), f"{where}.count", self.path)
        elem = dtype.itemsize * ncomp
        total_bytes = sum(len(b) for b in self.buffers)
        # Guard before allocating: data must fit the buffers; an all-zero (sparse) accessor may not be
        # much larger than the file's data either.
        limit = total_bytes if acc.get("bufferView") is not None else 4 * total_bytes + (1 << 20)
        if count * elem > limit:
            raise FormatError(f"{where} claims {count} elements, more than the buffers hold", self.path)
        if acc.get("bufferView") is not None:
            out = self._read_view(acc, count, dtype, ncomp, where)
        else:
            out = np.zeros((count, ncomp), dtype)
        sparse = acc.get("sparse")
        if sparse is not None:
            self._apply_sparse(out, sparse, dtype, ncomp, count, where)
        out = out.reshape(count, ncomp)
        if acc.get("normalized") and dtype.kind in "iu":
            out = _normalise(out, dtype)
        elif dtype.kind == "f":
            out = out.astype(np.float32, copy=False)
        if atype.startswith("MAT"):
            n = int(atype[3])
            out = out.reshape(count, n, n).transpose(0, 2, 1).copy()
        elif ncomp == 1:
            out = out.reshape(count)
        self._cache[index] = out
        return out.copy()

    def _read_view(self, acc: dict, count: int, dtype: np.dtype, ncomp: int, where: str) -> np.ndarray:
        view_index = acc.get("bufferView")
        view = self.item("bufferViews", view_index)
        buf = self._buffer(view.get("buffer"))
        v_off = _nonneg_int(view.get("byteOffset", 0), "bufferView.byteOffset", self.path)
        v_len = _nonneg_int(view.get("byteLength"), "bufferView.byteLength", self.path)
        a_off = _nonneg_int(acc.get("byteOffset", 0), f"{where}.byteOffset", self.path)
        if v_off + v_len > len(buf):
            raise FormatError(f"bufferViews[{view_index}] runs past the end of its buffer", self.path)
        elem = dtype.itemsize * ncomp
        stride = view.get("byteStride")
        stride = elem if stride is None else _nonneg_int(stride, "bufferView.byteStride", self.path)
        if stride < elem:
            raise FormatError(f"{where}: byteStride {stride} is smaller than one element ({elem})", self.path)
        if count == 0:
            return np.zeros((0, ncomp), dtype)
        needed = a_off + stride * (count - 1) + elem
        if needed > v_len:
            raise FormatError(f"{where} needs {needed} bytes but its bufferView has {v_len}", self.path)
        start = v_off + a_off
        if stride == elem:
            raw = np.frombuffer(buf, dtype=dtype, count=count * ncomp, offset=start)
            return raw.reshape(count, ncomp).copy()
        rows = np.frombuffer(buf, dtype=np.uint8, count=stride * (count - 1) + elem, offset=start)
        rows = np.lib.stride_tricks.as_strided(rows, shape=(count, elem), strides=(stride, 1))
        return np.ascontiguousarray(rows).view(dtype).reshape(count, ncomp).copy()

    def _apply_sparse(self, out: np.ndarray, sparse: dict, dtype, ncomp: int, count: int, where: str) -> None:
        if not isinstance(sparse, dict):
            raise FormatError(f"{where}.sparse is not an object", self.path)
        n = _nonneg_int(sparse.get("count"), f"{where}.sparse.count", self.path)
        idx_spec, val_spec = sparse.get("indices"), sparse.get("values")
        if not isinstance(idx_spec, dict) or not isinstance(val_spec, dict):
            raise FormatError(f"{where}.sparse needs 'indices' and 'values'", self.path)
        itype = idx_spec.get("componentType")
        if itype not in (5121, 5123, 5125):
            raise FormatError(f"{where}.sparse.indices has bad componentType {itype!r}", self.path)
        idx = self._sparse_part(idx_spec, n, COMPONENT_DTYPES[itype], 1, where).reshape(n).astype(np.int64)
        vals = self._sparse_part(val_spec, n, dtype, ncomp, where)
        if n and (idx.max() >= count):
            raise FormatError(f"{where}.sparse index out of range", self.path)
        out[idx] = vals

    def _sparse_part(self, spec: dict, n: int, dtype, ncomp: int, where: str) -> np.ndarray:
        fake = {"bufferView": spec.get("bufferView"), "byteOffset": spec.get("byteOffset", 0)}
        if fake["bufferView"] is None:
            raise FormatError(f"{where}.sparse part has no bufferView", self.path)
        view = self.item("bufferViews", fake["bufferView"])
        if view.get("byteStride") is not None:
            view = dict(view)
            view.pop("byteStride")
        return self._read_view(fake, n, dtype, ncomp, where + ".sparse")

    def image_bytes(self, index: int) -> tuple[bytes | None, str]:
        """Encoded bytes of ``images[index]`` and a label for messages.

        Returns ``(None, label)`` when an external image file is missing (the
        caller substitutes a grey texture and warns).
        """
        img = self.item("images", index)
        if img.get("bufferView") is not None:
            return self.buffer_view_bytes(img["bufferView"]), f"images[{index}]"
        uri = img.get("uri")
        if not isinstance(uri, str):
            raise FormatError(f"images[{index}] has neither bufferView nor uri", self.path)
        if uri.startswith("data:"):
            return _data_uri(uri, self.path), f"images[{index}]"
        target = self.path.parent / urllib.parse.unquote(uri)
        found = find_case_insensitive(target)
        if found is None:
            return None, uri
        return found.read_bytes(), uri

    def node_local_matrix(self, index: int) -> np.ndarray:
        """(4, 4) float64 local transform of a node (its ``matrix`` or T * R * S)."""
        node = self.item("nodes", index)
        if "matrix" in node:
            m = _floats(node["matrix"], 16, f"nodes[{index}].matrix", self.path)
            return m.reshape(4, 4).T.copy()
        t = _floats(node.get("translation", [0, 0, 0]), 3, f"nodes[{index}].translation", self.path)
        r = _floats(node.get("rotation", [0, 0, 0, 1]), 4, f"nodes[{index}].rotation", self.path)
        s = _floats(node.get("scale", [1, 1, 1]), 3, f"nodes[{index}].scale", self.path)
        norm = float(np.linalg.norm(r)) if np.abs(r).max() < 1e6 else np.inf
        if not 1e-12 < norm < 1e6:
            raise FormatError(f"nodes[{index}].rotation is not a unit quaternion", self.path)

        m = np.eye(4)
        m[:3, :3] = quat_to_matrix(r / norm) * s[None, :]
        m[:3, 3] = t
        return m


# ---------------------------------------------------------------------- container parsing


def _parse_glb(data: bytes, path: Path) -> tuple[dict, bytes | None]:
    if len(data) < 12:
        raise FormatError("truncated GLB header", path)
    magic, version, length = struct.unpack_from("<4sII", data, 0)
    if version != 2:
        raise FormatError(f"GLB version {version} is not supported (only 2)", path)
    if length > len(data):
        raise FormatError(f"truncated GLB: header says {length} bytes, file has {len(data)}", path)
    if length < 12:
        raise FormatError("GLB header length is smaller than the header", path)
    pos = 12
    doc_bytes = None
    bin_chunk = None
    while pos < length:
        if pos + 8 > length:
            raise FormatError("truncated GLB chunk header", path)
        clen, ctype = struct.unpack_from("<II", data, pos)
        pos += 8
        if pos + clen > length:
            raise FormatError("truncated GLB: a chunk runs past the end of the file", path)
        chunk = data[pos:pos + clen]
        pos += clen
        if ctype == CHUNK_JSON and doc_bytes is None:
            doc_bytes = chunk
        elif ctype == CHUNK_BIN and bin_chunk is None:
            bin_chunk = chunk
        # unknown chunk types are skipped as the spec requires
    if doc_bytes is None:
        raise FormatError("GLB has no JSON chunk", path)
    return _parse_json(doc_bytes, path), bin_chunk


def _parse_json(data: bytes, path: Path):
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise FormatError("glTF JSON is not valid UTF-8", path) from None
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError) as err:
        msg = getattr(err, "msg", "too deeply nested")
        raise FormatError(f"corrupt glTF JSON ({msg})", path) from None


def _load_buffers(doc: dict, bin_chunk: bytes | None, path: Path) -> list[bytes]:
    specs = doc.get("buffers", [])
    if not isinstance(specs, list):
        raise FormatError("'buffers' is not an array", path)
    out = []
    for i, spec in enumerate(specs):
        if not isinstance(spec, dict):
            raise FormatError(f"buffers[{i}] is not an object", path)
        length = _nonneg_int(spec.get("byteLength"), f"buffers[{i}].byteLength", path)
        uri = spec.get("uri")
        if uri is None:
            if i != 0 or bin_chunk is None:
                raise FormatError(f"buffers[{i}] has no uri and there is no GLB binary chunk", path)
            data = bin_chunk
        elif not isinstance(uri, str):
            raise FormatError(f"buffers[{i}].uri is not a string", path)
        elif uri.startswith("data:"):
            data = _data_uri(uri, path)
        else:
            target = path.parent / urllib.parse.unquote(uri)
            try:
                if target.stat().st_size > MAX_FILE_BYTES:
                    raise FormatError(f"external buffer {uri} is too large", path)
                data = target.read_bytes()
            except OSError:
                raise FormatError(f"external buffer {uri} is missing or unreadable", path) from None
        if len(data) < length:
            raise FormatError(f"buffers[{i}] holds {len(data)} bytes, byteLength says {length}", path)
        out.append(data)
    return out


def _data_uri(uri: str, path: Path) -> bytes:
    head, sep, payload = uri.partition(",")
    if not sep:
        raise FormatError("malformed data: URI (no comma)", path)
    try:
        if head.endswith(";base64"):
            return base64.b64decode(payload, validate=False)
        return urllib.parse.unquote_to_bytes(payload)
    except (ValueError, TypeError):
        raise FormatError("malformed base64 in a data: URI", path) from None


def _nonneg_int(value, what: str, path: Path) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise FormatError(f"{what} must be a non-negative integer, got {value!r}", path)
    return value


def _floats(value, n: int, what: str, path: Path) -> np.ndarray:
    if not isinstance(value, list) or len(value) != n:
        raise FormatError(f"{what} must be a list of {n} numbers", path)
    try:
        arr = np.array([float(v) for v in value], np.float64)
    except (TypeError, ValueError):
        raise FormatError(f"{what} must be a list of {n} numbers", path) from None
    if not np.all(np.isfinite(arr)):
        raise FormatError(f"{what} holds a non-finite number", path)
    return arr


def _normalise(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    info = np.iinfo(dtype)
    if dtype.kind == "u":
        return (values.astype(np.float32) / float(info.max)).astype(np.float32)
    return np.maximum(values.astype(np.float32) / float(info.max), -1.0).astype(np.float32)
