"""BVH motion capture files: read, write, and forward kinematics in the file's own frame.

A BVH joint has an OFFSET from its parent (the rest pose: all channels zero,
often a T-pose) and CHANNELS: positions (``Xposition``...) and rotations in
degrees (``Zrotation Xrotation Yrotation``...). Rotations compose in the order
listed, R = R_first @ R_second @ R_third, and are local rotations in axes
parallel to the file's world axes at rest: the convention of :mod:`conrdata.rig.model`.
A joint with position channels takes them as its offset (the root, usually).
``End Site`` blocks give the far end of leaf joints.

Units and axes are whatever the file uses (CMU: inches-ish, +Y up);
:mod:`conrdata.poses.retarget` finds the up/left axes and the scale.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from conrdata.errors import FormatError
from conrdata.poses.kinematics import fk_batch
from conrdata.rig.rotations import euler_to_quat, quat_identity

CHANNEL_NAMES = ("Xposition", "Yposition", "Zposition", "Xrotation", "Yrotation", "Zrotation")
MAX_JOINTS = 10_000
MAX_VALUES = 200_000_000


@dataclass
class BvhMotion:
    """Joints (parents first), rest offsets, channels and frame data of a BVH file.

    ``offsets`` (J, 3); ``channels[j]`` names of joint j's channels; ``end_sites``
    joint index -> (3,) offset of its End Site; ``frames`` (F, C) float64 values in
    file order (C = total channels); ``frame_time`` seconds; ``warnings`` one line per
    thing :func:`parse_bvh` tolerated.
    """

    names: list[str]
    parents: np.ndarray
    offsets: np.ndarray
    channels: list[list[str]]
    frames: np.ndarray
    frame_time: float = 1.0 / 30.0
    end_sites: dict[int, np.ndarray] = field(default_factory=dict)
    #: What the reader tolerated (e.g. a frame count that disagrees with the data), for the report.
    warnings: list[str] = field(default_factory=list)

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])

    def channel_slices(self) -> list[slice]:
        out, k = [], 0
        for ch in self.channels:
            out.append(slice(k, k + len(ch)))
            k += len(ch)
        return out

    def local_transforms(self, frame_idx=None) -> tuple[np.ndarray, np.ndarray]:
        """Local rotations (F, J, 4) and local offsets (F, J, 3) (position channels replace OFFSET)."""
        data = self.frames if frame_idx is None else self.frames[np.asarray(frame_idx).reshape(-1)]
        F, J = len(data), len(self.names)
        q = quat_identity((F, J))
        off = np.broadcast_to(self.offsets, (F, J, 3)).copy()
        for j, (ch, sl) in enumerate(zip(self.channels, self.channel_slices())):
            vals = data[:, sl]
            rot_axes, rot_cols = "", []
            for k, c in enumerate(ch):
                if c.endswith("position"):
                    off[:, j, "XYZ".index(c[0])] = vals[:, k]
                else:
                    rot_axes += c[0]
                    rot_cols.append(k)
            if rot_axes:
                q[:, j] = euler_to_quat(np.radians(vals[:, rot_cols]), rot_axes)
        return q, off

    def rest_positions(self) -> np.ndarray:
        """(J, 3) joint positions at rest (offsets only), file units and axes."""
        pos = np.zeros((len(self.names), 3))
        for j, p in enumerate(self.parents):
            pos[j] = self.offsets[j] + (pos[p] if p >= 0 else 0.0)
        return pos

    def world(self, frame_idx=None) -> tuple[np.ndarray, np.ndarray]:
        """World rotations (F, J, 4) relative to rest and world positions (F, J, 3), file units/axes."""
        q, off = self.local_transforms(frame_idx)
        rest = self.rest_positions()
        # fk_batch wants bind heads and offsets from them: express the posed offsets as deltas.
        delta = off - self.offsets[None]
        return fk_batch(self.parents, rest, q, None, delta)


_TOKEN = re.compile(r"\S+")


def read_bvh(path: str | os.PathLike) -> BvhMotion:
    """Parse a BVH file; FormatError naming the file if it is malformed or truncated."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8", errors="replace")
    except OSError as e:
        raise FormatError(f"cannot read: {e.strerror or e}", path) from None
    return parse_bvh(text, path)


