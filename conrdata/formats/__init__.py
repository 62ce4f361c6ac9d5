"""Mesh formats behind one loader: ``load_model(path) -> Rig``.

Readers turn bytes into a :class:`~conrdata.rig.model.Rig` whose bones are
normalised (see :mod:`conrdata.rig.model`) in the project's world frame (+Y up,
facing +Z, metres), but NOT yet aligned to the canonical A-pose: that is
:func:`conrdata.rig.apose.align_to_apose`'s job.

Supported: ``.glb`` / ``.gltf`` (plain glTF 2.0 with skins), ``.vrm`` (VRM 0.x
and 1.0), ``.pmx`` (PMX 2.0/2.1), ``.pmd``.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path

from conrdata.errors import UserError

#: lower-case extension -> "module:function"; modules are imported on first use.
READERS: dict[str, str] = {
    ".glb": "conrdata.formats.gltf_rig:read_gltf",
    ".gltf": "conrdata.formats.gltf_rig:read_gltf",
    ".vrm": "conrdata.formats.gltf_rig:read_gltf",
    ".pmx": "conrdata.formats.pmx:read_pmx",
    ".pmd": "conrdata.formats.pmd:read_pmd",
}

SUPPORTED_EXTENSIONS = tuple(READERS)


def format_of(path: str | os.PathLike) -> str | None:
    """The format name a path's extension maps to ('glb', 'vrm', 'pmx', ...), None if unsupported."""
    ext = Path(path).suffix.lower()
    return ext[1:] if ext in READERS else None


def load_model(path: str | os.PathLike):
    """Read any supported model file into a Rig (normalised bones, world frame, not A-pose-aligned).

    Raises UserError for an unsupported extension, FormatError for a broken
    file and RigError for a model without a skeleton.
    """
    path = Path(path)
    ext = path.suffix.lower()
    if ext not in READERS:
        known = ", ".join(READERS)
        raise UserError(f"unsupported model format '{ext or '(none)'}' (supported: {known})", path)
    module_name, func = READERS[ext].split(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        raise UserError(f"the reader for {ext} files is not available ({err})", path) from None
    return getattr(module, func)(path)
