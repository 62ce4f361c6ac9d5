"""VMD (MikuMikuDance motion) files: read, write, and Bezier-interpolated sampling of bone tracks.

Layout (little endian; text Shift-JIS (cp932), NUL-terminated in fixed fields):

- 30-byte signature ``"Vocaloid Motion Data 0002"`` (then a 20-byte model name) or the
  old ``"Vocaloid Motion Data file"`` (10-byte model name);
- uint32 bone keyframe count, 111 bytes each: name[15], frame uint32, position
  float32[3] (MMD units, offset from the bone's rest), rotation float32[4]
  (x, y, z, w, local, in MMD's left-handed frame), interpolation uint8[64];
- then optional sections, each a uint32 count: morphs (23 bytes each), cameras
  (61), lights (28), self-shadow (9), and IK show/enable keys (frame uint32, show
  uint8, uint32 count of (name[20], enabled uint8)). Files may end after any section.

Interpolation: the first 16 of the 64 bytes hold four cubic Bezier curves,
for X, Y, Z translation and rotation: ``x1 = b[c], y1 = b[4 + c], x2 = b[8 + c],
y2 = b[12 + c]`` for curve c, each in 0..127 (divide by 127), with end points
(0, 0) and (1, 1); the remaining 48 bytes repeat them (MMD's own redundancy).
A keyframe's curves shape the segment that *ends* at that keyframe.

Names longer than their field are cut by MMD at the byte limit, sometimes inside a
two-byte character: the reader keeps the whole characters, notes it in
``VmdMotion.warnings``, and :func:`field_text` gives the same cut of a model's bone
name so the track still finds its bone.

Everything here stays in MMD's frame and units; :mod:`conrdata.poses.mmd` converts.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from conrdata.errors import FormatError
from conrdata.rig.rotations import quat_normalize, quat_slerp

SIGNATURE_V2 = b"Vocaloid Motion Data 0002"
SIGNATURE_V1 = b"Vocaloid Motion Data file"
BONE_NAME_BYTES = 15
IK_NAME_BYTES = 20
MMD_FPS = 30.0
LINEAR_CURVE = (20, 20, 107, 107)
_MAX_KEYS = 20_000_000

_BONE_DTYPE = np.dtype(
    [
        ("name", "S15"),
        ("frame", "<u4"),
        ("pos", "<f4", (3,)),
        ("rot", "<f4", (4,)),
        ("interp", "u1", (64,)),
    ]
)
assert _BONE_DTYPE.itemsize == 111


@dataclass
class BoneTrack:
    """Keyframes of one bone, sorted by frame (MMD frame and units).

    ``frames`` (K,) int64 at 30 fps; ``positions`` (K, 3) float32; ``rotations`` (K, 4)
    float32 (x, y, z, w); ``curves`` (K, 4, 4) uint8: [X, Y, Z, R] x [x1, y1, x2, y2].
    """

    frames: np.ndarray
    positions: np.ndarray
    rotations: np.ndarray
    curves: np.ndarray


@dataclass
class VmdMotion:
    """The bone part of a VMD file (morphs, cameras and lights are counted but not kept)."""

    model_name: str = ""
    tracks: dict[str, BoneTrack] = field(default_factory=dict)
    #: (frame, {ik bone name: enabled}) in frame order, from the IK section.
    ik_keys: list[tuple[int, dict[str, bool]]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    #: What the reader tolerated (names cut inside a character), one line each, for the report.
    warnings: list[str] = field(default_factory=list)

    @property
    def last_frame(self) -> int:
        return max((int(t.frames[-1]) for t in self.tracks.values() if len(t.frames)), default=0)

    def ik_enabled(self, name: str, frame: float) -> bool:
        """Whether IK bone ``name`` is on at ``frame`` (True unless an IK key before it says otherwise)."""
        state = True
        for f, states in self.ik_keys:
            if f > frame:
                break
            if name in states:
                state = states[name]
        return state


def _decode_field(raw: bytes) -> tuple[str, bool]:
    """Text of a fixed Shift-JIS field (up to its NUL) and whether its end cuts a character in two."""
    raw = raw.split(b"\0", 1)[0]
    try:
        return raw.decode("cp932"), False
    except UnicodeDecodeError:
        pass
    if raw and _is_lead_byte(raw[-1]):
        try:
            return raw[:-1].decode("cp932"), True  # the last byte is the first half of a character
        except UnicodeDecodeError:
            pass
    return raw.decode("cp932", errors="replace").rstrip("\ufffd"), False


def _is_lead_byte(b: int) -> bool:
    """First byte of a two-byte Shift-JIS (cp932) character."""
    return 0x81 <= b <= 0x9F or 0xE0 <= b <= 0xFC


def field_text(name: str, width: int = BONE_NAME_BYTES) -> str:
    """What a ``width``-byte VMD name field keeps of ``name``, as :func:`parse_vmd` reads it back
    (whole Shift-JIS characters of its first ``width`` bytes): the key a cut track name matches."""
    return _decode_field(name.encode("cp932", errors="replace")[:width])[0]


def _note_cut(warns: list[str], raw: bytes, what: str, width: int) -> str:
    text, cut = _decode_field(raw)
    if cut:
        line = f"{what} cut inside a Shift-JIS character at {width} bytes: read as {text!r}"
        if line not in warns:
            warns.append(line)
    return text


def _encode(text: str, n: int) -> bytes:
    raw = text.encode("cp932")
    if len(raw) > n:
        raise ValueError(f"name {text!r} is longer than {n} bytes in Shift-JIS")
    return raw + b"\0" * (n - len(raw))


def read_vmd(path: str | os.PathLike) -> VmdMotion:
    """Parse a VMD file; FormatError naming the file if it is truncated or not a VMD."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise FormatError(f"cannot read: {e.strerror or e}", path) from None
    return parse_vmd(data, path)