def parse_bvh(text: str, path: str | os.PathLike | None = None) -> BvhMotion:
    """Parse BVH text (see the module docstring).

    Tolerated, with a line in ``warnings``: a ``Frames:`` count that disagrees with the data (every
    whole frame is read) and a partial last frame (dropped). Tolerated silently, as they change
    nothing: CRLF or CR line endings, tabs, trailing whitespace and a byte order mark.
    """
    text = text.lstrip("\ufeff")  # a UTF-8 byte order mark, as Windows editors write
    m = re.search(r"\bMOTION\b", text)
    if not text.lstrip().startswith("HIERARCHY") or m is None:
        raise FormatError("not a BVH file (needs HIERARCHY ... MOTION)", path)
    tokens = _TOKEN.findall(text[: m.start()])
    names: list[str] = []
    parents: list[int] = []
    offsets: list[list[float]] = []
    channels: list[list[str]] = []
    end_sites: dict[int, np.ndarray] = {}
    stack: list[int] = []  # joint index per open brace; -2 for an End Site block
    i = 1
    n = len(tokens)

    def take(what: str) -> str:
        nonlocal i
        if i >= n:
            raise FormatError(f"BVH hierarchy ends early (expected {what})", path)
        i += 1
        return tokens[i - 1]

    def floats(k: int, what: str) -> list[float]:
        vals = []
        for _ in range(k):
            t = take(what)
            try:
                v = float(t)
            except ValueError:
                raise FormatError(f"BVH {what}: {t[:30]!r} is not a number", path) from None
            if not np.isfinite(v):
                raise FormatError(f"BVH {what} is not finite", path)
            vals.append(v)
        return vals

    while i < n:
        t = take("a joint")
        if t in ("ROOT", "JOINT"):
            if t == "JOINT" and not stack:
                raise FormatError("BVH JOINT outside any ROOT", path)
            if t == "ROOT" and stack:
                raise FormatError("BVH ROOT inside another joint", path)
            if stack and stack[-1] == -2:
                raise FormatError("BVH JOINT inside an End Site", path)
            name = take("a joint name")
            if len(names) >= MAX_JOINTS:
                raise FormatError(f"BVH has more than {MAX_JOINTS} joints", path)
            if take("'{'") != "{":
                raise FormatError(f"BVH joint {name!r}: expected '{{'", path)
            names.append(name)
            parents.append(stack[-1] if stack else -1)
            offsets.append([0.0, 0.0, 0.0])
            channels.append([])
            stack.append(len(names) - 1)
        elif t == "End":
            if take("'Site'") != "Site" or take("'{'") != "{" or not stack or stack[-1] < 0:
                raise FormatError("BVH End Site misplaced", path)
            stack.append(-2)
            end_sites[stack[-2]] = np.zeros(3)
        elif t == "OFFSET":
            if not stack:
                raise FormatError("BVH OFFSET outside a joint", path)
            vals = floats(3, "OFFSET")
            if stack[-1] == -2:
                end_sites[stack[-2]] = np.array(vals)
            else:
                offsets[stack[-1]] = vals
        elif t == "CHANNELS":
            if not stack or stack[-1] < 0:
                raise FormatError("BVH CHANNELS outside a joint", path)
            try:
                k = int(take("a channel count"))
            except ValueError:
                raise FormatError("BVH channel count is not an integer", path) from None
            if not 0 <= k <= 6:
                raise FormatError(f"BVH joint has {k} channels (0..6 allowed)", path)
            chans = [take("a channel name") for _ in range(k)]
            for c in chans:
                if c not in CHANNEL_NAMES:
                    raise FormatError(f"BVH unknown channel {c[:30]!r}", path)
            channels[stack[-1]] = chans
        elif t == "}":
            if not stack:
                raise FormatError("BVH has an unmatched '}'", path)
            stack.pop()
        else:
            raise FormatError(f"BVH hierarchy: unexpected {t[:30]!r}", path)
    if stack:
        raise FormatError("BVH hierarchy has unclosed '{'", path)
    if not names:
        raise FormatError("BVH has no joints", path)

    motion = text[m.end():]
    fm = re.match(r"\s*Frames\s*:\s*(\d+)\s*Frame\s+Time\s*:\s*(\S+)", motion)
    if fm is None:
        raise FormatError("BVH MOTION section lacks 'Frames:' and 'Frame Time:'", path)
    F = int(fm.group(1))
    try:
        dt = float(fm.group(2))
    except ValueError:
        raise FormatError("BVH Frame Time is not a number", path) from None
    if not (np.isfinite(dt) and dt > 0):
        raise FormatError("BVH Frame Time must be positive", path)
    C = sum(len(c) for c in channels)
    body = motion[fm.end():].split()
    if len(body) > MAX_VALUES:
        raise FormatError(f"BVH holds {len(body)} frame values: too large", path)
    warns: list[str] = []
    F = _whole_frames(F, C, len(body), warns, path)
    try:
        data = np.array(body[: F * C], dtype=np.float64).reshape(F, C)
    except ValueError:
        raise FormatError("BVH frame data holds something that is not a number", path) from None
    if not np.all(np.isfinite(data)):
        raise FormatError("BVH frame data holds non-finite numbers", path)
    return BvhMotion(names, np.array(parents, np.int64), np.array(offsets, np.float64), channels, data, dt,
                     end_sites, warns)


