"""Canonical character files: one ``characters/<id>.npz`` per converted character.

Format (``format_version`` 1), a NumPy ``.npz`` archive read with
``allow_pickle=False`` (nothing in it can run code):

========================  ==========================================================
key                       content
========================  ==========================================================
format_version            int64 scalar, 1
vertices, normals         (V, 3) float32, metres / unit vectors, canonical A-pose bind
uvs                       (V, 2) float32, glTF convention (v = 0 at the top)
faces, face_material      (F, 3) int32, (F,) int32
joints, weights           (V, 4) int32, (V, 4) float32 (rows sum to 1)
bone_names                (B,) unicode
bone_parents, bone_heads  (B,) int32 (parent-first, -1 for roots), (B, 3) float32
texture_<i>               (H, W, 4) uint8 RGBA of material i (or texture_png_<i>: PNG bytes)
ik_<k>_links / _limits    IK chain arrays (MMD rigs only)
json                      UTF-8 JSON (as a uint8 array): humanoid map, materials
                          (name, base_color, alpha_mode, alpha_cutoff,
                          double_sided, has_texture), ik chain scalars, meta, warnings
========================  ==========================================================

``meta`` carries what the pose evaluator (:mod:`conrdata.poses.evaluate`) plays
besides the IK chains: ``meta["mmd"]`` (inherit links, fixed axes, deform layers
and flags, rigid bodies and joints), ``meta["vrm_constraints"]`` and
``meta["apose_correction"]`` (the source rest the MMD rules and IK limits are
evaluated in; IK limits are therefore stored as the file gave them).

Textures are stored as raw RGBA arrays in a zip-deflated archive. Measured
with five 1024 x 1024 textures: deflated raw arrays load in 139 ms (8.7 MB),
PNG-encoded ones in 376 ms (6.1 MB), undeflated raw in 35 ms (21 MB); raw +
deflate is the balance chosen (``png_textures=True`` / ``compress=False``
remain available). Materials that share one texture array store it once
(``texture_source`` in the material JSON names the material index holding it).
"""

from __future__ import annotations

import io
import json
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

from conrdata.errors import FormatError
from conrdata.formats.textures import decode_texture
from conrdata.rig.model import IKChain, Material, Rig

FORMAT_VERSION = 1
ARRAY_FIELDS = ("vertices", "normals", "uvs", "faces", "face_material", "joints", "weights",
                "bone_parents", "bone_heads")
_DTYPES = {"vertices": np.float32, "normals": np.float32, "uvs": np.float32, "faces": np.int32,
           "face_material": np.int32, "joints": np.int32, "weights": np.float32, "bone_parents": np.int32,
           "bone_heads": np.float32}