def parse_vmd(data: bytes, path: str | os.PathLike | None = None) -> VmdMotion:
    """Parse VMD bytes (see the module docstring)."""
    sig = data[:30]
    if sig.startswith(SIGNATURE_V2):
        name_len = 20
    elif sig.startswith(SIGNATURE_V1):
        name_len = 10
    else:
        raise FormatError("not a VMD motion file (bad signature)", path)
    pos = 30
    if len(data) < pos + name_len + 4:
        raise FormatError("truncated VMD header", path)
    motion = VmdMotion()
    motion.model_name = _note_cut(motion.warnings, data[pos : pos + name_len], "model name", name_len)
    pos += name_len
    count = int.from_bytes(data[pos : pos + 4], "little")
    pos += 4
    if count > _MAX_KEYS or pos + count * 111 > len(data):
        raise FormatError(
            f"truncated VMD: {count} bone keyframes announced, {(len(data) - pos) // 111} present", path
        )
    rec = np.frombuffer(data, _BONE_DTYPE, count=count, offset=pos)
    pos += count * 111
    motion.counts["bone_keys"] = count
    if count:
        if not (np.all(np.isfinite(rec["pos"])) and np.all(np.isfinite(rec["rot"]))):
            raise FormatError("VMD bone keyframe holds non-finite numbers", path)
        # MMD pads names with junk after the NUL, so group by the decoded name, not the raw bytes.
        uniq, first, inverse = np.unique(rec["name"], return_index=True, return_inverse=True)
        by_name: dict[str, list[int]] = {}
        for k in np.argsort(first, kind="stable"):  # keep the file's order of first appearance
            name = _note_cut(motion.warnings, bytes(uniq[k]), "bone name", BONE_NAME_BYTES)
            by_name.setdefault(name, []).append(int(k))
        for name, ks in by_name.items():
            sel = np.nonzero(np.isin(inverse, ks))[0]
            frames = rec["frame"][sel].astype(np.int64)
            # Sort by frame; for repeated frames the later record wins.
            order = np.lexsort((sel, frames))
            frames, sel = frames[order], sel[order]
            keep = np.append(frames[1:] != frames[:-1], True)
            sel = sel[keep]
            interp = rec["interp"][sel][:, :16].reshape(-1, 4, 4)  # [param][curve]
            curves = np.ascontiguousarray(np.transpose(interp, (0, 2, 1)))  # [curve][x1,y1,x2,y2]
            rot = rec["rot"][sel].astype(np.float64)
            rot = np.where(np.linalg.norm(rot, axis=1, keepdims=True) < 1e-8, [0, 0, 0, 1.0], rot)
            motion.tracks[name] = BoneTrack(
                frames[keep],
                rec["pos"][sel].astype(np.float32),
                quat_normalize(rot).astype(np.float32),
                curves,
            )
    # Optional sections; a file may stop after any of them.
    for what, size in (("morph_keys", 23), ("camera_keys", 61), ("light_keys", 28), ("shadow_keys", 9)):
        if pos + 4 > len(data):
            return motion
        n = int.from_bytes(data[pos : pos + 4], "little")
        pos += 4
        if n > _MAX_KEYS or pos + n * size > len(data):
            raise FormatError(f"truncated VMD: {n} {what.replace('_', ' ')} announced", path)
        motion.counts[what] = n
        pos += n * size
    if pos + 4 > len(data):
        return motion
    n = int.from_bytes(data[pos : pos + 4], "little")
    pos += 4
    if n > _MAX_KEYS or pos + n * 9 > len(data):
        raise FormatError(f"truncated VMD: {n} IK keys announced", path)
    keys = []
    for _ in range(n):
        if pos + 9 > len(data):
            raise FormatError("truncated VMD IK section", path)
        frame = int.from_bytes(data[pos : pos + 4], "little")
        m = int.from_bytes(data[pos + 5 : pos + 9], "little")
        pos += 9
        if m > 10_000 or pos + 21 * m > len(data):
            raise FormatError("truncated VMD IK section", path)
        states = {}
        for _ in range(m):
            ik_name = _note_cut(motion.warnings, data[pos : pos + IK_NAME_BYTES], "IK name", IK_NAME_BYTES)
            states[ik_name] = data[pos + IK_NAME_BYTES] != 0
            pos += 21
        keys.append((frame, states))
    keys.sort(key=lambda fs: fs[0])
    motion.ik_keys = keys
    motion.counts["ik_keys"] = n
    return motion