def _whole_frames(announced: int, channels: int, values: int, warns: list[str], path) -> int:
    """How many frames to read: every whole frame the data holds, whatever ``Frames:`` says.

    Exporters get the header wrong by a frame or two (one more frame than announced is common);
    the data is what was recorded, so it wins, with a warning. A partial last frame is dropped
    (warned). No whole frame at all while the header announces some is a truncated file.
    """
    if channels == 0:
        if values:
            raise FormatError(f"BVH has {values} frame values but no channels", path)
        return announced
    whole, partial = divmod(values, channels)
    if whole == 0 and announced > 0:
        raise FormatError(f"BVH truncated: {announced} frames of {channels} channels announced, "
                          f"{values} numbers found", path)
    if whole != announced:
        warns.append(f"header says {announced} frames, the data holds {whole}: read {whole}")
    if partial:
        warns.append(f"last {partial} numbers are a partial frame of {channels} channels: dropped")
    return whole


def bvh_text(motion: BvhMotion) -> str:
    """Serialise a :class:`BvhMotion` as BVH text (values with 6 decimals)."""
    lines = ["HIERARCHY"]
    children: dict[int, list[int]] = {j: [] for j in range(len(motion.names))}
    roots = []
    for j, p in enumerate(motion.parents):
        (children[int(p)] if p >= 0 else roots).append(j)

    order: list[int] = []  # the file lists joints depth first; frame columns must follow that order

    def emit(j: int, depth: int) -> None:
        order.append(j)
        ind = "  " * depth
        lines.append(f"{ind}{'ROOT' if motion.parents[j] < 0 else 'JOINT'} {motion.names[j]}")
        lines.append(f"{ind}{{")
        o = motion.offsets[j]
        lines.append(f"{ind}  OFFSET {o[0]:.6f} {o[1]:.6f} {o[2]:.6f}")
        ch = motion.channels[j]
        lines.append(f"{ind}  CHANNELS {len(ch)}" + ("".join(" " + c for c in ch)))
        for c in children[j]:
            emit(c, depth + 1)
        if j in motion.end_sites:
            e = motion.end_sites[j]
            lines.extend([f"{ind}  End Site", f"{ind}  {{",
                          f"{ind}    OFFSET {e[0]:.6f} {e[1]:.6f} {e[2]:.6f}", f"{ind}  }}"])
        lines.append(f"{ind}}}")

    for r in roots:
        emit(r, 0)
    lines += ["MOTION", f"Frames: {motion.num_frames}", f"Frame Time: {motion.frame_time:.6f}"]
    sl = motion.channel_slices()
    cols = np.concatenate([np.arange(sl[j].start, sl[j].stop) for j in order]).astype(np.int64)
    for row in motion.frames[:, cols] if len(cols) else motion.frames:
        lines.append(" ".join(f"{v:.6f}" for v in row))
    return "\n".join(lines) + "\n"


def write_bvh(path: str | os.PathLike, motion: BvhMotion) -> Path:
    path = Path(path)
    path.write_text(bvh_text(motion), encoding="utf-8")
    return path