def _jsonable(value):
    """meta values may hold numpy scalars/arrays; make them JSON."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def save_character(rig: Rig, path, compress: bool = True, png_textures: bool = False) -> Path:
    """Write ``rig`` to ``path`` (.npz) atomically (temp file + rename); returns the path.

    ``png_textures`` stores textures PNG-encoded (smaller, slower to load);
    the default raw arrays load faster.
    """
    path = Path(path)
    rig.check()
    arrays: dict[str, np.ndarray] = {"format_version": np.asarray(FORMAT_VERSION, np.int64)}
    for name in ARRAY_FIELDS:
        arrays[name] = np.ascontiguousarray(getattr(rig, name), dtype=_DTYPES[name])
    arrays["bone_names"] = np.asarray(rig.bone_names, dtype=np.str_) if rig.bone_names else np.zeros(0, "U1")
    materials = []
    stored: dict[int, int] = {}
    for i, m in enumerate(rig.materials):
        has_tex = m.texture is not None
        source = stored.setdefault(id(m.texture), i) if has_tex else i
        if has_tex and source == i:
            tex = np.ascontiguousarray(m.texture, np.uint8)
            if png_textures:
                buf = io.BytesIO()
                Image.fromarray(tex, "RGBA").save(buf, "PNG", compress_level=1)
                arrays[f"texture_png_{i}"] = np.frombuffer(buf.getvalue(), np.uint8)
            else:
                arrays[f"texture_{i}"] = tex
        materials.append({"name": m.name, "base_color": [float(x) for x in m.base_color],
                          "alpha_mode": m.alpha_mode, "alpha_cutoff": float(m.alpha_cutoff),
                          "double_sided": bool(m.double_sided), "has_texture": has_tex,
                          "texture_source": source})
    iks = []
    for k, ik in enumerate(rig.ik_chains):
        arrays[f"ik_{k}_links"] = np.asarray(ik.links, np.int32)
        if ik.limits is not None:
            arrays[f"ik_{k}_limits"] = np.asarray(ik.limits, np.float32)
        iks.append({"ik_bone": int(ik.ik_bone), "target_bone": int(ik.target_bone),
                    "iterations": int(ik.iterations), "max_angle": float(ik.max_angle),
                    "has_limits": ik.limits is not None})
    doc = {"humanoid": {k: int(v) for k, v in rig.humanoid.items()}, "materials": materials,
           "ik_chains": iks, "meta": _jsonable(rig.meta), "warnings": [str(w) for w in rig.warnings]}
    arrays["json"] = np.frombuffer(json.dumps(doc, ensure_ascii=False).encode("utf-8"), np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.stem + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            (np.savez_compressed if compress else np.savez)(f, **arrays)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def load_character(path) -> Rig:
    """Read a character written by :func:`save_character`; FormatError naming the file if it is not one."""
    path = Path(path)
    if not path.is_file():
        raise FormatError("character file not found", path)
    try:
        with np.load(path, allow_pickle=False) as z:
            files = set(z.files)
            if "format_version" not in files or "json" not in files:
                raise FormatError("not a character file (no format_version/json)", path)
            version = int(z["format_version"])
            if version != FORMAT_VERSION:
                raise FormatError(f"character format_version {version} is not supported "
                                  f"(this toolkit reads {FORMAT_VERSION})", path)
            doc = json.loads(bytes(z["json"]).decode("utf-8"))
            arrays = {name: z[name] for name in ARRAY_FIELDS}
            names = [str(n) for n in z["bone_names"]]
            materials = []
            loaded: dict[int, np.ndarray] = {}
            for i, m in enumerate(doc["materials"]):
                tex = None
                src = int(m.get("texture_source", i))
                if m.get("has_texture") and src in loaded:
                    tex = loaded[src]
                elif m.get("has_texture"):
                    if f"texture_{src}" in files:
                        tex = z[f"texture_{src}"]
                    else:
                        tex = decode_texture(z[f"texture_png_{src}"].tobytes(), name=path)
                    if tex.ndim != 3 or tex.shape[2] != 4 or tex.dtype != np.uint8:
                        raise FormatError(f"texture of material {i} is not H x W x 4 uint8", path)
                    loaded[src] = tex
                materials.append(Material(name=m["name"], base_color=np.asarray(m["base_color"], np.float32),
                                          texture=tex, alpha_mode=m["alpha_mode"],
                                          alpha_cutoff=float(m["alpha_cutoff"]),
                                          double_sided=bool(m["double_sided"])))
            iks = []
            for k, ik in enumerate(doc.get("ik_chains", [])):
                iks.append(IKChain(ik_bone=ik["ik_bone"], target_bone=ik["target_bone"],
                                   links=z[f"ik_{k}_links"], iterations=ik["iterations"],
                                   max_angle=ik["max_angle"],
                                   limits=z[f"ik_{k}_limits"] if ik.get("has_limits") else None))
    except FormatError:
        raise
    except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile,
            UnicodeDecodeError) as err:
        raise FormatError(f"corrupt character file ({type(err).__name__}: {err})", path) from None
    rig = Rig(**arrays, bone_names=names, humanoid={k: int(v) for k, v in doc["humanoid"].items()},
              materials=materials, ik_chains=iks, meta=doc.get("meta", {}), warnings=doc.get("warnings", []))
    try:
        rig.check()
    except ValueError as err:
        raise FormatError(f"inconsistent character file ({err})", path) from None
    return rig