def vmd_bytes(motion: VmdMotion) -> bytes:
    """Serialise bone tracks (and IK keys) as a VMD 0002 file; other sections are written empty."""
    out = [SIGNATURE_V2 + b"\0" * 5, _encode(motion.model_name, 20)]
    recs = []
    for name, tr in motion.tracks.items():
        nb = _encode(name, 15)
        for k in range(len(tr.frames)):
            row = np.zeros(16, np.uint8)
            for c in range(4):
                for p in range(4):
                    row[4 * p + c] = tr.curves[k, c, p]
            interp = np.zeros(64, np.uint8)
            for r in range(4):  # MMD's redundant copies: each row shifted by one byte
                interp[16 * r : 16 * r + 16 - r] = row[r:]
            recs.append((nb, int(tr.frames[k]), tr.positions[k], tr.rotations[k], interp))
    arr = np.zeros(len(recs), _BONE_DTYPE)
    for i, (nb, f, p, q, interp) in enumerate(recs):
        arr[i] = (nb, f, p, q, interp)
    out.append(len(recs).to_bytes(4, "little"))
    out.append(arr.tobytes())
    out.append(b"\0" * 16)  # morphs, cameras, lights, self shadow: none
    out.append(len(motion.ik_keys).to_bytes(4, "little"))
    for frame, states in motion.ik_keys:
        out.append(int(frame).to_bytes(4, "little") + b"\x01" + len(states).to_bytes(4, "little"))
        for n, on in states.items():
            out.append(_encode(n, 20) + (b"\x01" if on else b"\x00"))
    return b"".join(out)


def write_vmd(path: str | os.PathLike, motion: VmdMotion) -> Path:
    path = Path(path)
    path.write_bytes(vmd_bytes(motion))
    return path


def make_track(frames, positions=None, rotations=None, curves=None) -> BoneTrack:
    """A BoneTrack from lists (positions default to 0, rotations to identity, curves to linear)."""
    frames = np.asarray(frames, np.int64)
    K = len(frames)
    pos = np.zeros((K, 3), np.float32) if positions is None else np.asarray(positions, np.float32)
    rot = np.tile([0, 0, 0, 1.0], (K, 1)) if rotations is None else np.asarray(rotations, np.float64)
    cur = (
        np.tile(np.array(LINEAR_CURVE, np.uint8), (K, 4, 1))
        if curves is None
        else np.asarray(curves, np.uint8)
    )
    order = np.argsort(frames, kind="stable")
    return BoneTrack(frames[order], pos[order], quat_normalize(rot[order]).astype(np.float32), cur[order])


# --- Bezier interpolation --------------------------------------------------------------------------


def bezier_ease(x1: np.ndarray, y1: np.ndarray, x2: np.ndarray, y2: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Eased fraction y for time fraction t on the cubic Bezier (0,0), (x1,y1), (x2,y2), (1,1).

    Control values in [0, 1]; solves x(s) = t for s (x is monotonic there) by bisection
    refined with Newton steps, then returns y(s). Vectorised over all arguments.
    """
    x1, y1, x2, y2, t = np.broadcast_arrays(*(np.asarray(a, np.float64) for a in (x1, y1, x2, y2, t)))
    t = np.clip(t, 0.0, 1.0)

    def bx(s):
        return 3 * (1 - s) ** 2 * s * x1 + 3 * (1 - s) * s * s * x2 + s**3

    lo = np.zeros_like(t)
    hi = np.ones_like(t)
    for _ in range(24):
        mid = 0.5 * (lo + hi)
        less = bx(mid) < t
        lo = np.where(less, mid, lo)
        hi = np.where(less, hi, mid)
    s = 0.5 * (lo + hi)
    for _ in range(3):
        dx = 3 * (1 - s) ** 2 * x1 + 6 * (1 - s) * s * (x2 - x1) + 3 * s * s * (1 - x2)
        ok = np.abs(dx) > 1e-9
        s = np.where(ok, np.clip(s - (bx(s) - t) / np.where(ok, dx, 1.0), 0.0, 1.0), s)
    return 3 * (1 - s) ** 2 * s * y1 + 3 * (1 - s) * s * s * y2 + s**3


def sample_track(track: BoneTrack, frame: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
    """Position (N, 3) and rotation (N, 4) of a track at (fractional) MMD frames (N,), MMD frame/units.

    Before the first key the first key holds; after the last, the last.
    """
    f = np.atleast_1d(np.asarray(frame, np.float64))
    frames = track.frames.astype(np.float64)
    K = len(frames)
    if K == 0:
        return np.zeros((len(f), 3)), np.tile([0, 0, 0, 1.0], (len(f), 1))
    k1 = np.clip(np.searchsorted(frames, f, side="right"), 1, max(K - 1, 1))
    k0 = k1 - 1
    if K == 1:
        return (
            np.repeat(track.positions[:1].astype(np.float64), len(f), 0),
            np.repeat(track.rotations[:1].astype(np.float64), len(f), 0),
        )
    span = np.maximum(frames[k1] - frames[k0], 1e-9)
    t = np.clip((f - frames[k0]) / span, 0.0, 1.0)
    cur = track.curves[k1].astype(np.float64) / 127.0  # (N, 4 curves, 4 params)
    ease = bezier_ease(cur[:, :, 0], cur[:, :, 1], cur[:, :, 2], cur[:, :, 3], t[:, None])  # (N, 4)
    p0 = track.positions[k0].astype(np.float64)
    p1 = track.positions[k1].astype(np.float64)
    pos = p0 + (p1 - p0) * ease[:, :3]
    rot = quat_slerp(track.rotations[k0], track.rotations[k1], ease[:, 3])
    return pos, rot
